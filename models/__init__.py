"""Gradient-boosted models of the three ice charts: the modelling building blocks.

Public API: the estimators :class:`IceClassifier` and :class:`IceRegressor`
(with :data:`DEFAULT_PARAMS`, the one table of default settings), pixel
sampling (:func:`build_training_set`), the scene split, smoothing,
:func:`predict_scene` (full-resolution SIC/SOD/FLOE maps of one scene from a
loaded :class:`ModelBundle`) and model folders (:func:`save_model`,
:func:`load_model`). Running over folders of scenes (the train and predict
jobs) is :mod:`pipeline`'s.
"""
import os

# LightGBM and numba share libgomp; its default busy-waiting makes 2 threads
# on 2 busy cores up to 10x slower (measured). Passive waiting costs little
# on an idle machine. Only a default: an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .estimator import (DEFAULT_PARAMS, GPUUnavailableError, IceClassifier,  # noqa: E402
                        IceRegressor, check_device, estimator_settings, make_estimators)
from .persistence import ModelBundle, load_model, save_model  # noqa: E402
from .predict import DEFAULT_STRIDE, SIC_MODES, predict_scene  # noqa: E402
from .sampling import TrainingSet, build_training_set  # noqa: E402

__all__ = ["DEFAULT_PARAMS", "DEFAULT_STRIDE", "GPUUnavailableError", "IceClassifier",
           "IceRegressor", "ModelBundle", "SIC_MODES", "TrainingSet", "build_training_set",
           "check_device", "estimator_settings", "load_model", "make_estimators",
           "predict_scene", "save_model"]
