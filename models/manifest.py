"""The model manifest (``manifest.json`` of a model folder), typed and checked.

A :class:`Manifest` is a frozen record of everything needed to use a model
folder again and of how it was made. The train job builds one (without the
four entries only saving can know); :func:`models.persistence.save_model`
fills ``versions``, ``classes``, ``estimators`` and ``files`` and writes
``to_dict()`` as JSON; :func:`models.persistence.load_model` reads it back
with :meth:`Manifest.from_dict`. Every field is checked on construction, so
a wrong type or value anywhere is one ``ValueError`` line naming the field
(dotted, e.g. ``training.seed``) and the fix, never a traceback from deep
inside the loader.

Format 2 (this code writes it)::

    format_version   2
    feature_names    [str]                 feature columns, in order
    feature_config   {str: JSON}           featurize.FeatureConfig.to_dict()
    sic_mode         "regression" | "argmax" | "expected"
    water_rule       "sic" | "classifiers"
    water_threshold  float in (0, 11)
    smoothing        {chart: spec}         models.smoothing specs, per chart
    stride           int >= 1              default prediction lattice step
    consistency_rule str                   how the three maps are made consistent
    training         {seed, n_pixels, n_rows, rows_per_chart, val_fraction, device,
                      n_jobs, train_scenes, val_scenes, skipped_scenes: [{scene, reason}],
                      distributed, val_stride, early_stopping_points, best_iterations,
                      estimator_params, smoothing_grid, timings_s, created_utc,
                      validation_fallbacks: {chart: reason}}   (absent in older format-2
                                                                files: read as {})
    validation       {str: JSON} | null    validation scores of every alternative
    versions         {str: str}            lightgbm, numpy, seaice-gbm, python
    classes          {chart: [int]}        0 .. N_CLASSES[chart] - 1
    estimators       {chart: {class, params, best_iteration}}
    files            {chart: {name, size, sha256}}   plain names inside the folder
    stage2           {system, spec, feature_names, rounds, systems, selection,
                      estimators, files}   optional (absent: no second stage; all
                      format-2 folders written before it): see :class:`Stage2Record`

Format 1 (before checksums) is read through :func:`_upgrade_v1`, the one place
that knows what format 1 lacked; its files carry no checksums
(``ModelFile.sha256 is None``) and a warning asks to retrain.
"""
from __future__ import annotations

import copy
import logging
import numbers
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import numpy as np

from featurize import radiometer
from scenes import contract as C

from . import smoothing, stage2
from .predict import SIC_MODES, WATER_RULES

log = logging.getLogger(__name__)

