"""Cost of the analysts' products: ``predict --products`` against plain ``predict``.

Usage::

    python benchmarks/bench_products.py [--work DIR] [--cores 2] [--crs EPSG:3413]
        [--formats geotiff,netcdf,gpkg] [--seed 771]

Writes (once, under ``--work``) one 5000 x 5200 synthetic test scene (seed
771 by default: 87 % ice of three stages, many polygons) and a
model trained with the default settings on small synthetic scenes, then
predicts the scene twice in fresh processes pinned to ``--cores`` CPUs: into
the submission alone, and into the submission plus the products of
``--formats`` (and warped GeoTIFFs with ``--crs``). Prints both wall times
and peak RSS, their differences (what the products add), the seconds per
product and the polygons per scene.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_models import _pin  # noqa: E402  (one way to pin to --cores)


def _prepare(work: Path, size, seed):
    """The test scene folder and the model folder (made once)."""
    from pipeline import train_models
    from scenes.synth import write_synthetic_dataset

    big = work / f"scene_{size[0]}x{size[1]}_seed{seed}"
    if not (big / "test").is_dir():
        t = time.perf_counter()
        write_synthetic_dataset(big, n_train=0, n_test=1, size=size, seed=seed, progress=False)
        print(f"wrote one {size[0]} x {size[1]} test scene in {time.perf_counter() - t:.0f} s")
    model = work / "model"
    if not (model / "manifest.json").is_file():
        t = time.perf_counter()
        small = work / "small"
        write_synthetic_dataset(small, n_train=6, n_test=0, size=(600, 640), seed=99,
                                progress=False)
        train_models(small / "train", model, seed=0, n_pixels=200_000, progress=False)
        print(f"trained a default-settings model in {time.perf_counter() - t:.0f} s")
    return big / "test", model


def _child(scenes, model, out, products, formats, crs, cores):
    """One predict run in this fresh process: JSON of its seconds and peak RSS."""
    _pin(cores)
    from evaluation.products import ProductWriter, model_info
    from pipeline import predict_folder

    writers = [Path(out) / "upload_package.nc"]
    if products != "-":
        writers.append(ProductWriter(products, formats=formats, crs=None if crs == "-" else crs,
                                     model=model_info(model)))
    t = time.perf_counter()
    predict_folder(scenes, model, writers, progress=False)
    seconds = time.perf_counter() - t
    extra = {}
    if len(writers) > 1:
        w = writers[1]
        extra = {"product_seconds": w.seconds, "polygons": w.polygons,
                 "sizes_mb": {p.name: round(p.stat().st_size / 2 ** 20, 1) for p in w.written}}
    print(json.dumps({"seconds": seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      **extra}))


def _run(args, scenes, model, products, tag):
    out = Path(args.work) / f"out_{tag}"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "_child", str(scenes), str(model), str(out), str(products),
           args.formats, args.crs or "-", str(args.cores)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode:
        sys.exit(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        scenes, model, out, products, formats, crs, cores = argv[1:8]
        return _child(scenes, model, out, products, formats, crs, int(cores))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="bench_work", help="folder for the scene, model and outputs")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--size", type=int, nargs=2, default=(5000, 5200), metavar=("H", "W"))
    ap.add_argument("--seed", type=int, default=771, help="dataset seed of the test scene")
    ap.add_argument("--formats", default="geotiff,netcdf,gpkg")
    ap.add_argument("--crs", default=None, help="also warp the GeoTIFFs to this CRS")
    args = ap.parse_args(argv)
    cores = _pin(args.cores)
    scenes, model = _prepare(Path(args.work), tuple(args.size), args.seed)
    plain = _run(args, scenes, model, "-", "plain")
    prod = _run(args, scenes, model, Path(args.work) / f"products_{args.seed}", "products")
    print(f"one {args.size[0]} x {args.size[1]} scene, {cores} cores, formats {args.formats}"
          f"{', warped to ' + args.crs if args.crs else ''}")
    print(f"  predict, submission only:       {plain['seconds']:6.1f} s, "
          f"peak RSS {plain['peak_rss_mb']:5.0f} MB")
    print(f"  predict, submission + products: {prod['seconds']:6.1f} s, "
          f"peak RSS {prod['peak_rss_mb']:5.0f} MB")
    print(f"  products add {prod['seconds'] - plain['seconds']:.1f} s and "
          f"{prod['peak_rss_mb'] - plain['peak_rss_mb']:.0f} MB peak")
    print(f"  seconds per product: {prod['product_seconds']}")
    print(f"  polygons per scene: {prod['polygons']}")
    print(f"  file sizes (MB): {prod['sizes_mb']}")


if __name__ == "__main__":
    main()
