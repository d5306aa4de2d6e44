"""``seaice validate``: check a submission file against the test scenes."""
from __future__ import annotations

import sys

from evaluation.submission import validate_submission


def add_parser(sub, parents):
    p = sub.add_parser("validate", parents=parents, help="check a submission file",
                       description="Exit 0 for a valid submission, 1 with one line per problem.")
    p.add_argument("--submission", required=True, metavar="FILE.nc",
                   help="the submission file to check (written by `seaice predict`)")
    p.add_argument("--scenes", required=True, metavar="TEST_DIR", help="folder of the test *_prep.nc scenes")
    p.set_defaults(func=run)


def run(args) -> int:
    problems = validate_submission(args.submission, args.scenes)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return 1
    print(f"{args.submission}: valid submission for the scenes in {args.scenes}")
    return 0
