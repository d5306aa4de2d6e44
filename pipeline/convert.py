"""Folders of raw AI4Arctic scenes -> folders of ready-to-train scenes.

:func:`convert_folder` converts every raw scene of a folder
(:func:`scenes.rawconvert.convert_scene`) through a :class:`SceneRunner`:
in parallel over scenes, with a progress bar, bad scenes refused (or skipped
with ``skip_bad``). It is resumable: an output records what it was converted
from (the raw file's name, size and modification time, the labels mode and
the converter version), and a rerun keeps every output whose record still
matches. :func:`ready_scenes` lets ``train`` and ``predict`` take a raw
folder directly: its scenes are converted once into a folder beside the
run's cache (or a temporary folder without a cache) and the job reads that.
"""
from __future__ import annotations

import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path

from scenes import contract as C
from scenes.outputs import Input, Output, check_outputs
from scenes.raw import list_raw_scenes, open_raw, raw_files, rtt_name
from scenes.rawconvert import convert_scene, converted_from, source_record
from scenes.reader import SceneError, remove_stale_tmp

from .cache import stable_hash
from .runner import BadScene, SceneRunner, ensure_writable

log = logging.getLogger(__name__)

LABEL_MODES = ("auto", "require", "skip")


def _output(path, out_dir) -> Path:
    return Path(out_dir) / rtt_name(Path(path).name)


def up_to_date(path, out_dir, labels: str) -> bool:
    """Whether ``out_dir`` holds the conversion of raw scene ``path`` as it is now."""
    out = _output(path, out_dir)
    return out.is_file() and converted_from(out) == source_record(path, labels)


def _convert_task(path, out_dir, labels):
    """Convert one raw scene into ``out_dir``."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return str(convert_scene(path, _output(path, out_dir), labels=labels)["out"])


def convert_folder(raw_dir, out_dir, *, runner: SceneRunner | None = None, labels: str = "auto",
                   fresh: bool = False, progress: bool = True) -> dict:
    """Convert every raw scene of ``raw_dir`` into ``out_dir`` (``*_prep.nc``).

    Parameters
    ----------
    raw_dir : path-like
        Folder of raw files (``S1X_..._icechart_<dmi|cis>_....nc``).
    out_dir : path-like
        Folder of ready-to-train scenes to write (created if missing).
    runner : SceneRunner, optional
        Parallelism, progress and ``skip_bad`` (default: serial).
    labels : {"auto", "require", "skip"}
        Convert the ice charts where there are some; refuse files without
        one; or write test scenes only.
    fresh : bool
        Convert every scene again even where a matching output exists.
    progress : bool
        Show progress (when ``runner`` is not given).

    Returns
    -------
    dict
        ``{"written": [Path], "reused": [Path], "skipped": [(file name, reason)]}``;
        each in scene order.

    Raises
    ------
    SceneError
        A bad raw scene (without ``skip_bad``); nothing of it is left behind.
    ValueError
        ``out_dir`` overlaps ``raw_dir`` or cannot be written.
    """
    if labels not in LABEL_MODES:
        raise ValueError(f"labels must be one of {LABEL_MODES}, got {labels!r}")
    runner = SceneRunner(progress=progress) if runner is None else runner
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    check_outputs([Output(out_dir, "--out", folder=True)], [Input(raw_dir, "--data")])
    paths = list_raw_scenes(raw_dir)
    good, skipped_before = [], len(runner.skipped)
    for p in paths:  # metadata and polygon tables of all before any pixel is converted
        try:
            open_raw(p, labels=labels).close()
        except SceneError as exc:
            if not runner.skip_bad:
                raise
            log.warning("skipping %s: %s", p.name, exc)
            runner.skipped.append(BadScene(str(p), exc.variable, str(exc)))
            continue
        good.append(p)
    if not good:
        raise ValueError(f"{raw_dir}: every raw scene was skipped as bad input; nothing to convert")
    ensure_writable(out_dir / "x", "--out folder")
    created = not out_dir.exists()
    remove_stale_tmp(out_dir)
    reused = [] if fresh else [_output(p, out_dir) for p in good if up_to_date(p, out_dir, labels)]
    todo = [p for p in good if _output(p, out_dir) not in reused]
    if reused:
        log.info("%s: %d of %d scenes already converted", out_dir, len(reused), len(good))
    written = []
    try:
        for _, out in runner.map(_convert_task, todo, task="convert-raw", desc="converting raw scenes",
                                 kwargs=dict(out_dir=str(out_dir), labels=labels)):
            written.append(Path(out))
    finally:
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a run that converted nothing leaves nothing
    return {"written": written, "reused": reused,
            "skipped": [(Path(b.path).name, b.message) for b in runner.skipped[skipped_before:]]}


def check_raw_scene(path) -> dict:
    """Convert one raw scene into a temporary folder, removed after, to check it fully.

    Returns :func:`scenes.rawconvert.convert_scene`'s summary (``"out"`` no
    longer exists); raises its :class:`SceneError` on a bad file.
    """
    with tempfile.TemporaryDirectory(prefix="seaice-check-raw-") as tmp:
        return convert_scene(path, Path(tmp) / "scene_prep.nc")


def _holds_ready_scenes(folder: Path) -> bool:
    return any(C.parse_scene_name(p.name) for p in folder.iterdir() if p.suffix == ".nc")


@contextmanager
def ready_scenes(data, runner: SceneRunner, *, out, labels: str = "auto"):
    """The ready-to-train folder to run a job on: ``data`` itself, or its raw scenes converted.

    A folder with raw files and no ``*_prep.nc`` is converted (resumably)
    into ``<cache>.scenes/<hash of the folder and labels mode>/`` beside the
    runner's cache folder, or, without a cache, into a temporary folder
    beside ``out`` that is removed afterwards. Anything else is yielded
    unchanged.

    Parameters
    ----------
    data : path-like
        What the user gave as ``--data``.
    runner : SceneRunner
        Runs the conversion; its ``cache_dir`` and ``fresh`` apply.
    out : path-like
        The job's output (for the temporary folder's place).
    labels : {"auto", "require", "skip"}
        ``"require"`` for training.
    """
    data = Path(data)
    if not data.is_dir() or not raw_files(data) or _holds_ready_scenes(data):
        yield data
        return
    tag = stable_hash({"data": str(data.resolve()), "labels": labels})
    if runner.cache_dir is not None:
        folder = Path(f"{runner.cache_dir}.scenes") / tag
        log.info("%s holds raw scenes: converting them into %s", data, folder)
        convert_folder(data, folder, runner=runner, labels=labels, fresh=runner.fresh)
        yield folder
        return
    parent = Path(out).absolute().parent
    with tempfile.TemporaryDirectory(prefix=".seaice-raw-",
                                     dir=parent if parent.is_dir() else None) as tmp:
        log.info("%s holds raw scenes: converting them into %s (removed afterwards)", data, tmp)
        convert_folder(data, Path(tmp) / "scenes", runner=runner, labels=labels)
        yield Path(tmp) / "scenes"
