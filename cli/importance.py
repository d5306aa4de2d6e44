"""``seaice importance``: which inputs each chart model uses (tree, TreeSHAP, permutation)."""
from __future__ import annotations

from pathlib import Path

from evaluation.importance import compute_importance, summary_lines, write_importance
from scenes.outputs import Input, Output, check_outputs

from .options import add_mlflow, add_seed, show_progress, whole_number
from .tracking import log_importance


def add_parser(sub, parents):
    p = sub.add_parser(
        "importance", parents=parents, help="feature and feature-group importance of a model",
        description="Gain and split importance per feature and feature group; with --data also "
                    "mean |TreeSHAP| per feature and permutation importance per group (drop of "
                    "the chart's challenge metric) on pixels sampled from the scenes. Writes "
                    "importance.csv (parameter, feature, group, metric, value; feature '*' rows "
                    "are group totals), bar charts and a summary to --out.")
    p.add_argument("--model", required=True, metavar="MODEL_DIR", help="model folder from `seaice train`")
    p.add_argument("--data", metavar="SCENES_DIR",
                   help="folder of *_prep.nc scenes (training scenes, or test scenes with references)")
    p.add_argument("--reference", metavar="DIR",
                   help="folder of *_prep_reference.nc labels for test scenes "
                        "(default: DATA/../reference if it exists)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--pixels-per-scene", type=whole_number(1), default=3000, metavar="N",
                   help="pixels sampled per scene (default 3000)")
    p.add_argument("--repeats", type=whole_number(1), default=3, metavar="R",
                   help="shuffles per feature group for the permutation importance (default 3)")
    add_seed(p)
    add_mlflow(p)
    p.set_defaults(func=run)


def run(args) -> int:
    check_outputs([Output(Path(args.out), "--out", folder=True)],
                  [Input(Path(args.model), "--model", sealed=True),
                   Input(args.data and Path(args.data), "--data"),
                   Input(args.reference and Path(args.reference), "--reference")])
    if args.reference and not args.data:
        raise ValueError("--reference needs --data (the scenes the references belong to)")
    result = compute_importance(args.model, args.data, reference_dir=args.reference,
                                n_per_scene=args.pixels_per_scene, n_repeats=args.repeats,
                                seed=args.seed, progress=show_progress(args))
    paths = write_importance(result, args.out)
    print("\n".join(summary_lines(result)))
    print(f"wrote {paths['csv']}, {paths['features_png'].name}, {paths['groups_png'].name} "
          f"and {paths['summary'].name} in {args.out}")
    log_importance(args, result, paths)
    return 0
