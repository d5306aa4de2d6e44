"""The train job: train the SIC, SOD and FLOE models on a folder of scenes and choose how to use them.

:func:`train_models` splits the scenes (never pixels: neighbouring pixels
of one chart polygon are near copies) into training and validation scenes
with alike labels (:mod:`models.split`), samples training pixels
(:mod:`models.sampling`), and featurizes each validation scene on the
prediction lattice, every scene through the scene runner
(:mod:`pipeline.runner`: local, joblib or Dask, cached, bad scenes skipped).
The labelled lattice points of the validation scenes are a uniform sample of
their pixels, so they serve both as the early-stopping set and, predicted, as
the cheap validation maps on which the SIC mode (regression, classifier
argmax, classifier expected value), the open-water rule shared by the three
maps and the smoothing of each chart are chosen by the challenge metric
(:mod:`evaluation.metrics`). The chosen models are saved with
:func:`models.persistence.save_model`; the manifest keeps the validation
scores of every alternative, with and without smoothing.

Then the second stage (:mod:`pipeline.stage2`): stage 1 is cross-fitted
over groups of training scenes, a stage-2 model per chart learns from the
honest stage-1 outputs aggregated over a region hierarchy and boxes, and
today's system, a last region vote, stage 2 and stage 2 with a vote are
compared on the cross-fitted training scenes and the validation scenes; a
more complex system is chosen only if it wins in most paired bootstrap draws
of those scenes. The manifest's ``stage2`` entry records it all; without
it (``stage2=False``, or too few scenes) the folder is today's.

A chart whose validation labels are empty or of one class cannot rank
models (:func:`models.split.validation_problem`): its models are fitted
without early stopping and its choices are the defaults (SIC mode
regression, water rule ``sic`` at 0.5, :data:`FALLBACK_SMOOTHING`), which
one warning line says and ``training.validation_fallbacks`` records.

The sample size follows the data unless given: ``n_pixels="auto"`` draws
:data:`AUTO_PIXEL_SHARE` of the training scenes' labelled pixels, at most
:data:`MAX_AUTO_PIXELS` (:func:`auto_pixels`).
"""
from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from evaluation import metrics
from featurize import FeatureConfig, featurize_at, feature_names
from models import smoothing as sm
from models.estimator import check_device, estimator_settings, make_estimators, resolve_n_jobs
from models.manifest import Manifest, SkippedScene, Stage2Record, TrainingRecord
from models.persistence import save_model
from models.predict import (DEFAULT_STRIDE, SIC_MODES, WATER_THRESHOLDS, Renderer, empty_outputs,
                            make_lattice, predict_points, scan_scene, sic_model_key)
from models.sampling import (concat_samples, labels_at, pixels_per_scene, sample_scene,
                             sampling_cache_config)
from models.split import (LABEL_STEP, check_val_fraction, scene_label_counts, split_scenes,
                          validation_problem)
from scenes import contract as C
from scenes.outputs import Input, Output, check_outputs
from scenes.reader import list_scenes, load_scene, open_scene, scene_key

from .dask import DaskTrainingSet
from .executors import thread_map
from .stage2 import train_stage2
from .runner import SceneRunner, ensure_writable

log = logging.getLogger(__name__)

#: Smoothing used when there are no validation scenes to choose one: 2 km,
#: the AMSR2 grid, well below the size of a chart polygon.
FALLBACK_SMOOTHING = {"method": "gaussian", "sigma_px": 25.0}
#: ``n_pixels="auto"`` draws this share of the training scenes' labelled pixels:
#: neighbouring pixels of a chart polygon are near copies, so a tenth of them
#: carries most of what there is to learn (the demo draws 300 k of about 3 M),
#: where a fixed 2 M drew every labelled pixel of six 600 x 600 scenes (18 minutes).
AUTO_PIXEL_SHARE = 0.1
#: ... and at most this many (the sample of the benchmarks; real datasets reach it).
MAX_AUTO_PIXELS = 2_000_000
#: Validation lattice points kept in memory at most (features of all of them).
MAX_VAL_POINTS = 2_000_000
#: Validation maps are scored on a sub-grid of about this many pixels per scene.
EVAL_PIXELS_PER_SCENE = 2_000_000
CONSISTENCY_RULE = ("one open-water decision for all maps (water_rule 'sic': the SIC value is "
                    "below water_threshold, SIC 0 there and >= 1 elsewhere; "
                    "'classifiers': mean SOD/FLOE open-water probability >= 1/2, SIC then 0 "
                    "there and >= 1 elsewhere); on water all three are 0, elsewhere SOD and "
                    "FLOE take their most probable ice class; no-data pixels are 0")


