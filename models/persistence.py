"""Model folders: one LightGBM text model per chart and a JSON manifest.

Layout of a model folder::

    SIC.txt, SOD.txt, FLOE.txt   booster.save_model text (best iteration only)
    {chart}_stage2.txt           the second stage of each chart that has one (optional)
    manifest.json                everything needed to use them again

The manifest (:class:`models.manifest.Manifest`, format
:data:`~models.manifest.FORMAT_VERSION`) records the feature names in order
and the ``FeatureConfig.to_dict()`` they came from, the classes, the SIC
mode, the smoothing specs, the lattice stride, the estimator parameters, the
training settings (seed, pixels, scenes) and validation scores, the versions
of LightGBM, numpy and this package, and the name, size and SHA-256 of each
model file. Nothing is pickled.

A folder is written to a temporary sibling and renamed into place, so a
crash never leaves a half-written model. :func:`load_model` checks the
manifest, then each file's size and SHA-256 before LightGBM parses it (a
damaged model text can abort the process inside LightGBM), and refuses a
model whose features the current featurize code no longer produces the same
way.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

import lightgbm as lgb
import numpy as np
from sklearn.base import RegressorMixin

from featurize import FeatureConfig, feature_names
from scenes import contract as C

from . import stage2 as S2
from .estimator import ESTIMATOR_CLASSES, lgb_feature_names
from .lgbm_text import text_problem
from .manifest import (FORMAT_VERSION, EstimatorRecord, Manifest, ManifestError, ModelFile,
                       Stage2Record)

__all__ = ["FORMAT_VERSION", "MANIFEST", "Manifest", "ModelBundle", "load_model", "save_model",
           "versions"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_RETRAIN = "retrain it with `seaice train` (or pipeline.train_models)"


@dataclass
class ModelBundle:
    """A loaded model folder.

    Attributes
    ----------
    model_dir : Path
    manifest : models.manifest.Manifest
        The checked manifest (a format-1 one upgraded, its files unchecked).
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
    stage2 : models.stage2.Stage2Bundle or None
        The second stage and the chosen system (None: stage 1 alone, as every
        folder written before the second stage).
    """

    model_dir: Path
    manifest: Manifest
    feature_config: object
    feature_names: list
    models: dict
    sic_mode: str
    smoothing: dict
    stride: int
    water_rule: str = "sic"
    water_threshold: float = 0.5
    stage2: object = None


def versions() -> dict:
    """Versions of the libraries a model depends on."""
    try:
        pkg = metadata.version("seaice-gbm")
    except metadata.PackageNotFoundError:
        pkg = "unknown (not installed)"
    return {"lightgbm": lgb.__version__, "numpy": np.__version__, "seaice-gbm": pkg,
            "python": platform.python_version()}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_model(out_dir, *, models: dict, manifest: Manifest, overwrite: bool = False,
               stage2_models: dict | None = None) -> Manifest:
    """Write a model folder atomically.

    Parameters
    ----------
    out_dir : path
        Folder to create.
    models : dict chart -> fitted estimator
        ``"SIC"``, ``"SOD"``, ``"FLOE"``.
    manifest : models.manifest.Manifest
        What the train job decided and recorded; its ``versions``,
        ``classes``, ``estimators`` and ``files`` are filled (replaced) here.
    overwrite : bool
        Replace an existing folder (only if it is a model folder or empty).
    stage2_models : dict chart -> fitted stage-2 estimator, optional
        Written as ``{chart}_stage2.txt`` when ``manifest.stage2`` is given;
        its ``estimators`` and ``files`` are filled here.

    Returns
    -------
    models.manifest.Manifest
        The manifest as written, with each file's name, size and SHA-256.
    """
    out_dir = Path(out_dir)
    if not isinstance(manifest, Manifest):
        raise TypeError(f"save_model takes a models.manifest.Manifest, got "
                        f"{type(manifest).__name__}; build one with Manifest(...) or "
                        "Manifest.from_dict")
    missing = [c for c in C.LABEL_CHARTS if c not in models]
    if missing:
        raise ValueError(f"save_model needs a model per chart; missing {missing}")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ValueError(f"{out_dir} exists and is not a folder; choose another output path")
        if any(out_dir.iterdir()) and not overwrite:
            raise ValueError(f"{out_dir} already exists and is not empty; choose a new folder "
                             "or replace it (--overwrite)")
        if any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
            raise ValueError(f"{out_dir} is not a model folder (no {MANIFEST}); refusing to "
                             "replace it, choose a new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    estimators = {c: EstimatorRecord(class_name=type(models[c]).__name__,
                                     params=models[c].get_params(),
                                     best_iteration=int(models[c].best_iteration_))
                  for c in C.LABEL_CHARTS}
    def cannot_write(exc):
        # A full disk: one line naming the model folder, whatever reported it.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return OSError(f"model {out_dir}: cannot be written ({' '.join(str(reason).split())}); "
                       "free disk space or choose another --out")

    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    except OSError as exc:
        raise cannot_write(exc) from None
    try:
        files = {}
        for chart in C.LABEL_CHARTS:
            path = tmp / f"{chart}.txt"
            models[chart].save_model(path)
            data = path.read_bytes()
            files[chart] = ModelFile(name=path.name, size=len(data), sha256=_sha256(data))
        st = manifest.stage2
        if st is not None:
            s2_est, s2_files = {}, {}
            for chart in C.LABEL_CHARTS:
                est = (stage2_models or {}).get(chart)
                if est is None:
                    continue
                path = tmp / f"{chart}_stage2.txt"
                est.save_model(path)
                data = path.read_bytes()
                s2_files[chart] = ModelFile(name=path.name, size=len(data), sha256=_sha256(data))
                s2_est[chart] = EstimatorRecord(class_name=type(est).__name__,
                                                params=est.get_params(),
                                                best_iteration=int(est.best_iteration_))
            st = replace(st, estimators=s2_est, files=s2_files)
        full = replace(manifest, versions=versions(),
                       classes={c: tuple(range(C.N_CLASSES[c])) for c in C.LABEL_CHARTS},
                       estimators=estimators, files=files, stage2=st)
        text = json.dumps(full.to_dict(), indent=2, sort_keys=True)
        (tmp / MANIFEST).write_text(text + "\n")
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.rename(out_dir, old / "m")
            try:
                os.rename(tmp, out_dir)
            except BaseException:
                os.rename(old / "m", out_dir)  # put the previous model back
                shutil.rmtree(old, ignore_errors=True)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        # LightGBM reports a failed write of the model text as a LightGBMError.
        if isinstance(exc, (OSError, lgb.basic.LightGBMError)):
            raise cannot_write(exc) from None
        raise
    return full


def _fail(model_dir, problem, fix=_RETRAIN):
    raise ValueError(f"model {model_dir}: {problem}; {fix}")


def _one_line(e, limit=200):
    return " ".join(str(e).split())[:limit]


def _first_difference(a, b, what=("in the model", "now")):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"feature {i} is {x!r} {what[0]} but {y!r} {what[1]}"
    return f"{len(a)} features {what[0]}, {len(b)} {what[1]}"


def read_manifest(model_dir) -> Manifest:
    """The checked :class:`~models.manifest.Manifest` of a model folder (ValueError: one line)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        _fail(model_dir, "is not a folder", "pass the folder written by `seaice train`")
    path = model_dir / MANIFEST
    if not path.is_file():
        _fail(model_dir, f"has no {MANIFEST}", "pass a folder written by `seaice train`")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        _fail(model_dir, f"{MANIFEST} is not valid JSON ({_one_line(e)})")
    try:
        return Manifest.from_dict(raw, source=f"model {model_dir}")
    except ManifestError as e:
        raise ValueError(f"model {model_dir}: {e}") from None