#: Format this code writes; older formats are read through their upgrade function.
FORMAT_VERSION = 2
#: The fix named by every manifest error.
FIX = "correct manifest.json or retrain the model with `seaice train` (or pipeline.train_models)"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """One line: which manifest field is wrong, how, and the fix."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        where = f"manifest field {field!r}" if field else "manifest"
        super().__init__(f"{where} {problem}; {FIX}")

    def under(self, prefix: str) -> "ManifestError":
        """The same error for the field inside ``prefix`` (``training`` -> ``training.seed``)."""
        return ManifestError(f"{prefix}.{self.field}" if prefix else self.field, self.problem)


# --- checks of single values: each returns the normalised value or raises ManifestError ---
def _kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, (bool, np.bool_)):
        return "true/false"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, numbers.Integral):
        return "an integer"
    if isinstance(v, numbers.Real):
        return "a number"
    return f"a {type(v).__name__}"


def _bad(name, what, v):
    text = repr(v)
    if len(text) > 60:
        text = text[:57] + "..."
    return ManifestError(name, f"must be {what}, got {text} ({_kind(v)})")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _int(v, name, least=None):
    if not _is_int(v) or (least is not None and v < least):
        raise _bad(name, "an integer" + (f" >= {least}" if least is not None else ""), v)
    return int(v)


def _float(v, name, low=None, high=None):
    ok = isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and np.isfinite(v)
    if not ok or (low is not None and not low < v) or (high is not None and not v < high):
        what = "a number" + (f" in ({low:g}, {high:g})" if low is not None else "")
        raise _bad(name, what, v)
    return float(v)


def _str(v, name, choices=None, empty=True):
    if not isinstance(v, str) or (choices is not None and v not in choices) or \
            (not empty and not v):
        what = f"one of {list(choices)}" if choices is not None else \
            "a string" if empty else "a non-empty string"
        raise _bad(name, what, v)
    return v


def _bool(v, name):
    if not isinstance(v, (bool, np.bool_)):
        raise _bad(name, "true or false", v)
    return bool(v)


def _object(v, name, what="an object"):
    if not isinstance(v, dict):
        raise _bad(name, what, v)
    bad = [k for k in v if not isinstance(k, str)]
    if bad:
        raise _bad(name, f"{what} with string keys", bad[0])
    return v


def _list(v, name, item, what):
    if not isinstance(v, (list, tuple)):
        raise _bad(name, f"a list of {what}", v)
    return tuple(item(x, f"{name}[{i}]") for i, x in enumerate(v))


def _str_list(v, name, distinct=False, nonempty=False):
    out = _list(v, name, _str, "strings")
    if nonempty and not out:
        raise ManifestError(name, "must not be empty")
    if distinct and len(set(out)) != len(out):
        dup = next(x for x in out if out.count(x) > 1)
        raise ManifestError(name, f"must hold distinct names, {dup!r} appears twice")
    return out


def _map(v, name, item, what):
    """``{str: item}``."""
    return {k: item(x, f"{name}.{k}") for k, x in _object(v, name, f"an object of {what}").items()}


def _chart_map(v, name, item, what):
    """``{chart: item}`` with exactly the label charts, in contract order."""
    v = _object(v, name, f"an object of chart -> {what}")
    missing = [c for c in C.LABEL_CHARTS if c not in v]
    extra = sorted(set(v) - set(C.LABEL_CHARTS))
    if missing or extra:
        raise ManifestError(name, f"must have exactly the charts {list(C.LABEL_CHARTS)} "
                                  f"(missing {missing}, unknown {extra})")
    return {c: item(v[c], f"{name}.{c}") for c in C.LABEL_CHARTS}


def _chart_subset(v, name):
    """``{chart: non-empty str}`` over some of the label charts."""
    v = _map(v, name, lambda x, m: _str(x, m, empty=False), "chart -> reason")
    unknown = sorted(set(v) - set(C.LABEL_CHARTS))
    if unknown:
        raise ManifestError(f"{name}.{unknown[0]}", f"is not a chart (charts: "
                                                   f"{list(C.LABEL_CHARTS)})")
    return v


def _json(v, name):
    """A JSON value (numpy scalars and arrays, tuples and paths made plain)."""
    if v is None or isinstance(v, (str, bool)):
        return v
    if isinstance(v, np.bool_):
        return bool(v)
    if _is_int(v):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return [_json(x, f"{name}[{i}]") for i, x in enumerate(v)]
    if isinstance(v, dict):
        return {str(k): _json(x, f"{name}.{k}") for k, x in v.items()}
    raise _bad(name, "a JSON value", v)


def _json_object(v, name, what="an object"):
    return _json(_object(v, name, what), name)


def _plain_name(v, name):
    v = _str(v, name)
    if v in ("", ".", "..") or any(s in v for s in ("/", "\\", "\0", ":")):
        raise _bad(name, "a plain file name inside the model folder (no '/', '..', "
                         "drive or absolute path)", v)
    return v


def _checked_by(check, what):
    """A field check from a module's own ``check_spec`` (its ValueError as a ManifestError)."""
    def run(v, name):
        try:
            return check(_object(v, name, f"a {what} object"))
        except ValueError as e:
            if isinstance(e, ManifestError):
                raise
            raise ManifestError(name, f"is not a valid {what} ({' '.join(str(e).split())})") \
                from None
    return run


_spec = _checked_by(smoothing.check_spec, "smoothing spec")


# --- records ---------------------------------------------------------------------------
class _Record:
    """Shared checking, ``to_dict`` and ``from_dict`` of the manifest records.

    ``_checks`` maps each field to ``check(value, json_key) -> value`` (run on
    construction); ``_keys`` renames fields in JSON (``class_name`` ->
    ``class``); ``_nested`` maps a field holding records to
    ``parse(json_value, json_key, **kw) -> value``.
    """

    _checks: ClassVar[dict] = {}
    _keys: ClassVar[dict] = {}
    _nested: ClassVar[dict] = {}

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name,
                               self._checks[f.name](getattr(self, f.name), self._key(f.name)))

    @classmethod
    def _key(cls, field_name):
        return cls._keys.get(field_name, field_name)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (records as dicts, tuples as lists)."""
        return {self._key(f.name): _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def _parse(cls, d, extra_keys=(), **kw):
        keys = {cls._key(f.name): f.name for f in fields(cls)}
        missing = [k for k in keys if k not in d]
        if missing:
            raise ManifestError(missing[0], "is missing")
        unknown = sorted(set(d) - set(keys) - set(extra_keys))
        if unknown:
            raise ManifestError(unknown[0], f"is unknown (known: {sorted(keys)})")
        return cls(**{attr: cls._nested[attr](d[key], key, **kw) if attr in cls._nested
                      else d[key] for key, attr in keys.items()})

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`; a wrong field is one :class:`ManifestError` line."""
        return _sub(cls, d, "")


