"""Reading, featurizing and predicting one real-size scene stored in different HDF5 layouts.

Usage::

    python benchmarks/bench_io.py [--work DIR] [--model DIR] [--cores 2] [--shape 5482x4958]
                                  [--layouts contiguous tiles512 thirds rows]

Real files written by other tools may be chunked and compressed in any way;
our speed must not depend on it. One synthetic test scene is written in each
layout of its SAR-grid variables (the four float32 inputs):

- ``contiguous``: no chunks, no compression;
- ``tiles512``: 512 x 512 chunks, zlib 4 (our own synthetic files);
- ``thirds``: about a third of the scene per chunk along each axis, zlib 4
  (like the 1828 x 1653 chunks of a real-world file measured for the issue);
- ``rows``: one row per chunk, zlib 4.

For each layout, in a fresh process pinned to ``--cores`` CPUs, it measures
the whole ``seaice predict`` job (checks, reading, features, three models,
the spatial pass, writing the submission) and its peak RSS, then where the
time goes (the read with its value checks, then ``predict_scene``'s phases:
scan, features, boosting, stage 2, render; the write is the rest), and the
floor of any reader (each SAR-grid variable read once).
``--model`` defaults to the worst-case model of ``bench_models.py``
(3 x 300 rounds, trained once on small scenes under ``--work``).
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

#: Layout name -> (chunk shape as a function of the scene shape or None, zlib level or None).
LAYOUTS = {
    "contiguous": (None, None),
    "tiles512": (lambda h, w: (min(h, 512), min(w, 512)), 4),
    "thirds": (lambda h, w: (-(-h // 3), -(-w // 3)), 4),
    "rows": (lambda h, w: (1, w), 4),
}


def write_layouts(work: Path, shape, layouts) -> dict:
    """One scene per layout, ``work/LAYOUT/test/<key>_prep.nc``; written once, then reused."""
    import xarray as xr

    from scenes import contract as C
    from scenes.synth import write_synthetic_dataset

    src_dir = work / "source"
    if not (src_dir / "test").is_dir():
        write_synthetic_dataset(src_dir, n_train=0, n_test=1, size=shape, seed=4242,
                                progress=False)
    src = next((src_dir / "test").glob("*_prep.nc"))
    out = {}
    for name in layouts:
        folder = work / name / "test"
        path = folder / src.name
        out[name] = path
        if path.is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        chunks, level = LAYOUTS[name]
        with xr.open_dataset(src, engine="h5netcdf", mask_and_scale=False, decode_times=False,
                             decode_coords=False) as ds:
            ds = ds.load()
        enc = {}
        for v in ds.data_vars:
            e = {"_FillValue": None}
            if ds[v].dims == C.SAR_DIMS and chunks is not None:
                e["chunksizes"] = chunks(*ds[v].shape)
                if level is not None:
                    e.update(zlib=True, complevel=level)
            elif ds[v].dims == C.SAR_DIMS:
                e["contiguous"] = True
            enc[v] = e
        tmp = path.with_suffix(".tmp")
        ds.to_netcdf(tmp, engine="h5netcdf", encoding=enc)
        tmp.rename(path)
    return out


def _child(scene, model, cores):
    """Runs in a fresh process: the predict job first (its peak RSS is the job's own), then
    where its time goes, then the floor of any reader (every variable read once, lazily)."""
    import tempfile

    import numpy as np

    from models import load_model, predict_scene
    from pipeline import SceneRunner, predict_folder
    from scenes import contract as C
    from scenes.reader import load_scene, open_scene

    scene = Path(scene)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        predict_folder(scene.parent, model, Path(tmp) / "sub.nc",
                       runner=SceneRunner(progress=False))
        out["predict_job_s"] = time.perf_counter() - t
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    bundle = load_model(model)
    t = time.perf_counter()
    ds = load_scene(scene)  # what the job does: read once, check the values in memory
    out["read_s"] = time.perf_counter() - t
    timings = {}
    predict_scene(ds, bundle, timings=timings)
    ds.close()
    del ds
    out["phases"] = {k: v for k, v in timings.items() if k != "lattice_points"}
    ds = open_scene(scene, validate=False)
    t = time.perf_counter()
    for v in C.SAR_GRID_VARS:
        np.asarray(ds[v].values)
    out["read_all_s"] = time.perf_counter() - t
    ds.close()
    print(json.dumps(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/bench_io")
    ap.add_argument("--model", help="model folder (default: bench_models' worst-case model)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--shape", default="5482x4958")
    ap.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=list(LAYOUTS))
    ap.add_argument("--n-estimators", type=int, default=300)
    args = ap.parse_args(argv)
    _pin(args.cores)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    shape = tuple(int(v) for v in args.shape.lower().split("x"))
    if args.model:
        model = Path(args.model)
    else:
        from bench_models import _worst_case_model
        model = _worst_case_model(work, args.n_estimators)
    scenes = write_layouts(work, shape, args.layouts)
    print(f"one {shape[0]} x {shape[1]} scene per layout, {args.cores} cores, model {model}")
    print(f"{'layout':<12}{'file MB':>9}{'predict job s':>15}{'peak RSS MB':>13}  "
          "where the time goes (s): read + checks, then predict_scene's phases; "
          "floor: SAR-grid variables read once")
    results = {}
    for name, path in scenes.items():
        cmd = [sys.executable, __file__, "_child", str(path), str(model), str(args.cores)]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if res.returncode:
            sys.exit(f"{name}: {res.stderr.strip().splitlines()[-1]}")
        r = json.loads(res.stdout.strip().splitlines()[-1])
        results[name] = r
        phases = ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items())
        print(f"{name:<12}{path.stat().st_size / 1e6:>9.0f}{r['predict_job_s']:>15.1f}"
              f"{r['peak_rss_mb']:>13.0f}  read {r['read_s']:.1f}; {phases}; "
              f"floor {r['read_all_s']:.1f}")
    times = [r["predict_job_s"] for r in results.values()]
    if len(times) > 1:
        print(f"slowest / fastest predict job: {max(times) / min(times):.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        _pin(int(sys.argv[4]))
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
