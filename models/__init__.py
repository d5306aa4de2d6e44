"""Gradient-boosted models of the three ice charts: sampling, training, prediction.

Public API: :func:`train_models` (train and save a model folder),
:func:`load_model` (-> :class:`ModelBundle`), :func:`predict_scene`
(full-resolution SIC/SOD/FLOE maps), the estimators :class:`IceClassifier`
and :class:`IceRegressor`, and :class:`GPUUnavailableError`.
"""
import os

# LightGBM and numba share libgomp; its default busy-waiting makes 2 threads
# on 2 busy cores up to 10x slower (measured). Passive waiting costs little
# on an idle machine. Only a default: an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .estimator import (GPUUnavailableError, IceClassifier, IceRegressor,  # noqa: E402
                        check_device)
from .persistence import ModelBundle, load_model, save_model  # noqa: E402
from .predict import DEFAULT_STRIDE, SIC_MODES, predict_scene  # noqa: E402
from .sampling import TrainingSet, build_training_set  # noqa: E402
from .train import train_models  # noqa: E402

__all__ = ["DEFAULT_STRIDE", "GPUUnavailableError", "IceClassifier", "IceRegressor", "check_device",
           "ModelBundle", "SIC_MODES", "TrainingSet", "build_training_set", "load_model",
           "predict_scene", "save_model", "train_models"]
