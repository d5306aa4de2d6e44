"""The second stage: chart-like decisions from stage-1 outputs aggregated over regions.

Stage 1 (the per-pixel models) decides every lattice point from what the
pixel and its fixed neighbourhoods show. An analyst decides per polygon: one
egg code over tens of kilometres. Stage 2 is auto-context: a second
LightGBM per chart that sees, at each lattice point, the stage-1 outputs
there and their aggregates over

- the regions of a merge hierarchy (:mod:`models.regions`) built from the
  stage-1 outputs and the SAR composite: mean outputs, the spread of the SIC
  value, the region's area, the distance to its boundary, mean and spread of
  HH and HV and of the AMSR2 ratios, at every merge level;
- boxes of several sizes (valid-aware Gaussian means of the outputs).

It is trained on honest stage-1 outputs only (cross-fitted over groups of
training scenes, :mod:`pipeline.stage2`), so it learns how far to trust the
pixel against its region, not how well stage 1 remembers its own scenes.

Everything here works on one scene's lattice; :func:`stage2_features`
returns the feature rows at the valid lattice points, in ``np.nonzero(valid)``
order, the order in which :func:`models.predict.lattice_predict` fills them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np

from featurize import featurize_at
from scenes import contract as C

from . import regions, smoothing
from .estimator import (IceClassifier, IceRegressor, _as_weight, _as_X, lgb_feature_names,
                        resolve_n_jobs)

#: Settings of the stage-2 features (stored in the model manifest):
#: ``thresholds``: Ward costs of the merge levels (see :mod:`models.regions`);
#: ``sar_weight``: weight of the HH/HV composite (z-scores) against the
#: stage-1 outputs (probabilities, SIC / 10) in the merge criterion;
#: ``box_px``: Gaussian sigmas (SAR pixels) of the box features;
#: ``input_stats``: also the region mean and spread of HH and HV and the
#: region means of the :data:`REGION_INPUTS` (AMSR2 ratios). Off by default:
#: on three development datasets they let stage 2 learn the training scenes'
#: own ice (held-out SOD -1.8 on one, no gain elsewhere), while the output
#: aggregates alone did not.
DEFAULT_SPEC = {"thresholds": [0.5, 2.0, 8.0, 32.0], "sar_weight": 2.0,
                "box_px": [36.0, 108.0, 324.0], "input_stats": False}
#: The systems a model folder may use, simplest first (see :mod:`pipeline.stage2`):
#: today's stage 1; stage 1 with a last region vote; stage 2; stage 2 with a vote.
SYSTEMS = ("stage1", "stage1+regions", "stage2", "stage2+regions")
#: Stage-1 feature columns averaged over regions with ``input_stats``.
REGION_INPUTS = ("amsr_pr_18_7", "amsr_pr_36_5", "amsr_gr_36_18", "amsr_btemp_89_0h")
#: km per SAR pixel (FORMAT.md: 80 m grid).
PIXEL_KM = 0.08
#: Feature groups of stage 2 (for importance), by name prefix.
GROUPS = {"s1_": "stage2_outputs", "r": "stage2_regions", "b": "stage2_boxes"}


def check_spec(spec) -> dict:
    """Validated copy of a stage-2 feature spec (ValueError naming the problem)."""
    if not isinstance(spec, dict):
        raise ValueError(f"stage-2 spec must be a dict, got {spec!r}")
    extra = sorted(set(spec) - set(DEFAULT_SPEC))
    missing = sorted(set(DEFAULT_SPEC) - set(spec))
    if extra or missing:
        raise ValueError(f"stage-2 spec {spec!r}: unknown keys {extra}, missing {missing}")
    try:
        t = [float(x) for x in spec["thresholds"]]
        box = [float(x) for x in spec["box_px"]]
        w = float(spec["sar_weight"])
    except (TypeError, ValueError):
        raise ValueError(f"stage-2 spec {spec!r}: thresholds and box_px must be lists of "
                         "numbers, sar_weight a number") from None
    if not t or any(not np.isfinite(x) or x <= 0 for x in t) or sorted(t) != t:
        raise ValueError(f"stage-2 spec: thresholds must be positive and increasing, got {t}")
    if not np.isfinite(w) or w < 0:
        raise ValueError(f"stage-2 spec: sar_weight must be >= 0, got {w}")
    if any(not np.isfinite(x) or x <= 0 for x in box):
        raise ValueError(f"stage-2 spec: box_px must be positive, got {box}")
    if not isinstance(spec["input_stats"], bool):
        raise ValueError(f"stage-2 spec: input_stats must be true or false, got "
                         f"{spec['input_stats']!r}")
    return {"thresholds": t, "sar_weight": w, "box_px": box,
            "input_stats": bool(spec["input_stats"])}


def output_names() -> list:
    """Names of the stage-1 output channels (see :func:`output_channels`)."""
    return (["s1_sic"] + [f"s1_sod_p{k}" for k in range(C.N_CLASSES["SOD"])]
            + [f"s1_floe_p{k}" for k in range(C.N_CLASSES["FLOE"])])


def output_channels(lat: dict) -> np.ndarray:
    """Stage-1 lattice outputs as channels, float32 (c, Hl, Wl) (see :func:`output_names`).

    The SIC channel is the regressor's value or the classifier's expected
    class (class units); then the SOD and the FLOE class probabilities.
    """
    if "SIC_value" in lat:
        sic = np.asarray(lat["SIC_value"], np.float32)
    elif "SIC_proba" in lat:
        P = np.asarray(lat["SIC_proba"], np.float32)
        sic = np.tensordot(np.arange(P.shape[0], dtype=np.float32), P, axes=1)
    else:
        raise ValueError("stage-1 outputs lack a SIC model (SIC_value or SIC_proba)")
    return np.concatenate([sic[None], np.asarray(lat["SOD_proba"], np.float32),
                           np.asarray(lat["FLOE_proba"], np.float32)])


def merge_features(channels, comp, sar_weight: float):
    """What regions are homogeneous in: SIC / 10, the probabilities and the weighted SAR."""
    F = [channels[:1] / (C.N_CLASSES["SIC"] - 1), channels[1:]]
    if sar_weight > 0 and comp is not None:
        F.append(sar_weight * np.asarray(comp, np.float32))
    return np.concatenate(F)


def input_columns(spec, input_names) -> list:
    """Stage-1 feature columns that ``spec`` needs on the lattice (region means)."""
    spec = check_spec(spec)
    return [n for n in REGION_INPUTS if n in input_names] if spec["input_stats"] else []


def lattice_inputs(ds, config, lattice, valid, input_names, columns):
    """``columns`` of the stage-1 features on the lattice, float32 (k, Hl, Wl) (0 where not valid).

    Only for ``input_stats``: featurizes the valid lattice points a second time.
    """
    valid = np.asarray(valid, bool)
    out = np.zeros((len(columns),) + valid.shape, np.float32)
    ii, jj = np.nonzero(valid)
    if columns and ii.size:
        X = featurize_at(ds, config, lattice.rows[ii], lattice.cols[jj])
        out[:, ii, jj] = X[:, [list(input_names).index(n) for n in columns]].T
    return out


def feature_names(spec, input_names=()) -> list:
    """Names of the stage-2 features of ``spec``, in the order :func:`stage2_features` gives.

    ``input_names`` are the stage-1 model's feature names (for ``input_stats``).
    """
    spec = check_spec(spec)
    outs = output_names()
    names = list(outs)
    for lv in range(len(spec["thresholds"])):
        p = f"r{lv}_"
        names += [p + n for n in outs]
        names += [p + "sic_std", p + "log_area_km2", p + "edge_km"]
        if spec["input_stats"]:
            names += [p + "hh_mean", p + "hv_mean", p + "hh_std", p + "hv_std"]
            names += [p + n + "_mean" for n in input_columns(spec, input_names)]
    for b in spec["box_px"]:
        names += [f"b{int(round(b))}_{n}" for n in outs]
    return names


def feature_group(name: str) -> str:
    """Importance group of a stage-2 feature: outputs, region aggregates or boxes."""
    for prefix, group in GROUPS.items():
        if name.startswith(prefix):
            return group
    raise ValueError(f"{name!r} is not a stage-2 feature name")


def region_levels(lat: dict, valid, comp, spec) -> np.ndarray:
    """Region labels (L, Hl, Wl) of the merge hierarchy of one scene's stage-1 outputs."""
    spec = check_spec(spec)
    valid = np.asarray(valid, bool)
    ch = output_channels(lat)
    if valid.any():
        ch = smoothing.fill_invalid(ch, valid)
    comp = None if comp is None else np.asarray(comp, np.float32)
    return regions.merge_levels(merge_features(ch, comp, spec["sar_weight"]), valid,
                                spec["thresholds"])


