"""``run.py synth``: write synthetic AI4Arctic scenes."""
from __future__ import annotations

import argparse
import logging

from scenes.synth import write_synthetic_dataset

from .options import add_seed, show_progress

log = logging.getLogger(__name__)


def parse_size(text: str):
    """``S`` (square), ``HxW`` or ``real`` (sizes drawn from the real scenes)."""
    if text == "real":
        return "real"
    try:
        if "x" in text.lower():
            h, w = (int(v) for v in text.lower().split("x"))
            return (h, w)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must be S, HxW or 'real', got {text!r}") from None


def add_parser(sub, parents):
    p = sub.add_parser("synth", parents=parents, help="write synthetic scenes in the AI4Arctic format",
                       description="Write DIR/train, DIR/test and DIR/reference with synthetic scenes.")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--train", type=int, default=4, metavar="N", help="training scenes (default 4)")
    p.add_argument("--test", type=int, default=2, metavar="M", help="test scenes with references (default 2)")
    p.add_argument("--size", type=parse_size, default=None,
                   help="S, HxW, or 'real' (real scene sizes); default a small size for demos")
    add_seed(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.train < 0 or args.test < 0:
        raise ValueError("--train and --test must be >= 0")
    write_synthetic_dataset(args.out, n_train=args.train, n_test=args.test, size=args.size,
                                      seed=args.seed, progress=show_progress(args))
    log.info("wrote synthetic scenes to %s", args.out)
    print(f"wrote {args.train} training and {args.test} test scenes to {args.out}")
    return 0