def _plain(v):
    if isinstance(v, _Record):
        return v.to_dict()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _sub(cls, v, key, **kw):
    """The record ``cls`` of the JSON object ``v`` at ``key``, its errors named below ``key``."""
    if not isinstance(v, dict):
        keys = [cls._key(f.name) for f in fields(cls)]
        shown = ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
        raise _bad(key, f"an object {{{shown}}}", v)
    try:
        return cls._parse(v, **kw)
    except ManifestError as e:
        raise e.under(key) from None


def _instance(cls):
    def check(v, name):
        if not isinstance(v, cls):
            raise _bad(name, f"a {cls.__name__}", v)
        return v
    return check


@dataclass(frozen=True)
class ModelFile(_Record):
    """One model file: its plain name in the folder, size in bytes and SHA-256 (hex).

    ``size`` and ``sha256`` are None only for a format-1 model (no checksums).
    """

    name: str
    size: int | None = None
    sha256: str | None = None

    def __post_init__(self):
        super().__post_init__()
        if (self.size is None) != (self.sha256 is None):
            missing, given = ("size", "sha256") if self.size is None else ("sha256", "size")
            raise ManifestError(missing, f"is null but {given} is given; give both or neither")

    @property
    def checked(self) -> bool:
        """Whether the manifest holds a checksum of this file."""
        return self.sha256 is not None

    @classmethod
    def _parse(cls, d, checksums=True, **kw):
        rec = super()._parse(d, **kw)
        if checksums and not rec.checked:
            raise ManifestError("sha256", f"is null; format-{FORMAT_VERSION} model files carry "
                                          "their size and SHA-256")
        return rec


ModelFile._checks = {
    "name": _plain_name,
    "size": lambda v, n: None if v is None else _int(v, n, least=0),
    "sha256": lambda v, n: None if v is None else _checked_sha(v, n),
}


def _checked_sha(v, name):
    if not isinstance(v, str) or not _SHA256.fullmatch(v):
        raise _bad(name, "a 64-digit lowercase hex SHA-256", v)
    return v


@dataclass(frozen=True)
class EstimatorRecord(_Record):
    """How one chart's estimator was made: class name, ``get_params()``, kept rounds."""

    class_name: str
    params: dict
    best_iteration: int


EstimatorRecord._keys = {"class_name": "class"}
EstimatorRecord._checks = {
    "class_name": lambda v, n: _str(v, n, empty=False),
    "params": lambda v, n: _json_object(v, n, "an object of estimator parameters"),
    "best_iteration": lambda v, n: _int(v, n, least=0),
}


@dataclass(frozen=True)
class SkippedScene(_Record):
    """A bad scene the training run left out, and why."""

    scene: str
    reason: str


SkippedScene._checks = {"scene": lambda v, n: _str(v, n, empty=False), "reason": _str}


@dataclass(frozen=True)
class TrainingRecord(_Record):
    """How the models were trained (see :func:`pipeline.train.train_models`)."""

    seed: int
    n_pixels: int
    n_rows: int
    rows_per_chart: dict
    val_fraction: float
    device: str
    n_jobs: int
    train_scenes: tuple
    val_scenes: tuple
    skipped_scenes: tuple
    distributed: bool
    val_stride: int
    early_stopping_points: dict
    best_iterations: dict
    estimator_params: dict
    smoothing_grid: tuple
    timings_s: dict
    created_utc: str
    #: Charts whose validation labels could not rank models (none, or one
    #: class), with the reason: their models were fitted without early
    #: stopping and their choices are the defaults (see pipeline.train).
    validation_fallbacks: dict = field(default_factory=dict)

    @classmethod
    def _parse(cls, d, **kw):
        # format-2 manifests written before this field existed lack it; none fell back then
        return super()._parse({"validation_fallbacks": {}, **d}, **kw)