def stage2_features(lat: dict, valid, comp, stride: int, spec, *, levels=None, inputs=None):
    """Stage-2 features at the valid lattice points of one scene, and its region levels.

    Parameters
    ----------
    lat : dict
        Stage-1 lattice outputs (:func:`models.predict.lattice_predict`).
    valid : bool (Hl, Wl)
    comp : float32 (2, Hl, Wl)
        HH/HV composite (:func:`models.predict.scan_scene`).
    stride : int
        SAR pixels per lattice step.
    spec : dict
        See :data:`DEFAULT_SPEC`.
    levels : int array (L, Hl, Wl), optional
        :func:`region_levels` if already made.
    inputs : float32 (k, Hl, Wl), optional
        The :func:`input_columns` on the lattice (needed with ``input_stats``).

    Returns
    -------
    F2 : float32 (N, len(feature_names(spec, ...))), rows in ``np.nonzero(valid)`` order
    levels : int32 (L, Hl, Wl)
        Region labels per merge level (0: invalid).
    """
    spec = check_spec(spec)
    valid = np.asarray(valid, bool)
    ch = output_channels(lat)
    if valid.any():
        ch = smoothing.fill_invalid(ch, valid)
    comp = np.zeros((2,) + valid.shape, np.float32) if comp is None else np.asarray(comp, np.float32)
    if levels is None:
        levels = regions.merge_levels(merge_features(ch, comp, spec["sar_weight"]), valid,
                                      spec["thresholds"])
    if spec["input_stats"] and inputs is None:
        raise ValueError("stage-2 spec input_stats needs the stage-1 input columns on the lattice")
    ii, jj = np.nonzero(valid)
    cols = [ch[:, ii, jj]]
    cell_km2 = (stride * PIXEL_KM) ** 2
    for lab in levels:
        cnt, mean = regions.region_stats(lab, ch)
        _, _, sd = regions.region_stats(lab, ch[:1], std=True)
        li = lab[ii, jj]
        cols.append(mean[:, li])
        cols.append(sd[:, li])
        cols.append(np.log10(np.maximum(cnt[li], 1) * cell_km2)[None])
        cols.append(regions.boundary_distance(lab)[ii, jj][None] * stride * PIXEL_KM)
        if spec["input_stats"]:
            _, m_sar, sd_sar = regions.region_stats(lab, comp, std=True)
            cols += [m_sar[:, li], sd_sar[:, li]]
            if len(inputs):
                _, m_x = regions.region_stats(lab, np.nan_to_num(np.asarray(inputs)))
                cols.append(m_x[:, li])
    for b in spec["box_px"]:
        cols.append(smoothing.gaussian_smooth(ch, valid, b / float(stride))[:, ii, jj])
    F2 = np.concatenate([np.asarray(c, np.float32) for c in cols]).T
    return np.ascontiguousarray(F2), levels