def resolve_scenes(train_dir_or_paths) -> list[Path]:
    """Training scene paths from a folder or a list of files (sorted, checked)."""
    if isinstance(train_dir_or_paths, (str, Path)):
        p = Path(train_dir_or_paths)
        if p.is_dir():
            return list_scenes(p, kind="train")
        paths = [p]
    else:
        paths = [Path(q) for q in train_dir_or_paths]
    missing = [str(q) for q in paths if not q.is_file()]
    if missing:
        raise ValueError(f"training scenes not found: {missing[:3]}; pass a folder of "
                         "*_prep.nc files or existing file paths")
    if not paths:
        raise ValueError("no training scenes given; pass a folder or list of *_prep.nc files")
    return sorted(paths, key=lambda q: q.name)


def check_pixels(n_pixels):
    """``n_pixels`` as an int >= 1, or None for ``"auto"`` (and None); else one-line ValueError."""
    if n_pixels is None or (isinstance(n_pixels, str) and n_pixels.strip().lower() == "auto"):
        return None
    try:
        n = int(n_pixels)
    except (TypeError, ValueError):
        n = 0
    if isinstance(n_pixels, bool) or n < 1 or (not isinstance(n_pixels, str) and n != n_pixels):
        raise ValueError(f"n_pixels (--pixels) must be a whole number >= 1 or 'auto', "
                         f"got {n_pixels!r}")
    return n


def auto_pixels(counts, step: int = LABEL_STEP) -> int:
    """Training pixels of ``n_pixels="auto"``: ``AUTO_PIXEL_SHARE`` of the labelled pixels.

    ``counts`` are :func:`models.split.scene_label_counts` of the training
    scenes, taken on every ``step``-th row and column (a count stands for
    ``step ** 2`` pixels); a scene's labelled pixels are those of its chart
    with the most. At least 1, at most :data:`MAX_AUTO_PIXELS`.
    """
    labelled = step * step * sum(max(int(c[chart].sum()) for chart in C.LABEL_CHARTS)
                                 for c in counts)
    return int(max(1, min(MAX_AUTO_PIXELS, round(AUTO_PIXEL_SHARE * labelled))))


def sample_scenes(runner, scenes, *, config, n_pixels: int, seed: int):
    """The training set of ``scenes`` (as :func:`models.sampling.build_training_set`), through ``runner``."""
    n_max = pixels_per_scene(n_pixels, len(scenes))
    parts = (part for _, part in runner.map(
        sample_scene, scenes, task="sample", desc="sampling scenes",
        cache_config=sampling_cache_config(config, seed, n_max),
        kwargs=dict(n_max=n_max, seed=seed, config=config)))
    return concat_samples(parts, feature_names(config), n_max_rows=n_max * len(scenes))


