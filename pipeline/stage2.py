"""Stage 2 in the train job: honest stage-1 outputs, the stage-2 fit, and the choice.

After the stage-1 models are fitted and today's choices (SIC mode, water
rule, smoothing) are made on the validation scenes, :func:`train_stage2`

1. **cross-fits stage 1**: the training scenes are dealt into
   :data:`FOLDS` groups; for each group the chosen stage-1 models are
   refitted (same settings and rounds) on the sampled pixels of the other
   groups' scenes only. A training scene's stage-1 outputs then come from a
   model that never saw it, as a test scene's do;
2. **featurizes** up to :data:`MAX_SCENES` training scenes (their group's
   model) and every validation scene (the stage-1 models) on the prediction
   lattice through the scene runner: stage-1 outputs, the region hierarchy
   and the stage-2 features (:mod:`models.stage2`);
3. **fits stage 2** per chart (:class:`models.stage2.Stage2Regressor`,
   :class:`~models.stage2.Stage2Classifier`, boosting from the stage-1
   output) with the number of rounds chosen by the same grouped
   cross-fit: the pooled held-out loss of the groups' models after each
   round; 0 rounds (stage 2 = stage 1) when no round helps held-out scenes;
4. **chooses** among four systems, simplest first: today's (``stage1``),
   stage 1 with a last region vote (``stage1+regions``), stage 2
   (``stage2``) and stage 2 with a region vote (``stage2+regions``), scored
   on the selection scenes: the cross-fitted training scenes and the
   validation scenes. Stage 1 and stage 2 are tuned alike there (SIC mode,
   water rule and smoothing chosen as today's are, a region vote in place
   of the smoothing); a candidate replaces the current choice (at first:
   stage 1 tuned alike) only if it scores better in at least
   :data:`BOOTSTRAP_LEVEL` of :data:`BOOTSTRAP_DRAWS` paired bootstrap
   draws of the selection scenes, so a gain smaller than the
   scene-to-scene noise keeps the simpler system; when none does, the
   system is today's, unchanged.

The result (:class:`Stage2Result`) holds the fitted stage-2 models and
everything the manifest records about the choice.
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass, field

import numba
import numpy as np

from evaluation import metrics
from models import smoothing as sm
from models import stage2 as S2
from models.estimator import MIN_LEAF_SHARE
from models.predict import Renderer, lattice_predict, make_lattice, scan_scene
from models.sampling import labels_at, scene_seed
from scenes import contract as C
from scenes.reader import load_scene, scene_key

from .cache import stable_hash
from .dask import DaskTrainingSet
from .executors import thread_map

log = logging.getLogger(__name__)

#: Groups of training scenes of the cross-fit.
FOLDS = 3
#: Share of the other groups' sampled pixels each cross-fit model trains on: the
#: refits cost (FOLDS - 1) x this share of the stage-1 fit, and a stage-1 model
#: of 16 scenes gains more from its scenes than from its pixels.
CROSS_FIT_SHARE = 0.5
#: Training scenes featurized for stage 2 at most (spread over the groups); bounds
#: the memory of their lattice outputs and the time of the selection.
MAX_SCENES = 32
#: Stage-2 training points drawn per scene at most (lattice points, uniformly).
POINTS_PER_SCENE = 15_000
#: Most stage-2 rounds; the cross-fit chooses how many are kept.
MAX_ROUNDS = 60
#: Paired bootstrap of the selection: draws, and the share of draws in which a
#: more complex system must beat the current choice.
BOOTSTRAP_DRAWS = 1000
BOOTSTRAP_LEVEL = 0.9
#: The candidate systems, simplest first.
SYSTEMS = S2.SYSTEMS
#: For cost benchmarks only (``benchmarks/bench_models.py --stage2``): keep this
#: many rounds for every chart and choose this system, whatever the cross-fit
#: and the selection say (None: they decide).
FORCE_ROUNDS = None
FORCE_SYSTEM = None
#: Selection scenes rendered at once at most (threads): each holds its stage-2 features
#: (about 150 MB for a real scene) while its outputs are made.
MAX_THREADS = 4
#: Stage-2 estimator settings that differ from the stage-1 ones: small trees
#: with large leaves, as a second stage learns from the few hundred polygons of
#: a few dozen scenes.
STAGE2_PARAMS = {"num_leaves": 15, "learning_rate": 0.1}


@dataclass
class Stage2Result:
    """What :func:`train_stage2` decided.

    Attributes
    ----------
    system : str
        One of :data:`SYSTEMS`.
    spec : dict
        The stage-2 feature spec.
    feature_names : list of str
    models : dict chart -> fitted stage-2 estimator
        Charts whose stage 2 keeps at least one round; a model folder keeps
        them only when the chosen system is a ``stage2`` one.
    rounds : dict chart -> int
        Rounds chosen by the cross-fit (0: stage 2 is stage 1 for that chart).
    settings : dict
        ``sic_mode``, ``water_rule``, ``water_threshold``, ``smoothing``,
        ``region_level`` (int or None) of the chosen system.
    systems : dict name -> settings
        The settings of every candidate system (the manifest keeps them, so
        that any can be predicted for comparison).
    record : dict
        The choice, for the manifest: scores of every system on the selection
        scenes, the bootstrap shares, what was chosen and why.
    timings : dict
    """

    system: str
    spec: dict
    feature_names: list
    models: dict = field(default_factory=dict)
    rounds: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    systems: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


# --- 1. cross-fitting stage 1 ---------------------------------------------------------
def assign_folds(keys, folds: int, seed: int) -> dict:
    """Scene key -> group, ``folds`` groups of nearly equal size, seeded (by key order)."""
    keys = sorted(keys)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 15]))
    order = rng.permutation(len(keys))
    return {keys[i]: int(r % folds) for r, i in enumerate(order)}


def _refit(est, n_rounds):
    """An unfitted copy of ``est`` that trains ``n_rounds`` rounds without early stopping."""
    params = {k: v for k, v in est.get_params().items()}
    params.update(n_estimators=max(1, int(n_rounds)), early_stopping_rounds=0)
    return type(est)(**params)


def _fit_rows(est, ts, chart, keep_scene, share, rng):
    labelled = ts.y[chart] != C.MASK_VALUE
    rows = np.flatnonzero(labelled & keep_scene[ts.scene])
    if share < 1 and rows.size > 1:
        rows = np.sort(rng.choice(rows, size=max(1, int(round(share * rows.size))), replace=False))
    # leaves as large a share of the rows as the model it copies had (not as many rows:
    # 20 000-row leaves on a third of the rows made the refits far coarser than stage 1)
    est.set_params(min_child_samples=max(20, int(round(
        est.min_child_samples * rows.size / max(1, int(labelled.sum()))))))
    if rows.size == 0:
        raise ValueError(f"a cross-fit group left no labelled {chart} pixels to train on; "
                         "train on more scenes")
    w = ts.weight[chart][rows].astype(np.float64)
    return est.fit(ts.X[rows], ts.y[chart][rows], sample_weight=w / w.mean(),
                   feature_names=ts.feature_names)


def cross_fit_stage1(ts, models: dict, fold_of: dict, folds: int, seed: int,
                     share: float = CROSS_FIT_SHARE) -> list:
    """Per group, the stage-1 ``models`` (model key -> fitted) refitted without its scenes.

    ``ts`` is the training sample (:class:`models.sampling.TrainingSet`, or a
    :class:`pipeline.dask.DaskTrainingSet`); each refit keeps the settings and
    the rounds of the model it copies and trains on ``share`` of the other
    groups' pixels (all of them on a Dask training set), drawn with ``seed``.
    """
    out = []
    for f in range(folds):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 16, f]))
        group = {}
        for key, est in models.items():
            chart = key.split("_")[0]
            fresh = _refit(est, est.best_iteration_)
            if isinstance(ts, DaskTrainingSet):
                keep = [i for i, k in enumerate(ts.scene_keys) if fold_of.get(k) != f]
                sub = DaskTrainingSet(ts.client, [ts.parts[i] for i in keep],
                                      [ts.scene_keys[i] for i in keep], ts.feature_names)
                fresh.set_params(min_child_samples=max(20, int(round(
                    fresh.min_child_samples * sub.n_rows(chart) / max(1, ts.n_rows(chart))))))
                group[key] = sub.fit(fresh, chart, None, f"{key} without group {f}")
            else:
                keep = np.array([fold_of.get(k) != f for k in ts.scene_keys], bool)
                group[key] = _fit_rows(fresh, ts, chart, keep, share, rng)
        out.append(group)
    return out


@dataclass(frozen=True)
class Models:
    """Stage-1 models (model key -> fitted) as one object: ``runner.share`` of a plain
    dict would scatter its values under the dict's keys on a Dask cluster, so the
    groups' models would overwrite each other there."""

    models: dict


