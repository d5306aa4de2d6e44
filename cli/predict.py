"""``seaice predict``: predict test scenes into a challenge submission file."""
from __future__ import annotations

import sys

from pipeline import predict_folder
from pipeline.convert import ready_scenes

from .options import add_jobs, add_mlflow, add_scale_out, scene_runner
from .products import add_product_options, product_writers, products_line
from .tracking import log_predict, model_folder, tracked
from .train import cache_summary


def add_parser(sub, parents):
    p = sub.add_parser("predict", parents=parents, help="predict scenes into a submission file",
                       description="Predict SIC, SOD and FLOE for every scene of a folder and write one "
                                   "validated submission NetCDF file.")
    p.add_argument("--data", required=True, metavar="TEST_DIR",
                   help="folder of *_prep.nc scenes, or of raw AI4Arctic files (converted "
                        "first, see convert-raw)")
    p.add_argument("--model", required=True, metavar="MODEL_DIR|models:/NAME/VERSION",
                   help="model folder from `seaice train`, or a model of the MLflow Model Registry "
                        "(models:/NAME/VERSION or models:/NAME@ALIAS; needs pip install "
                        "'.[mlflow]', the store as for --mlflow)")
    p.add_argument("--out", required=True, metavar="FILE.nc", help="submission file to write")
    p.add_argument("--stride", type=int, default=None, metavar="S",
                   help="prediction lattice step in pixels (default: the model's)")
    p.add_argument("--no-smoothing", action="store_true", help="skip the spatial smoothing pass")
    add_jobs(p, default=1, help="scenes predicted at once in worker processes (default 1: one "
                                "scene at a time, using every core)")
    add_product_options(p)
    add_mlflow(p)
    add_scale_out(p, "predicted maps")
    p.set_defaults(func=run)


@tracked("predict")
def run(args) -> int:
    with model_folder(args) as model_dir:  # a registered model is downloaded for the run
        return _predict(args, model_dir)


def _predict(args, model_dir) -> int:
    if args.stride is not None and args.stride < 1:
        raise ValueError("--stride must be >= 1")
    writers = product_writers(args, model_dir)  # the submission, and --products if given
    with scene_runner(args, args.out) as runner, \
            ready_scenes(args.data, runner, out=args.out) as data:
        result = predict_folder(data, model_dir, writers, stride=args.stride,
                                smoothing=not args.no_smoothing, runner=runner)
    reused = f", {len(result['reused'])} from the cache" if result["reused"] else ""
    if result["skipped"]:
        n = len(result["skipped"])
        print(f"WARNING: the submission LACKS {n} scene(s) skipped as bad input (--skip-bad); "
              "their charts will score 0:", file=sys.stderr)
        for name, reason in result["skipped"]:
            print(f"  {reason}", file=sys.stderr)
        print(f"wrote {result['out']} ({len(result['scenes'])} scenes, validated, {n} MISSING{reused})")
    else:
        print(f"wrote {result['out']} ({len(result['scenes'])} scenes, validated{reused})")
    if products_line(writers):
        print(products_line(writers))
    log_predict(args, result, model_dir)
    line = cache_summary(runner)
    if line:
        print(line)
    return 0
