"""``run.py evaluate``: score a submission against reference scenes."""
from __future__ import annotations

import json


def add_parser(sub, parents):
    p = sub.add_parser("evaluate", parents=parents, help="score a submission with the challenge metrics",
                       description="Pooled R2 (SIC) and weighted F1 (SOD, FLOE), combined (2,2,1)/5.")
    p.add_argument("--submission", required=True, metavar="FILE.nc")
    p.add_argument("--reference", required=True, metavar="DIR",
                   help="folder of *_prep_reference.nc (or labelled *_prep.nc) scenes")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--report", metavar="DIR", help="write per-scene scores (CSV) and confusion matrices (CSV, PNG) here")
    p.set_defaults(func=run)


def run(args) -> int:
    from evaluation.scoring import format_table, score_submission

    result = score_submission(args.submission, args.reference, report_dir=args.report)
    if args.report:
        from evaluation.figures import plot_confusion

        for chart, cm in result["confusion"].items():
            plot_confusion(cm, chart, f"{args.report}/confusion_{chart}.png")
    if args.json:
        print(json.dumps(result["scores"]))
    else:
        print(format_table(result))
        for row in result["per_scene"]:
            print(f"  {row['scene']}: SIC {row['SIC']:.3f}  SOD {row['SOD']:.3f}  FLOE {row['FLOE']:.3f}")
    return 0
