"""Running the models over folders of scenes: the train and predict jobs.

Public API: :func:`train_models` (a folder of training scenes -> a model
folder), :func:`predict_folder` (a folder of scenes -> a writer, by default
the challenge submission), and :class:`SceneRunner` (how per-scene work runs:
serially, in joblib workers or on a Dask cluster, cached and resumable).
"""
from .cache import default_cache_dir
from .predict import predict_folder
from .runner import SceneRunner
from .train import train_models

__all__ = ["SceneRunner", "default_cache_dir", "predict_folder", "train_models"]
