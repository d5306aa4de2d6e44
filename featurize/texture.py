"""Sliding-window GLCM (Haralick) texture, exact and fast.

For each pixel, the grey-level co-occurrence matrices of the ``window x
window`` neighbourhood are built for every distance and the four angles 0,
45, 90 and 135 degrees (symmetric, normalised), and each property is the mean
over all those matrices of :func:`skimage.feature.graycoprops`. Definitions
follow scikit-image 0.26 exactly:

* pixel-pair offsets are skimage's ``(round(sin(a) d), round(cos(a) d))``, so
  the diagonal offsets of distance 2 are ``(1, +-1)``, like those of distance 1;
* ``correlation`` is 1 where the window is constant (zero marginal std);
* ``entropy`` uses the natural log; ``mean``/``variance``/``std`` are those of
  the matrix marginal (level index, not dB).

Edge pixels: the image is extended by reflection without repeating the edge
pixel (:func:`numpy.pad` ``mode="reflect"``: ``c b | a b c``), so every pixel
gets a full window and the same number of pixel pairs.

The kernels (:mod:`featurize._texture_kernels`) update the co-occurrence
counts as the window slides along a row: O(window) work per pixel and
matrix, rows in parallel over numba threads (``numba.set_num_threads``).
"""
from __future__ import annotations

import math
from collections import Counter
from numbers import Integral

import numba
import numpy as np

from featurize import _texture_kernels as _k

#: Properties supported (skimage names), in the default order.
DEFAULT_PROPS = ("contrast", "dissimilarity", "homogeneity", "ASM", "energy",
                 "correlation", "mean", "variance", "entropy")
SUPPORTED_PROPS = tuple(_k.PROP_CODES)
#: Rows per thread chunk of :func:`glcm`.
CHUNK_ROWS = 128
#: Columns per strip (rows run inside a strip, so a row's pair codes stay in
#: the L2 cache for the next) and per vectorised block of property evaluation.
STRIP_COLS = 512
BLOCK_COLS = 256
#: The four GLCM angles (radians), as in skimage's usual call.
ANGLES = (0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4)


