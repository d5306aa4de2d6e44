"""Numba kernel of :mod:`scenes.reader`'s value checks: one pass over a SAR-grid block.

NumPy's checks (``isfinite``, ``abs > limit``, ``!= fill``) each walk the
block and allocate a temporary of its size; a real scene's four SAR-grid
variables took about 0.5 s of every read that way, on one core.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import _jit  # noqa: F401  (a writable numba cache for the kernel below)


@njit(parallel=True, cache=True)
def value_counts(a, max_abs, fill):
    """``(non-finite, |x| > max_abs, != fill)`` pixel counts of the 2-D block ``a``.

    Branch-free so that the compiler vectorises it: ``x - x`` is 0 exactly
    when ``x`` is finite; an infinite value counts as far too (the caller
    refuses non-finite values first).
    """
    n_rows = a.shape[0]
    counts = np.zeros((n_rows, 3), np.int64)
    limit = a.dtype.type(max_abs)  # compared in the block's own precision
    f = a.dtype.type(fill)
    for i in prange(n_rows):
        bad = np.int32(0)
        far = np.int32(0)
        kept = np.int32(0)
        for j in range(a.shape[1]):
            x = a[i, j]
            bad += np.int32((x - x) != 0)
            far += np.int32(abs(x) > limit)
            kept += np.int32(x != f)
        counts[i, 0] = bad
        counts[i, 1] = far
        counts[i, 2] = kept
    total = counts.sum(axis=0)
    return total[0], total[1], total[2]


@njit(parallel=True, cache=True)
def count_outside(a, n_classes, mask):
    """Pixels of the 2-D uint8 block ``a`` that are neither a class ``0..n_classes-1`` nor ``mask``."""
    n_rows = a.shape[0]
    counts = np.zeros(n_rows, np.int64)
    for i in prange(n_rows):
        n = 0
        for j in range(a.shape[1]):
            x = a[i, j]
            n += (x >= n_classes) & (x != mask)
        counts[i] = n
    return counts.sum()
