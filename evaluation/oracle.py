"""The true-polygon vote: how far a system's maps are from chart-like decisions.

An ice chart gives one egg code per polygon. Replacing every pixel of a
system's maps by the vote (SOD, FLOE: the most frequent predicted class) or
the mean (SIC: the mean predicted class, rounded) of its predictions inside
the TRUE chart polygon shows what region-level decisions could gain with
perfect regions. Not a strict bound of every region vote: a majority of wrong
predictions inside a true polygon can score below the maps themselves.
The polygons are the connected areas (4-neighbours) of equal (SIC, SOD,
FLOE) in the reference; areas masked in all three charts take no part.
"""
from __future__ import annotations

import numpy as np
from skimage.measure import label

from scenes import contract as C


def reference_polygons(reference: dict) -> np.ndarray:
    """Polygon ids (int32, 0 = masked in every chart) of a reference chart set.

    ``reference`` maps chart -> uint8 (H, W) (255 = masked).
    """
    ref = {c: np.asarray(reference[c]) for c in C.LABEL_CHARTS}
    code = (ref["SIC"].astype(np.int32) << 16) | (ref["SOD"].astype(np.int32) << 8) \
        | ref["FLOE"].astype(np.int32)
    masked = np.all([ref[c] == C.MASK_VALUE for c in C.LABEL_CHARTS], axis=0)
    code[masked] = -1
    return label(code, background=-1, connectivity=1).astype(np.int32)


def polygon_vote(polygons, maps: dict) -> dict:
    """``maps`` (chart -> uint8 (H, W)) decided per polygon: SIC mean, SOD/FLOE majority.

    Pixels outside any polygon (id 0) keep their values; ties of the
    majority go to the lower class.
    """
    polygons = np.asarray(polygons)
    use = polygons > 0
    lab = polygons[use].astype(np.int64)
    n = int(polygons.max()) + 1 if polygons.size else 1
    count = np.maximum(np.bincount(lab, minlength=n), 1)
    out = {}
    for chart in C.LABEL_CHARTS:
        m = np.asarray(maps[chart])
        x = m[use].astype(np.int64)
        res = m.copy()
        if chart == "SIC":
            mean = np.bincount(lab, weights=x.astype(np.float64), minlength=n) / count
            res[use] = np.floor(mean + 0.5).astype(np.uint8)[lab]
        else:
            k = C.N_CLASSES[chart]
            votes = np.bincount(lab * k + np.minimum(x, k - 1), minlength=n * k).reshape(n, k)
            res[use] = votes.argmax(axis=1).astype(np.uint8)[lab]
        out[chart] = res
    return out
