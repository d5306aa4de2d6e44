"""Slow, obvious reference implementations the fast code is tested against."""
from __future__ import annotations

import numpy as np
from skimage.feature import graycomatrix, graycoprops

GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)


def glcm_naive_at(image, rows, cols, *, window, levels, distances=(1,), props=("contrast",)):
    """skimage GLCM properties of the windows centred on the given pixels.

    Pads by reflection (``np.pad(mode="reflect")``), cuts each pixel's window,
    calls ``graycomatrix(symmetric=True, normed=True)`` for the distances and
    4 angles and averages ``graycoprops`` over all of them. Returns float64
    ``(len(props), N)``.
    """
    padded = np.pad(np.asarray(image, dtype=np.uint8), window // 2, mode="reflect")
    out = np.empty((len(props), len(rows)), dtype=np.float64)
    for i, (r, c) in enumerate(zip(rows, cols)):
        win = padded[r:r + window, c:c + window]
        mats = graycomatrix(win, list(distances), list(GLCM_ANGLES), levels=levels,
                            symmetric=True, normed=True)
        for p, prop in enumerate(props):
            out[p, i] = graycoprops(mats, prop).mean()
    return out


def glcm_naive(image, *, window, levels, distances=(1,), props=("contrast",)):
    """:func:`glcm_naive_at` at every pixel: float64 ``(len(props), H, W)``."""
    h, w = np.shape(image)
    rows, cols = np.divmod(np.arange(h * w), w)
    out = glcm_naive_at(image, rows, cols, window=window, levels=levels,
                        distances=distances, props=props)
    return out.reshape(len(props), h, w)


def draw_scene_naive(valid, labels, n_max, rng):
    """:func:`models.sampling.draw_scene` with one scan of the scene per class."""
    from models.sampling import sqrt_allocation
    from scenes import contract as C

    charts = [c for c in C.LABEL_CHARTS if c in labels]
    valid = np.asarray(valid, dtype=bool).ravel()
    codes, counts = {}, {}
    for chart in charts:
        code = np.where(valid, np.asarray(labels[chart]).ravel(), C.MASK_VALUE).astype(np.uint8)
        codes[chart] = code
        counts[chart] = np.bincount(code, minlength=256)[: C.N_CLASSES[chart]]
    budgets = [n_max // len(charts) + (i < n_max % len(charts)) for i in range(len(charts))]
    picks = []
    for chart, budget in zip(charts, budgets):
        alloc = sqrt_allocation(counts[chart], budget)
        for k in np.flatnonzero(alloc):
            pool = np.flatnonzero(codes[chart] == k)
            picks.append(rng.choice(pool, size=int(alloc[k]), replace=False, shuffle=False))
    idx = np.unique(np.concatenate(picks)) if picks else np.zeros(0, np.int64)
    weight = {}
    for chart in charts:
        y = codes[chart][idx]
        drawn = np.bincount(y, minlength=256)[: C.N_CLASSES[chart]]
        per_class = np.zeros(256, np.float64)
        k = np.flatnonzero(drawn)
        per_class[k] = counts[chart][k] / drawn[k]
        weight[chart] = per_class[y].astype(np.float32)
    return idx.astype(np.int64), weight