@dataclass(frozen=True)
class GroupModels:
    """The cross-fit: each group's stage-1 :class:`Models` and each scene's group (scene key ->
    group), as one object sent once to every worker."""

    groups: tuple
    fold_of: dict


def _group_scene(path, config, stride, groups, spec, eval_grid, n_points, seed):
    """:func:`stage2_scene` of a training scene with the models of its cross-fit group."""
    models = groups.groups[groups.fold_of[scene_key(path)]]
    return stage2_scene(path, config, stride, models, spec, eval_grid, n_points, seed)


def models_hash(models: dict) -> str:
    """Identity of fitted boosters (for cache keys)."""
    return stable_hash({k: stable_hash(m.booster_.model_to_string(), 32)
                        for k, m in sorted(models.items())})


# --- 2. one scene ---------------------------------------------------------------------
def stage2_scene(path, config, stride, models, spec, eval_grid, n_points, seed):
    """Stage-1 outputs, regions and stage-2 training rows of one labelled scene.

    Runs in the scene runner. ``models`` are the stage-1 models to apply
    (:class:`Models`, or a dict model key -> fitted); ``eval_grid(shape) -> (rows, cols)`` gives the
    pixels the selection scores. Returns :func:`stage2_part` of the scene.
    """
    models = _with_threads(getattr(models, "models", models), numba.get_num_threads())
    ds = load_scene(path, check_values=False)  # checked when it was sampled or validated
    try:
        shape = tuple(int(n) for n in ds[C.SAR_VARS[0]].shape)
        lattice = make_lattice(shape, stride)
        out_rows, out_cols = eval_grid(shape)
        valid_out, valid_l, comp = scan_scene(ds, lattice, composite=True, out_rows=out_rows,
                                              out_cols=out_cols)
        lat = lattice_predict(ds, config, models, lattice, valid_l)
        ii, jj = np.nonzero(valid_l)
        cols = S2.input_columns(spec, _names(models))
        inputs = (S2.lattice_inputs(ds, config, lattice, valid_l, _names(models), cols)
                  if cols else None)
        y_l, y_out = labels_at(ds, lattice.rows[ii], lattice.cols[jj], out_rows, out_cols)
    finally:
        ds.close()
    scene = dict(key=scene_key(path), lattice=lattice, valid_l=valid_l, valid_out=valid_out,
                 out_rows=out_rows, out_cols=out_cols, comp=comp, y_l=y_l, y_out=y_out)
    return stage2_part(scene, lat, inputs, stride, spec, n_points, seed)