def glcm(image, *, window, levels, distances=(1,), props=DEFAULT_PROPS):
    """GLCM texture properties of every pixel's ``window x window`` neighbourhood.

    Parameters
    ----------
    image : (H, W) uint8 array
        Grey levels, all ``< levels`` (see :mod:`featurize.quantize`).
    window : int
        Odd window side, 3..255, larger than every distance; ``H, W >= window``.
    levels : int
        Number of grey levels, 2..256.
    distances : sequence of int
        Pixel-pair distances (each ``1 <= d < window``); results are
        averaged over distances and the four angles.
    props : sequence of str
        Property names from :data:`SUPPORTED_PROPS`.

    Returns
    -------
    (len(props), H, W) float32 array

    Notes
    -----
    Cost per pixel: O(1) for contrast, dissimilarity, homogeneity,
    correlation, mean, variance and std; O(window) per pair offset (4 per
    distance) for ASM, energy and entropy, which need the co-occurrence
    counts. Measured on the 2-core build machine (32 levels, the nine default
    properties, ``benchmarks/bench_texture.py``): 0.32 us per pixel at window
    25 and 0.21 us at window 11 on one core, about 2700x and 3600x faster
    than skimage per window; a 5000 x 5200 band takes 4.8 s (window 25) and
    3.2 s (window 11) on 2 threads.
    """
    img, window, levels, odr, odc, weight, prop_codes = _validate(
        image, window, levels, distances, props)
    h, w = img.shape
    padded = np.pad(img, window // 2, mode="reflect")
    out = np.empty((prop_codes.size, h, w), dtype=np.float32)
    # chunks of ~CHUNK_ROWS rows, a multiple of the thread count: each chunk
    # pays for window - 1 extra rows of set-up, and threads should finish together
    threads = numba.get_num_threads()
    n_chunks = min(h, threads * max(1, round(h / (CHUNK_ROWS * threads))))
    bounds = np.linspace(0, h, n_chunks + 1).round().astype(np.int64)
    _k.glcm_rows_kernel(padded, window, levels, odr, odc, weight, prop_codes,
                        _k.ulogu_delta_table(_max_pairs(window, odr, odc)),
                        _k.homogeneity_table(levels),
                        bounds, STRIP_COLS, BLOCK_COLS, out)
    return out


def glcm_at(image, rows, cols, *, window, levels, distances=(1,), props=DEFAULT_PROPS):
    """GLCM texture properties at given pixels only; equals ``glcm(...)[:, rows, cols]``.

    Same parameters as :func:`glcm`, plus ``rows`` and ``cols``: 1-D integer
    arrays of equal length with the pixel positions. Returns a
    ``(len(props), N)`` float32 array. Each window is built from scratch, so
    this is the cheap way to get texture at sparse training samples.
    """
    img, window, levels, odr, odc, weight, prop_codes = _validate(
        image, window, levels, distances, props)
    rows = _positions(rows, img.shape[0], "rows")
    cols = _positions(cols, img.shape[1], "cols")
    if rows.shape != cols.shape:
        raise ValueError(f"rows and cols must have the same length, got {rows.size} "
                         f"and {cols.size}; pass one (row, col) per point.")
    # np.pad of the whole image keeps the edge handling identical to glcm()
    padded = np.pad(img, window // 2, mode="reflect")
    out = np.empty((prop_codes.size, rows.size), dtype=np.float32)
    n_chunks = max(1, min(rows.size, 16 * numba.get_num_threads()))
    bounds = np.linspace(0, rows.size, n_chunks + 1).round().astype(np.int64)
    _k.glcm_points_kernel(padded, rows, cols, window, levels, odr, odc, weight, prop_codes,
                          _k.ulogu_table(_max_pairs(window, odr, odc)),
                          _k.homogeneity_table(levels), bounds, out)
    return out


def pair_offsets(distances):
    """Unique (row, col) pair offsets for ``distances`` x :data:`ANGLES` and their weights.

    Offsets follow skimage's ``graycomatrix`` rounding; a symmetric matrix does
    not depend on the pair order, so each offset is flipped to point right (or
    down). ``weight`` is the share of the offset among all
    ``len(distances) * 4`` matrices (two distances may share a diagonal offset).
    """
    counter = Counter()
    for d in distances:
        for a in ANGLES:
            dr, dc = round(math.sin(a) * d), round(math.cos(a) * d)
            if dc < 0 or (dc == 0 and dr < 0):
                dr, dc = -dr, -dc
            counter[(dr, dc)] += 1
    offsets = sorted(counter)
    total = len(distances) * len(ANGLES)
    odr = np.array([o[0] for o in offsets], dtype=np.int64)
    odc = np.array([o[1] for o in offsets], dtype=np.int64)
    weight = np.array([counter[o] / total for o in offsets], dtype=np.float64)
    return odr, odc, weight


def _max_pairs(window, odr, odc):
    """Most pixel pairs in one window over the offsets (the largest count)."""
    return int(((window - np.abs(odr)) * (window - odc)).max())


def _validate(image, window, levels, distances, props):
    """Check the arguments; return the uint8 image and kernel-ready arrays."""
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {img.shape}; pass one band.")
    if not (np.issubdtype(img.dtype, np.integer) and img.dtype != np.bool_):
        raise ValueError(f"image must hold integer grey levels (uint8), got dtype {img.dtype}; "
                         "quantise it first, e.g. featurize.quantize.quantize_db.")
    # <= 255 keeps every integer sum of the kernels far from int64 overflow
    if not isinstance(window, Integral) or not 3 <= window <= 255 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer in 3..255, got {window!r}.")
    window = int(window)
    if not isinstance(levels, Integral) or not 2 <= levels <= 256:
        raise ValueError(f"levels must be an integer in 2..256, got {levels!r}.")
    levels = int(levels)
    if img.shape[0] < window or img.shape[1] < window:
        raise ValueError(f"image {img.shape} is smaller than the {window}x{window} window; "
                         "use a smaller window or a larger image.")
    lo, hi = int(img.min()), int(img.max())
    if lo < 0 or hi >= levels:
        raise ValueError(f"image grey levels must lie in 0..{levels - 1} (levels={levels}), "
                         f"found {lo}..{hi}; quantise to `levels` levels first.")
    dist = list(np.atleast_1d(np.asarray(distances)).ravel())
    if not dist or not all(isinstance(d, Integral) and 1 <= d < window for d in dist):
        raise ValueError(f"distances must be integers in 1..{window - 1} (< window), "
                         f"got {distances!r}.")
    if isinstance(props, str):
        props = (props,)
    props = tuple(props)
    bad = [p for p in props if p not in _k.PROP_CODES]
    if not props or bad:
        raise ValueError(f"unknown GLCM prop(s) {bad or '(none given)'}; "
                         f"choose from {SUPPORTED_PROPS}.")
    odr, odc, weight = pair_offsets([int(d) for d in dist])
    prop_codes = np.array([_k.PROP_CODES[p] for p in props], dtype=np.int64)
    return (np.ascontiguousarray(img, dtype=np.uint8), window, levels, odr, odc, weight,
            prop_codes)


def _positions(idx, n, name):
    arr = np.asarray(idx)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array, got shape {arr.shape} "
                         f"dtype {arr.dtype}.")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"{name} must lie in 0..{n - 1}, got {arr.min()}..{arr.max()}.")
    return arr.astype(np.int64)
