"""Options shared by several subcommands, defined once."""
from __future__ import annotations

import argparse
import logging


def verbosity_parent() -> argparse.ArgumentParser:
    """``-v/--verbose`` and ``-q/--quiet``, mapped to logging levels."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("output")
    g.add_argument("-v", "--verbose", action="count", default=0,
                   help="more log output (-vv for debug; also shows tracebacks)")
    g.add_argument("-q", "--quiet", action="count", default=0,
                   help="less log output and no progress bars")
    return p


def add_seed(p: argparse.ArgumentParser, default: int = 0) -> None:
    p.add_argument("--seed", type=int, default=default, help=f"random seed (default {default})")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="LightGBM device: cpu (default) or gpu (needs LightGBM's GPU/OpenCL build)")


def add_jobs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=int, default=-1, metavar="N",
                   help="parallel worker processes over scenes (default: all cores)")


class _MlflowFlag(argparse.Action):
    """``--mlflow``: fails at once, in one line, when MLflow is not installed."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from evaluation.tracking import MlflowNotInstalled, require_mlflow

        try:
            require_mlflow()
        except MlflowNotInstalled as exc:
            parser.exit(1, f"error: {exc}\n")
        setattr(namespace, self.dest, True)


def add_mlflow(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mlflow", action=_MlflowFlag,
                   help="log this run to MLflow (MLFLOW_TRACKING_URI, default a local store in "
                        "the working directory); needs pip install '.[mlflow]'")


def configure_logging(args) -> None:
    level = logging.INFO - 10 * args.verbose + 10 * args.quiet
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")


def show_progress(args) -> bool:
    return args.quiet == 0