def _val_fraction(v, name):
    if isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and 0 <= v < 1:
        return float(v)
    raise _bad(name, "a number in [0, 1)", v)


TrainingRecord._checks = {
    "seed": lambda v, n: _int(v, n, least=0),
    "n_pixels": lambda v, n: _int(v, n, least=1),
    "n_rows": lambda v, n: _int(v, n, least=0),
    "rows_per_chart": lambda v, n: _chart_map(v, n, lambda x, m: _int(x, m, least=0),
                                              "row count"),
    "val_fraction": _val_fraction,
    "device": lambda v, n: _str(v, n, empty=False),
    "n_jobs": lambda v, n: _int(v, n, least=1),
    "train_scenes": _str_list,
    "val_scenes": _str_list,
    "skipped_scenes": lambda v, n: _list(v, n, _instance(SkippedScene), "{scene, reason}"),
    "distributed": _bool,
    "val_stride": lambda v, n: _int(v, n, least=1),
    "early_stopping_points": lambda v, n: _map(v, n, lambda x, m: _int(x, m, least=0),
                                               "chart -> point count"),
    "best_iterations": lambda v, n: _map(v, n, lambda x, m: _int(x, m, least=0),
                                         "model -> round count"),
    "estimator_params": lambda v, n: _json_object(v, n, "an object of estimator parameters"),
    "smoothing_grid": lambda v, n: _list(v, n, _spec, "smoothing specs"),
    "timings_s": lambda v, n: _map(v, n, _float, "phase -> seconds"),
    "created_utc": lambda v, n: _str(v, n, empty=False),
    "validation_fallbacks": lambda v, n: _chart_subset(v, n),
}
TrainingRecord._nested = {
    # a list of {scene, reason}; anything else is left to the check, which names it
    "skipped_scenes": lambda v, key, **kw: [_sub(SkippedScene, x, f"{key}[{i}]")
                                            for i, x in enumerate(v)]
    if isinstance(v, list) else v,
}


def _systems(v, name):
    """``{system: {sic_mode, water_rule, water_threshold, smoothing, region_level}}``."""
    v = _object(v, name, "an object of system -> settings")
    unknown = sorted(set(v) - set(stage2.SYSTEMS))
    if unknown:
        raise ManifestError(f"{name}.{unknown[0]}", f"is not a system (systems: "
                                                   f"{list(stage2.SYSTEMS)})")
    out = {}
    for system, d in v.items():
        key = f"{name}.{system}"
        d = _object(d, key, "an object of settings")
        want = ("sic_mode", "water_rule", "water_threshold", "smoothing", "region_level")
        missing = [k for k in want if k not in d]
        extra = sorted(set(d) - set(want))
        if missing or extra:
            raise ManifestError(key, f"must have exactly {list(want)} (missing {missing}, "
                                     f"unknown {extra})")
        level = d["region_level"]
        out[system] = {
            "sic_mode": _str(d["sic_mode"], f"{key}.sic_mode", choices=SIC_MODES),
            "water_rule": _str(d["water_rule"], f"{key}.water_rule", choices=WATER_RULES),
            "water_threshold": _float(d["water_threshold"], f"{key}.water_threshold", 0,
                                      C.N_CLASSES["SIC"]),
            "smoothing": _chart_map(d["smoothing"], f"{key}.smoothing", _spec, "smoothing spec"),
            "region_level": None if level is None else _int(level, f"{key}.region_level", 0),
        }
    return out


_stage2_spec = _checked_by(stage2.check_spec, "stage-2 spec")


@dataclass(frozen=True)
class Stage2Record(_Record):
    """The second stage of a model folder (:mod:`models.stage2`, :mod:`pipeline.stage2`).

    ``system`` is the system predictions use; ``systems`` holds the settings
    of every candidate that was scored (for ablations); ``estimators`` and
    ``files`` describe the stage-2 model of each chart whose cross-fit kept
    rounds (``{chart}_stage2.txt``), None until :func:`models.persistence.save_model`
    has written them; ``selection`` is how the system was chosen.
    """

    system: str
    spec: dict
    feature_names: tuple
    rounds: dict
    systems: dict
    selection: dict
    estimators: dict | None = None
    files: dict | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.system not in self.systems:
            raise ManifestError("system", f"is {self.system!r}, which systems does not hold")
        if self.estimators is not None and self.files is not None \
                and set(self.estimators) != set(self.files):
            raise ManifestError("files", "must name a file for each chart of estimators")
        if self.system.startswith("stage2") and self.estimators is not None \
                and not self.estimators:
            raise ManifestError("estimators", f"is empty, but system {self.system!r} uses "
                                              "stage-2 models")


