"""``run.py predict``: predict test scenes into a challenge submission file."""
from __future__ import annotations

from .options import add_mlflow, show_progress


def add_parser(sub, parents):
    p = sub.add_parser("predict", parents=parents, help="predict scenes into a submission file",
                       description="Predict SIC, SOD and FLOE for every scene of a folder and write one "
                                   "validated submission NetCDF file.")
    p.add_argument("--data", required=True, metavar="TEST_DIR", help="folder of *_prep.nc scenes")
    p.add_argument("--model", required=True, metavar="MODEL_DIR", help="model folder from `run.py train`")
    p.add_argument("--out", required=True, metavar="FILE.nc", help="submission file to write")
    p.add_argument("--stride", type=int, default=None, metavar="S",
                   help="prediction lattice step in pixels (default: the model's)")
    p.add_argument("--no-smoothing", action="store_true", help="skip the spatial smoothing pass")
    add_mlflow(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from evaluation.tracking import log_predict
    from models.batch import predict_folder

    if args.stride is not None and args.stride < 1:
        raise ValueError("--stride must be >= 1")
    result = predict_folder(args.data, args.model, args.out, stride=args.stride,
                            smoothing=not args.no_smoothing, progress=show_progress(args))
    print(f"wrote {result['out']} ({len(result['scenes'])} scenes, validated)")
    log_predict(args, result)
    return 0
