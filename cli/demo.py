"""``seaice demo``: the whole job on a small synthetic dataset, end to end.

Synthesise scenes, train the three models, predict the test scenes into a
validated submission (and, with the geo extra, the analysts' products with a
quicklook of the polygons over HH), score it against the references and draw
the maps: the README's main command, a few minutes on 2 cores.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from evaluation import geo
from evaluation.figures import plot_confusions, plot_submission_maps
from evaluation.products import ProductWriter, model_info
from evaluation.scoring import format_table, score_submission
from pipeline import predict_folder, train_models
from scenes.reader import atomic_write_text, list_scenes, scene_key
from scenes.synth import write_synthetic_dataset

from .convert_raw import synth_converted
from .options import add_device, add_mlflow, add_seed, show_progress
from .synth import parse_size
from .tracking import log_demo

log = logging.getLogger(__name__)


def add_parser(sub, parents):
    p = sub.add_parser("demo", parents=parents, help="synthesise, train, predict, score and draw (end to end)",
                       description="Run the whole pipeline on a small synthetic dataset.")
    p.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (default demo_out)")
    p.add_argument("--train", type=int, default=10, metavar="N", help="training scenes (default 10)")
    p.add_argument("--test", type=int, default=3, metavar="M", help="test scenes (default 3)")
    p.add_argument("--size", type=parse_size, default=(600, 640), help="scene size S or HxW (default 600x640)")
    p.add_argument("--pixels", type=int, default=300_000, metavar="N",
                   help="training pixels (default 300000)")
    p.add_argument("--raw", action="store_true",
                   help="start from synthetic raw files (40 m, polygon codes; in OUT/raw) "
                        "converted into OUT/data, as with real raw data")
    add_device(p)
    add_seed(p)
    add_mlflow(p)
    p.set_defaults(func=run)


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = show_progress(args)
    data, model_dir, report = out / "data", out / "model", out / "report"
    t0 = time.perf_counter()
    print(f"[1/4] synthesising {args.train} training and {args.test} test scenes in {data}")
    if args.raw:
        print(f"      as raw 40 m files in {out / 'raw'}, converted (seaice convert-raw)")
        synth_converted(out / "raw", data, n_train=args.train, n_test=args.test,
                        size=args.size, seed=args.seed, progress=progress)
    else:
        write_synthetic_dataset(data, n_train=args.train, n_test=args.test, size=args.size,
                                seed=args.seed, progress=progress)
    print(f"[2/4] training on {args.pixels} sampled pixels -> {model_dir}")
    manifest = train_models(data / "train", model_dir, device=args.device, seed=args.seed,
                            n_pixels=args.pixels, progress=progress, overwrite=True)
    submission = out / "upload_package.nc"
    writers, products = [submission], None
    if geo.available():
        products = out / "products"
        writers.append(ProductWriter(products, formats=("geotiff", "netcdf", "gpkg", "quicklook"),
                                     model=model_info(model_dir)))
    print(f"[3/4] predicting the test scenes -> {submission}"
          + (f" and products -> {products}" if products else
             " (no products: pip install 'seaice-gbm[geo]' for them)"))
    predict_folder(data / "test", model_dir, writers, progress=progress)
    print(f"[4/4] scoring against {data / 'reference'} and drawing maps -> {report}")
    result = score_submission(submission, data / "reference", report_dir=report)
    plot_confusions(result["confusion"], report)
    scenes = {scene_key(p): p for p in list_scenes(data / "test")}
    plot_submission_maps(submission, scenes, data / "reference", report, products_dir=products)
    scores_path = out / "scores.json"
    atomic_write_text(scores_path, json.dumps({"scores": result["scores"],
                                               "per_scene": result["per_scene"]}, indent=2))
    print(format_table(result))
    log_demo(args, model_dir, manifest, result, report)
    print(f"done in {time.perf_counter() - t0:.0f} s: scores in {scores_path}, maps and confusion "
          f"matrices in {report}")
    return 0