def stage2_part(scene, lat, inputs, stride, spec, n_points, seed):
    """Regions and stage-2 training rows of one scene whose stage-1 outputs are known.

    ``scene`` holds the scene's ``key``, ``lattice``, masks (``valid_l``,
    ``valid_out``), eval grid (``out_rows``, ``out_cols``), SAR composite
    ``comp`` and labels at its valid lattice points (``y_l``) and on the eval
    grid (``y_out``); ``lat`` are its stage-1 outputs on the lattice and
    ``inputs`` the stage-1 feature planes of the spec's ``input_stats`` (or
    None). Returns a dict with those (less ``y_l``), the region ``levels`` and
    up to ``n_points`` labelled lattice points with their stage-2 features
    (``F2``), labels (``y2``) and the labelled points each stands for (``w2``).
    """
    y_l = scene["y_l"]
    F2, levels = S2.stage2_features(lat, scene["valid_l"], scene["comp"], stride, spec,
                                    inputs=inputs)
    labelled = np.flatnonzero(np.any([y_l[c] != C.MASK_VALUE for c in C.LABEL_CHARTS], axis=0))
    rng = np.random.default_rng(scene_seed(seed, scene["key"]))
    take = labelled if labelled.size <= n_points else np.sort(
        rng.choice(labelled, size=n_points, replace=False))
    # each drawn point stands for this many labelled points of its chart
    w2 = {c: np.full(take.size, (y_l[c] != C.MASK_VALUE).sum()
                     / max(1, (y_l[c][take] != C.MASK_VALUE).sum()), np.float32)
          for c in C.LABEL_CHARTS}
    keep = ("key", "lattice", "valid_l", "valid_out", "out_rows", "out_cols", "comp", "y_out")
    return dict({k: scene[k] for k in keep}, lat=lat, levels=levels, inputs=inputs, F2=F2[take],
                y2={c: y_l[c][take] for c in C.LABEL_CHARTS}, w2=w2)


