"""AMSR2 and ERA5 fields (2 km grid) brought onto the 80 m SAR grid.

The 2 km cell ``k`` covers SAR pixels ``25 k .. 25 k + 24``, so its centre is
SAR index ``12 + 25 k``. We interpolate bilinearly between cell centres (the
starter pack used nearest neighbour); beyond the first and last centres the
value is clamped to the edge cell. The interpolation is separable and can be
evaluated for any block of rows (:func:`bilinear_rows`) or any set of points
(:func:`bilinear_points`) with the same arithmetic, so block and point
outputs are bit-identical and the full SAR grid is never needed.

Derived fields are computed in physical units on the 2 km grid, then
interpolated like the raw ones:

- ``amsr_pr_18_7``, ``amsr_pr_36_5``: polarisation ratios ``(V - H) / (V + H)``;
  high over open water, low over ice (the basis of NASA-Team concentration).
- ``amsr_gr_36_18``: gradient ratio ``(36.5V - 18.7V) / (36.5V + 18.7V)``;
  separates first-year from multi-year ice.
- ``amsr_gr_89_18``: the same with 89 GHz V.
- ``amsr_pd_89``: 89 GHz polarisation difference ``V - H`` (K); the
  high-resolution ice-concentration signal of the ASI algorithm.
- ``era5_wind``: 10 m wind speed (m/s), which drives open-water backscatter.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from scenes import _jit  # noqa: F401  (a writable numba cache for the kernels below)
from scenes.contract import AMSR2_VARS, ERA5_VARS, GRID2KM_FACTOR, to_physical

#: SAR index of the centre of 2 km cell 0.
CELL_CENTRE_OFFSET = GRID2KM_FACTOR // 2

_AMSR_RAW = tuple(f"amsr_{v}" for v in AMSR2_VARS)
_AMSR_DERIVED = ("amsr_pr_18_7", "amsr_pr_36_5", "amsr_gr_36_18", "amsr_gr_89_18",
                 "amsr_pd_89")
#: Feature names of the AMSR2 group, in output order.
AMSR2_FEATURES = _AMSR_RAW + _AMSR_DERIVED
_ERA5_SHORT = {"u10m_rotated": "era5_u10m", "v10m_rotated": "era5_v10m"}
#: Feature names of the ERA5 group, in output order.
ERA5_FEATURES = tuple(_ERA5_SHORT.get(v, f"era5_{v}") for v in ERA5_VARS) + ("era5_wind",)
#: The ERA5 variables each ERA5 feature is computed from.
ERA5_SOURCES = {**{_ERA5_SHORT.get(v, f"era5_{v}"): (v,) for v in ERA5_VARS},
                "era5_wind": ("u10m_rotated", "v10m_rotated")}


def _ratio(a, b):
    return (a - b) / (a + b)


def grid_fields(ds, *, amsr2=True, era5=True, era5_features=ERA5_FEATURES):
    """Physical and derived 2 km fields of a scene.

    Parameters
    ----------
    ds : xarray.Dataset
    amsr2, era5 : bool
        Include the AMSR2 and ERA5 features.
    era5_features : sequence of str
        The ERA5 features to include (names of ``ERA5_FEATURES``); only their
        source variables are read.

    Returns
    -------
    names : list of str
        ``AMSR2_FEATURES`` and/or the chosen ``ERA5_FEATURES``, in that order.
    fields : float64 array (len(names), n_lines_2km, n_samples_2km)
    """
    out = {}
    if amsr2:
        tb = {v: to_physical(v, ds[v].values).astype(np.float64) for v in AMSR2_VARS}
        for v in AMSR2_VARS:
            out[f"amsr_{v}"] = tb[v]
        out["amsr_pr_18_7"] = _ratio(tb["btemp_18_7v"], tb["btemp_18_7h"])
        out["amsr_pr_36_5"] = _ratio(tb["btemp_36_5v"], tb["btemp_36_5h"])
        out["amsr_gr_36_18"] = _ratio(tb["btemp_36_5v"], tb["btemp_18_7v"])
        out["amsr_gr_89_18"] = _ratio(tb["btemp_89_0v"], tb["btemp_18_7v"])
        out["amsr_pd_89"] = tb["btemp_89_0v"] - tb["btemp_89_0h"]
    era5_names = []
    if era5:
        chosen = set(era5_features)
        unknown = sorted(chosen - set(ERA5_FEATURES))
        if unknown:
            raise ValueError(f"unknown ERA5 features {unknown}; choose from {ERA5_FEATURES}")
        era5_names = [n for n in ERA5_FEATURES if n in chosen]
        need = dict.fromkeys(v for n in era5_names for v in ERA5_SOURCES[n])
        phys = {v: to_physical(v, ds[v].values).astype(np.float64) for v in need}
        for n in era5_names:
            out[n] = (np.hypot(phys["u10m_rotated"], phys["v10m_rotated"]) if n == "era5_wind"
                      else phys[ERA5_SOURCES[n][0]])
    names = list(AMSR2_FEATURES if amsr2 else ()) + era5_names
    if not names:
        raise ValueError("grid_fields needs amsr2=True or era5=True with some era5_features")
    return names, np.stack([out[n] for n in names])


def cell_weights(sar_index, n_cells):
    """Lower cell, upper cell and weight of the upper cell for SAR indices.

    Cell centres lie at ``12 + 25 k``; indices outside the first and last
    centre are clamped to the edge cell (weight 0).
    """
    if n_cells < 1:
        raise ValueError("the 2 km grid is empty; the scene must be at least 25 x 25 SAR pixels")
    t = (np.asarray(sar_index, np.float64) - CELL_CENTRE_OFFSET) / GRID2KM_FACTOR
    t = np.clip(t, 0.0, n_cells - 1)
    k0 = np.minimum(np.floor(t).astype(np.int64), max(n_cells - 2, 0))
    k1 = np.minimum(k0 + 1, n_cells - 1)
    return k0, k1, t - k0


@njit(cache=True)
def _lerp_rows(f, y0, y1, wy, x):
    """Value between the cells ``(y0, x)`` and ``(y1, x)``."""
    return f[y0, x] + wy * (f[y1, x] - f[y0, x])


@njit(cache=True, parallel=True)
def _rows_kernel(fields, y0, y1, wy, x0, x1, wx, out):
    # Interpolate along the lines first (one value per 2 km column), then
    # along the samples: the same operations as _points_kernel, fewer of them.
    nf, _, w2 = fields.shape
    for t in prange(y0.shape[0]):
        col = np.empty(w2)
        for f in range(nf):
            for x in range(w2):
                col[x] = _lerp_rows(fields[f], y0[t], y1[t], wy[t], x)
            for j in range(x0.shape[0]):
                a = col[x0[j]]
                out[f, t, j] = a + wx[j] * (col[x1[j]] - a)


@njit(cache=True, parallel=True)
def _points_kernel(fields, y0, y1, wy, x0, x1, wx, out):
    nf = fields.shape[0]
    for k in prange(y0.shape[0]):
        for f in range(nf):
            a = _lerp_rows(fields[f], y0[k], y1[k], wy[k], x0[k])
            b = _lerp_rows(fields[f], y0[k], y1[k], wy[k], x1[k])
            out[f, k] = a + wx[k] * (b - a)


def _check_fields(fields):
    fields = np.ascontiguousarray(fields, dtype=np.float64)
    if fields.ndim != 3:
        raise ValueError(f"fields must be (n_fields, lines_2km, samples_2km), got {fields.shape}")
    return fields


def bilinear_rows(fields, row0, row1, width, *, out=None):
    """Bilinear 2 km -> 80 m for SAR rows ``row0:row1`` and columns ``0:width``.

    Parameters
    ----------
    fields : float array (n_fields, h2, w2)
    row0, row1, width : int
    out : float32 array (n_fields, row1 - row0, width), optional

    Returns
    -------
    float32 array (n_fields, row1 - row0, width)
    """
    fields = _check_fields(fields)
    nf, h2, w2 = fields.shape
    if out is None:
        out = np.empty((nf, row1 - row0, width), np.float32)
    if out.shape != (nf, row1 - row0, width) or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {(nf, row1 - row0, width)}, got "
                         f"{out.dtype} {out.shape}")
    y0, y1, wy = cell_weights(np.arange(row0, row1), h2)
    x0, x1, wx = cell_weights(np.arange(width), w2)
    _rows_kernel(fields, y0, y1, wy, x0, x1, wx, out)
    return out


def bilinear_points(fields, rows, cols):
    """Bilinear 2 km -> 80 m at SAR points; float32 (n_fields, N).

    Bit-identical to :func:`bilinear_rows` at the same pixels.
    """
    fields = _check_fields(fields)
    nf, h2, w2 = fields.shape
    rows = np.asarray(rows)
    cols = np.asarray(cols)
    if rows.shape != cols.shape or rows.ndim != 1:
        raise ValueError("rows and cols must be 1-D arrays of the same length")
    y0, y1, wy = cell_weights(rows, h2)
    x0, x1, wx = cell_weights(cols, w2)
    out = np.empty((nf, rows.size), np.float32)
    _points_kernel(fields, y0, y1, wy, x0, x1, wx, out)
    return out