def _chart_subset_of(item, what):
    def check(v, name):
        v = _object(v, name, f"an object of chart -> {what}")
        unknown = sorted(set(v) - set(C.LABEL_CHARTS))
        if unknown:
            raise ManifestError(f"{name}.{unknown[0]}", f"is not a chart (charts: "
                                                       f"{list(C.LABEL_CHARTS)})")
        return {c: item(v[c], f"{name}.{c}") for c in C.LABEL_CHARTS if c in v}
    return check


Stage2Record._checks = {
    "system": lambda v, n: _str(v, n, choices=stage2.SYSTEMS),
    "spec": _stage2_spec,
    "feature_names": lambda v, n: _str_list(v, n, distinct=True, nonempty=True),
    "rounds": _chart_subset_of(lambda v, n: _int(v, n, least=0), "round count"),
    "systems": _systems,
    "selection": lambda v, n: _json_object(v, n, "an object"),
    "estimators": lambda v, n: None if v is None else _chart_subset_of(
        _instance(EstimatorRecord), "EstimatorRecord")(v, n),
    "files": lambda v, n: None if v is None else _chart_subset_of(
        _instance(ModelFile), "ModelFile")(v, n),
}
Stage2Record._nested = {
    "estimators": lambda v, key, **kw: None if v is None else _chart_subset_of(
        lambda x, k: _sub(EstimatorRecord, x, k), "{class, params, best_iteration}")(v, key),
    "files": lambda v, key, checksums=True, **kw: None if v is None else _chart_subset_of(
        lambda x, k: _sub(ModelFile, x, k, checksums=checksums), "{name, size, sha256}")(v, key),
}


@dataclass(frozen=True)
class Manifest(_Record):
    """The manifest of a model folder (format :data:`FORMAT_VERSION`); see the module doc.

    ``versions``, ``classes``, ``estimators`` and ``files`` are None until
    :func:`models.persistence.save_model` has written the models
    (:attr:`saved`); a manifest read from JSON always has them.
    """

    feature_names: tuple
    feature_config: dict
    sic_mode: str
    water_rule: str
    water_threshold: float
    smoothing: dict
    stride: int
    consistency_rule: str
    training: TrainingRecord
    validation: dict | None = None
    versions: dict | None = None
    classes: dict | None = None
    estimators: dict | None = None
    files: dict | None = None
    #: The second stage (absent in folders without one, and in all written before it).
    stage2: Stage2Record | None = None

    #: Entries save_model fills.
    SAVED: ClassVar[tuple] = ("versions", "classes", "estimators", "files")

    def __post_init__(self):
        super().__post_init__()
        if self.files is not None:
            names = [f.name for f in self.files.values()]
            if self.stage2 is not None and self.stage2.files is not None:
                names += [f.name for f in self.stage2.files.values()]
            if len(set(names)) != len(names):
                raise ManifestError("files", f"must name a different file per chart, got {names}")

    @property
    def saved(self) -> bool:
        """Whether the entries written by save_model are present."""
        return all(getattr(self, k) is not None for k in self.SAVED)

    @property
    def checksummed(self) -> bool:
        """Whether every model file has a size and SHA-256 (False for a format-1 model)."""
        return self.files is not None and all(f.checked for f in self.files.values())

    def to_dict(self) -> dict:
        """The JSON of ``manifest.json`` (with ``format_version``; ``stage2`` only if present)."""
        d = {"format_version": FORMAT_VERSION, **super().to_dict()}
        if d["stage2"] is None:  # folders without a second stage read as before
            del d["stage2"]
        return d

    @classmethod
    def _parse(cls, d, **kw):
        # format-2 manifests without a second stage have no stage2 entry
        return super()._parse({"stage2": None, **d}, **kw)

    @classmethod
    def from_dict(cls, d, *, source="manifest") -> "Manifest":
        """Typed manifest of a ``manifest.json`` dict, of this format or an older one.

        Older formats go through their upgrade function (format 1:
        :func:`_upgrade_v1`, which logs a warning naming ``source``).

        Raises
        ------
        ValueError (:class:`ManifestError`)
            One line naming the wrong field and the fix.
        """
        _object(d, "", "a JSON object")
        if "format_version" not in d:
            raise ManifestError("format_version", "is missing")
        version = d["format_version"]
        checksums = True
        if _is_int(version) and version in _UPGRADES:
            d = _UPGRADES[version](d, source)
            checksums = False
        elif not (_is_int(version) and version == FORMAT_VERSION):
            known = sorted([FORMAT_VERSION, *_UPGRADES])
            raise ManifestError("format_version", f"is {version!r}; this code reads formats "
                                                  f"{known}")
        null = [k for k in cls.SAVED if k in d and d[k] is None]
        if null:
            raise ManifestError(null[0], "is null; a saved manifest records it")
        return _sub(cls, d, "", extra_keys=("format_version",), checksums=checksums)