def _with_threads(models, n):
    """Shallow copies of ``models`` predicting on ``n`` threads (a worker's share; same results)."""
    out = {}
    for key, est in models.items():
        est = copy.copy(est)
        est.n_jobs = n
        out[key] = est
    return out


def _names(models):
    return list(next(iter(models.values())).feature_names_in_)


# --- 3. the stage-2 fit ---------------------------------------------------------------
def _rows(parts, chart):
    X = np.concatenate([p["F2"] for p in parts]) if parts else np.zeros((0, 0), np.float32)
    y = np.concatenate([p["y2"][chart] for p in parts]) if parts else np.zeros(0, np.uint8)
    w = np.concatenate([p["w2"][chart] for p in parts]) if parts else np.zeros(0, np.float32)
    m = y != C.MASK_VALUE
    return X[m], y[m], w[m].astype(np.float64)


def make_stage2(chart: str, params: dict, n_rounds: int):
    """The unfitted stage-2 estimator of ``chart`` (stage-1 ``params``, :data:`STAGE2_PARAMS`)."""
    p = {k: v for k, v in params.items() if k not in ("early_stopping_rounds", "min_rounds")}
    p.update(STAGE2_PARAMS, n_estimators=max(1, int(n_rounds)), early_stopping_rounds=0)
    if chart == "SIC":
        return S2.Stage2Regressor(C.N_CLASSES["SIC"], base_features=S2.base_features(chart), **p)
    return S2.Stage2Classifier(C.N_CLASSES[chart], base_features=S2.base_features(chart),
                               class_weight="inv_sqrt", eval_metric="multi_error", **p)


