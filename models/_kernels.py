"""Numba kernels of :mod:`models`: upsampling fused with the class decision, tree ensembles.

Callers validate shapes and dtypes; these only compute. Fusing the
interpolation with the argmax / rounding means no full-resolution
probability map is ever held: per output pixel, each class's probability is
interpolated from its four lattice neighbours and only the winner is kept.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from scenes import _jit  # noqa: F401  (a writable numba cache for the kernels below)


@njit(parallel=True, cache=True)
def upsample_argmax(P, ri, ra, ci, ca, kmin, gate, use_gate, valid, out):
    """``out[y, x]`` = argmax over ``k >= kmin`` of ``P[:, :, k]`` interpolated at (y, x).

    P : float32 (Hl, Wl, K) lattice probabilities.
    ri, ra : int64 / float32 (Ho,) lattice row below each output row and the
        fraction towards the next; ci, ca likewise for columns.
    gate : uint8 (Ho, Wo); where ``use_gate`` and ``gate == 0`` the output is 0.
    valid : bool (Ho, Wo); invalid outputs are 0.
    """
    Hl, Wl, K = P.shape
    Ho, Wo = out.shape
    for y in prange(Ho):
        i0 = ri[y]
        i1 = min(i0 + 1, Hl - 1)
        a = ra[y]
        for x in range(Wo):
            if not valid[y, x] or (use_gate and gate[y, x] == 0):
                out[y, x] = 0
                continue
            j0 = ci[x]
            j1 = min(j0 + 1, Wl - 1)
            b = ca[x]
            w00 = (1 - a) * (1 - b)
            w01 = (1 - a) * b
            w10 = a * (1 - b)
            w11 = a * b
            best = -1.0
            bk = kmin
            for k in range(kmin, K):
                v = w00 * P[i0, j0, k] + w01 * P[i0, j1, k] + w10 * P[i1, j0, k] + w11 * P[i1, j1, k]
                if v > best:
                    best = v
                    bk = k
            out[y, x] = bk


@njit(parallel=True, cache=True)
def upsample_round(V, ri, ra, ci, ca, vmax, t0, valid, out):
    """``out[y, x]`` = ``V`` interpolated at (y, x): 0 below ``t0``, else rounded half up
    and clipped to 1..vmax (``t0 = 0.5`` is plain rounding)."""
    Hl, Wl = V.shape
    Ho, Wo = out.shape
    for y in prange(Ho):
        i0 = ri[y]
        i1 = min(i0 + 1, Hl - 1)
        a = ra[y]
        for x in range(Wo):
            if not valid[y, x]:
                out[y, x] = 0
                continue
            j0 = ci[x]
            j1 = min(j0 + 1, Wl - 1)
            b = ca[x]
            v = ((1 - a) * ((1 - b) * V[i0, j0] + b * V[i0, j1])
                 + a * ((1 - b) * V[i1, j0] + b * V[i1, j1]))
            if v < t0:
                out[y, x] = 0
            else:
                out[y, x] = min(max(int(np.floor(v + 0.5)), 1), vmax)


@njit(parallel=True, cache=True)
def upsample_pick(P, ri, ra, ci, ca, classes, valid, out):
    """``out[y, x]`` = 100 x ``P[:, :, classes[y, x]]`` interpolated at (y, x), rounded
    (uint8 0..100): the probability of each pixel's class. Invalid outputs are 255."""
    Hl, Wl, K = P.shape
    Ho, Wo = out.shape
    for y in prange(Ho):
        i0 = ri[y]
        i1 = min(i0 + 1, Hl - 1)
        a = ra[y]
        for x in range(Wo):
            k = classes[y, x]
            if not valid[y, x] or k >= K:
                out[y, x] = 255
                continue
            j0 = ci[x]
            j1 = min(j0 + 1, Wl - 1)
            b = ca[x]
            v = ((1 - a) * ((1 - b) * P[i0, j0, k] + b * P[i0, j1, k])
                 + a * ((1 - b) * P[i1, j0, k] + b * P[i1, j1, k]))
            out[y, x] = min(max(int(np.floor(100.0 * v + 0.5)), 0), 100)


