"""The predict job: every scene of a folder through a model, into a writer.

The job knows nothing of output formats: it hands each scene's maps to one
or more writers (the challenge submission of
:class:`evaluation.submission.SubmissionWriter` is one, the analysts' products
of :class:`evaluation.products.ProductWriter` another). A writer is a context
manager with ``path`` (the output, for checks and messages) and
``add(key, maps, scene=path)``; it writes to temporaries and puts its output
in place only when the ``with`` block ends without error, after its own
checks. A writer with a true ``wants_confidence`` also gets the confidence
layers of :meth:`models.predict.Renderer.confidence` in ``maps``.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import time
from pathlib import Path

import numba

from evaluation.submission import SubmissionWriter
from models.persistence import load_model
from models.predict import make_lattice, predict_scene
from scenes import contract as C
from scenes.outputs import Input, Output, check_outputs
from scenes.reader import list_scenes, load_scene, open_scene, remove_stale_tmp, scene_key

from .cache import hash_files
from .runner import SceneRunner, ensure_writable

log = logging.getLogger(__name__)


def _with_threads(bundle, n: int):
    """``bundle`` whose boosters predict on ``n`` threads (shallow copies; same results)."""
    models = {}
    for chart, est in bundle.models.items():
        est = copy.copy(est)
        est.n_jobs = n
        models[chart] = est
    return dataclasses.replace(bundle, models=models)


def predict_path(path, bundle, stride=None, smoothing=True, confidence=False) -> dict:
    """SIC/SOD/FLOE maps of one scene file, and the seconds it took (``"seconds"``).

    ``bundle`` is a loaded model or a model folder. The boosters use as many
    threads as numba may in this task (all cores here, a worker's share
    under joblib or Dask). ``confidence`` adds the confidence layers.
    """
    t0 = time.perf_counter()
    bundle = load_model(bundle) if isinstance(bundle, (str, Path)) else bundle
    bundle = _with_threads(bundle, numba.get_num_threads())
    # read once; its values are checked on the arrays the prediction uses
    ds = load_scene(path)
    try:
        maps = predict_scene(ds, bundle, stride=stride, smoothing=smoothing,
                             confidence=confidence)
    finally:
        ds.close()
    return {**maps, "seconds": round(time.perf_counter() - t0, 2)}


def check_stride(paths, stride: int) -> None:
    """One line if the lattice of ``stride`` has fewer than 2 points along a scene side.

    Such a lattice makes constant maps: nothing would say the stride is too coarse.
    """
    stride = int(stride)
    if stride < 1:
        raise ValueError(f"--stride {stride}: must be >= 1 SAR pixel")
    for path in paths:
        ds = open_scene(path, validate=False)
        try:
            shape = tuple(int(ds.sizes[d]) for d in C.SAR_DIMS)
        finally:
            ds.close()
        if min(make_lattice(shape, stride).lattice_shape) < 2:
            most = max(1, (min(shape) - 1) * 2 // 3)
            raise ValueError(f"--stride {stride}: scene {path.name} ({shape[0]} x {shape[1]}) "
                             f"would be predicted at a single row or column of points; use a "
                             f"stride of at most {most} (default: the model's)")


def predict_folder(scenes_dir, model_dir, writer, *, stride=None, smoothing=True,
                   progress=True, runner: SceneRunner | None = None) -> dict:
    """Predict every scene of a folder into ``writer``.

    Every scene is checked first (metadata, and its size against the
    model's texture windows). Scenes are predicted by ``runner`` (default:
    one at a time in this process, no cache) and handed to the writer in
    scene order, so memory holds few scenes' maps.

    Parameters
    ----------
    scenes_dir : path-like
        Folder of test (or training) ``*_prep.nc`` scenes.
    model_dir : path-like
        Model folder written by :func:`pipeline.train.train_models`.
    writer : writer, path-like, or a list of them
        Where the maps go (see the module docstring); a path is the
        challenge submission file (``upload_package.nc``) to write. With a
        list, the first is the main output (``"out"``), the others (folder
        outputs such as the products) get the same maps; all are put in
        place, or none.
    stride : int, optional
        Prediction lattice step; default the model's.
    smoothing : bool
        Apply the model's spatial smoothing.
    progress : bool
        Show a progress bar over scenes (when ``runner`` is not given).
    runner : SceneRunner, optional
        Where scenes run, the cache (keyed by the model files' hash, stride
        and smoothing) and ``skip_bad``.

    Returns
    -------
    dict
        ``{"scenes": [keys written], "seconds": {key: s}, "out": Path,
        "skipped": [(file name, reason)], "reused": [keys from the cache]}``.
        A skipped scene is missing from the output (its charts score 0).
    """
    runner = SceneRunner(progress=progress) if runner is None else runner
    writers = list(writer) if isinstance(writer, (list, tuple)) else [writer]
    writers = [SubmissionWriter(w) if isinstance(w, (str, Path)) else w for w in writers]
    out = Path(writers[0].path)
    extra = [Output(Path(w.path), getattr(w, "option", "--products"), folder=True)
             for w in writers[1:]]
    confidence = any(getattr(w, "wants_confidence", False) for w in writers)
    check_outputs([Output(out, "--out"), *extra, Output(runner.cache_dir, "--cache", folder=True)],
                  [Input(Path(scenes_dir), "--data"), Input(Path(model_dir), "--model", sealed=True)])
    ensure_writable(out, "--out file")
    bundle = load_model(model_dir)
    paths = runner.preflight(list_scenes(scenes_dir), config=bundle.feature_config)
    if not paths:
        raise ValueError(f"{scenes_dir}: every scene was skipped as bad input; nothing to predict")
    check_stride(paths, bundle.stride if stride is None else stride)
    cache_config = {"model": hash_files(model_dir),
                    "stride": int(bundle.stride if stride is None else stride),
                    "smoothing": bool(smoothing)}
    if confidence:  # other entries than the maps alone; plain runs keep their cache
        cache_config["confidence"] = True
    remove_stale_tmp(out.parent, out)
    seconds, predicted = {}, []
    shared = runner.share(bundle)
    with contextlib.ExitStack() as stack:
        for w in writers:
            stack.enter_context(w)
        for path, maps in runner.map(predict_path, paths, task="predict", desc="predict",
                                     cache_config=cache_config,
                                     args=(shared, stride, smoothing, confidence),
                                     compress=True):
            key = scene_key(path)
            seconds[key] = maps.pop("seconds")
            for w in writers:
                w.add(key, maps, scene=path)
            predicted.append(path)
            if key in runner.reused:
                log.info("%s: maps from the cache", key)
            else:
                log.info("%s: predicted in %.1f s", key, seconds[key])
        if not predicted:
            raise ValueError(f"{scenes_dir}: every scene was skipped as bad input; "
                             "nothing to predict")
    return {"scenes": [scene_key(p) for p in predicted], "seconds": seconds, "out": out,
            "skipped": [(Path(b.path).name, b.message) for b in runner.skipped],
            "reused": list(runner.reused)}
