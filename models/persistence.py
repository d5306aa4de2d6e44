"""Model folders: one LightGBM text model per chart and a JSON manifest.

Layout of a model folder::

    SIC.txt, SOD.txt, FLOE.txt   booster.save_model text (best iteration only)
    manifest.json                everything needed to use them again

The manifest records the feature names in order and the
``FeatureConfig.to_dict()`` they came from, the classes, the SIC mode, the
smoothing specs, the lattice stride, the estimator parameters, the training
settings (seed, pixels, scenes) and validation scores, and the versions of
LightGBM, numpy and this package. Nothing is pickled.

A folder is written to a temporary sibling and renamed into place, so a
crash never leaves a half-written model. :func:`load_model` refuses a model
whose features the current featurize code no longer produces the same way.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenes import contract as C

from . import smoothing
from .estimator import IceClassifier, IceRegressor
from .predict import SIC_MODES, WATER_RULES

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_RETRAIN = "retrain it with `python run.py train` (or models.train.train_models)"


@dataclass
class ModelBundle:
    """A loaded model folder.

    Attributes
    ----------
    model_dir : Path
    manifest : dict
    feature_config : featurize.FeatureConfig
    feature_names : list of str
    models : dict chart -> fitted IceRegressor / IceClassifier
        ``"SIC"`` is the regressor when ``sic_mode == "regression"``.
    sic_mode : {"regression", "argmax", "expected"}
    water_rule : {"sic", "classifiers"}
        Which model decides open water (see :mod:`models.predict`).
    water_threshold : float
        SIC value below which ``"sic"`` calls open water.
    smoothing : dict chart -> smoothing spec
    stride : int
        Default prediction lattice step (SAR pixels).
    """

    model_dir: Path
    manifest: dict
    feature_config: object
    feature_names: list
    models: dict
    sic_mode: str
    smoothing: dict
    stride: int
    water_rule: str = "sic"
    water_threshold: float = 0.5


def versions() -> dict:
    """Versions of the libraries a model depends on."""
    import lightgbm
    from importlib import metadata
    try:
        pkg = metadata.version("seaice-gbm")
    except metadata.PackageNotFoundError:
        pkg = "unknown (not installed)"
    return {"lightgbm": lightgbm.__version__, "numpy": np.__version__, "seaice-gbm": pkg,
            "python": platform.python_version()}


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    return x


def save_model(out_dir, *, models: dict, manifest: dict, overwrite: bool = False) -> dict:
    """Write a model folder atomically.

    Parameters
    ----------
    out_dir : path
        Folder to create.
    models : dict chart -> fitted estimator
        ``"SIC"``, ``"SOD"``, ``"FLOE"``.
    manifest : dict
        Must hold ``feature_names``, ``feature_config``, ``sic_mode``,
        ``water_rule``, ``water_threshold``, ``smoothing``, ``stride``;
        versions, classes and file names are added.
    overwrite : bool
        Replace an existing folder (only if it is a model folder or empty).

    Returns
    -------
    dict
        The manifest as written (with the added entries).
    """
    out_dir = Path(out_dir)
    missing = [c for c in C.LABEL_CHARTS if c not in models]
    if missing:
        raise ValueError(f"save_model needs a model per chart; missing {missing}")
    for key in ("feature_names", "feature_config", "sic_mode", "water_rule", "water_threshold",
                "smoothing", "stride"):
        if key not in manifest:
            raise ValueError(f"save_model: manifest lacks {key!r}")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ValueError(f"{out_dir} exists and is not a folder; choose another output path")
        if any(out_dir.iterdir()) and not overwrite:
            raise ValueError(f"{out_dir} already exists and is not empty; choose a new folder "
                             "or pass overwrite=True (--overwrite)")
        if any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
            raise ValueError(f"{out_dir} is not a model folder (no {MANIFEST}); refusing to "
                             "replace it, choose a new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    full = dict(manifest)
    full["format_version"] = FORMAT_VERSION
    full["versions"] = versions()
    full["classes"] = {c: list(range(C.N_CLASSES[c])) for c in C.LABEL_CHARTS}
    full["files"] = {c: f"{c}.txt" for c in C.LABEL_CHARTS}
    full["estimators"] = {c: {"class": type(m).__name__, "params": m.get_params(),
                              "best_iteration": int(m.best_iteration_)}
                          for c, m in models.items() if c in C.LABEL_CHARTS}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        for chart in C.LABEL_CHARTS:
            models[chart].save_model(tmp / full["files"][chart])
        text = json.dumps(_jsonable(full), indent=2, sort_keys=True)
        (tmp / MANIFEST).write_text(text + "\n")
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.rename(out_dir, old / "m")
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return json.loads(text)


def _fail(model_dir, problem, fix=_RETRAIN):
    raise ValueError(f"model {model_dir}: {problem}; {fix}")


def _first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"feature {i} is {x!r} in the model but {y!r} now"
    return f"the model has {len(a)} features, the current code {len(b)}"


def load_model(model_dir) -> ModelBundle:
    """Load a model folder, checking it against the current featurize code.

    Raises
    ------
    ValueError
        One line naming the folder and the fix: missing or corrupt files, or a
        manifest whose features the current code does not reproduce.
    """
    import lightgbm as lgb

    from featurize import FeatureConfig, feature_names, radiometer

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        _fail(model_dir, "is not a folder", "pass the folder written by `python run.py train`")
    path = model_dir / MANIFEST
    if not path.is_file():
        _fail(model_dir, f"has no {MANIFEST}", "pass a folder written by `python run.py train`")
    try:
        man = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        _fail(model_dir, f"{MANIFEST} is not valid JSON ({' '.join(str(e).split())})")
    if not isinstance(man, dict):
        _fail(model_dir, f"{MANIFEST} is not a JSON object")
    if man.get("format_version") != FORMAT_VERSION:
        _fail(model_dir, f"manifest format_version is {man.get('format_version')!r}, "
                         f"this code reads {FORMAT_VERSION}")
    need = ("feature_names", "feature_config", "sic_mode", "water_rule", "smoothing", "stride",
            "files", "estimators")
    lacking = [k for k in need if k not in man]
    if lacking:
        _fail(model_dir, f"{MANIFEST} lacks {lacking}")
    stored = man["feature_config"]
    if isinstance(stored, dict) and "era5_features" not in stored:
        # Written before era5_features existed, when the era5 group held every ERA5 field.
        stored = {**stored, "era5_features": list(radiometer.ERA5_FEATURES)}
    try:
        config = FeatureConfig.from_dict(stored)
    except (TypeError, ValueError) as e:
        _fail(model_dir, "its feature_config does not fit the current featurize code "
                         f"({' '.join(str(e).split())})")
    names = [str(n) for n in man["feature_names"]]
    current = feature_names(config)
    if names != current or config.to_dict() != stored:
        what = _first_difference(names, current) if names != current else \
            "its feature_config does not round-trip through the current FeatureConfig"
        _fail(model_dir, f"its features do not match what the current featurize code "
                         f"produces for its config ({what})")
    mode = man["sic_mode"]
    if mode not in SIC_MODES:
        _fail(model_dir, f"unknown sic_mode {mode!r} (known: {SIC_MODES})")
    if man["water_rule"] not in WATER_RULES:
        _fail(model_dir, f"unknown water_rule {man['water_rule']!r} (known: {WATER_RULES})")
    threshold = man.get("water_threshold", 0.5)
    if not isinstance(threshold, (int, float)) or not 0 < threshold < C.N_CLASSES["SIC"]:
        _fail(model_dir, f"bad water_threshold {threshold!r} in {MANIFEST}")
    try:
        specs = {c: smoothing.check_spec(man["smoothing"].get(c)) for c in C.LABEL_CHARTS}
        stride = int(man["stride"])
        if stride < 1:
            raise ValueError(f"stride {stride}")
    except (AttributeError, TypeError, ValueError) as e:
        _fail(model_dir, f"bad smoothing/stride in {MANIFEST} ({' '.join(str(e).split())})")
    models = {}
    for chart in C.LABEL_CHARTS:
        file = model_dir / str(man["files"].get(chart, f"{chart}.txt"))
        if not file.is_file():
            _fail(model_dir, f"model file {file.name} is missing")
        try:
            booster = lgb.Booster(model_file=str(file))
        except Exception as e:  # LightGBMError, or a parse error surfacing as another type
            _fail(model_dir, f"model file {file.name} is corrupt "
                             f"({' '.join(str(e).split())[:200]})")
        info = man["estimators"].get(chart, {})
        regress = chart == "SIC" and mode == "regression"
        cls = IceRegressor if regress else IceClassifier
        if info.get("class") not in (None, cls.__name__):
            _fail(model_dir, f"{chart} was saved as {info.get('class')}, expected {cls.__name__}")
        params = {k: v for k, v in info.get("params", {}).items()
                  if k in cls().get_params() and k != "n_jobs"}
        params["n_classes"] = C.N_CLASSES[chart]
        if isinstance(params.get("class_weight_clip"), list):
            params["class_weight_clip"] = tuple(params["class_weight_clip"])
        try:
            models[chart] = cls.from_booster(booster, names, **params)
        except ValueError as e:
            _fail(model_dir, f"model file {file.name} does not fit the manifest ({e})")
    return ModelBundle(model_dir=model_dir, manifest=man, feature_config=config,
                       feature_names=names, models=models, sic_mode=mode, smoothing=specs,
                       stride=stride, water_rule=man["water_rule"],
                       water_threshold=float(threshold))
