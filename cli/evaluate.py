"""``run.py evaluate``: score a submission against reference scenes."""
from __future__ import annotations

import json
from .options import add_mlflow

#: Scenes drawn by ``--scenes`` when ``--maps`` names none.
DEFAULT_N_MAPS = 3


def add_parser(sub, parents):
    p = sub.add_parser("evaluate", parents=parents, help="score a submission with the challenge metrics",
                       description="Pooled R2 (SIC) and weighted F1 (SOD, FLOE), combined (2,2,1)/5.")
    p.add_argument("--submission", required=True, metavar="FILE.nc")
    p.add_argument("--reference", required=True, metavar="DIR",
                   help="folder of *_prep_reference.nc (or labelled *_prep.nc) scenes")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--report", metavar="DIR", help="write per-scene scores (CSV) and confusion matrices (CSV, PNG) here")
    p.add_argument("--scenes", metavar="TEST_DIR",
                   help="the submission's input *_prep.nc scenes: also draw map figures (HH/HV, "
                        "reference and predicted SIC/SOD/FLOE) into --report")
    p.add_argument("--maps", nargs="+", metavar="KEY",
                   help=f"scene keys to draw with --scenes (default: the first {DEFAULT_N_MAPS})")
    add_mlflow(p)
    p.set_defaults(func=run)


def choose_scenes(scenes_dir, keys=None) -> dict:
    """``{key: path}`` of the scenes to draw: ``keys``, or the first few of the folder."""
    from scenes.reader import list_scenes, scene_key

    scenes = {scene_key(p): p for p in list_scenes(scenes_dir, kind="test")}
    unknown = [k for k in keys or () if k not in scenes]
    if unknown:
        raise ValueError(f"--maps {unknown[0]}: no such scene in {scenes_dir}; "
                         f"choose among {', '.join(sorted(scenes)[:5])}")
    keys = list(keys) if keys else sorted(scenes)[:DEFAULT_N_MAPS]
    return {k: scenes[k] for k in keys}


def run(args) -> int:
    from evaluation.scoring import format_table, score_submission
    from evaluation.tracking import log_evaluate

    if (args.scenes or args.maps) and not args.report:
        raise ValueError("--scenes and --maps draw into the report folder; add --report DIR")
    if args.maps and not args.scenes:
        raise ValueError("--maps needs --scenes TEST_DIR (the HH/HV quicklook comes from the scenes)")
    chosen = choose_scenes(args.scenes, args.maps) if args.scenes else {}
    result = score_submission(args.submission, args.reference, report_dir=args.report)
    if args.report:
        from evaluation.figures import plot_confusions, plot_submission_maps

        plot_confusions(result["confusion"], args.report)
        if chosen:
            plot_submission_maps(args.submission, chosen, args.reference, args.report)
    if args.json:
        print(json.dumps(result["scores"]))
    else:
        print(format_table(result))
        for row in result["per_scene"]:
            print(f"  {row['scene']}: SIC {row['SIC']:.3f}  SOD {row['SOD']:.3f}  FLOE {row['FLOE']:.3f}")
    log_evaluate(args, result)
    return 0
