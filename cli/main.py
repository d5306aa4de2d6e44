"""``seaice`` (and ``run.py``): the command-line interface, one module per subcommand.

Each subcommand module has ``add_parser(subparsers, parents)`` and
``run(args) -> int`` and calls library functions only. Errors the user can
fix (bad scene files, bad paths, no GPU) end in one line on stderr and a
non-zero exit; ``-v`` shows the traceback too.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tqdm.contrib.logging import logging_redirect_tqdm

from .options import add_verbosity, configure_logging, verbosity_parent

COMMANDS = ("synth", "check", "convert_raw", "train", "predict", "evaluate", "validate", "demo",
            "importance")

log = logging.getLogger("seaice")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seaice", description="Gradient-boosted sea-ice charting from AI4Arctic scenes.")
    add_verbosity(parser, before_command=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parents = [verbosity_parent()]
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"cli.{name}":
                raise
            continue
        module.add_parser(sub, parents)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    try:
        # log lines go above the progress bars instead of being glued onto them
        with logging_redirect_tqdm():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as exc:
        # SceneError and the models' errors are ValueError/RuntimeError subclasses with one-line messages.
        if args.verbose:
            raise
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