def stage2_outputs(lat: dict, F2, valid, chart_models: dict) -> dict:
    """``lat`` with the charts of ``chart_models`` replaced by their stage-2 outputs."""
    out = dict(lat)
    ii, jj = np.nonzero(valid)
    for chart, est in chart_models.items():
        if chart == "SIC":
            v = np.zeros(valid.shape, np.float32)
            v[ii, jj] = est.predict(F2)
            out.pop("SIC_proba", None)
            out["SIC_value"] = v
        else:
            P = np.zeros((C.N_CLASSES[chart],) + valid.shape, np.float32)
            P[:, ii, jj] = est.predict_proba(F2).T
            out[f"{chart}_proba"] = P
    return out


def region_vote(lat: dict, labels) -> dict:
    """Every lattice output averaged over each region of ``labels`` (the last region vote)."""
    return {k: regions.region_means(labels, v) for k, v in lat.items()}


def final_outputs(lat: dict, valid, comp, stride: int, *, spec, models: dict, region_level=None,
                  levels=None, inputs=None) -> dict:
    """The lattice outputs a stage-2 system renders: stage 2 where it has models, then the
    region vote at ``region_level`` (None: no vote).

    ``models`` (chart -> fitted stage-2 estimator) may be empty (a
    ``stage1+regions`` system). ``levels`` are :func:`region_levels` if
    already made.
    """
    valid = np.asarray(valid, bool)
    if levels is None and (models or region_level is not None):
        levels = region_levels(lat, valid, comp, spec)
    out = dict(lat)
    if models:
        F2, _ = stage2_features(lat, valid, comp, stride, spec, levels=levels, inputs=inputs)
        out = stage2_outputs(lat, F2, valid, models)
    if region_level is not None:
        out = region_vote(out, levels[int(region_level)])
    return out


