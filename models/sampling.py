"""Training pixels drawn from scenes, stratified per chart and class.

Labels are ice-chart polygons: a scene holds millions of pixels of a few
classes and a handful of a rare one. Each scene contributes at most
``n_per_scene`` pixels: a third of that budget per chart, spread over the
chart's classes in proportion to the square root of their pixel counts
(capped at the count), drawn at random from the pixels where the SAR is
valid (``nersc_sar_primary != 0``) and that chart is not 255. The union of
the three draws is kept; a row keeps 255 for a chart that is masked there,
so each model trains on its own valid rows.

Because the draw over-represents rare classes and small scenes, every row
carries a population weight per chart: the number of scene pixels of its
class divided by the number of drawn rows of that class (0 where masked).
Weighted, the sample stands for the pooled pixels the challenge scores.

Features are computed only at the drawn pixels. Each scene's draw is seeded
by the seed and the scene key, so the result does not depend on how scenes
are run (joblib here, or the scene runner of :mod:`pipeline`).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from joblib import Parallel, delayed
from tqdm.auto import tqdm

from featurize import FeatureConfig, featurize_at, feature_names as names_of
from scenes import contract as C
from scenes.reader import load_scene, scene_key, valid_mask

from . import _kernels as _k


@dataclass
class TrainingSet:
    """Sampled pixels of several scenes.

    Attributes
    ----------
    X : float32 (N, F)
        Features in ``feature_names`` order (NaN = missing).
    y : dict chart -> uint8 (N,)
        Class index, 255 where that chart is masked.
    weight : dict chart -> float32 (N,)
        Population weight (pixels represented), 0 where masked.
    scene : int32 (N,)
        Index into ``scene_keys``.
    rows, cols : int32 (N,)
        Pixel position in its scene.
    scene_keys : list of str
    feature_names : list of str
    """

    X: np.ndarray
    y: dict
    weight: dict
    scene: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    scene_keys: list
    feature_names: list = field(default_factory=list)

    def __len__(self):
        return int(self.X.shape[0])

    def chart_rows(self, chart: str) -> np.ndarray:
        """Indices of the rows where ``chart`` is labelled."""
        return np.flatnonzero(self.y[chart] != C.MASK_VALUE)

    def n_rows(self, chart: str) -> int:
        """Number of rows where ``chart`` is labelled."""
        return int(np.count_nonzero(self.y[chart] != C.MASK_VALUE))


def scene_seed(seed: int, key: str) -> np.random.SeedSequence:
    """Seed of one scene's draw: the run seed and a stable hash of the scene key."""
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode())])


def sqrt_allocation(counts, budget: int) -> np.ndarray:
    """Split ``budget`` draws over classes with ``counts`` pixels.

    Shares follow ``sqrt(count)`` (between proportional and equal
    allocation), no class gets more than it has, and what a capped class
    leaves goes to the others.
    """
    counts = np.asarray(counts, dtype=np.int64)
    alloc = np.zeros_like(counts)
    left = int(min(budget, counts.sum()))
    active = counts > 0
    while left > 0 and active.any():
        root = np.sqrt(counts * active)
        share = left * root / root.sum()
        full = active & (share >= counts - alloc)
        if full.any():
            left -= int((counts[full] - alloc[full]).sum())
            alloc[full] = counts[full]
            active &= ~full
            continue
        base = np.floor(share).astype(np.int64)
        rest = left - int(base.sum())
        # Largest remainders take the last draws; ties go to the lower class.
        order = np.argsort(-(share - base), kind="stable")[:rest]
        base[order] += 1
        alloc += base
        left = 0
    return alloc


