"""Options shared by several subcommands, defined once."""
from __future__ import annotations

import argparse
import logging
from contextlib import contextmanager

from pipeline import SceneRunner, default_cache_dir
from pipeline.dask import DaskNotInstalled, dask_client, parse_scheduler, require_dask

from .tracking import MlflowNotInstalled, require_mlflow


#: Largest seed: numpy and LightGBM take 32-bit seeds.
MAX_SEED = 2**32 - 1


def add_verbosity(p: argparse.ArgumentParser, *, before_command: bool = False) -> None:
    """``-v/--verbose`` and ``-q/--quiet``, mapped to logging levels.

    Accepted before the command too (``seaice -v train ...``); those counts
    go to their own names so that the command's defaults cannot reset them.
    """
    prefix = "pre_" if before_command else ""
    g = p.add_argument_group("output")
    g.add_argument("-v", "--verbose", action="count", default=0, dest=f"{prefix}verbose",
                   help="more log output (-vv for debug; also shows tracebacks)")
    g.add_argument("-q", "--quiet", action="count", default=0, dest=f"{prefix}quiet",
                   help="less log output and no progress bars")


def verbosity_parent() -> argparse.ArgumentParser:
    """A parent parser holding the verbosity options of every command."""
    p = argparse.ArgumentParser(add_help=False)
    add_verbosity(p)
    return p


def whole_number(low: int, high: int | None = None, what: str = "a whole number"):
    """An argparse type: an int in ``low..high``, else one line saying the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            upper = f" and <= {high}" if high is not None else ""
            raise argparse.ArgumentTypeError(f"must be {what} >= {low}{upper}, got {text!r}")
        return value
    parse.__name__ = "number"
    return parse


def fraction(low_open: bool = False):
    """An argparse type: a number in [0, 1) (or (0, 1) with ``low_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not ((0 < value) if low_open else (0 <= value)) or not value < 1:
            raise argparse.ArgumentTypeError(
                f"must be a fraction {'>' if low_open else '>='} 0 and < 1, got {text!r}")
        return value
    parse.__name__ = "fraction"
    return parse


def jobs_count(text: str) -> int:
    """``--jobs``: a positive count, or negative for all cores but some (-1 = all)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a positive count, or -1 for all cores; got {text!r}")
    return value


def add_seed(p: argparse.ArgumentParser, default: int = 0) -> None:
    p.add_argument("--seed", type=whole_number(0, MAX_SEED), default=default,
                   help=f"random seed, 0..{MAX_SEED} (default {default})")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="LightGBM device: cpu (default) or gpu (needs LightGBM's GPU/OpenCL build)")


def add_jobs(p: argparse.ArgumentParser, default: int = -1, help: str | None = None) -> None:
    p.add_argument("--jobs", type=jobs_count, default=default, metavar="N",
                   help=help or "parallel worker processes over scenes (default: all cores)")


class _SchedulerOption(argparse.Action):
    """``--scheduler``: fails at once, in one line, when Dask is not installed."""

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            require_dask()
            parse_scheduler(values)
        except (DaskNotInstalled, ValueError) as exc:
            parser.exit(1, f"error: {exc}\n")
        setattr(namespace, self.dest, values)


def add_scale_out(p: argparse.ArgumentParser, what: str) -> None:
    """``--scheduler``, ``--cache``/``--fresh``/``--no-cache`` and ``--skip-bad``."""
    g = p.add_argument_group("scale-out and resuming")
    g.add_argument("--scheduler", action=_SchedulerOption, metavar="ADDRESS|local[:N]",
                   help="run the scenes on a Dask cluster: the address of a running scheduler "
                        "(tcp://host:8786; its workers need this package and the files at the "
                        "same paths) or local:N for N local worker processes; needs "
                        "pip install '.[dask]'")
    g.add_argument("--cache", metavar="DIR",
                   help=f"per-scene results ({what}) kept here so that a killed run, restarted "
                        "with the same arguments, skips finished scenes (default: --out "
                        "followed by .cache)")
    fresh = g.add_mutually_exclusive_group()
    fresh.add_argument("--fresh", action="store_true",
                       help="recompute every scene and overwrite its cache entry")
    fresh.add_argument("--no-cache", action="store_true", help="neither read nor write a cache")
    g.add_argument("--skip-bad", action="store_true",
                   help="leave out scenes that break the data contract (listed at the end) "
                        "instead of stopping at the first")


@contextmanager
def scene_runner(args, out):
    """The :class:`pipeline.SceneRunner` the scale-out options ask for (Dask client closed after).

    The edge where a Dask cluster is created (or connected to) and closed:
    the pipeline only receives the client.
    """
    cache = None if args.no_cache else (args.cache or default_cache_dir(out))
    kw = dict(n_jobs=args.jobs, cache_dir=cache, fresh=args.fresh, skip_bad=args.skip_bad,
              progress=show_progress(args))
    if args.scheduler is None:
        yield SceneRunner(**kw)
        return
    with dask_client(args.scheduler) as client:
        yield SceneRunner(client=client, **kw)


class _MlflowFlag(argparse.Action):
    """``--mlflow``: fails at once, in one line, when MLflow is not installed."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
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
    """Log level from ``-v``/``-q`` (given before or after the command)."""
    args.verbose += getattr(args, "pre_verbose", 0)
    args.quiet += getattr(args, "pre_quiet", 0)
    level = logging.INFO - 10 * args.verbose + 10 * args.quiet
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")


def show_progress(args) -> bool:
    return args.quiet == 0