def _read_checked(model_dir: Path, file: ModelFile) -> str:
    """The text of one model file, checked against the manifest before anything parses it."""
    path = model_dir / file.name
    if path.is_symlink():
        target = path.resolve()
        if target.parent != model_dir.resolve():
            _fail(model_dir, f"model file {file.name} is a link to {target}, outside the model "
                             "folder; refusing to read it")
    if not path.is_file():
        _fail(model_dir, f"model file {file.name} is missing")
    if file.checked:
        size = path.stat().st_size
        if size != file.size:
            _fail(model_dir, f"model file {file.name} has {size} bytes, the manifest says "
                             f"{file.size} (truncated or replaced)")
    data = path.read_bytes()
    if file.checked and _sha256(data) != file.sha256:
        _fail(model_dir, f"model file {file.name} is damaged: its SHA-256 differs from the "
                         "manifest's")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        _fail(model_dir, f"model file {file.name} is not LightGBM model text")


def load_model(model_dir) -> ModelBundle:
    """Load a model folder, checking it against its manifest and the current featurize code.

    Checks, in order: the manifest (types and values; a format-1 manifest is
    upgraded with a warning that its files cannot be checked); the feature
    config and names against what the current featurize code produces; each
    model file's name (a plain name inside the folder), size and SHA-256,
    before LightGBM parses it; the booster's feature names against the
    manifest's. Warns when the model was written by another LightGBM version.

    Raises
    ------
    ValueError
        One line naming the folder and the fix: missing or damaged files, a
        malformed manifest, or one whose features the current code does not
        reproduce.
    """
    model_dir = Path(model_dir)
    man = read_manifest(model_dir)
    stored = man.feature_config
    try:
        config = FeatureConfig.from_dict(stored)
    except (TypeError, ValueError) as e:
        _fail(model_dir, "its feature_config does not fit the current featurize code "
                         f"({_one_line(e, 400)})")
    names = list(man.feature_names)
    current = feature_names(config)
    if names != current or config.to_dict() != stored:
        what = _first_difference(names, current) if names != current else \
            "its feature_config does not round-trip through the current FeatureConfig"
        _fail(model_dir, f"its features do not match what the current featurize code "
                         f"produces for its config ({what})")
    contract = {c: tuple(range(C.N_CLASSES[c])) for c in C.LABEL_CHARTS}
    if man.classes != contract:
        _fail(model_dir, f"its classes {man.classes} differ from the current contract's")
    written = man.versions.get("lightgbm")
    if written != lgb.__version__:
        log.warning("model %s was written with LightGBM %s, this is LightGBM %s; it loads, but "
                    "check its predictions or retrain it", model_dir, written, lgb.__version__)
    want = lgb_feature_names(names)
    models = {}
    for chart in C.LABEL_CHARTS:
        file = man.files[chart]
        booster = _checked_booster(model_dir, file, want)
        info = man.estimators[chart]
        cls = ESTIMATOR_CLASSES.get(info.class_name)
        if cls is None:
            _fail(model_dir, f"{chart} was saved as {info.class_name}, which this code does not "
                             f"know (known: {sorted(ESTIMATOR_CLASSES)})")
        regress = chart == "SIC" and man.sic_mode == "regression"
        if regress != issubclass(cls, RegressorMixin):
            _fail(model_dir, f"{chart} was saved as {info.class_name}, which does not fit "
                             f"sic_mode {man.sic_mode!r}")
        params = {k: v for k, v in info.params.items()
                  if k in cls().get_params() and k != "n_jobs"}
        params["n_classes"] = C.N_CLASSES[chart]
        if isinstance(params.get("class_weight_clip"), list):
            params["class_weight_clip"] = tuple(params["class_weight_clip"])
        try:
            models[chart] = cls.from_booster(booster, names, **params)
        except ValueError as e:
            _fail(model_dir, f"model file {file.name} does not fit the manifest ({e})")
    stage2 = None if man.stage2 is None else _load_stage2(model_dir, man.stage2, names)
    return ModelBundle(model_dir=model_dir, manifest=man, feature_config=config,
                       feature_names=names, models=models, sic_mode=man.sic_mode,
                       smoothing=dict(man.smoothing), stride=man.stride,
                       water_rule=man.water_rule, water_threshold=man.water_threshold,
                       stage2=stage2)


