"""``seaice convert-raw``: raw AI4Arctic scenes (40 m, polygon codes) -> ready-to-train scenes."""
from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

from pipeline import SceneRunner
from pipeline.convert import LABEL_MODES, check_raw_scene, convert_folder
from scenes.raw import describe_raw, rtt_name
from scenes.reader import SceneError
from scenes.synth_raw import write_raw_dataset

from .options import add_jobs, show_progress


def add_parser(sub, parents):
    p = sub.add_parser("convert-raw", parents=parents,
                       help="convert raw 40 m scenes into ready-to-train 80 m scenes",
                       description="Convert every raw AI4Arctic file of a folder (40 m SAR in dB, "
                                   "SIGRID-3 polygon ice charts) into a YYYYMMDDTHHMMSS_{dmi|cis}"
                                   "_prep.nc scene (80 m, z-scored, SIC/SOD/FLOE classes). "
                                   "Resumable: a rerun keeps the scenes already converted from "
                                   "the same files.")
    p.add_argument("--data", required=True, metavar="RAW_DIR", help="folder of raw .nc files")
    p.add_argument("--out", required=True, metavar="RTT_DIR",
                   help="folder for the ready-to-train scenes (created if missing)")
    p.add_argument("--labels", choices=LABEL_MODES, default="auto",
                   help="auto: convert the ice chart where a file has one (else a test scene); "
                        "require: refuse files without one; skip: inputs only (default auto)")
    p.add_argument("--fresh", action="store_true",
                   help="convert every scene again, even those already converted")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out raw files that cannot be converted (listed at the end) "
                        "instead of stopping at the first")
    add_jobs(p, help="scenes converted at once in worker processes (default: all cores)")
    p.set_defaults(func=run)


def run(args) -> int:
    runner = SceneRunner(n_jobs=args.jobs, skip_bad=args.skip_bad, progress=show_progress(args))
    result = convert_folder(args.data, args.out, runner=runner, labels=args.labels,
                            fresh=args.fresh)
    for name, reason in result["skipped"]:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    kept = f", {len(result['reused'])} already converted" if result["reused"] else ""
    print(f"converted {len(result['written'])} scene(s) into {args.out}{kept}"
          + (f"; {len(result['skipped'])} skipped as bad input" if result["skipped"] else ""))
    return 0


def check_raw(paths) -> int:
    """``seaice check --raw``: each raw file's layout (also with -q: it is what was asked
    for), then whether it converts; 1 if any does not."""
    counts = Counter()
    for path in paths:
        try:
            print("\n".join(describe_raw(path)))
            r = check_raw_scene(path)
        except SceneError as exc:
            counts["bad"] += 1
            print(f"{path}: BAD: {str(exc).removeprefix(f'{path}: ')}")
            continue
        counts["ok"] += 1
        print(f"{path}: converts to {rtt_name(path.name)} ({r['kind']} scene, {r['shape'][0]} x "
              f"{r['shape'][1]} at 80 m, {100 * r['valid']:.1f} % valid SAR pixels): ok")
    print(f"{len(paths)} raw file(s): {counts['ok']} ok, {counts['bad']} bad")
    return 1 if counts["bad"] or not paths else 0


def synth_converted(raw_dir, data_dir, *, n_train: int, n_test: int, size, seed: int,
                    progress: bool = True) -> None:
    """Synthetic raw scenes in ``raw_dir`` (40 m, twice ``size``), converted into ``data_dir``.

    ``data_dir`` then holds ``train``, ``test`` and ``reference`` like
    :func:`scenes.synth.write_synthetic_dataset`'s (``seaice demo --raw``).
    """
    raw_size = None if size is None else (
        2 * size if isinstance(size, int) else size if size == "real" else tuple(2 * n for n in size))
    written = write_raw_dataset(raw_dir, n_train=n_train, n_test=n_test, size=raw_size, seed=seed,
                                progress=progress)
    runner = SceneRunner(n_jobs=-1, progress=progress)
    for kind in ("train", "test"):
        if written[kind]:
            convert_folder(Path(raw_dir) / kind, Path(data_dir) / kind, runner=runner)
    if written["reference"]:  # already 80 m: moved (renamed) beside the converted scenes
        (Path(data_dir) / "reference").mkdir(parents=True, exist_ok=True)
        for p in written["reference"]:
            os.replace(p, Path(data_dir) / "reference" / p.name)
        Path(raw_dir, "reference").rmdir()
