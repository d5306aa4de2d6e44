"""Numba kernels of :mod:`models.predict`: bilinear upsampling fused with the class decision.

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