def _checked_booster(model_dir, file, want: list) -> lgb.Booster:
    """One model file as a Booster: size, SHA-256 and structure checked before LightGBM parses
    it, its feature names (LightGBM's spelling, ``want``) checked after."""
    text = _read_checked(model_dir, file)
    problem = text_problem(text, len(want))
    if problem:  # LightGBM's parser can abort the process on such a file
        _fail(model_dir, f"model file {file.name} is damaged ({problem})")
    try:
        booster = lgb.Booster(model_str=text)
    except Exception as e:  # LightGBMError, or a parse error surfacing as another type
        _fail(model_dir, f"model file {file.name} is corrupt ({_one_line(e)})")
    have = booster.feature_name()
    if have != want:
        what = _first_difference(have, want, ("in the file", "in the manifest"))
        _fail(model_dir, f"model file {file.name} does not fit the manifest: its feature "
                         f"names differ ({what})")
    return booster


def _load_stage2(model_dir, st: Stage2Record, input_names) -> S2.Stage2Bundle:
    """The second stage of a model folder, each file checked as the stage-1 ones are."""
    names = list(st.feature_names)
    current = S2.feature_names(st.spec, input_names)
    if names != current:
        _fail(model_dir, "its stage-2 features do not match what the current code makes of its "
                         f"spec ({_first_difference(names, current)})")
    if st.estimators is None or st.files is None:
        _fail(model_dir, "its stage2 entry lists no model files")
    want = lgb_feature_names(names)
    models = {}
    for chart, file in st.files.items():
        booster = _checked_booster(model_dir, file, want)
        info = st.estimators[chart]
        cls = S2.STAGE2_CLASSES.get(info.class_name)
        if cls is None or (chart == "SIC") != (cls is S2.Stage2Regressor):
            _fail(model_dir, f"{chart} stage 2 was saved as {info.class_name}, which this code "
                             f"does not use for {chart} (known: {sorted(S2.STAGE2_CLASSES)})")
        params = {k: v for k, v in info.params.items() if k in cls().get_params() and k != "n_jobs"}
        params["n_classes"] = C.N_CLASSES[chart]
        for k in ("class_weight_clip", "base_features"):
            if isinstance(params.get(k), list):
                params[k] = tuple(params[k])
        try:
            models[chart] = cls.from_booster(booster, names, **params)
        except ValueError as e:
            _fail(model_dir, f"model file {file.name} does not fit the manifest ({e})")
    return S2.Stage2Bundle(system=st.system, spec=dict(st.spec), feature_names=names,
                           models=models, systems=dict(st.systems), selection=dict(st.selection))
