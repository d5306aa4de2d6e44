"""``seaice evaluate``: score a submission against reference scenes."""
from __future__ import annotations

import json
from pathlib import Path

from evaluation.figures import write_report
from evaluation.scoring import format_scene_row, format_table, score_submission
from evaluation.submission import open_submission, variable_name
from scenes.contract import LABEL_CHARTS
from scenes.outputs import Input, Output, check_outputs
from scenes.reader import list_scenes, scene_key

from .options import add_mlflow
from .tracking import log_evaluate, tracked

#: Scenes drawn by ``--scenes`` when ``--maps`` names none.
DEFAULT_N_MAPS = 3


def add_parser(sub, parents):
    p = sub.add_parser("evaluate", parents=parents, help="score a submission with the challenge metrics",
                       description="Pooled R2 (SIC) and weighted F1 (SOD, FLOE), combined (2,2,1)/5.")
    p.add_argument("--submission", required=True, metavar="FILE.nc",
                   help="the submission file to score (written by `seaice predict`)")
    p.add_argument("--reference", required=True, metavar="DIR",
                   help="folder of *_prep_reference.nc (or labelled *_prep.nc) scenes")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--report", metavar="DIR", help="write per-scene scores (CSV) and confusion matrices (CSV, PNG) here")
    p.add_argument("--scenes", metavar="TEST_DIR",
                   help="the submission's input *_prep.nc scenes: also draw map figures (HH/HV, "
                        "reference and predicted SIC/SOD/FLOE) into --report")
    p.add_argument("--maps", nargs="+", metavar="KEY",
                   help=f"scene keys to draw with --scenes (default: the first {DEFAULT_N_MAPS})")
    p.add_argument("--allow-missing", action="store_true",
                   help="score a reference scene that has no maps in the submission as 0 instead "
                        "of stopping (a missing chart of a present scene always scores 0)")
    add_mlflow(p)
    p.set_defaults(func=run)


def refuse_missing_scenes(submission, reference_dir) -> None:
    """One-line error if a reference scene has none of its maps in the submission.

    The challenge took only complete submissions; a chart missing from
    scenes that are there still scores 0 (with a warning) when scoring.
    """
    kind = "reference" if any(Path(reference_dir).glob("*_prep_reference.nc")) else "train"
    refs = {scene_key(p): p for p in list_scenes(reference_dir, kind=kind)}
    with open_submission(submission) as f:
        names = set(f.variables)
    keys = [k for k in refs if not any(variable_name(k, c) in names for c in LABEL_CHARTS)]
    if keys:
        more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
        raise ValueError(f"{refs[keys[0]]}: reference scene {keys[0]} has no maps in "
                         f"{submission}{more}; predict its test scene {keys[0]}_prep.nc into the "
                         "submission, or pass --allow-missing to score its charts 0")


def choose_scenes(scenes_dir, keys=None) -> dict:
    """``{key: path}`` of the scenes to draw: ``keys``, or the first few of the folder."""
    scenes = {scene_key(p): p for p in list_scenes(scenes_dir, kind="test")}
    unknown = [k for k in keys or () if k not in scenes]
    if unknown:
        raise ValueError(f"--maps {unknown[0]}: no such scene in {scenes_dir}; "
                         f"choose among {', '.join(sorted(scenes)[:5])}")
    keys = list(keys) if keys else sorted(scenes)[:DEFAULT_N_MAPS]
    return {k: scenes[k] for k in keys}


@tracked("evaluate")  # with --mlflow, its run opens here, its options logged at once
def run(args) -> int:
    check_outputs([Output(args.report and Path(args.report), "--report", folder=True)],
                  [Input(Path(args.submission), "--submission"),
                   Input(Path(args.reference), "--reference"),
                   Input(args.scenes and Path(args.scenes), "--scenes")])
    if (args.scenes or args.maps) and not args.report:
        raise ValueError("--scenes and --maps draw into the report folder; add --report DIR")
    if args.maps and not args.scenes:
        raise ValueError("--maps needs --scenes TEST_DIR (the HH/HV quicklook comes from the scenes)")
    chosen = choose_scenes(args.scenes, args.maps) if args.scenes else {}
    if not args.allow_missing:
        refuse_missing_scenes(args.submission, args.reference)
    result = score_submission(args.submission, args.reference)
    if args.report:
        write_report(result, args.report, submission=args.submission, scenes=chosen,
                     reference_dir=args.reference)
    if args.json:
        print(json.dumps(result["scores"]))
    else:
        print(format_table(result))
        for row in result["per_scene"]:
            print(f"  {format_scene_row(row)}")
    log_evaluate(args, result)
    return 0
