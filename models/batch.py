"""Predict a folder of test scenes into one validated challenge submission."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from tqdm.auto import tqdm

from evaluation.submission import SubmissionWriter, validate_submission
from scenes.reader import list_scenes, open_scene, scene_key

from .persistence import load_model
from .predict import predict_scene

log = logging.getLogger(__name__)


def predict_folder(scenes_dir, model_dir, out_file, *, stride=None, smoothing=True,
                   progress=True) -> dict:
    """Predict every scene of a folder and write the submission file.

    Scenes are predicted one at a time and appended to a temporary file, so
    memory holds one scene's maps; the file replaces ``out_file`` only after it
    passed :func:`evaluation.submission.validate_submission`.

    Parameters
    ----------
    scenes_dir : path-like
        Folder of test (or training) ``*_prep.nc`` scenes.
    model_dir : path-like
        Model folder written by :func:`models.train.train_models`.
    out_file : path-like
        Submission file to write (``upload_package.nc``).
    stride : int, optional
        Prediction lattice step; default the model's.
    smoothing : bool
        Apply the model's spatial smoothing.
    progress : bool
        Show a progress bar over scenes.

    Returns
    -------
    dict
        ``{"scenes": [...keys], "seconds": {key: s}, "out": Path}``.
    """
    bundle = load_model(model_dir)
    paths = list_scenes(scenes_dir)
    for p in paths:  # fail on a bad scene before spending minutes on the good ones
        open_scene(p, check_values=False).close()
    out_file = Path(out_file)
    seconds = {}
    with SubmissionWriter(out_file) as sub:
        for path in tqdm(paths, desc="predict", unit="scene", disable=not progress):
            t0 = time.perf_counter()
            ds = open_scene(path)
            try:
                maps = predict_scene(ds, bundle, stride=stride, smoothing=smoothing)
            finally:
                ds.close()
            key = scene_key(path)
            sub.add(key, maps)
            seconds[key] = round(time.perf_counter() - t0, 2)
            log.info("%s: predicted in %.1f s", key, seconds[key])
        sub.close()
        problems = validate_submission(sub.tmp_path, scenes_dir)
        if problems:
            raise RuntimeError(f"{out_file}: the written submission is invalid ({problems[0]}); "
                               "please report this bug")
    return {"scenes": [scene_key(p) for p in paths], "seconds": seconds, "out": out_file}
