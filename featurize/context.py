"""Multi-scale, valid-pixel-aware local statistics of the SAR bands.

For every SAR pixel and every box size ``s`` (odd, in pixels; the defaults
5, 25, 101 are about 0.4, 2 and 8 km at 80 m) we compute the mean and the
standard deviation of the band values (in dB) over the valid pixels of the
``s x s`` box centred on it, clipped to the image. SAR fill pixels
(``nersc_sar_primary == 0``) are left out of the sums and the counts, so
they never bleed into a neighbour's statistics; a box without any valid
pixel gives NaN.

How: the band values are centred on a fixed value, rounded to fixed point
(``2**-11`` dB, far below the speckle) and summed in int64 integral images of
the count, the sum and the sum of squares. Integer box sums are exact, so a
pixel's statistics do not depend on where the integral image started: a row
block computed with a halo of ``max(scales) // 2`` rows gives bit-identical
output to the whole image, and so does a query at single points
(:func:`box_stats_at`). The bounds below keep every sum of a scene of up to
2**25 pixels inside int64.

Incidence-angle normalisation: HH sigma0 over sea ice falls by about
0.22 dB per degree of incidence angle, so ``hh_ia_norm = HH + slope *
(IA - ref)`` with ``slope = 0.22`` dB/deg and ``ref = 35`` deg brings it to
the backscatter at 35 deg.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from scenes import _jit  # noqa: F401  (a writable numba cache for the kernels below)

#: Fixed-point scale of the integral images (values in units of 2**-11 dB).
FIXED_POINT = 2.0 ** 11
#: Band values are clipped to centre +- this many dB before summing.
CLIP_DB = 64.0
#: Largest image (pixels) for which the int64 sums of squares cannot overflow.
MAX_PIXELS = 2 ** 25
#: :func:`box_stats_at` sums boxes directly below this many box pixels per pixel of the
#: rows given: on a real-size scene's 356-row block (scales 5, 25, 101, three bands) the
#: two ways cost the same at 4-5 (1 or 2 threads), and direct is 3x faster at 1.
DIRECT_SHARE = 4.0

#: HH incidence-angle slope (dB per degree) and reference angle (degrees).
IA_SLOPE_DB_PER_DEG = 0.22
IA_REF_DEG = 35.0


def ia_normalised(hh_db, ia_deg, slope=IA_SLOPE_DB_PER_DEG, ref=IA_REF_DEG):
    """HH backscatter brought to the reference incidence angle, in dB.

    ``hh_db + slope * (ia_deg - ref)``; NaN where either input is NaN.
    """
    return (np.asarray(hh_db, np.float32)
            + np.float32(slope) * (np.asarray(ia_deg, np.float32) - np.float32(ref)))


@njit(cache=True)
def _fixed(x, centre):
    """Centred fixed-point value (``2**-11`` dB units); non-finite -> 0."""
    v = x - centre
    if not np.isfinite(v):
        return 0
    v = min(max(v, -CLIP_DB), CLIP_DB)
    return np.int64(np.rint(v * FIXED_POINT))


def _check_scales(scales):
    scales = tuple(int(s) for s in scales)
    if not scales or any(s < 1 or s % 2 == 0 for s in scales):
        raise ValueError(f"context scales must be odd positive box sizes, got {scales}; "
                         "use e.g. (5, 25, 101)")
    return scales


def integral_images(bands_db, centres, valid, buffers=None):
    """Integral images of count, sum and sum of squares of valid pixels.

    Parameters
    ----------
    bands_db : float array (n_bands, h, w)
        Band values in dB, summed in fixed point around ``centres``.
    centres : float array (n_bands,)
    valid : bool array (h, w)
    buffers : IntegralBuffers, optional
        Memory to write into, kept from an earlier call; the results are views of it.

    Returns
    -------
    cnt : int64 (h + 1, w + 1)
    s1, s2 : int64 (n_bands, h + 1, w + 1)
    """
    x = np.ascontiguousarray(bands_db, dtype=np.float32)
    if x.ndim != 3 or x.shape[1:] != np.shape(valid):
        raise ValueError(f"bands must be (n_bands, h, w) matching valid {np.shape(valid)}, "
                         f"got {x.shape}")
    if np.size(valid) > MAX_PIXELS:
        raise ValueError(f"image of {np.size(valid)} pixels is too large for exact int64 sums "
                         f"(max {MAX_PIXELS}); featurize it in row blocks")
    cnt, s1, s2 = (buffers or IntegralBuffers()).arrays(*x.shape)
    _integral_kernel(x, np.asarray(centres, np.float64),
                     np.ascontiguousarray(valid, dtype=np.bool_), cnt, s1, s2)
    return cnt, s1, s2


class IntegralBuffers:
    """Memory for :func:`integral_images`, reused from one row block to the next.

    Freshly allocated int64 images (100 MB for a real scene's 356-row block)
    are paid for in page faults when first written: 41 ms a block against 10
    ms into memory written before, on the 2-core build machine. One instance
    serves one thread at a time.
    """

    def __init__(self):
        self._flat = (np.empty(0, np.int64),) * 3

    def arrays(self, n_bands, h, w):
        """``cnt`` (h + 1, w + 1) and ``s1``, ``s2`` (n_bands, h + 1, w + 1): contiguous views."""
        sizes = ((h + 1) * (w + 1), n_bands * (h + 1) * (w + 1), n_bands * (h + 1) * (w + 1))
        if any(f.size < n for f, n in zip(self._flat, sizes)):
            self._flat = tuple(np.empty(n, np.int64) for n in sizes)
        cnt, s1, s2 = (f[:n] for f, n in zip(self._flat, sizes))
        return (cnt.reshape(h + 1, w + 1), s1.reshape(n_bands, h + 1, w + 1),
                s2.reshape(n_bands, h + 1, w + 1))


@njit(cache=True, parallel=True)
def _integral_kernel(x, centres, valid, cnt, s1, s2):
    """Fill ``cnt``, ``s1``, ``s2`` (every cell, first row and column 0)."""
    nb, h, w = x.shape
    # one task per band, plus one for the count
    for b in prange(nb + 1):
        if b == nb:
            cnt[0, :] = 0
            for i in range(h):
                cnt[i + 1, 0] = 0
                run = 0
                for j in range(w):
                    if valid[i, j]:
                        run += 1
                    cnt[i + 1, j + 1] = cnt[i, j + 1] + run
            continue
        s1[b, 0, :] = 0
        s2[b, 0, :] = 0
        for i in range(h):
            s1[b, i + 1, 0] = 0
            s2[b, i + 1, 0] = 0
            r1 = 0
            r2 = 0
            for j in range(w):
                if valid[i, j]:
                    v = _fixed(x[b, i, j], centres[b])
                    r1 += v
                    r2 += v * v
                s1[b, i + 1, j + 1] = s1[b, i, j + 1] + r1
                s2[b, i + 1, j + 1] = s2[b, i, j + 1] + r2


@njit(cache=True)
def _box(img, b, i0, i1, j0, j1):
    return img[b, i1, j1] - img[b, i0, j1] - img[b, i1, j0] + img[b, i0, j0]


@njit(cache=True)
def _bounds(gi, j, r, row_off, h_loc, h_img, w_img):
    """Box of radius ``r`` around image pixel ``(gi, j)``, clipped to the image: its image
    rows ``a0:a1``, and its rows ``i0:i1`` and columns ``j0:j1`` in the given rows."""
    a0 = max(gi - r, 0)
    a1 = min(gi + r + 1, h_img)
    i0 = min(max(a0 - row_off, 0), h_loc)
    i1 = min(max(a1 - row_off, 0), h_loc)
    return a0, a1, i0, i1, max(j - r, 0), min(j + r + 1, w_img)


@njit(cache=True)
def _stats_one(cnt, s1, s2, centres, scales, gi, j, row_off, h_img, out, k):
    """Write the statistics of image pixel ``(gi, j)`` into ``out[:, k]``.

    The integral images start at image row ``row_off``; boxes are clipped to
    the image (``h_img`` rows). Layout of ``out``: for each scale, for each
    band: mean, std; then the valid fraction of the largest box.
    """
    h_loc = cnt.shape[0] - 1
    w_img = cnt.shape[1] - 1
    nb = s1.shape[0]
    ns = scales.shape[0]
    o = 0
    frac = np.nan
    for si in range(ns):
        a0, a1, i0, i1, j0, j1 = _bounds(gi, j, scales[si] // 2, row_off, h_loc, h_img, w_img)
        n = cnt[i1, j1] - cnt[i0, j1] - cnt[i1, j0] + cnt[i0, j0]
        for b in range(nb):
            _put(out, o, k, n, _box(s1, b, i0, i1, j0, j1), _box(s2, b, i0, i1, j0, j1),
                 centres[b])
            o += 2
        if si == ns - 1:
            frac = n / ((a1 - a0) * (j1 - j0))
    out[o, k] = frac


@njit(cache=True)
def _put(out, o, k, n, t1, t2, centre):
    """Mean and std of a box from its valid count ``n`` and fixed-point sums ``t1``, ``t2``."""
    if n > 0:
        m = t1 / n
        var = t2 / n - m * m
        if var < 0.0:
            var = 0.0
        out[o, k] = centre + m / FIXED_POINT
        out[o + 1, k] = np.sqrt(var) / FIXED_POINT
    else:
        out[o, k] = np.nan
        out[o + 1, k] = np.nan


@njit(cache=True, parallel=True)
def _direct_points_kernel(x, valid, centres, scales, rows, cols, row_off, h_img, out):
    """:func:`_stats_one` at points, summing each box directly instead of integral images.

    The same integer sums over the same pixels, so the same output; cheaper
    when the points are few for the rows they span.
    """
    nb, h_loc, w_img = x.shape
    ns = scales.shape[0]
    for k in prange(rows.shape[0]):
        t1 = np.zeros(nb, np.int64)
        t2 = np.zeros(nb, np.int64)
        gi, j = rows[k], cols[k]
        o = 0
        frac = np.nan
        for si in range(ns):
            a0, a1, i0, i1, j0, j1 = _bounds(gi, j, scales[si] // 2, row_off, h_loc, h_img,
                                             w_img)
            n = 0
            t1[:] = 0
            t2[:] = 0
            for i in range(i0, i1):
                for jj in range(j0, j1):
                    if valid[i, jj]:
                        n += 1
                        for b in range(nb):
                            v = _fixed(x[b, i, jj], centres[b])
                            t1[b] += v
                            t2[b] += v * v
            for b in range(nb):
                _put(out, o, k, n, t1[b], t2[b], centres[b])
                o += 2
            if si == ns - 1:
                frac = n / ((a1 - a0) * (j1 - j0))
        out[o, k] = frac


@njit(cache=True, parallel=True)
def _stats_rows_kernel(cnt, s1, s2, centres, scales, row0, row1, row_off, h_img, out):
    for t in prange(row1 - row0):
        plane = out[:, t, :]
        for j in range(cnt.shape[1] - 1):
            _stats_one(cnt, s1, s2, centres, scales, row0 + t, j, row_off, h_img, plane, j)


@njit(cache=True, parallel=True)
def _stats_points_kernel(cnt, s1, s2, centres, scales, rows, cols, row_off, h_img, out):
    for k in prange(rows.shape[0]):
        _stats_one(cnt, s1, s2, centres, scales, rows[k], cols[k], row_off, h_img, out, k)


def n_stats(n_bands, scales):
    """Number of output planes: mean and std per band and scale, plus a valid fraction."""
    return 2 * n_bands * len(scales) + 1


def _check_halo(row0, row1, r, row_off, h, h_img):
    need0, need1 = max(0, row0 - r), min(h_img, row1 + r)
    if row0 < row1 and not (row_off <= need0 and need1 <= row_off + h):
        raise ValueError(f"rows {row0}:{row1} with boxes of radius {r} need image rows "
                         f"{need0}:{need1}, but rows {row_off}:{row_off + h} were given")


def _checked(bands_db, centres, scales):
    """Centres (float64) and scales (int64) as the kernels take them, or ValueError."""
    scales = _check_scales(scales)
    if len(bands_db) != len(centres):
        raise ValueError("give one centre (dB) per band")
    return np.asarray(centres, np.float64), np.asarray(scales, np.int64)


def _prepare(bands_db, centres, valid, scales, buffers):
    c, sc = _checked(bands_db, centres, scales)
    cnt, s1, s2 = integral_images(np.stack(bands_db), c, valid, buffers)
    return cnt, s1, s2, c, sc


def box_stats_rows(bands_db, centres, valid, scales, *, row0, row1, row_off=0, h_img=None,
                   out=None, buffers=None):
    """Valid-aware box means and stds for image rows ``row0:row1``.

    Parameters
    ----------
    bands_db : sequence of float arrays (h, w)
        Band values in dB of image rows ``row_off : row_off + h`` (all columns).
        They must include a halo of ``max(scales) // 2`` rows around
        ``row0:row1`` wherever the image has those rows.
    centres : sequence of float
        A fixed centre per band (dB) for the fixed-point sums.
    valid : bool array (h, w)
    scales : sequence of odd int
    row0, row1 : int
        Image rows to compute.
    row_off : int
        Image row of ``bands_db[b][0]``.
    h_img : int, optional
        Image height (defaults to ``row_off + h``); boxes are clipped to it.
    out : float32 array (n_stats, row1 - row0, w), optional
        Where to write the result.
    buffers : IntegralBuffers, optional
        Memory for the integral images, reused across calls.

    Returns
    -------
    float32 array (n_stats, row1 - row0, w)
        Per scale, per band: mean, std (dB); last plane: the fraction of valid
        pixels in the largest box (among its pixels inside the image).
    """
    cnt, s1, s2, c, sc = _prepare(bands_db, centres, valid, scales, buffers)
    h, w = np.shape(valid)
    h_img = row_off + h if h_img is None else int(h_img)
    _check_halo(row0, row1, int(sc.max()) // 2, row_off, h, h_img)
    shape = (n_stats(len(c), sc), row1 - row0, w)
    if out is None:
        out = np.empty(shape, np.float32)
    if out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {shape}, got {out.dtype} {out.shape}")
    _stats_rows_kernel(cnt, s1, s2, c, sc, int(row0), int(row1), int(row_off), h_img, out)
    return out


def box_stats_at(bands_db, centres, valid, scales, rows, cols, *, row_off=0, h_img=None,
                 method="auto", buffers=None):
    """Same statistics as :func:`box_stats_rows`, only at image points.

    ``rows`` are image rows; the given band rows must cover every point's
    largest box (within the image). Returns float32 (n_stats, N).

    ``method``: ``"integral"`` builds the integral images of the given rows,
    ``"direct"`` sums each point's boxes pixel by pixel; both give the same
    bits. ``"auto"`` sums directly when the boxes hold fewer pixels than
    :data:`DIRECT_SHARE` times the rows given (sparse training samples).
    ``buffers`` (:class:`IntegralBuffers`) is memory for the integral images.
    """
    c, sc = _checked(bands_db, centres, scales)
    h, w = np.shape(valid)
    h_img = row_off + h if h_img is None else int(h_img)
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    if rows.size:
        _check_halo(int(rows.min()), int(rows.max()) + 1, int(sc.max()) // 2, row_off, h, h_img)
        if cols.min() < 0 or cols.max() >= w:
            raise ValueError(f"cols must lie in 0..{w - 1}")
    if method not in ("auto", "integral", "direct"):
        raise ValueError(f"method must be 'auto', 'integral' or 'direct', got {method!r}")
    if method == "auto":
        boxes = rows.size * int((sc * sc).sum())
        method = "direct" if boxes < DIRECT_SHARE * h * w else "integral"
    out = np.empty((n_stats(len(c), sc), rows.size), np.float32)
    if method == "direct":
        x = np.ascontiguousarray(np.stack(bands_db), dtype=np.float32)
        if x.shape[1:] != (h, w):
            raise ValueError(f"bands must be (h, w) matching valid {(h, w)}, got {x.shape[1:]}")
        _direct_points_kernel(x, np.ascontiguousarray(valid, dtype=np.bool_), c, sc, rows,
                              cols, int(row_off), h_img, out)
        return out
    cnt, s1, s2 = integral_images(np.stack(bands_db), c, valid, buffers)
    _stats_points_kernel(cnt, s1, s2, c, sc, rows, cols, int(row_off), h_img, out)
    return out