def fit_stage2(parts, fold_of, params, names, folds, min_leaf):
    """Stage-2 models, their cross-fitted rounds and out-of-group lattice outputs.

    For each chart and group, a model is fitted on the other groups' points
    with :data:`MAX_ROUNDS` rounds, recording its loss on the group's points
    after every round; the rounds kept minimise the pooled held-out loss
    (fewest on ties; 0 when no round helps). The final model is fitted on
    all points with that many rounds.

    Returns
    -------
    models : dict chart -> fitted estimator (charts with rounds > 0)
    rounds : dict chart -> int
    curves : dict chart -> list of float (the pooled held-out loss, round 0 first)
    group_models : list (per group) of dict chart -> estimator at the chosen rounds
    """
    models, rounds, curves = {}, {}, {}
    group_models = [dict() for _ in range(folds)]
    for chart in C.LABEL_CHARTS:
        total, weight = None, 0.0
        fitted = []
        for f in range(folds):
            inside = [p for p in parts if fold_of[p["key"]] == f]
            outside = [p for p in parts if fold_of[p["key"]] != f]
            X, y, w = _rows(outside, chart)
            Xv, yv, wv = _rows(inside, chart)
            if len(y) == 0 or len(yv) == 0:
                fitted.append(None)
                continue
            est = make_stage2(chart, {**params, "min_child_samples": max(20, int(min_leaf * len(y)))},
                              MAX_ROUNDS)
            est.fit(X, y, sample_weight=w / w.mean(), feature_names=names,
                    eval_set=[(Xv, yv, wv / wv.mean())])
            curve = np.asarray(est.curves_[0])
            total = curve * len(yv) if total is None else total + curve * len(yv)
            weight += len(yv)
            fitted.append(est)
        if total is None:  # no group had points on both sides
            rounds[chart], curves[chart] = 0, []
            continue
        total = total / weight
        best = int(np.argmin(total))  # argmin keeps the first (fewest rounds) of ties
        if FORCE_ROUNDS is not None:
            best = int(FORCE_ROUNDS)
        rounds[chart], curves[chart] = best, [round(float(v), 6) for v in total]
        for f, est in enumerate(fitted):
            if est is not None and best > 0:
                est.best_iteration_ = best
                group_models[f][chart] = est
        if best > 0:
            X, y, w = _rows(parts, chart)
            est = make_stage2(chart, {**params, "min_child_samples": max(20, int(min_leaf * len(y)))},
                              best)
            models[chart] = est.fit(X, y, sample_weight=w / w.mean(), feature_names=names)
    return models, rounds, curves, group_models


# --- 4. the choice --------------------------------------------------------------------
def _confusions(scenes, lats, settings, threads=1):
    """Per scene, per chart: the confusion matrix of the maps ``settings`` make of ``lats``."""
    def one(item):
        p, lat = item
        r = Renderer(lat, p["lattice"], p["valid_l"], p["valid_out"], p["out_rows"],
                     p["out_cols"], composite=p["comp"], shared=p["render"])
        maps = r.maps(settings["sic_mode"], settings["smoothing"], settings["water_rule"],
                      settings["water_threshold"])
        return {c: metrics.ChartAccumulator(c).add(p["y_out"][c], maps[c])
                for c in C.LABEL_CHARTS}

    return thread_map(one, zip(scenes, lats), threads)


def _pooled(conf, idx=None):
    idx = range(len(conf)) if idx is None else idx
    raw = {c: metrics.score_from_confusion(c, sum(conf[i][c] for i in idx))
           for c in C.LABEL_CHARTS}
    return metrics.combine(raw)


def bootstrap_share(conf_new, conf_old, seed: int, draws: int = BOOTSTRAP_DRAWS) -> dict:
    """How often ``new`` beats ``old`` on the combined score over resampled scenes.

    Scenes are drawn with replacement (the same draw for both: paired), the
    confusion matrices of the drawn scenes are pooled as the challenge pools
    pixels, and the combined scores compared.
    """
    n = len(conf_new)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 1515]))
    gains = np.empty(draws)
    for d in range(draws):
        idx = rng.integers(0, n, n)
        gains[d] = _pooled(conf_new, idx)["combined"] - _pooled(conf_old, idx)["combined"]
    return {"share_better": round(float((gains > 0).mean()), 4),
            "gain_mean": round(float(gains.mean()), 3),
            "gain_p10": round(float(np.quantile(gains, 0.1)), 3),
            "gain_p90": round(float(np.quantile(gains, 0.9)), 3)}


def _best_level(scenes, lats, levels, settings, n_levels, threads=1):
    """The merge level whose region vote scores best (combined) on the selection scenes."""
    best = None
    for lv in range(n_levels):
        voted = thread_map(lambda item: S2.region_vote(item[0], item[1][lv]), zip(lats, levels),
                           threads)
        conf = _confusions(scenes, voted, settings, threads)
        score = _pooled(conf)["combined"]
        if best is None or score > best[0]:
            best = (score, lv, conf)
    return best[1], best[2]


