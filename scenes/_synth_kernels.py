"""Numba kernels of the synthetic scene generator (private).

Callers go through :mod:`scenes.synth`, which builds the coarse fields and the
per-polygon tables; these kernels only evaluate them pixel by pixel on the
80 m grid, in parallel over rows.

Per-pixel randomness (speckle, sub-pixel ice cakes, stray icebergs) comes from
a counter-based hash (splitmix64 of ``key + index``), not from a stateful
generator: every pixel's draw depends only on the seed-derived key and the
pixel's position, so the output is identical whatever the thread count.
Coarse fields are sampled bilinearly with cell centres at fine index
``(i + 0.5) * f - 0.5`` (for the 2 km grid, ``12 + 25 k``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import _jit  # noqa: F401  (a writable numba cache for the kernels below)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53

# surface codes of the per-pixel stage map (0..5 are the SOD classes)
GLACIER = 6  # iceberg / glacier ice: SOD has no class for it
LAND = 7
N_SURFACE = 8

# polygon geometry modes: how a polygon's pixels split into ice and water
MODE_WATER, MODE_BLOB, MODE_NETWORK, MODE_SOLID = 0, 1, 2, 3


@njit(cache=True)
def _uniform(key, idx):
    """Uniform in (0, 1) from (key, idx): one splitmix64 step."""
    z = key + np.uint64(idx) * _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    z = z ^ (z >> _S31)
    return (float(z >> _S11) + 0.5) * _INV53


@njit(cache=True)
def _normal(key, idx):
    """Standard normal (Box-Muller) from two hashed uniforms."""
    u1 = _uniform(key, 2 * idx)
    u2 = _uniform(key, 2 * idx + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True)
def _speckle(key, idx, looks):
    """Multilook intensity speckle, mean 1 (Wilson-Hilferty gamma(looks)/looks)."""
    c = 1.0 / (9.0 * looks)
    g = 1.0 - c + _normal(key, idx) * math.sqrt(c)
    if g < 0.05:
        g = 0.05
    return g * g * g


@njit(cache=True)
def _bilin(grid, f, y, x):
    """Bilinear sample of a coarse grid (factor ``f``) at fine pixel (y, x)."""
    h, w = grid.shape
    cy = (y + 0.5) / f - 0.5
    cx = (x + 0.5) / f - 0.5
    if cy < 0.0:
        cy = 0.0
    if cx < 0.0:
        cx = 0.0
    if cy > h - 1:
        cy = h - 1.0
    if cx > w - 1:
        cx = w - 1.0
    i0 = int(cy)
    j0 = int(cx)
    i1 = min(i0 + 1, h - 1)
    j1 = min(j0 + 1, w - 1)
    fy = cy - i0
    fx = cx - j0
    top = grid[i0, j0] * (1.0 - fx) + grid[i0, j1] * fx
    bot = grid[i1, j0] * (1.0 - fx) + grid[i1, j1] * fx
    return top * (1.0 - fy) + bot * fy


@njit(cache=True)
def _polygon(pid4, seeds, warp, fy, fx):
    """Polygon of fine position (fy, fx): nearest seed to the warped position.

    Candidates are the polygons of the 3 x 3 polygon-grid cells around it
    (the grid ids come from the same warp at cell centres), so interior
    pixels cost one lookup and edges are exact at 80 m.
    """
    hc, wc = pid4.shape
    ci = min(max(int(fy) // 4, 0), hc - 1)
    cj = min(max(int(fx) // 4, 0), wc - 1)
    first = pid4[ci, cj]
    i0, i1 = max(ci - 1, 0), min(ci + 1, hc - 1)
    j0, j1 = max(cj - 1, 0), min(cj + 1, wc - 1)
    same = True
    for i in range(i0, i1 + 1):
        for j in range(j0, j1 + 1):
            if pid4[i, j] != first:
                same = False
    if same:
        return first
    qy = fy + _bilin(warp[0], 4.0, fy, fx)
    qx = fx + _bilin(warp[1], 4.0, fy, fx)
    best = first
    bd = np.inf
    for i in range(i0, i1 + 1):
        for j in range(j0, j1 + 1):
            p = pid4[i, j]
            d = (qy - seeds[p, 0]) ** 2 + (qx - seeds[p, 1]) ** 2
            if d < bd:
                bd = d
                best = p
    return best


@njit(cache=True)
def _swath(sw, y, x):
    """(inside, across-track 0..1 from near range, along-track offset) of a pixel.

    ``sw`` = (cx, cy, cos, sin, half_across, half_along, near_sign).
    """
    dx = x - sw[0]
    dy = y - sw[1]
    v = dx * sw[2] + dy * sw[3]
    u = -dx * sw[3] + dy * sw[2]
    inside = abs(v) <= sw[4] and abs(u) <= sw[5]
    t = 0.5 + sw[6] * v / (2.0 * sw[4])
    return inside, t, u


@njit(cache=True)
def _incidence(t, ia_near, ia_far):
    # ground range grows faster than incidence angle: concave profile
    return ia_near + (ia_far - ia_near) * (1.25 * t - 0.25 * t * t)


@njit(parallel=True, cache=True)
def surface_kernel(pid4, seeds, warp, shift, land4, land_thr, dist4, edges, sw, ia_range,
                   mode, field_id, thr, lead_thr, cum, pstage, pform,
                   sic_lab, sod_lab, floe_lab,
                   f_fine, f_big, f_vast, f_type, key_white,
                   stage, form, spid, sic, sod, floe, ia, dist):
    """Per-pixel surface (stage, form, polygon), labels, incidence angle and distance zone.

    Labels come from the chart polygon of the pixel; the surface from the
    polygon at a slightly shifted position (``shift``: displacement field in
    pixels, factor 16), as real ice edges stray from the generalised chart.

    ``field_id`` picks the floe field of a polygon: 0 per-pixel white noise
    (cake and small floes, below the pixel size), 1 ``f_fine`` (factor 2,
    medium floes), 2 ``f_big`` (factor 6), 3 ``f_vast`` (factor 24);
    ``f_type`` (factor 32) places the partials; ``cum`` holds per polygon the cumulative partial
    fractions. Outside the swath ``ia`` and ``dist`` are NaN and the labels
    255; the surface itself exists everywhere (the radiometer sees it).
    """
    H, W = stage.shape
    n_edges = edges.shape[0]
    for y in prange(H):
        for x in range(W):
            lab = _polygon(pid4, seeds, warp, y, x)
            p = _polygon(pid4, seeds, warp, y + _bilin(shift[0], 16.0, y, x),
                         x + _bilin(shift[1], 16.0, y, x))
            spid[y, x] = p
            inside, t, _u = _swath(sw, y, x)
            on_land = _bilin(land4, 4.0, y, x) > land_thr
            if on_land:
                stage[y, x] = LAND
                form[y, x] = 0
            else:
                m = mode[p]
                water = m == MODE_WATER
                lead = False
                if m == MODE_BLOB or m == MODE_NETWORK:
                    fid = field_id[p]
                    if fid == 0:
                        g = _normal(key_white, y * W + x)
                    elif fid == 1:
                        g = _bilin(f_fine, 2.0, y, x)
                    elif fid == 2:
                        g = _bilin(f_big, 6.0, y, x)
                    else:
                        g = _bilin(f_vast, 24.0, y, x)
                    if m == MODE_NETWORK:
                        g = abs(g)
                        lead = g < lead_thr[p]
                    water = g < thr[p]
                if water:
                    stage[y, x] = 0
                    form[y, x] = 0
                else:
                    q = 0.5 * math.erfc(-_bilin(f_type, 32.0, y, x) * 0.7071067811865476)
                    k = 0
                    if q >= cum[p, 0]:
                        k = 1
                        if q >= cum[p, 1]:
                            k = 2
                    stage[y, x] = 1 if lead else pstage[p, k]
                    form[y, x] = pform[p, k]
            if inside and not on_land:
                sic[y, x] = sic_lab[lab]
                sod[y, x] = sod_lab[lab]
                floe[y, x] = floe_lab[lab]
            else:
                sic[y, x] = 255
                sod[y, x] = 255
                floe[y, x] = 255
            if inside:
                ia[y, x] = _incidence(t, ia_range[0], ia_range[1])
                if on_land:
                    dist[y, x] = 0.0
                else:
                    d = _bilin(dist4, 4.0, y, x)
                    z = 1
                    while z <= n_edges and edges[z - 1] < d:
                        z += 1
                    dist[y, x] = z
            else:
                ia[y, x] = np.nan
                dist[y, x] = np.nan


@njit(parallel=True, cache=True)
def composition_kernel(stage, n_lines, n_samples, factor):
    """Fraction of each surface code in every 2 km cell (``factor`` x ``factor`` pixels)."""
    out = np.zeros((n_lines, n_samples, N_SURFACE), np.float32)
    inv = 1.0 / (factor * factor)
    for i in prange(n_lines):
        counts = np.zeros((n_samples, N_SURFACE), np.int64)
        for y in range(i * factor, (i + 1) * factor):
            for x in range(n_samples * factor):
                counts[x // factor, stage[y, x]] += 1
        for j in range(n_samples):
            for c in range(N_SURFACE):
                out[i, j, c] = counts[j, c] * inv
    return out


@njit(parallel=True, cache=True)
def sar_kernel(stage, form, spid, sw, ia_range, wind2km, dir2km, gust, tex, ridge, ridge_on,
               land_tex, hh0, hv0, hh_slope, hv_slope, tex_db, ridge_hh, ridge_hv, form_hh,
               poly_dhh, poly_dhv, poly_shelter, poly_cake, poly_stage, water_par, melt, nesz_par, sub_edges,
               sub_bias, scallop, looks, keys, p_berg, hh, hv):
    """C-band HH/HV sigma0 in dB per pixel (NaN outside the swath).

    Mean backscatter per surface code at 34 degrees with incidence slopes,
    texture and ridge networks on ice, wind-driven open water (cake-ice
    polygons, ``poly_cake`` = ice fraction, mix ice and water below the pixel
    size), then the
    measurement: ``(sigma0 + NESZ) * speckle - NESZ_estimate`` in linear
    units, so that the thermal-noise residue (sub-swath banding, scalloping)
    shows where the signal is near the noise floor.
    """
    H, W = stage.shape
    n_sub = sub_bias.shape[0]
    floor = 10.0 ** (-4.0)
    for y in prange(H):
        for x in range(W):
            inside, t, u = _swath(sw, y, x)
            if not inside:
                hh[y, x] = np.nan
                hv[y, x] = np.nan
                continue
            theta = _incidence(t, ia_range[0], ia_range[1])
            dth = theta - 34.0
            s = stage[y, x]
            idx = y * W + x
            if s == 0:
                if _uniform(keys[2], idx) < p_berg:
                    s = GLACIER
            p = spid[y, x]
            cake = poly_cake[p]
            w_hh = 0.0
            w_hv = 0.0
            if s == 0 or cake > 0.0:
                wind = _bilin(wind2km, 25.0, y, x) * poly_shelter[p]
                wind *= 1.0 + water_par[6] * _bilin(gust, 40.0, y, x)
                if wind < 0.5:
                    wind = 0.5
                lw = math.log10(wind / 7.0)
                w_hh = water_par[0] + water_par[1] * lw + water_par[2] * dth
                w_hh += water_par[7] * _bilin(dir2km, 25.0, y, x)
                w_hv = water_par[3] + water_par[4] * lw + water_par[5] * dth
            if s == LAND:
                lt = _bilin(land_tex, 6.0, y, x)
                a_hh = hh0[s] + hh_slope[s] * dth + tex_db[s] * lt + 0.6 * _bilin(tex, 2.0, y, x)
                a_hv = hv0[s] + hv_slope[s] * dth + 0.8 * tex_db[s] * lt
            elif s == 0 and cake == 0.0:
                a_hh = w_hh
                a_hv = w_hv
            else:
                f = form[y, x]
                if s == 0:  # water pixel of a cake-ice polygon: the ice is sub-pixel
                    s = poly_stage[p]
                    f = 1
                xt = _bilin(tex, 2.0, y, x)
                a_hh = hh0[s] + hh_slope[s] * dth + tex_db[s] * xt + form_hh[f]
                a_hv = hv0[s] + hv_slope[s] * dth + 0.7 * tex_db[s] * xt + 0.5 * form_hh[f]
                if s != GLACIER:
                    a_hh += poly_dhh[p]
                    a_hv += poly_dhv[p]
                if ridge_hh[s] > 0.0:
                    r = 1.0 - abs(_bilin(ridge, 5.0, y, x)) / 0.2
                    if r > 0.0:
                        on = _bilin(ridge_on, 16.0, y, x)
                        if on > 0.0:
                            r *= min(on * 2.0, 1.0)
                            a_hh += ridge_hh[s] * r
                            a_hv += ridge_hv[s] * r
                if melt > 0.0 and s != GLACIER:
                    # wet snow hides the ice types: contrast shrinks toward one level
                    a_hh = a_hh + melt * 0.6 * (-18.0 - a_hh)
                    a_hv = a_hv + melt * 0.6 * (-26.0 - a_hv)
                if cake > 0.0:
                    c = cake + 0.15 * _normal(keys[2], idx + H * W)
                    c = min(max(c, 0.02), 1.0)
                    a_hh = 10.0 * math.log10(c * 10.0 ** (0.1 * a_hh) + (1.0 - c) * 10.0 ** (0.1 * w_hh))
                    a_hv = 10.0 * math.log10(c * 10.0 ** (0.1 * a_hv) + (1.0 - c) * 10.0 ** (0.1 * w_hv))
            # thermal noise: parabolic per sub-swath, scalloping along track
            k = 0
            while k < n_sub - 1 and t > sub_edges[k + 1]:
                k += 1
            tl = (t - sub_edges[k]) / (sub_edges[k + 1] - sub_edges[k])
            nesz = 10.0 ** (0.1 * (nesz_par[0] + nesz_par[1] * k + nesz_par[2] * (2.0 * tl - 1.0) ** 2))
            est = nesz * (1.0 + sub_bias[k] + scallop[0] * math.cos(2.0 * math.pi * u / scallop[1]
                                                                   + scallop[2] + 1.7 * k))
            m_hh = (10.0 ** (0.1 * a_hh) + nesz) * _speckle(keys[0], idx, looks) - est
            m_hv = (10.0 ** (0.1 * a_hv) + nesz) * _speckle(keys[1], idx, looks) - est
            hh[y, x] = 10.0 * math.log10(max(m_hh, 0.0) + floor)
            hv[y, x] = 10.0 * math.log10(max(m_hv, 0.0) + floor)
