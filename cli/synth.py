"""``seaice synth``: write synthetic AI4Arctic scenes."""
from __future__ import annotations

import argparse
from pathlib import Path

from scenes.synth import write_synthetic_dataset
from scenes.synth_raw import write_raw_dataset

from .options import add_seed, show_progress, whole_number


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
    p.add_argument("--train", type=whole_number(0), default=4, metavar="N",
                   help="training scenes (default 4)")
    p.add_argument("--test", type=whole_number(0), default=2, metavar="M",
                   help="test scenes with references (default 2)")
    p.add_argument("--size", type=parse_size, default=None,
                   help="S, HxW, or 'real' (real scene sizes); default a small size for demos")
    p.add_argument("--raw", action="store_true",
                   help="write raw AI4Arctic files instead (40 m SAR in dB, SIGRID-3 polygon ice "
                        "charts; --size is then the 40 m size): DIR/train, DIR/test (no charts) "
                        "and DIR/reference (80 m labels)")
    add_seed(p)
    p.set_defaults(func=run)


def refuse_existing_scenes(out) -> None:
    """One line if ``out`` already holds scene files: synthetic scenes take real scene
    names, so writing there could replace a user's own files."""
    for sub in ("train", "test", "reference"):
        folder = Path(out) / sub
        found = sorted(folder.glob("*.nc")) if folder.is_dir() else []
        if found:
            raise ValueError(f"--out {out} already holds scene files ({found[0]}); synthetic "
                             "scenes could replace them, choose a new folder")


def run(args) -> int:
    refuse_existing_scenes(args.out)
    write = write_raw_dataset if args.raw else write_synthetic_dataset
    write(args.out, n_train=args.train, n_test=args.test, size=args.size, seed=args.seed,
          progress=show_progress(args))
    raw = " raw" if args.raw else ""
    print(f"wrote {args.train} training and {args.test} test{raw} scenes to {args.out}")
    return 0