def draw_uniform(pool, n_max: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices drawn uniformly from ``pool``, and each row's population weight.

    The unstratified counterpart of :func:`draw_scene` (used to sample
    pixels for evaluation, e.g. :mod:`evaluation.importance`).

    Parameters
    ----------
    pool : bool array (H, W) or (N,)
        Pixels that may be drawn.
    n_max : int
        Most pixels to draw; all of the pool when it holds fewer.
    rng : numpy.random.Generator
        One ``rng.choice`` call draws, without replacement (nothing is drawn
        from an empty pool).

    Returns
    -------
    idx : int64 (n,)
        Sorted flat indices into ``pool`` (n = min(n_max, pool size)).
    weight : float64 (n,)
        Pool pixels each row stands for, ``pool size / n``.
    """
    idx = np.flatnonzero(np.asarray(pool, dtype=bool))
    n_pool = idx.size
    n = min(int(n_max), n_pool)
    if n < 1:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    idx = np.sort(rng.choice(idx, size=n, replace=False))
    return idx.astype(np.int64, copy=False), np.full(n, n_pool / n)


def labels_at(ds, rows, cols, out_rows, out_cols) -> tuple[dict, dict]:
    """Each chart's labels at points ``(rows, cols)`` and on the grid ``out_rows x out_cols``."""
    at, grid = {}, {}
    for chart in C.LABEL_CHARTS:
        lab = np.asarray(ds[chart].values)
        at[chart] = lab[rows, cols]
        # C order: indexing columns leaves the grid in Fortran order, and every score
        # of a validation map would copy it to read it pixel by pixel
        grid[chart] = np.ascontiguousarray(lab[out_rows][:, out_cols])
    return at, grid


def draw_scene(valid, labels: dict, n_max: int, rng) -> tuple[np.ndarray, dict]:
    """Flat pixel indices drawn from one scene, and each row's population weight.

    Parameters
    ----------
    valid : bool (H, W)
        Pixels with valid SAR.
    labels : dict chart -> uint8 (H, W)
    n_max : int
        Most pixels to draw.
    rng : numpy.random.Generator

    Returns
    -------
    idx : int64 (n,)
        Sorted flat indices (n <= n_max).
    weight : dict chart -> float32 (n,)
    """
    charts = [c for c in C.LABEL_CHARTS if c in labels]
    valid = np.ascontiguousarray(valid, dtype=bool).ravel()
    flat = {c: np.ascontiguousarray(labels[c], dtype=np.uint8).ravel() for c in charts}
    counts = {}
    for chart in charts:
        counts[chart] = np.zeros(C.N_CLASSES[chart], np.int64)
        _k.class_counts(flat[chart], valid, counts[chart])
    budgets = [n_max // len(charts) + (i < n_max % len(charts)) for i in range(len(charts))]
    picks = []
    # one buffer for every chart's pools; int32 halves it (a scene has < 2**31 pixels)
    buffer = np.empty(max(int(c.sum()) for c in counts.values()) if charts else 0,
                      np.int32 if valid.size < 2 ** 31 else np.int64)
    for chart, budget in zip(charts, budgets):
        alloc = sqrt_allocation(counts[chart], budget)
        if not alloc.any():
            continue
        # every class's pixels in one pass (a stable counting sort), not one scan per class
        starts = np.concatenate([[0], np.cumsum(counts[chart])])
        pools = buffer[:starts[-1]]
        _k.class_pools(flat[chart], valid, starts, pools)
        for k in np.flatnonzero(alloc):
            pool = pools[starts[k]:starts[k + 1]]
            picks.append(rng.choice(pool, size=int(alloc[k]), replace=False, shuffle=False))
    del buffer
    idx = (np.unique(np.concatenate(picks)).astype(np.int64) if picks
           else np.zeros(0, np.int64))
    weight = {}
    for chart in charts:
        # every drawn pixel is valid, so its label is its class (or the mask)
        y = flat[chart][idx]
        drawn = np.bincount(y, minlength=256)[: C.N_CLASSES[chart]]
        per_class = np.zeros(256, np.float64)
        k = np.flatnonzero(drawn)
        per_class[k] = counts[chart][k] / drawn[k]
        weight[chart] = per_class[y].astype(np.float32)
    return idx, weight


def _open(scene, check_values=True):
    if isinstance(scene, (str, Path)):
        # read once (values checked on those arrays), then draw and featurize from memory
        return load_scene(scene, check_values=check_values), scene_key(scene)
    key = str(scene.attrs.get("scene_id", "scene"))[: C.KEY_LENGTH]
    return scene, key


def _default_featurizer(config):
    def featurize(ds, rows, cols):
        return featurize_at(ds, config, rows, cols)
    return featurize


def sample_scene(scene, *, n_max: int, seed: int, config=None, featurizer=None,
                 check_values: bool = True) -> dict:
    """Draw and featurize one scene's training pixels.

    Parameters
    ----------
    scene : path or xarray.Dataset
        A training scene (with SIC, SOD, FLOE).
    n_max : int
    seed : int
        Run seed; the scene's own seed also depends on its key.
    config : featurize.FeatureConfig, optional
    featurizer : callable ``(ds, rows, cols) -> float32 (N, F)``, optional
        Replaces ``featurize_at(ds, config, rows, cols)``.
    check_values : bool
        Scan the scene's values when opening it from a path (off when the
        caller checked every scene first).

    Returns
    -------
    dict with ``key, X, y, weight, rows, cols``.
    """
    ds, key = _open(scene, check_values)
    try:
        missing = [c for c in C.LABEL_CHARTS if c not in ds.variables]
        if missing:
            raise ValueError(f"scene {key} lacks label variables {missing}; "
                             "train on training scenes (*_prep.nc with SIC, SOD, FLOE)")
        valid = valid_mask(ds)
        H, W = valid.shape
        labels = {c: np.asarray(ds[c].values) for c in C.LABEL_CHARTS}
        rng = np.random.default_rng(scene_seed(seed, key))
        idx, weight = draw_scene(valid, labels, int(n_max), rng)
        del valid
        y = {c: labels[c].ravel()[idx].astype(np.uint8) for c in C.LABEL_CHARTS}
        del labels
        rows, cols = np.divmod(idx, W)
        featurize = featurizer if featurizer is not None else _default_featurizer(config)
        X = np.asarray(featurize(ds, rows, cols), dtype=np.float32)
    finally:
        if isinstance(scene, (str, Path)):
            ds.close()
    return {"key": key, "X": X, "y": y, "weight": weight,
            "rows": rows.astype(np.int32), "cols": cols.astype(np.int32)}


def concat_samples(parts, feature_names, n_max_rows=None) -> TrainingSet:
    """One :class:`TrainingSet` from :func:`sample_scene` results (in order).

    ``parts`` may be an iterator; with ``n_max_rows`` (a bound on the total)
    the features are copied into one buffer as the parts arrive, so two
    copies of them are never held.
    """
    F = len(feature_names)
    X = None if n_max_rows is None else np.empty((int(n_max_rows), F), np.float32)
    keep, n = [], 0
    for p in parts:
        if p["X"].ndim != 2 or p["X"].shape[1] != F:
            raise ValueError(f"featurizer gave features of shape {p['X'].shape}, "
                             f"expected (N, {F})")
        m = len(p["X"])
        if X is not None:
            if n + m > X.shape[0]:
                raise ValueError(f"samples exceed the announced {X.shape[0]} rows")
            X[n:n + m] = p["X"]
            p = {**p, "X": None}
        keep.append(p)
        n += m
    if not keep:
        raise ValueError("no scenes to sample; pass at least one training scene")
    X = X[:n] if X is not None else np.concatenate([p["X"] for p in keep])
    return TrainingSet(
        X=X,
        y={c: np.concatenate([p["y"][c] for p in keep]) for c in C.LABEL_CHARTS},
        weight={c: np.concatenate([p["weight"][c] for p in keep]) for c in C.LABEL_CHARTS},
        scene=np.concatenate([np.full(len(p["rows"]), i, np.int32) for i, p in enumerate(keep)]),
        rows=np.concatenate([p["rows"] for p in keep]),
        cols=np.concatenate([p["cols"] for p in keep]),
        scene_keys=[p["key"] for p in keep],
        feature_names=list(feature_names),
    )


def build_training_set(scenes, *, config=None, n_pixels: int = 2_000_000, seed: int = 0,
                       n_jobs: int = -1, progress: bool = True, featurizer=None,
                       feature_names=None) -> TrainingSet:
    """Sample about ``n_pixels`` training pixels over ``scenes`` (joblib over scenes).

    The train job (:mod:`pipeline.train`) runs :func:`sample_scene` through
    its scene runner instead (Dask, cache, bad scenes); both give the same set.

    Parameters
    ----------
    scenes : list of paths (or in-memory datasets)
        Training scenes; each gets :func:`pixels_per_scene` draws at most.
    config : featurize.FeatureConfig, optional
    n_pixels : int
    seed : int
    n_jobs : int
        Parallel scenes (joblib); the result does not depend on it.
    progress : bool
        Show a tqdm bar.
    featurizer : callable, optional
        ``(ds, rows, cols) -> (N, F)``; give ``feature_names`` with it.
    feature_names : list of str, optional

    Returns
    -------
    TrainingSet
    """
    scenes = list(scenes)
    n_max = pixels_per_scene(n_pixels, len(scenes))
    if featurizer is None:
        config = FeatureConfig() if config is None else config
        feature_names = names_of(config)
    elif feature_names is None:
        raise ValueError("a custom featurizer needs its feature_names")
    jobs = (delayed(sample_scene)(s, n_max=n_max, seed=seed, config=config,
                                  featurizer=featurizer) for s in scenes)
    runner = Parallel(n_jobs=-1 if n_jobs is None else int(n_jobs), return_as="generator")
    parts = tqdm(runner(jobs), total=len(scenes), desc="sampling scenes",
                 disable=not progress, unit="scene")
    return concat_samples(parts, feature_names, n_max_rows=n_max * len(scenes))


def pixels_per_scene(n_pixels: int, n_scenes: int) -> int:
    """Most pixels each of ``n_scenes`` scenes draws for ``n_pixels`` in all."""
    if n_scenes < 1:
        raise ValueError("no training scenes given; pass a folder or list of *_prep.nc files")
    if int(n_pixels) < n_scenes:
        raise ValueError(f"n_pixels={n_pixels} is fewer than one per scene "
                         f"({n_scenes} scenes); ask for more pixels")
    return int(n_pixels) // n_scenes


def sampling_cache_config(config, seed: int, n_max: int) -> dict:
    """What one scene's sample depends on besides the scene (the cache key)."""
    return {"feature_config": config.to_dict(), "seed": int(seed), "n_max": int(n_max)}
