"""Slow, obvious reference of the region merging in :mod:`models.regions`."""
from __future__ import annotations

import numpy as np


def ward_merge_naive(features, valid, thresholds):
    """Greedy Ward merging written out plainly: every step recomputes every adjacent pair.

    Regions are sets of valid cells named by their first cell (raster order);
    at each step the adjacent pair with the smallest ``(cost, id_a, id_b)``
    merges, while that cost is below the level's threshold. Returns int32
    (L, H, W) labels numbered 1..k by first cell, 0 where not valid.
    """
    F = np.asarray(features, dtype=np.float64)
    valid = np.asarray(valid, bool)
    H, W = valid.shape
    cells = [(i, j) for i in range(H) for j in range(W) if valid[i, j]]
    node = {c: n for n, c in enumerate(cells)}
    region = list(range(len(cells)))  # node -> region id (smallest node of the region)
    total = {n: F[:, i, j].copy() for n, (i, j) in enumerate(cells)}
    count = {n: 1.0 for n in range(len(cells))}
    edges = set()
    for (i, j), n in node.items():
        for q in ((i, j + 1), (i + 1, j)):
            if q in node:
                edges.add((n, node[q]))
    out = np.zeros((len(thresholds),) + valid.shape, np.int32)
    for level, t in enumerate(thresholds):
        while True:
            pairs = {(min(region[a], region[b]), max(region[a], region[b]))
                     for a, b in edges if region[a] != region[b]}
            best = None
            for a, b in sorted(pairs):
                na, nb = count[a], count[b]
                d = 0.0
                for k in range(F.shape[0]):
                    x = total[a][k] / na - total[b][k] / nb
                    d += x * x
                cost = na * nb / (na + nb) * d
                if best is None or cost < best[0]:
                    best = (cost, a, b)
            if best is None or best[0] >= t:
                break
            _, a, b = best
            region = [a if r == b else r for r in region]
            total[a] = total[a] + total.pop(b)
            count[a] += count.pop(b)
        ids = sorted(set(region))
        rank = {r: k + 1 for k, r in enumerate(ids)}
        for n, (i, j) in enumerate(cells):
            out[level, i, j] = rank[region[n]]
    return out