def _tuned(scenes, lats, mode, select, grid, fallbacks, threads=1):
    """Settings ``select`` chooses for ``lats`` on the selection scenes, and their confusions."""
    renderers = [(Renderer(lat, p["lattice"], p["valid_l"], p["valid_out"], p["out_rows"],
                           p["out_cols"], composite=p["comp"], shared=p["render"]), p)
                 for p, lat in zip(scenes, lats)]
    sic_mode, rule, t, chosen, conf = select(renderers, grid, (mode,), fallbacks, per_scene=True,
                                             threads=threads)
    return dict(sic_mode=sic_mode, water_rule=rule, water_threshold=float(t), smoothing=chosen,
                region_level=None), conf


def choose_system(scenes, lat1, lat2, stage1_settings, select, grid, fallbacks, seed,
                  use_stage2: bool, threads: int = 1):
    """Score the candidate systems on the selection scenes and choose (see module docstring).

    Each candidate is compared with the simpler one under the same tuning:
    stage 1 and stage 2 each get the SIC mode, water rule and smoothing that
    ``select(renderers, grid, sic_modes, fallbacks, per_scene=True, threads=threads)``
    (``pipeline.train._select``) chooses on the selection scenes, and a region vote replaces the
    smoothing of the system it is added to, at the merge level that scores
    best there. (Settings tuned on the very scenes a system is scored on
    flatter it: comparing a tuned stage 2 with today's stage 1, tuned on the
    validation scenes only, chose stage 2 on a development dataset where it
    lost 1.4 points on the test scenes.) When no candidate wins, the system
    is today's (``stage1``, its settings untouched).

    Scenes are rendered on up to ``threads`` threads (the same choice).

    Returns ``(system, systems, record)``: the chosen name, every candidate's
    settings and the record of the choice.
    """
    none = {c: {"method": "none"} for c in C.LABEL_CHARTS}
    for p in scenes:  # superpixels and nearest points, shared by each scene's Renderers
        p.setdefault("render", {})
    n_levels = scenes[0]["levels"].shape[0]
    levels = [p["levels"] for p in scenes]
    cands = {}
    base = dict(stage1_settings, region_level=None)
    cands["stage1"] = (base, _confusions(scenes, lat1, base, threads))
    # stage 1 tuned on the selection scenes: the reference the others must beat
    ref1 = _tuned(scenes, lat1, stage1_settings["sic_mode"], select, grid, fallbacks, threads)
    s1r = dict(ref1[0], smoothing=none)
    lv, conf = _best_level(scenes, lat1, levels, s1r, n_levels, threads)
    cands["stage1+regions"] = (dict(s1r, region_level=lv), conf)
    if use_stage2:
        mode = "regression" if "SIC_value" in lat2[0] else stage1_settings["sic_mode"]
        cands["stage2"] = _tuned(scenes, lat2, mode, select, grid, fallbacks, threads)
        s2r = dict(cands["stage2"][0], smoothing=none)
        lv, conf = _best_level(scenes, lat2, levels, s2r, n_levels, threads)
        cands["stage2+regions"] = (dict(s2r, region_level=lv), conf)
    # each step: the candidate against the current choice, or against tuned stage 1
    current, against = "stage1", ("stage1 tuned", ref1[1])
    steps = {}
    for name in SYSTEMS[1:]:
        if name not in cands or FORCE_SYSTEM is not None:
            continue
        b = bootstrap_share(cands[name][1], against[1], seed)
        b["against"] = against[0]
        b["chosen"] = b["share_better"] >= BOOTSTRAP_LEVEL
        steps[name] = b
        if b["chosen"]:
            current, against = name, (name, cands[name][1])
    if FORCE_SYSTEM is not None:
        current = FORCE_SYSTEM
    scores = {name: _pooled(conf) for name, (_, conf) in cands.items()}
    scores["stage1 tuned"] = _pooled(ref1[1])
    why = (f"{current}: forced (pipeline.stage2.FORCE_SYSTEM)" if FORCE_SYSTEM is not None else
           f"{current}: " + ("no candidate beat stage 1 (tuned alike) in "
                             f"{BOOTSTRAP_LEVEL:.0%} of {BOOTSTRAP_DRAWS} paired bootstrap draws "
                             f"of the {len(scenes)} selection scenes" if current == "stage1" else
                             f"beat {steps[current]['against']} in "
                             f"{steps[current]['share_better']:.1%} of {BOOTSTRAP_DRAWS} paired "
                             f"bootstrap draws of the {len(scenes)} selection scenes (needs "
                             f"{BOOTSTRAP_LEVEL:.0%}), mean gain {steps[current]['gain_mean']:+.2f}"))
    systems = {}
    for name, (st, _) in cands.items():
        systems[name] = {"sic_mode": st["sic_mode"], "water_rule": st["water_rule"],
                         "water_threshold": float(st["water_threshold"]),
                         "smoothing": {c: sm.check_spec(st["smoothing"][c]) for c in C.LABEL_CHARTS},
                         "region_level": st["region_level"]}
    record = {"chosen": current, "why": why, "scores": scores, "steps": steps,
              "n_selection_scenes": len(scenes)}
    return current, systems, record