def _eval_grid(shape):
    """Output rows/cols where validation maps are scored (a regular sub-grid)."""
    H, W = shape
    q = max(1, math.ceil(math.sqrt(H * W / EVAL_PIXELS_PER_SCENE)))
    return np.arange(q // 2, H, q), np.arange(q // 2, W, q)


def _val_scene(path, config, stride):
    """Featurize one validation scene on the lattice; keep labels there and on the eval grid."""
    # read once; its values are checked on the arrays the features use
    ds = load_scene(path)
    try:
        shape = tuple(int(n) for n in ds[C.SAR_VARS[0]].shape)
        lattice = make_lattice(shape, stride)
        out_rows, out_cols = _eval_grid(shape)
        valid_out, valid_l, comp = scan_scene(ds, lattice, composite=True, out_rows=out_rows,
                                              out_cols=out_cols)
        ii, jj = np.nonzero(valid_l)
        X = featurize_at(ds, config, lattice.rows[ii], lattice.cols[jj])
        y_l, y_out = labels_at(ds, lattice.rows[ii], lattice.cols[jj], out_rows, out_cols)
    finally:
        ds.close()
    return dict(key=scene_key(path), lattice=lattice, valid_l=valid_l, comp=comp, ii=ii, jj=jj,
                X=X, y_l=y_l, out_rows=out_rows, out_cols=out_cols, valid_out=valid_out,
                y_out=y_out)


def _val_stride(paths, stride):
    """Lattice stride for validation: ``stride``, coarser if the points would not fit."""
    total = 0
    for p in paths:
        ds = open_scene(p, validate=False)
        try:
            H, W = ds[C.SAR_VARS[0]].shape
        finally:
            ds.close()
        total += -(-H // stride) * -(-W // stride)
    factor = max(1, math.ceil(math.sqrt(total / MAX_VAL_POINTS)))
    return stride * factor


def _eval_set(val, chart, n_max, rng):
    """Labelled validation lattice points of ``chart`` (at most ``n_max``)."""
    X = [v["X"][v["y_l"][chart] != C.MASK_VALUE] for v in val]
    y = [v["y_l"][chart][v["y_l"][chart] != C.MASK_VALUE] for v in val]
    X = np.concatenate(X) if X else np.zeros((0, 0), np.float32)
    y = np.concatenate(y) if y else np.zeros(0, np.uint8)
    if len(y) > n_max:
        keep = np.sort(rng.choice(len(y), size=n_max, replace=False))
        X, y = X[keep], y[keep]
    return X, y


def _fit(est, ts, chart, eval_set, label, progress=False):
    rows = ts.chart_rows(chart)
    if rows.size == 0:
        raise ValueError(f"no labelled {chart} pixels among the training samples; "
                         f"train on scenes whose {chart} chart is not all masked (255)")
    w = ts.weight[chart][rows].astype(np.float64)
    w /= w.mean()
    y = ts.y[chart][rows]
    ev = None
    if eval_set is not None and len(eval_set[1]):
        ev = eval_set
    t0 = time.perf_counter()
    X = ts.X if rows.size == len(ts) else ts.X[rows]  # no copy when every row is labelled
    est.fit(X, y, sample_weight=w, eval_set=ev, feature_names=ts.feature_names,
            progress=progress and f"fitting {label}")
    del X
    log.info("%s: %d rows, %d rounds, %.1f s", label, rows.size, est.best_iteration_,
             time.perf_counter() - t0)
    return est


def _score(chart, renderers, make):
    """Pooled challenge metric (unscaled) of ``make(i, renderer) -> map`` over the scenes."""
    acc = metrics.ChartAccumulator(chart)
    for i, (r, v) in enumerate(renderers):
        acc.add(v["y_out"][chart], make(i, r))
    return acc.score()


def _sum(matrices, chart="SIC"):
    """The sum of one option's per-scene confusion matrices (an empty one for no scene)."""
    return sum(matrices, metrics.ChartAccumulator(chart).counts)


def _select(renderers, grid, sic_modes, fallback=(), *, per_scene: bool = False,
            threads: int = 1):
    """Choose the SIC mode, the water rule and each chart's smoothing on validation maps.

    SIC mode and smoothing first (jointly, by R2); then for each water rule
    (``"sic"`` with each of ``WATER_THRESHOLDS``, ``"classifiers"``) the SOD
    and FLOE smoothing (by weighted F1, gated by that rule's water); the
    rule with the best combined score wins. Ties keep the earlier mode /
    rule and the earlier (milder) grid entry. A chart in ``fallback``
    (validation labels that cannot rank models) takes the defaults instead
    and has no say in the water rule: SIC mode regression and water rule
    ``sic`` at 0.5 for SIC, :data:`FALLBACK_SMOOTHING` for each.

    Returns ``(sic_mode, water_rule, water_threshold, smoothing, scores)``;
    with ``per_scene``, ``scores`` is instead each scene's confusion matrices
    (dict chart -> matrix) of the chosen maps, as ``maps`` would make them
    (the scores of the unchosen options are then not computed). Scenes are
    rendered on up to ``threads`` threads (same scores: the matrices are
    integer counts).
    """
    grids = {c: [dict(FALLBACK_SMOOTHING)] if c in fallback else grid for c in C.LABEL_CHARTS}
    if "SIC" in fallback:
        sic_modes = ("regression",)
    none = {"method": "none"}

    def sic_counts(rv):  # one scene's SIC matrix of every mode and smoothing
        r, v = rv
        return {(m, sm.spec_label(spec)): metrics.ChartAccumulator("SIC").add(
            v["y_out"]["SIC"], r.sic(m, spec)) for m in sic_modes for spec in grids["SIC"]}

    counted = thread_map(sic_counts, renderers, threads)
    sic_grid = {m: {sm.spec_label(spec): metrics.score_from_confusion(
        "SIC", _sum([cm[(m, sm.spec_label(spec))] for cm in counted])) for spec in grids["SIC"]}
        for m in sic_modes}
    order = [(m, i) for m in sic_modes for i in range(len(grids["SIC"]))]
    mode, i_best = max(order, key=lambda mi: (
        sic_grid[mi[0]][sm.spec_label(grids["SIC"][mi[1]])], -order.index(mi)))
    sic_spec = grids["SIC"][i_best]
    thresholds = WATER_THRESHOLDS if mode != "argmax" else (0.5,)
    candidates = [("sic", t) for t in thresholds] + [("classifiers", 0.5)]
    if "SIC" in fallback:
        candidates = [("sic", 0.5)]

    def sic_map_of(r, rule, t, spec, m):
        sic = r.sic(m, spec, t)
        return r.water_sic(sic, spec) if rule == "classifiers" else sic

    def sic_maps_of(rule, t, spec, m):
        return [sic_map_of(r, rule, t, spec, m) for r, _ in renderers]

    def ranked(raw):  # charts that cannot rank models have no say
        return metrics.combine({c: v for c, v in raw.items() if c not in fallback})["combined"]

    def option_counts(rv):
        # one scene: each SOD / FLOE smoothing and map once for all water rules (they differ
        # only in the water gate after it: Renderer.gate); its matrix of every option
        r, v = rv
        sic_maps = {c: sic_map_of(r, *c, sic_spec, mode) for c in candidates}
        out = {c: metrics.ChartAccumulator("SIC").add(v["y_out"]["SIC"], sic_maps[c])
               for c in candidates}
        for chart in ("SOD", "FLOE"):
            for j, spec in enumerate(grids[chart]):
                ungated = r.ice(chart, spec, None)
                for c in candidates:  # as r.gate(ungated, sic_maps[c]), without the map
                    out[(c, chart, j)] = metrics.ChartAccumulator(chart).add(
                        v["y_out"][chart], ungated, gate=sic_maps[c])
        return out

    counted = thread_map(option_counts, renderers, threads)
    cms = {key: [cm[key] for cm in counted] for key in counted[0]} if counted else {}
    per_rule = {}
    for c in candidates:
        raw = {"SIC": metrics.score_from_confusion("SIC", _sum(cms.get(c, [])))}
        chosen, ice_grid, picked = {"SIC": sic_spec}, {}, {"SIC": c}
        for chart in ("SOD", "FLOE"):
            g = grids[chart]
            names = [sm.spec_label(spec) for spec in g]
            ice_grid[chart] = {name: metrics.score_from_confusion(
                chart, _sum(cms.get((c, chart, j), []), chart)) for j, name in enumerate(names)}
            k = max(range(len(g)), key=lambda j: (ice_grid[chart][names[j]], -j))
            chosen[chart] = g[k]
            raw[chart] = ice_grid[chart][names[k]]
            picked[chart] = (c, chart, k)
        per_rule[c] = (chosen, raw, ice_grid, picked)
    rule, threshold = max(candidates, key=lambda c: (ranked(per_rule[c][1]),
                                                     -candidates.index(c)))
    chosen, smoothed, ice_grid, picked = per_rule[(rule, threshold)]
    if per_scene:
        return mode, rule, threshold, chosen, [
            {chart: cms[picked[chart]][i] for chart in C.LABEL_CHARTS}
            for i in range(len(renderers))]
    # The same system without smoothing: SIC mode chosen among unsmoothed maps.
    if "SIC" in fallback:
        raw_mode = "regression"
    else:
        raw_mode = max(sic_modes, key=lambda m: (sic_grid[m][sm.spec_label(none)],
                                                 -sic_modes.index(m)))
    raw_t = threshold if raw_mode != "argmax" else 0.5
    raw_maps = sic_maps_of(rule, raw_t, none, raw_mode)
    unsmoothed = {"SIC": _score("SIC", renderers, lambda i, r: raw_maps[i])}
    for chart in ("SOD", "FLOE"):
        unsmoothed[chart] = _score(chart, renderers,
                                   lambda i, r: r.ice(chart, none, raw_maps[i]))
    pct = lambda d: {k: round(100 * v, 3) for k, v in d.items()}  # noqa: E731
    scores = {
        "sic_modes": {m: {"unsmoothed": round(100 * sic_grid[m][sm.spec_label(none)], 3)
                          if sm.spec_label(none) in sic_grid[m] else
                          round(100 * unsmoothed["SIC"], 3),
                          "best_smoothed": round(100 * max(sic_grid[m].values()), 3)}
                      for m in sic_modes},
        "water_rules": {f"{w}(threshold={t:g})" if w == "sic" else w:
                        metrics.combine(per_rule[(w, t)][1]) for w, t in candidates},
        "unsmoothed": {**metrics.combine(unsmoothed), "sic_mode": raw_mode, "water_rule": rule,
                       "water_threshold": raw_t},
        "smoothed": {**metrics.combine(smoothed), "sic_mode": mode, "water_rule": rule,
                     "water_threshold": threshold},
        "grid": {"SIC (water rule sic)": {m: pct(d) for m, d in sic_grid.items()},
                 "SOD": pct(ice_grid["SOD"]), "FLOE": pct(ice_grid["FLOE"])},
    }
    return mode, rule, threshold, chosen, scores


def train_models(train_dir_or_paths, out_dir, *, config=None, device: str = "cpu", seed: int = 0,
                 n_pixels="auto", val_fraction: float = 0.2, n_jobs: int = -1,
                 progress: bool = True, stride: int = DEFAULT_STRIDE, estimator_params=None,
                 n_val_pixels=None, smoothing_grid=None, sic_modes=SIC_MODES,
                 overwrite: bool = False, runner=None, distributed: bool = False,
                 stage2: bool = True, stage2_spec=None) -> Manifest:
    """Train, validate, choose and save a model folder.

    Parameters
    ----------
    train_dir_or_paths : path or list of paths
        Folder of training scenes (``*_prep.nc``) or the files themselves.
    out_dir : path
        Model folder to write (atomically).
    config : featurize.FeatureConfig, optional
    device : {"cpu", "gpu"}
    seed : int
        Seeds the scene split, the pixel draw and LightGBM.
    n_pixels : int or "auto"
        Training pixels drawn in total over the training scenes; ``"auto"``
        (or None): :data:`AUTO_PIXEL_SHARE` of their labelled pixels, at most
        :data:`MAX_AUTO_PIXELS` (:func:`auto_pixels`).
    val_fraction : float
        Share of scenes held out (0: none; then no early stopping, SIC as
        regression and the fallback smoothing), at most
        :data:`models.split.MAX_VAL_SCENES` scenes.
    n_jobs : int
        Parallel scenes and LightGBM threads (-1: all cores).
    progress : bool
        Show progress bars.
    stride : int
        Prediction lattice step (SAR pixels) stored as the model's default.
    estimator_params : dict, optional
        Overrides of :data:`models.estimator.DEFAULT_PARAMS` for all models (see
        :func:`models.estimator.estimator_settings` for the leaf size of small samples).
    n_val_pixels : int, optional
        Most validation points per chart for early stopping (default n_pixels // 4).
    smoothing_grid : list of specs, optional
        Smoothing candidates (default :data:`models.smoothing.DEFAULT_GRID`).
    sic_modes : tuple of str
        SIC modes to compare.
    overwrite : bool
        Replace an existing model folder.
    runner : pipeline.runner.SceneRunner, optional
        Runs the per-scene work (sampling, validation features): joblib over
        ``n_jobs`` by default, or a Dask cluster, a cache that makes a killed
        run resumable, and skipping of bad scenes (listed in the manifest).
    distributed : bool
        Keep the samples on the runner's Dask cluster and train there with
        :mod:`lightgbm.dask` (see :class:`pipeline.dask.DaskTrainingSet`).
    stage2 : bool
        Train the second stage and choose the system (:mod:`pipeline.stage2`);
        it needs validation scenes and at least ``pipeline.stage2.FOLDS``
        training scenes, and is left out (with a warning) otherwise.
    stage2_spec : dict, optional
        Stage-2 feature spec (default :data:`models.stage2.DEFAULT_SPEC`).

    Returns
    -------
    models.manifest.Manifest
        The manifest as written to ``out_dir/manifest.json``.
    """
    t_start = time.perf_counter()
    config = FeatureConfig() if config is None else config
    sic_modes = tuple(sic_modes)
    bad = [m for m in sic_modes if m not in SIC_MODES]
    if not sic_modes or bad:
        raise ValueError(f"sic_modes must be a non-empty subset of {SIC_MODES}, got {sic_modes}")
    grid = [sm.check_spec(s) for s in (smoothing_grid or sm.DEFAULT_GRID)]
    check_device(device)
    check_val_fraction(val_fraction)
    n_pixels = check_pixels(n_pixels)
    out_dir = Path(out_dir)
    runner = SceneRunner(n_jobs=n_jobs, progress=progress) if runner is None else runner
    given = ([train_dir_or_paths] if isinstance(train_dir_or_paths, (str, Path))
             else list(train_dir_or_paths))
    check_outputs([Output(out_dir, "--out", folder=True),
                   Output(runner.cache_dir, "--cache", folder=True)],
                  [Input(Path(p), "--data") for p in given])
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(f"{out_dir} already exists and is not empty; choose a new folder, "
                         "or replace it (--overwrite)")
    ensure_writable(out_dir, "output folder")
    if distributed and runner.client is None:
        raise ValueError("distributed training runs on a Dask cluster; pass a runner with a "
                         "client (--scheduler ADDRESS or --scheduler local:N)")
    timings = {}
    t0 = time.perf_counter()
    paths = runner.preflight(resolve_scenes(train_dir_or_paths), kind="train", config=config)
    timings["checks_s"] = time.perf_counter() - t0
    counts = None
    # which scenes to hold out depends on their labels, and so does the "auto" sample size
    if (val_fraction and len(paths) > 1) or n_pixels is None:
        labelled = list(runner.map(scene_label_counts, paths, task="labels", desc="label counts",
                                   cache_config={"step": LABEL_STEP}))
        paths, counts = [p for p, _ in labelled], [c for _, c in labelled]
    timings["label_counts_s"] = time.perf_counter() - t0 - timings["checks_s"]
    train_paths, val_paths = split_scenes(paths, val_fraction, seed, counts)
    if n_pixels is None:
        by_path = dict(zip(paths, counts))
        n_pixels = auto_pixels([by_path[p] for p in train_paths])
        log.info("--pixels auto: sampling %d training pixels (%g of the labelled pixels of %d "
                 "training scenes, at most %d)", n_pixels, AUTO_PIXEL_SHARE, len(train_paths),
                 MAX_AUTO_PIXELS)
    threads = resolve_n_jobs(n_jobs)
    params = {**estimator_settings(n_pixels, estimator_params),
              "random_state": int(seed), "n_jobs": threads, "device": device}

    t0 = time.perf_counter()
    if distributed:
        ts = DaskTrainingSet.sample(runner, train_paths, config=config, n_pixels=n_pixels,
                                    seed=seed)
    else:
        ts = sample_scenes(runner, train_paths, config=config, n_pixels=n_pixels, seed=seed)
    timings["sampling_s"] = time.perf_counter() - t0

    val, val_stride = [], stride
    if val_paths:
        t0 = time.perf_counter()
        val_stride = _val_stride(val_paths, stride)
        val = [v for _, v in runner.map(
            _val_scene, val_paths, task="val", desc="validation scenes", args=(config, val_stride),
            cache_config={"feature_config": config.to_dict(), "stride": int(val_stride)})]
        timings["validation_features_s"] = time.perf_counter() - t0

    # Charts whose validation labels cannot rank models decide neither early stopping nor
    # a choice: said in one line, recorded in the manifest.
    fallbacks = {}
    for chart in C.LABEL_CHARTS if val else ():
        # lattice points feed early stopping, the eval grid the choices: both must rank
        why = (validation_problem(chart, np.concatenate([v["y_l"][chart] for v in val]))
               or validation_problem(chart, np.concatenate([v["y_out"][chart].ravel()
                                                             for v in val])))
        if why:
            fallbacks[chart] = why

    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 1]))
    n_val_pixels = int(n_val_pixels or max(1, n_pixels // 4))
    want_clf = (any(m != "regression" for m in sic_modes) and bool(val)
                and "SIC" not in fallbacks)
    specs = [(key, key.split("_")[0], est)
             for key, est in make_estimators(params, sic_classifier=want_clf).items()]
    fitted, n_eval = {}, {}
    t0 = time.perf_counter()
    for key, chart, est in tqdm(specs, desc="fitting models", disable=not progress,
                                unit="model"):
        if chart not in n_eval:  # drawn in chart order, so the seed fixes each set
            evals = {chart: _eval_set(val, chart, n_val_pixels, rng) if val else None}
            why = val and fallbacks.get(chart, validation_problem(chart, evals[chart][1]))
            if why:  # a subsample can lose a class the pooled labels have
                fallbacks[chart], evals[chart] = why, None
            n_eval[chart] = len(evals[chart][1]) if evals[chart] is not None else 0
        if distributed:
            fitted[key] = ts.fit(est, chart, evals[chart], key)
        else:
            fitted[key] = _fit(est, ts, chart, evals[chart], key, progress)
    del evals
    fallbacks = {c: fallbacks[c] for c in C.LABEL_CHARTS if c in fallbacks}  # chart order
    if fallbacks:
        log.warning("the validation scenes cannot rank models for %s: %s train without early "
                    "stopping (all %d rounds) and take the default choices (smoothing %s%s); "
                    "add labelled scenes with several classes or raise --val-fraction",
                    "; ".join(f"{c} ({why})" for c, why in fallbacks.items()),
                    ", ".join(fallbacks), int(params["n_estimators"]),
                    sm.spec_label(FALLBACK_SMOOTHING),
                    ", SIC mode regression, water rule sic" if "SIC" in fallbacks else "")
    timings["fit_s"] = time.perf_counter() - t0

    if val:
        t0 = time.perf_counter()
        renderers = []
        for v in val:
            lat = empty_outputs(fitted, v["lattice"].lattice_shape)
            if v["ii"].size:
                predict_points(fitted, v["X"], v["ii"], v["jj"], lat)
            r = Renderer(lat, v["lattice"], v["valid_l"], v["valid_out"], v["out_rows"],
                         v["out_cols"], composite=v["comp"])
            renderers.append((r, v))
            v["X"] = None  # features no longer needed
        modes = tuple(m for m in sic_modes if m == "regression" or "SIC_classification" in fitted)
        sic_mode, water_rule, water_t, chosen, scores = _select(
            renderers, grid, modes or ("regression",), fallbacks, threads=threads)
        timings["selection_s"] = time.perf_counter() - t0
    else:
        sic_mode, water_rule, water_t = "regression", "sic", 0.5
        chosen = {c: dict(FALLBACK_SMOOTHING) for c in C.LABEL_CHARTS}
        scores = None
    models = {"SIC": fitted[sic_model_key(sic_mode)], "SOD": fitted["SOD"], "FLOE": fitted["FLOE"]}
    skipped = set(runner.skipped_names())
    s2 = None
    if stage2 and val:
        t0 = time.perf_counter()
        chosen1 = {sic_model_key(sic_mode): models["SIC"], "SOD": models["SOD"],
                   "FLOE": models["FLOE"]}
        # validation on the model's own lattice already has the chosen models' outputs there
        keys = list(empty_outputs(chosen1, (0, 0)))
        known = ({v["key"]: (v, {k: r.lat[k] for k in keys}) for r, v in renderers}
                 if val_stride == stride else None)
        s2 = train_stage2(
            runner, ts, chosen1,
            train_paths=[q for q in train_paths if q.name not in skipped],
            val_paths=[q for q in val_paths if q.name not in skipped], config=config,
            stride=stride, params=params, seed=seed,
            stage1_settings=dict(sic_mode=sic_mode, water_rule=water_rule,
                                 water_threshold=float(water_t), smoothing=chosen),
            select=_select, grid=grid, fallbacks=fallbacks, eval_grid=_eval_grid,
            spec=stage2_spec, val_outputs=known)
        if s2 is not None:
            timings.update(s2.timings)
        timings["stage2_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    manifest = Manifest(
        feature_names=tuple(feature_names(config)),
        feature_config=config.to_dict(),
        sic_mode=sic_mode,
        water_rule=water_rule,
        water_threshold=float(water_t),
        smoothing=chosen,
        stride=int(stride),
        consistency_rule=CONSISTENCY_RULE,
        training=TrainingRecord(
            seed=int(seed), n_pixels=int(n_pixels), n_rows=len(ts),
            rows_per_chart={c: ts.n_rows(c) for c in C.LABEL_CHARTS},
            val_fraction=float(val_fraction), device=device, n_jobs=threads,
            train_scenes=tuple(q.name for q in train_paths if q.name not in skipped),
            val_scenes=tuple(q.name for q in val_paths if q.name not in skipped),
            skipped_scenes=tuple(SkippedScene(scene=Path(b.path).name, reason=b.message)
                                 for b in runner.skipped),
            distributed=bool(distributed),
            val_stride=int(val_stride),
            early_stopping_points={c: int(n) for c, n in n_eval.items()},
            best_iterations={k: int(e.best_iteration_) for k, e in fitted.items()},
            estimator_params={k: v for k, v in params.items() if k != "n_jobs"},
            smoothing_grid=tuple(grid),
            timings_s={k: round(v, 2) for k, v in timings.items()},
            created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            validation_fallbacks=fallbacks,
        ),
        validation=scores,
        stage2=None if s2 is None else Stage2Record(
            system=s2.system, spec=s2.spec, feature_names=tuple(s2.feature_names),
            rounds=s2.rounds, systems=s2.systems, selection=s2.record),
    )
    return save_model(out_dir, models=models, manifest=manifest, overwrite=overwrite,
                      stage2_models=None if s2 is None else s2.models)