# --- the stage-2 estimators: boosting from the stage-1 output --------------------------
#: Probabilities below this are clipped before their log becomes a base margin: a
#: margin of log(1e-6) has a near-zero Hessian, and one round of Newton steps on it
#: throws whole polygons to another class (seen on development data).
BASE_CLIP = 0.01


class _Residual:
    """Boosting that starts from the stage-1 output instead of from a constant.

    The stage-1 output at a point (its SIC value, the log of its clipped class
    probabilities) is the base margin (LightGBM's ``init_score``): a model
    with no rounds predicts exactly what stage 1 did, and each round learns
    only a correction. So a stage 2 that cannot learn anything that holds
    across scenes stays at stage 1 instead of relearning it from a few
    hundred polygons. The columns holding the stage-1 output are named by
    ``base_features``. There is no early stopping here: the number of rounds
    is chosen by the cross-fit over groups of training scenes
    (:mod:`pipeline.stage2`); ``fit`` records the loss of every round on each
    eval set in ``curves_`` (round 0: the base alone).
    """

    def _base(self, X):
        names = list(self.feature_names_in_)
        missing = [n for n in self.base_features if n not in names]
        if missing:
            raise ValueError(f"stage-2 base features {missing} are not among the features")
        cols = [names.index(n) for n in self.base_features]
        B = np.asarray(X)[:, cols].astype(np.float64)  # the base columns only, not all of X
        if isinstance(self, IceRegressor):
            return B[:, 0]
        return np.log(np.clip(np.nan_to_num(B, nan=1.0 / B.shape[1]), self.base_clip, 1.0))

    def _loss(self, margin, y, w):
        if isinstance(self, IceRegressor):
            loss = (margin - y) ** 2
        elif self._lgb_params()["metric"] == "multi_error":
            loss = (margin.argmax(axis=1) != y).astype(np.float64)
        else:
            z = margin - margin.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            loss = -logp[np.arange(len(y)), y.astype(np.int64)]
        return float((w * loss).sum() / max(w.sum(), 1e-300))

    def fit(self, X, y, *, eval_set=None, sample_weight=None, feature_names=None):
        """Fit ``n_estimators`` rounds on top of the base margin; record eval curves.

        Parameters
        ----------
        X : array (n, f)
        y : array (n,)
        eval_set : list of (X, y) or (X, y, weight), optional
            Sets whose loss after every round goes to ``curves_``.
        sample_weight : array (n,), optional
        feature_names : list of str
            Must hold ``base_features``.
        """
        X = _as_X(X)
        n, f = X.shape
        if n == 0:
            raise ValueError("X has no samples; train on at least one labelled point")
        y = self._check_y(y, "y")
        names = [str(s) for s in (feature_names if feature_names is not None
                                  else [f"x{i}" for i in range(f)])]
        if len(names) != f:
            raise ValueError(f"{len(names)} feature_names for {f} features")
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = f
        w = _as_weight(sample_weight, n, "sample_weight")
        params = self._lgb_params()
        self._fit_prepare(y, w)
        lgb_names = lgb_feature_names(names)
        train = lgb.Dataset(X, label=y, weight=self._weights(y, w), init_score=self._base(X),
                            feature_name=lgb_names,
                            params={"max_bin": params["max_bin"], "verbose": -1})
        evals, valid = [], []
        for i, item in enumerate(eval_set or []):
            Xv = _as_X(item[0], f, f"eval_set[{i}] X")
            yv = self._check_y(item[1], f"eval_set[{i}] y")
            wv = _as_weight(item[2] if len(item) == 3 else None, Xv.shape[0],
                            f"eval_set[{i}] weight")
            wv = np.ones(len(yv)) if wv is None else wv
            bv = self._base(Xv)
            evals.append((bv, yv, wv))
            valid.append(lgb.Dataset(Xv, label=yv, weight=wv, init_score=bv, reference=train))
        record = {}
        booster = lgb.train(params, train, num_boost_round=int(self.n_estimators),
                            valid_sets=valid or None,
                            valid_names=[f"eval{i}" for i in range(len(valid))] or None,
                            callbacks=[lgb.record_evaluation(record)] if valid else None)
        self.curves_ = [[self._loss(b, yv, wv)] + list(next(iter(record[f"eval{i}"].values())))
                        for i, (b, yv, wv) in enumerate(evals)]
        self.booster_ = booster
        self.best_iteration_ = booster.current_iteration()
        return self

    def _margin(self, X):
        self._check_fitted()
        X = _as_X(X, self.n_features_in_)
        base = self._base(X)
        if X.shape[0] == 0 or self.best_iteration_ == 0:
            return base
        raw = self.booster_.predict(X, raw_score=True, num_iteration=self.best_iteration_,
                                    num_threads=resolve_n_jobs(self.n_jobs))
        return base + np.asarray(raw).reshape(base.shape)