# --- all together ---------------------------------------------------------------------
def train_stage2(runner, ts, stage1_models: dict, *, train_paths, val_paths, config, stride,
                 params, seed, stage1_settings, select, grid, fallbacks, eval_grid,
                 spec=None, folds: int = FOLDS, max_scenes: int = MAX_SCENES,
                 points_per_scene: int = POINTS_PER_SCENE,
                 val_outputs=None) -> Stage2Result | None:
    """Cross-fit, fit and choose stage 2 (see the module docstring).

    Parameters
    ----------
    runner : pipeline.runner.SceneRunner
    ts : TrainingSet or DaskTrainingSet
        The stage-1 training sample.
    stage1_models : dict model key -> fitted
        The stage-1 models the model folder keeps (chosen SIC model, SOD, FLOE).
    train_paths, val_paths : list of Path
    config : featurize.FeatureConfig
    stride : int
        The model's lattice step.
    params : dict
        Stage-1 estimator settings (threads, seed, device).
    seed : int
    stage1_settings : dict
        Today's choices: ``sic_mode``, ``water_rule``, ``water_threshold``, ``smoothing``.
    select : callable
        ``pipeline.train._select``.
    grid : list of smoothing specs
    fallbacks : dict
        Charts whose validation labels cannot rank models (stage 2 is not tried then).
    eval_grid : callable
        ``shape -> (rows, cols)`` of the scored pixels.
    spec : dict, optional
        Stage-2 feature spec (default :data:`models.stage2.DEFAULT_SPEC`).
    val_outputs : dict, optional
        Scene key -> ``(scene, lat)``: validation scenes whose outputs of
        ``stage1_models`` on the lattice of ``stride`` are already known
        (``scene`` as :func:`stage2_part` takes it). They are not read and
        featurized again; used only when the spec needs no stage-1 inputs.

    Returns
    -------
    Stage2Result, or None when stage 2 cannot be trained or chosen (too few
    scenes, no validation scenes, charts that cannot rank models); the reason
    is logged.
    """
    spec = S2.check_spec(dict(S2.DEFAULT_SPEC) if spec is None else spec)
    keys = [scene_key(p) for p in train_paths]
    if fallbacks or not val_paths or len(keys) < folds:
        why = ("the validation scenes could not choose among systems (the fallback above)"
               if fallbacks else
               "there are no validation scenes" if not val_paths else
               f"fewer than {folds} training scenes")
        log.warning("stage 2 not trained: %s", why)
        return None
    t0 = time.perf_counter()
    timings = {}
    fold_of = assign_folds(keys, folds, seed)
    group_models = cross_fit_stage1(ts, stage1_models, fold_of, folds, seed)
    timings["stage2_cross_fit_s"] = time.perf_counter() - t0
    # the training scenes of stage 2: at most max_scenes, spread over the groups
    order = sorted(keys, key=lambda k: (fold_of[k], k))
    step = max(1, -(-len(order) // max_scenes))
    used = set(order[::step][:max_scenes])
    t0 = time.perf_counter()
    cache = lambda models: {"feature_config": config.to_dict(), "stride": int(stride),  # noqa: E731
                            "spec": spec, "models": models, "seed": int(seed),
                            "points": int(points_per_scene)}
    # one map over every group's scenes (group by group, as the stage-2 fit reads them), so
    # no worker waits at the end of each group
    paths = sorted((p for p in train_paths if scene_key(p) in used),
                   key=lambda p: fold_of[scene_key(p)])
    groups = GroupModels(tuple(Models(m) for m in group_models),
                         {scene_key(p): fold_of[scene_key(p)] for p in paths})
    parts = [r for _, r in runner.map(
        _group_scene, paths, task="stage2", desc="stage 2, training scenes (cross-fitted)",
        cache_config=cache({"groups": [models_hash(m) for m in group_models],
                            "fold_of": groups.fold_of}),
        compress=True, args=(config, stride, runner.share(groups), spec, eval_grid,
                             points_per_scene, seed))]
    # validation scenes already predicted by the same models on the same lattice (the
    # choice of today's settings) give the same parts without being featurized again
    known = {} if S2.input_columns(spec, _names(stage1_models)) else dict(val_outputs or {})
    todo = [p for p in val_paths if scene_key(p) not in known]
    done = {}
    if todo:
        shared = runner.share(Models(stage1_models))
        done = {scene_key(p): r for p, r in runner.map(
            stage2_scene, todo, task="stage2", desc="stage 2, validation scenes",
            cache_config=cache(models_hash(stage1_models)), compress=True,
            args=(config, stride, shared, spec, eval_grid, points_per_scene, seed))}
    val_parts = []
    for p in val_paths:
        k = scene_key(p)
        if k in done:
            val_parts.append(done[k])
        elif k in known:
            val_parts.append(stage2_part(*known[k], None, stride, spec, points_per_scene, seed))
    timings["stage2_features_s"] = time.perf_counter() - t0
    if not parts or not val_parts:
        log.warning("stage 2 not trained: no training or validation scenes left")
        return None
    names = S2.feature_names(spec, _names(stage1_models))
    t0 = time.perf_counter()
    models, rounds, curves, fold_models = fit_stage2(parts, fold_of, params, names, folds,
                                                     MIN_LEAF_SHARE)
    timings["stage2_fit_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scenes = parts + val_parts
    lat1 = [p["lat"] for p in scenes]
    threads = min(int(params.get("n_jobs") or 1), MAX_THREADS)
    lat2 = selection_outputs(scenes, [fold_models[fold_of[p["key"]]] for p in parts]
                             + [models] * len(val_parts), stride, spec, threads)
    system, systems, record = choose_system(scenes, lat1, lat2, stage1_settings, select, grid,
                                             fallbacks, seed, use_stage2=bool(models),
                                             threads=threads)
    timings["stage2_selection_s"] = time.perf_counter() - t0
    record.update(rounds=rounds, cv_loss={c: v[:1] + v[1:][:MAX_ROUNDS] for c, v in curves.items()},
                  folds=int(folds), train_scenes=len(parts), val_scenes=len(val_parts))
    log.info("stage 2: rounds %s; chosen %s", rounds, record["why"])
    return Stage2Result(system=system, spec=spec, feature_names=names, models=models,
                        rounds=rounds, settings=systems[system], systems=systems, record=record,
                        timings=timings)


def selection_outputs(scenes, scene_models, stride, spec, threads=1) -> list:
    """Each selection scene's lattice outputs with its stage-2 models (chart -> fitted).

    The stage-2 features are made again (keeping those of every lattice point of
    every scene would take GBs); on up to ``threads`` threads, while LightGBM's
    predictions, on every core already, run one at a time: concurrent ones on
    one booster race in LightGBM (its issue 6142).
    """
    lock = threading.Lock()

    def outputs(item):
        p, chart_models = item
        F2 = _features(p, stride, spec)
        with lock:
            return S2.stage2_outputs(p["lat"], F2, p["valid_l"], chart_models)

    return thread_map(outputs, zip(scenes, scene_models), threads)


def _features(p, stride, spec):
    F2, _ = S2.stage2_features(p["lat"], p["valid_l"], p["comp"], stride, spec,
                               levels=p["levels"], inputs=p["inputs"])
    return F2