@njit(parallel=True, cache=True)
def upsample_percent(V, ri, ra, ci, ca, valid, out):
    """``out[y, x]`` = ``V`` (already in percent) interpolated at (y, x), rounded and
    clipped to 0..100 (uint8). Invalid outputs are 255."""
    Hl, Wl = V.shape
    Ho, Wo = out.shape
    for y in prange(Ho):
        i0 = ri[y]
        i1 = min(i0 + 1, Hl - 1)
        a = ra[y]
        for x in range(Wo):
            if not valid[y, x]:
                out[y, x] = 255
                continue
            j0 = ci[x]
            j1 = min(j0 + 1, Wl - 1)
            b = ca[x]
            v = ((1 - a) * ((1 - b) * V[i0, j0] + b * V[i0, j1])
                 + a * ((1 - b) * V[i1, j0] + b * V[i1, j1]))
            out[y, x] = min(max(int(np.floor(v + 0.5)), 0), 100)


# --- training draws (models.sampling) ----------------------------------------------
@njit(cache=True)
def class_counts(labels, valid, counts):
    """Count the valid pixels of each class ``< counts.size`` into ``counts`` (zeroed)."""
    n_classes = counts.size
    for i in range(labels.size):
        if valid[i] and labels[i] < n_classes:
            counts[labels[i]] += 1


@njit(cache=True)
def class_pools(labels, valid, starts, out):
    """Fill ``out`` with the flat indices of the valid pixels, grouped by class.

    Class ``k``'s pixels land in ``out[starts[k]:starts[k + 1]]`` in ascending
    order (a stable counting sort); ``starts`` are the cumulative class counts.
    """
    n_classes = starts.size - 1
    pos = starts[:n_classes].copy()
    for i in range(labels.size):
        if valid[i] and labels[i] < n_classes:
            c = labels[i]
            out[pos[c]] = i
            pos[c] += 1


# --- tree ensembles (models.forest) --------------------------------------------------
#: LightGBM's kZeroThreshold (a float32 constant): inputs this close to 0 count as 0.
ZERO_THRESHOLD = float(np.float32(1e-35))


@njit(parallel=True, cache=True)
def forest_raw(X, n_out, feature, threshold, decision, left, right, leaf_value, node_start,
               leaf_start, block_rows, out):
    """``out[i, k]`` = sum of the leaf values tree ``t`` (``t % n_out == k``) gives row ``i``.

    Follows LightGBM's numerical decision: an input within
    :data:`ZERO_THRESHOLD` of 0 is 0; NaN is 0 unless the node's missing type
    is NaN; a missing value (type Zero: 0, type NaN: NaN) goes to the node's
    default side, anything else left when ``x <= threshold``. ``decision``
    holds LightGBM's ``decision_type`` (bit 1 default left, bits 2-3 missing
    type). Child indices ``< 0`` are leaves ``~child``; a tree with
    ``node_start < 0`` is a single leaf. Trees are summed in order, in float64.
    Rows run in blocks of ``block_rows``, tree by tree, so a block's features
    and a tree's nodes stay in cache.
    """
    n, n_trees = X.shape[0], node_start.size
    n_blocks = -(-n // block_rows)
    for blk in prange(n_blocks):
        a = blk * block_rows
        b = min(n, a + block_rows)
        for i in range(a, b):
            for k in range(n_out):
                out[i, k] = 0.0
        for t in range(n_trees):
            k = t % n_out
            base = node_start[t]
            if base < 0:
                for i in range(a, b):
                    out[i, k] += leaf_value[leaf_start[t]]
                continue
            for i in range(a, b):
                node = 0
                while node >= 0:
                    j = base + node
                    v = np.float64(X[i, feature[j]])
                    missing = (decision[j] >> 2) & 3  # 0 none, 1 zero, 2 NaN
                    if abs(v) <= ZERO_THRESHOLD or (np.isnan(v) and missing != 2):
                        v = 0.0
                    if (missing == 1 and v == 0.0) or (missing == 2 and np.isnan(v)):
                        node = left[j] if decision[j] & 2 else right[j]
                    elif v <= threshold[j]:
                        node = left[j]
                    else:
                        node = right[j]
                out[i, k] += leaf_value[leaf_start[t] + ~node]


@njit(parallel=True, cache=True)
def softmax_rows(raw):
    """Softmax of each row of ``raw`` in place, the way LightGBM computes it."""
    for i in prange(raw.shape[0]):
        top = raw[i, 0]
        for k in range(1, raw.shape[1]):
            top = max(raw[i, k], top)
        total = 0.0
        for k in range(raw.shape[1]):
            raw[i, k] = np.exp(raw[i, k] - top)
            total += raw[i, k]
        for k in range(raw.shape[1]):
            raw[i, k] /= total