class Stage2Regressor(_Residual, IceRegressor):
    """SIC stage 2: L2 regression on the class index, boosted from the stage-1 SIC value.

    Parameters
    ----------
    base_features : list of str
        The one column holding the stage-1 SIC value (default ``["s1_sic"]``).
    **params
        See :class:`models.estimator.IceRegressor`.
    """

    def __init__(self, n_classes=11, *, base_features=("s1_sic",), **params):
        super().__init__(n_classes, **params)
        self.base_features = base_features

    def predict(self, X):
        """SIC values (class units), clipped to ``[0, n_classes - 1]``."""
        return np.clip(self._margin(X), 0, int(self.n_classes) - 1)


class Stage2Classifier(_Residual, IceClassifier):
    """SOD / FLOE stage 2: multiclass boosting from the log of the stage-1 probabilities.

    Parameters
    ----------
    base_features : list of str
        The columns holding the stage-1 probabilities of classes 0 .. K - 1.
    base_clip : float
        Probabilities are clipped to ``[base_clip, 1]`` before the log (see
        :data:`BASE_CLIP`).
    **params
        See :class:`models.estimator.IceClassifier`.
    """

    def __init__(self, n_classes=2, *, base_features=(), base_clip=BASE_CLIP, **params):
        super().__init__(n_classes, **params)
        self.base_features = base_features
        self.base_clip = base_clip

    def predict_proba(self, X):
        """Class probabilities, float64 (n, n_classes)."""
        z = self._margin(X)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def base_features(chart: str) -> list:
    """Names of the stage-1 output columns a chart's stage 2 starts from."""
    if chart == "SIC":
        return ["s1_sic"]
    return [f"s1_{chart.lower()}_p{k}" for k in range(C.N_CLASSES[chart])]


#: Stage-2 estimator classes by the name a manifest records.
STAGE2_CLASSES = {cls.__name__: cls for cls in (Stage2Regressor, Stage2Classifier)}


@dataclass
class Stage2Bundle:
    """The second stage of a loaded model folder.

    Attributes
    ----------
    system : str
        The chosen system (one of :data:`SYSTEMS`).
    spec : dict
        Stage-2 feature spec.
    feature_names : list of str
    models : dict chart -> fitted stage-2 estimator
        Charts whose stage 2 kept rounds (used by the ``stage2`` systems).
    systems : dict name -> settings
        ``sic_mode``, ``water_rule``, ``water_threshold``, ``smoothing``
        (chart -> spec) and ``region_level`` of every candidate system.
    selection : dict
        How the system was chosen (scores, bootstrap shares, reason).
    """

    system: str
    spec: dict
    feature_names: list
    models: dict = field(default_factory=dict)
    systems: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)
