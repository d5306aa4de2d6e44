"""Numba kernels for sliding-window GLCM (Haralick) texture.

Private: callers go through :mod:`featurize.texture`, which validates the
inputs, pads the image and allocates the output. The kernels only fill it.

How the sliding update works
----------------------------
Every co-occurrence matrix is symmetric (skimage ``symmetric=True``), so a
pixel pair ``(a, b)`` adds 1 to cells ``(a, b)`` and ``(b, a)`` (2 to the
diagonal cell when ``a == b``). We store one count ``u`` per unordered pair
of levels (the triangle: the ``L`` diagonal cells first, then the pairs
``lo < hi``) and keep, per matrix, integer running sums from which every
property follows exactly:

* ``s = sum(u**2) + sum_diag(u**2)``: the symmetric matrix has
  ``sum(c**2) = 2 s`` (ASM, energy);
* ``e = sum(u log u)`` in fixed point (``ENT_SCALE``): the symmetric matrix
  has ``sum(c log c) = 2 e + 2 log(2) n_diag`` (entropy);
* the "linear" pair sums ``|a-b|``, ``1/(1+(a-b)**2)`` (fixed point),
  ``a+b``, ``a**2+b**2``, ``2ab`` and ``[a == b]``, which give dissimilarity,
  homogeneity, contrast, mean, variance, std and correlation.

The counts and ``s``, ``e`` are updated as the window moves one column: the
pairs whose first pixel sits in the column that leaves are removed and those
whose first pixel sits in the column that enters are added, O(window) per
matrix and pixel. Each thread first turns its chunk of rows into pair codes
(uint16 triangle index of every pixel pair, column-major), so the hot loop
is a load, a count update and a table look-up per pair. The counts are
only kept when a requested property needs them (ASM, energy, entropy).

The linear sums need no counts: they come from per-column sums that slide
down the rows of a chunk and across the columns of a row, O(1) per pixel.
The properties are then evaluated for a block of pixels of a row at a time,
in loops the compiler vectorises.

Integer (and fixed-point) accumulators make the result independent of the
path, so :func:`glcm_points_kernel`, which builds each window from scratch,
gives bit-identical values.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from scenes import _jit  # noqa: F401  (a writable numba cache for the kernels below)

#: Fixed-point scale of the ``u log u`` table and of the homogeneity weights.
ENT_SCALE = 2.0 ** 32
HOM_SCALE = 2.0 ** 32
LOG2 = math.log(2.0)

# slots of the linear pair sums
_DIS, _HOM, _S1, _S2, _S11, _ND = 0, 1, 2, 3, 4, 5
N_LIN = 6
#: Column-sum slots per offset (N_LIN padded to one 512-bit vector of int64).
N_SLOT = 8
# Row stride pad of the per-block buffers: strides that are not a multiple of
# 4 KiB keep the many streams written per pixel off the same L1 cache sets.
BLOCK_PAD = 24

_ASM, _ENERGY, _ENTROPY = 3, 4, 9
#: Property name -> code understood by the kernels (skimage's names).
PROP_CODES = {
    "contrast": 0,
    "dissimilarity": 1,
    "homogeneity": 2,
    "ASM": 3,
    "energy": 4,
    "correlation": 5,
    "mean": 6,
    "variance": 7,
    "std": 8,
    "entropy": 9,
}


def ulogu_table(max_count):
    """``F[u] = round(u log u * ENT_SCALE)`` for ``u = 0 .. max_count + 1`` (int64)."""
    u = np.arange(max_count + 2, dtype=np.float64)
    f = u * np.log(np.maximum(u, 1.0))
    return np.rint(f * ENT_SCALE).astype(np.int64)


def ulogu_delta_table(max_count):
    """``DF[u] = F[u+1] - F[u]`` (see :func:`ulogu_table`).

    Differences of one rounded table, so any sequence of +1/-1 updates sums to
    exactly ``sum F[u]`` over the cells, as building a window from scratch does.
    """
    return np.diff(ulogu_table(max_count))


def homogeneity_table(levels):
    """``HT[d] = round(HOM_SCALE / (1 + d**2))`` for ``d = |a - b|``."""
    d = np.arange(levels, dtype=np.float64)
    return np.rint(HOM_SCALE / (1.0 + d * d)).astype(np.int64)


_JIT = dict(cache=True, error_model="numpy")


@njit(**_JIT)
def _ix(i):
    # unsigned indices spare numba's negative-index wraparound in hot loops
    return np.uint64(i)


@njit(**_JIT)
def _code(a, b, levels):
    """Triangle index of the unordered level pair (a, b): ``a`` if ``a == b``,
    else ``levels`` + the rank of ``(lo, hi)`` among the pairs ``lo < hi``."""
    lo = min(a, b)
    hi = a + b - lo
    off = levels + (lo * (2 * levels - lo - 1)) // 2 + hi - lo - 1
    return off if lo != hi else lo


@njit(**_JIT)
def _add_pair(q, base, levels, counts, dft):
    """Count one pair of code ``q`` in the matrix at ``base``; return its change of (s, e).

    ``s`` = sum(u**2) + sum_diag(u**2), ``e`` = fixed-point sum(u log u).
    """
    idx = _ix(base + q)
    u = np.int64(counts[idx])
    counts[idx] = u + 1
    return (2 * u + 1) << np.int64(q < levels), dft[_ix(u)]


@njit(**_JIT)
def _remove_pair(q, base, levels, counts, dft):
    """Uncount one pair of code ``q``; return its change of (s, e)."""
    idx = _ix(base + q)
    u = np.int64(counts[idx]) - 1
    counts[idx] = u
    return -((2 * u + 1) << np.int64(q < levels)), -dft[_ix(u)]


@njit(**_JIT)
def _add_codes(codes, p0, n, base, levels, counts, dft):
    """Count the ``n`` pairs ``codes[p0:p0 + n]``; return the change of (s, e)."""
    s = np.int64(0)
    e = np.int64(0)
    for j in range(n):
        ds, de = _add_pair(np.int64(codes[_ix(p0 + j)]), base, levels, counts, dft)
        s += ds
        e += de
    return s, e


@njit(**_JIT)
def _slide_codes(codes, pout, pin, n, base, levels, counts, dft):
    """Uncount ``codes[pout:pout + n]``, count ``codes[pin:pin + n]``; return (ds, de)."""
    s = np.int64(0)
    e = np.int64(0)
    for j in range(n):
        ds, de = _remove_pair(np.int64(codes[_ix(pout + j)]), base, levels, counts, dft)
        s += ds
        e += de
        ds, de = _add_pair(np.int64(codes[_ix(pin + j)]), base, levels, counts, dft)
        s += ds
        e += de
    return s, e


@njit(**_JIT)
def _clear_codes(codes, p0, n, base, counts):
    """Zero the cells of the pairs ``codes[p0:p0 + n]`` (end of a window's life)."""
    for j in range(n):
        counts[_ix(base + np.int64(codes[_ix(p0 + j)]))] = 0


@njit(**_JIT)
def _pair_linear(a, b, ht):
    """The six linear pair values of the pair (a, b), in slot order."""
    d = a - b
    ad = abs(d)
    return ad, ht[_ix(ad)], a + b, a * a + b * b, 2 * a * b, np.int64(d == 0)


@njit(**_JIT)
def _row_linear(flat, pout, pin, ncol, dd, ht, cs, cbase):
    """Column sums ``cs[cbase + x * N_SLOT + f]``: add the pairs starting on flat row
    ``pin`` and, unless ``pout < 0``, remove those starting on row ``pout``."""
    for x in range(ncol):
        i0, i1, i2, i3, i4, i5 = _pair_linear(np.int64(flat[_ix(pin + x)]),
                                              np.int64(flat[_ix(pin + x + dd)]), ht)
        if pout >= 0:
            o0, o1, o2, o3, o4, o5 = _pair_linear(np.int64(flat[_ix(pout + x)]),
                                                  np.int64(flat[_ix(pout + x + dd)]), ht)
            i0 -= o0
            i1 -= o1
            i2 -= o2
            i3 -= o3
            i4 -= o4
            i5 -= o5
        b = cbase + x * N_SLOT
        cs[_ix(b)] += i0
        cs[_ix(b + 1)] += i1
        cs[_ix(b + 2)] += i2
        cs[_ix(b + 3)] += i3
        cs[_ix(b + 4)] += i4
        cs[_ix(b + 5)] += i5


@njit(**_JIT)
def _finalize_block(nb, stride, s_blk, e_blk, w_blk, geo, log_n, weight, props, acc):
    """Properties of ``nb`` pixels, weighted-mean over the offsets, into ``acc``.

    Per offset ``k`` and pixel ``c``: ``s_blk[k * stride + c]``,
    ``e_blk[k * stride + c]`` and the linear sums
    ``w_blk[(k * N_LIN + f) * stride + c]``; ``acc[p * stride + c]`` receives
    property ``props[p]``. ``geo[k]`` holds (pairs, n = 2 pairs, 1/pairs,
    1/n, 1/n**2). Simple loops over ``c``, so they vectorise.
    """
    for p in range(props.size):
        for c in range(nb):
            acc[_ix(p * stride + c)] = 0.0
    for k in range(weight.size):
        wk = weight[k]
        n = np.int64(geo[k, 1])
        inv_p = geo[k, 2]
        inv_n = geo[k, 3]
        inv_n2 = geo[k, 4]
        sb = k * stride
        wb = k * N_LIN * stride
        dis = wb + _DIS * stride
        hom = wb + _HOM * stride
        s1 = wb + _S1 * stride
        s2 = wb + _S2 * stride
        s11 = wb + _S11 * stride
        nd = wb + _ND * stride
        for p in range(props.size):
            code = props[p]
            ab = p * stride
            if code == 0:
                f = wk * inv_p
                for c in range(nb):
                    acc[_ix(ab + c)] += f * (w_blk[_ix(s2 + c)] - w_blk[_ix(s11 + c)])
            elif code == 1:
                f = wk * inv_p
                for c in range(nb):
                    acc[_ix(ab + c)] += f * w_blk[_ix(dis + c)]
            elif code == 2:
                f = wk * inv_p / HOM_SCALE
                for c in range(nb):
                    acc[_ix(ab + c)] += f * w_blk[_ix(hom + c)]
            elif code == 3:
                f = wk * 2.0 * inv_n2
                for c in range(nb):
                    acc[_ix(ab + c)] += f * s_blk[_ix(sb + c)]
            elif code == 4:
                for c in range(nb):
                    acc[_ix(ab + c)] += wk * math.sqrt(2.0 * inv_n2 * s_blk[_ix(sb + c)])
            elif code == 5:
                for c in range(nb):
                    m1 = w_blk[_ix(s1 + c)]
                    # n**2 variance and n**2 covariance, exact in integers
                    vnum = n * w_blk[_ix(s2 + c)] - m1 * m1
                    cnum = n * w_blk[_ix(s11 + c)] - m1 * m1
                    r = np.float64(cnum) / np.float64(vnum)
                    # skimage: correlation is 1 where a marginal std is 0
                    acc[_ix(ab + c)] += wk * (r if vnum > 0 else 1.0)
            elif code == 6:
                f = wk * inv_n
                for c in range(nb):
                    acc[_ix(ab + c)] += f * w_blk[_ix(s1 + c)]
            elif code == 7 or code == 8:
                for c in range(nb):
                    m1 = w_blk[_ix(s1 + c)]
                    var = (n * w_blk[_ix(s2 + c)] - m1 * m1) * inv_n2
                    acc[_ix(ab + c)] += wk * (var if code == 7 else math.sqrt(var))
            else:
                f = 2.0 / ENT_SCALE
                g = 2.0 * LOG2
                for c in range(nb):
                    acc[_ix(ab + c)] += wk * (log_n[k] - (f * e_blk[_ix(sb + c)]
                                                          + g * w_blk[_ix(nd + c)]) * inv_n)


@njit(**_JIT)
def _geometry(window, odr, odc, wp, props):
    """Per-offset window geometry, and whether any property needs the counts.

    Returns ``ylo`` (first pair row in the window), ``nrows``/``ncols`` (pair
    rows/columns), ``dd`` (flat step to the partner pixel), ``geo`` (see
    :func:`_finalize_block`), ``log_n`` and ``need_counts``.
    """
    n_off = odr.size
    ylo = np.empty(n_off, np.int64)
    nrows = np.empty(n_off, np.int64)
    ncols = np.empty(n_off, np.int64)
    dd = np.empty(n_off, np.int64)
    geo = np.empty((n_off, 5), np.float64)
    log_n = np.empty(n_off, np.float64)
    for k in range(n_off):
        ylo[k] = max(0, -odr[k])
        nrows[k] = window - abs(odr[k])
        ncols[k] = window - odc[k]
        dd[k] = odr[k] * wp + odc[k]
        pk = nrows[k] * ncols[k]
        geo[k, 0] = pk
        geo[k, 1] = 2 * pk
        geo[k, 2] = 1.0 / pk
        geo[k, 3] = 1.0 / (2 * pk)
        geo[k, 4] = geo[k, 3] * geo[k, 3]
        log_n[k] = math.log(2.0 * pk)
    need_counts = False
    for p in range(props.size):
        c = props[p]
        need_counts |= c == _ASM or c == _ENERGY or c == _ENTROPY
    return ylo, nrows, ncols, dd, geo, log_n, need_counts


@njit(**_JIT)
def _fill_codes(flat, wp, levels, k, dd, y0, y1, r0, hc, ncol, codes):
    """Pair codes of offset ``k`` for first-pixel rows [y0, y1), column-major.

    ``codes[(k * wp + x) * hc + (y - r0)]``; columns outer, so both image reads
    walk columns whose cache lines stay hot for the next ``x``.
    """
    for x in range(ncol):
        cb = (k * wp + x) * hc - r0
        for y in range(y0, y1):
            p = y * wp + x
            codes[_ix(cb + y)] = _code(np.int64(flat[_ix(p)]), np.int64(flat[_ix(p + dd)]),
                                       levels)


@njit(**_JIT)
def _rows_chunk(flat, wp, r0, r1, n_cols, plane, window, levels, odc, weight, props, dft, ht,
                ylo, nrows, ncols, dd, geo, log_n, need_counts, strip, block, oflat):
    """Output rows ``r0:r1`` of :func:`glcm_rows_kernel` (one thread's chunk).

    The chunk is walked in strips of ``strip`` columns, rows inside a strip,
    so the pair codes and column sums a row reads stay in the L2 cache for
    the next row; each (row, strip) starts its window from scratch. The
    properties are evaluated ``block`` pixels at a time.
    """
    bstride = block + BLOCK_PAD
    n_off = odc.size
    n_props = props.size
    ntri = levels * (levels + 1) // 2
    # code rows r0 .. r1 + window - 2 cover every window of the chunk
    hc = r1 - r0 + window - 1
    counts = np.zeros(n_off * ntri if need_counts else 1, np.int32)
    codes = np.empty(n_off * wp * hc if need_counts else 1, np.uint16)
    # column sums of one strip: pair columns x0 .. x0 + strip + window - 2
    scs = strip + window - 1
    cs = np.zeros(n_off * scs * N_SLOT, np.int64)
    lw = np.zeros(n_off * N_SLOT, np.int64)
    s_k = np.zeros(n_off, np.int64)
    e_k = np.zeros(n_off, np.int64)
    s_blk = np.zeros(n_off * bstride, np.int64)
    e_blk = np.zeros(n_off * bstride, np.int64)
    w_blk = np.zeros(n_off * N_LIN * bstride, np.int64)
    acc = np.zeros(n_props * bstride, np.float64)
    if need_counts:
        for k in range(n_off):
            _fill_codes(flat, wp, levels, k, dd[k], r0 + ylo[k],
                        r1 - 1 + ylo[k] + nrows[k], r0, hc, wp - odc[k], codes)
    for x0 in range(0, n_cols, strip):
        x1 = min(n_cols, x0 + strip)
        for r in range(r0, r1):
            for k in range(n_off):
                cbase = k * scs * N_SLOT - x0 * N_SLOT
                ytop = r + ylo[k]
                npx = x1 - x0 + ncols[k] - 1
                # column sums of the linear pair values over the window's rows
                if r == r0:
                    for i in range(cbase + x0 * N_SLOT, cbase + (x0 + npx) * N_SLOT):
                        cs[_ix(i)] = 0
                    for y in range(ytop, ytop + nrows[k]):
                        _row_linear(flat, -1, y * wp + x0, npx, dd[k], ht, cs,
                                    cbase + x0 * N_SLOT)
                else:
                    _row_linear(flat, (ytop - 1) * wp + x0, (ytop + nrows[k] - 1) * wp + x0,
                                npx, dd[k], ht, cs, cbase + x0 * N_SLOT)
                # the strip's first window, from scratch
                s = np.int64(0)
                e = np.int64(0)
                for f in range(N_SLOT):
                    lw[k * N_SLOT + f] = 0
                for x in range(x0, x0 + ncols[k]):
                    if need_counts:
                        ds, de = _add_codes(codes, (k * wp + x) * hc + ytop - r0, nrows[k],
                                            k * ntri, levels, counts, dft)
                        s += ds
                        e += de
                    for f in range(N_SLOT):
                        lw[k * N_SLOT + f] += cs[_ix(cbase + x * N_SLOT + f)]
                s_k[k] = s
                e_k[k] = e
            for c0 in range(x0, x1, block):
                nb = min(block, x1 - c0)
                for c in range(c0, c0 + nb):
                    j = c - c0
                    for k in range(n_off):
                        if c > x0:
                            xout = c - 1
                            xin = xout + ncols[k]
                            if need_counts:
                                yb = r + ylo[k] - r0
                                ds, de = _slide_codes(codes, (k * wp + xout) * hc + yb,
                                                      (k * wp + xin) * hc + yb, nrows[k],
                                                      k * ntri, levels, counts, dft)
                                s_k[k] += ds
                                e_k[k] += de
                            cbase = k * scs * N_SLOT - x0 * N_SLOT
                            bo = cbase + xout * N_SLOT
                            bi = cbase + xin * N_SLOT
                            for f in range(N_SLOT):
                                lw[k * N_SLOT + f] += cs[_ix(bi + f)] - cs[_ix(bo + f)]
                        s_blk[k * bstride + j] = s_k[k]
                        e_blk[k * bstride + j] = e_k[k]
                        for f in range(N_LIN):
                            w_blk[_ix((k * N_LIN + f) * bstride + j)] = lw[k * N_SLOT + f]
                _finalize_block(nb, bstride, s_blk, e_blk, w_blk, geo, log_n, weight, props,
                                acc)
                for p in range(n_props):
                    ob = p * plane + r * n_cols + c0
                    for j in range(nb):
                        oflat[_ix(ob + j)] = acc[_ix(p * bstride + j)]
            # zero the counts of the strip's last window for the next row
            if need_counts:
                for k in range(n_off):
                    yb = r + ylo[k] - r0
                    for x in range(x1 - 1, x1 - 1 + ncols[k]):
                        _clear_codes(codes, (k * wp + x) * hc + yb, nrows[k], k * ntri, counts)


@njit(parallel=True, **_JIT)
def glcm_rows_kernel(img, window, levels, odr, odc, weight, props, dft, ht,
                     chunk_bounds, strip, block, out):
    """Fill ``out[p, r, c]`` for every pixel of the unpadded image.

    Parameters
    ----------
    img : uint8 (H + window - 1, W + window - 1), C-contiguous
        Image padded by ``window // 2`` on each side.
    odr, odc : int64 (K,)
        Unique pixel-pair offsets, normalised to ``odc > 0`` or
        (``odc == 0`` and ``odr > 0``).
    weight : float64 (K,)
        Share of each offset in the mean over distances and angles.
    props : int64 (P,)
        Property codes (:data:`PROP_CODES`).
    dft, ht : int64
        Tables from :func:`ulogu_delta_table` and :func:`homogeneity_table`.
    chunk_bounds : int64 (n_chunks + 1,)
        Output rows ``[b[i], b[i+1])`` are one chunk, run by one thread.
    strip, block : int
        Columns per cache strip and per vectorised property block.
    out : float32 (P, H, W), C-contiguous
    """
    n_cols = out.shape[2]
    wp = img.shape[1]
    flat = img.reshape(-1)
    oflat = out.reshape(-1)
    plane = out.shape[1] * n_cols
    ylo, nrows, ncols, dd, geo, log_n, need_counts = _geometry(window, odr, odc, wp, props)
    for ch in prange(chunk_bounds.size - 1):
        _rows_chunk(flat, wp, chunk_bounds[ch], chunk_bounds[ch + 1], n_cols, plane, window,
                    levels, odc, weight, props, dft, ht, ylo, nrows, ncols, dd, geo, log_n,
                    need_counts, strip, block, oflat)


@njit(**_JIT)
def _window_at(flat, wp, r, c, levels, ntri, k, ylo, nrows, ncols, dd, ht, ftab,
               buf, counts, s_k, e_k, lin):
    """Sums of offset ``k`` for the window whose padded top-left is (r, c).

    Three passes over the window's pairs: codes and linear sums (row-major,
    vectorised), counting, then reading and zeroing the touched cells, which
    gives ``s`` and ``e`` without a dependent update per pair.
    """
    n = 0
    l0 = l1 = l2 = l3 = l4 = l5 = np.int64(0)
    for y in range(r + ylo, r + ylo + nrows):
        p0 = y * wp + c
        for x in range(ncols):
            a = np.int64(flat[_ix(p0 + x)])
            b = np.int64(flat[_ix(p0 + x + dd)])
            buf[_ix(n + x)] = _code(a, b, levels)
            v0, v1, v2, v3, v4, v5 = _pair_linear(a, b, ht)
            l0 += v0
            l1 += v1
            l2 += v2
            l3 += v3
            l4 += v4
            l5 += v5
        n += ncols
    lb = k * N_LIN
    lin[lb + _DIS] = l0
    lin[lb + _HOM] = l1
    lin[lb + _S1] = l2
    lin[lb + _S2] = l3
    lin[lb + _S11] = l4
    lin[lb + _ND] = l5
    base = k * ntri
    for j in range(n):
        counts[_ix(base + np.int64(buf[_ix(j)]))] += 1
    s = np.int64(0)
    e = np.int64(0)
    for j in range(n):
        q = np.int64(buf[_ix(j)])
        idx = _ix(base + q)
        u = np.int64(counts[idx])
        counts[idx] = 0
        # a cell's later pairs read 0 and add nothing
        s += (u * u) << np.int64(q < levels)
        e += ftab[_ix(u)]
    s_k[k] = s
    e_k[k] = e


@njit(parallel=True, **_JIT)
def glcm_points_kernel(img, rows, cols, window, levels, odr, odc, weight, props,
                       ftab, ht, chunk_bounds, out):
    """Fill ``out[p, i]`` for the window centred on pixel ``(rows[i], cols[i])``.

    Same arguments as :func:`glcm_rows_kernel` (``img`` padded the same way)
    except ``ftab`` (:func:`ulogu_table`). Each window is built from scratch
    into the same integer sums and evaluated by the same code, so values equal
    the sliding kernel's bit for bit. ``out`` is float32 (P, N) and
    ``chunk_bounds`` splits the points.
    """
    n_off = odr.size
    wp = img.shape[1]
    ntri = levels * (levels + 1) // 2
    flat = img.reshape(-1)
    ylo, nrows, ncols, dd, geo, log_n, _need = _geometry(window, odr, odc, wp, props)
    for ch in prange(chunk_bounds.size - 1):
        counts = np.zeros(n_off * ntri, np.int32)
        buf = np.empty(window * window, np.uint16)
        lin = np.zeros(n_off * N_LIN, np.int64)
        s_k = np.zeros(n_off, np.int64)
        e_k = np.zeros(n_off, np.int64)
        acc = np.zeros(props.size, np.float64)
        for i in range(chunk_bounds[ch], chunk_bounds[ch + 1]):
            # the padded window's top-left corner is the pixel's own position
            for k in range(n_off):
                _window_at(flat, wp, rows[i], cols[i], levels, ntri, k, ylo[k], nrows[k],
                           ncols[k], dd[k], ht, ftab, buf, counts, s_k, e_k, lin)
            _finalize_block(1, 1, s_k, e_k, lin, geo, log_n, weight, props, acc)
            for p in range(props.size):
                out[p, i] = acc[p]