def _files(v, key, checksums=True, **kw):
    if v is None:
        return None
    return _chart_map(v, key, lambda x, k: _sub(ModelFile, x, k, checksums=checksums),
                      "{name, size, sha256}")


def _classes(v, name):
    return _chart_map(v, name, lambda x, m: _list(x, m, _int, "class numbers"), "class list")


Manifest._checks = {
    "feature_names": lambda v, n: _str_list(v, n, distinct=True, nonempty=True),
    "feature_config": lambda v, n: _json_object(v, n, "an object (FeatureConfig.to_dict())"),
    "sic_mode": lambda v, n: _str(v, n, choices=SIC_MODES),
    "water_rule": lambda v, n: _str(v, n, choices=WATER_RULES),
    "water_threshold": lambda v, n: _float(v, n, 0, C.N_CLASSES["SIC"]),
    "smoothing": lambda v, n: _chart_map(v, n, _spec, "smoothing spec"),
    "stride": lambda v, n: _int(v, n, least=1),
    "consistency_rule": _str,
    "training": _instance(TrainingRecord),
    "validation": lambda v, n: None if v is None else _json_object(
        v, n, "an object of validation scores or null"),
    "versions": lambda v, n: None if v is None else _map(v, n, _str, "name -> version"),
    "classes": lambda v, n: None if v is None else _classes(v, n),
    "estimators": lambda v, n: None if v is None else _chart_map(
        v, n, _instance(EstimatorRecord), "EstimatorRecord"),
    "files": lambda v, n: None if v is None else _chart_map(v, n, _instance(ModelFile),
                                                            "ModelFile"),
    "stage2": lambda v, n: None if v is None else _instance(Stage2Record)(v, n),
}
Manifest._nested = {
    "training": lambda v, key, **kw: _sub(TrainingRecord, v, key),
    "estimators": lambda v, key, **kw: None if v is None else _chart_map(
        v, key, lambda x, k: _sub(EstimatorRecord, x, k), "{class, params, best_iteration}"),
    "files": _files,
    "stage2": lambda v, key, checksums=True, **kw: None if v is None else _sub(
        Stage2Record, v, key, checksums=checksums),
}


# --- older formats ---------------------------------------------------------------------
def _upgrade_v1(d: dict, source) -> dict:
    """A format-1 manifest dict in the format-2 layout, its files without checksums.

    What format 1 lacked: ``files`` held bare names (no size, no SHA-256);
    models saved before ``FeatureConfig.era5_features`` existed used every
    ERA5 field (``radiometer.ERA5_FEATURES``); ``water_threshold`` was 0.5
    before it was chosen; ``training`` had no ``skipped_scenes`` and
    ``distributed`` before scenes could be skipped or training distributed
    (none were). Logs one warning: the files cannot be checked.
    """
    d = copy.deepcopy(d)
    config = d.get("feature_config")
    if isinstance(config, dict):
        config.setdefault("era5_features", list(radiometer.ERA5_FEATURES))
    d.setdefault("water_threshold", 0.5)
    training = d.get("training")
    if isinstance(training, dict):
        training.setdefault("skipped_scenes", [])
        training.setdefault("distributed", False)
    files = d.get("files")
    if isinstance(files, dict):
        d["files"] = {c: {"name": n, "size": None, "sha256": None} if isinstance(n, str) else n
                      for c, n in files.items()}
    d["format_version"] = FORMAT_VERSION
    log.warning("%s: format-1 model manifest, its model files carry no checksums and cannot be "
                "checked before loading; retrain it with `seaice train` to get a format-%d model",
                source, FORMAT_VERSION)
    return d


#: Upgrade function of each older format (the only place that knows what it lacked).
_UPGRADES = {1: _upgrade_v1}
