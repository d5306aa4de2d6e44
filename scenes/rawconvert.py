"""One raw scene (40 m, polygon codes) -> one ready-to-train scene (80 m, classes).

The rules are FORMAT.md's ("The raw dataset", last list):

- SAR and distance map by 2 x 2 mean, then z-scored with the shipped
  statistics (:func:`scenes.contract.to_zscore`). An 80 m pixel is valid
  where all four 40 m pixels of HH and of HV hold data (a plain mean of a
  block with a missing pixel is missing); elsewhere every SAR-grid input is
  0.0, and a valid pixel whose z-score would be exactly 0.0 is nudged off it.
- Charts per 40 m pixel by one lookup of the polygon id
  (:mod:`scenes.icechart`), then 2 x 2 max: 255 (masked) wins.
- Incidence angle: bilinear between the tie points at each 80 m pixel centre.
- 2 km grid cut to ``floor(n_80m / 25)`` per axis.
- Tie points: latitude and longitude at the 21 x 21 ready-to-train positions
  (:func:`scenes.geolocation.tiepoint_positions`, stored in
  :data:`scenes.geolocation.TIEPOINT_ORDER`).

An odd last 40 m row or column has no 2 x 2 block and is dropped. Rows are
processed in blocks of :data:`BLOCK_ROWS` output rows (the output's chunk
height), so memory stays bounded whatever the scene size. The output is
written to a temporary sibling and renamed into place; it is removed on
every error.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5netcdf
import numpy as np

from . import contract as C
from . import geolocation as geo
from .raw import FACTOR, POLYGON_RASTER, open_raw
from .reader import SceneError, hdf5_in_memory
from .synth import CHART_TITLES

#: Bumped when the conversion changes what it writes (resumed runs redo older outputs).
CONVERTER_VERSION = 1
#: Output rows per block (and chunk height of the SAR-grid variables).
BLOCK_ROWS = 512
#: Plausible range of 2 x 2 averaged sigma0 in dB; outside it the data is not dB.
DB_RANGE = (-100.0, 60.0)
#: Global attribute recording what an output was converted from (for resuming).
SOURCE_ATTR = "seaice_converted_from"
_CHUNK = 512
_TINY = np.float32(1e-7)
SAR_DESCRIPTION = ("Sentinel-1 EW GRDM {pol} sigma0 in dB, thermal-noise corrected (NERSC), "
                   "2x2 averaged to 80 m from the raw 40 m file")


def source_record(raw_path, labels: str) -> str:
    """What an output depends on: the raw file (name, size, mtime), the labels mode, the version."""
    st = os.stat(raw_path)
    return json.dumps({"name": Path(raw_path).name, "size": int(st.st_size),
                       "mtime_ns": int(st.st_mtime_ns), "labels": labels,
                       "version": CONVERTER_VERSION}, sort_keys=True)


def converted_from(path) -> str | None:
    """The :func:`source_record` an existing output was written with, or None."""
    try:
        with h5netcdf.File(path, "r") as f:
            value = f.attrs.get(SOURCE_ATTR)
    except Exception:  # unreadable or foreign file: convert again
        return None
    return None if value is None else str(value)


def _blocks(x):
    """The four 40 m pixels of each 80 m pixel as strided views."""
    return x[0::2, 0::2], x[0::2, 1::2], x[1::2, 0::2], x[1::2, 1::2]


def pool_mean(x):
    """2 x 2 mean (float32) of an even-shaped block."""
    a, b, c, d = _blocks(x)
    return ((a.astype(np.float32) + b) + (c + d)) * np.float32(0.25)


def pool_any(mask):
    a, b, c, d = _blocks(mask)
    return a | b | c | d


def pool_max(x):
    a, b, c, d = _blocks(x)
    return np.maximum(np.maximum(a, b), np.maximum(c, d))


def _zscore(name, x, invalid):
    z = C.to_zscore(name, x)
    z[invalid] = C.SAR_FILL
    z[~invalid & (z == C.SAR_FILL)] = _TINY  # a valid pixel must never read as no data
    return z


class _Extremes:
    """Running min and max of the valid 80 m dB values (the contract's ``min``/``max`` attrs)."""

    def __init__(self):
        self.lo, self.hi = np.inf, -np.inf

    def add(self, x, valid):
        if valid.any():
            v = x[valid]
            self.lo, self.hi = min(self.lo, float(v.min())), max(self.hi, float(v.max()))


def _create(f, name, dims, dtype, shape):
    kw = {}
    if dims == C.SAR_DIMS:
        kw = dict(chunks=(min(shape[0], _CHUNK), min(shape[1], _CHUNK)), compression="gzip",
                  compression_opts=1, shuffle=True)
    return f.create_variable(name, dims, dtype, **kw)


def convert_scene(raw_path, out_path, *, labels: str = "auto", block_rows: int = BLOCK_ROWS) -> dict:
    """Write the ready-to-train scene of one raw scene.

    Parameters
    ----------
    raw_path : path-like
        A raw AI4Arctic file (:mod:`scenes.raw`).
    out_path : path-like
        The ``*_prep.nc`` to write (replaced if it exists).
    labels : {"auto", "require", "skip"}
        Write SIC/SOD/FLOE when the file has an ice chart; refuse a file
        without one; or write a test scene (inputs only).
    block_rows : int
        Output rows converted at a time.

    Returns
    -------
    dict
        ``{"out": Path, "kind": "train" | "test", "shape": (H, W), "valid": fraction}``.

    Raises
    ------
    SceneError
        The raw file does not fit the layout (nothing is written).
    """
    out_path = Path(out_path)
    block_rows = max(1, int(block_rows))
    with open_raw(raw_path, labels=labels) as rs:
        H, W = rs.shape80
        gh, gw = rs.grid2km_shape
        grid2km = {name: C.to_zscore(name, rs.grid2km(name)) for name in C.GRID2KM_VARS}
        tie_rows = 2.0 * geo.tiepoint_positions(H) + 0.5  # 80 m index -> 40 m coordinate
        tie_cols = 2.0 * geo.tiepoint_positions(W) + 0.5
        lat, lon = rs.ties.latlon(tie_rows, tie_cols)
        ia_part = rs.ties.along_samples("ia", FACTOR * np.arange(W) + 0.5)
        charts = C.LABEL_CHARTS if rs.has_chart else ()
        with hdf5_in_memory(out_path) as f:  # a full disk must not crash HDF5
            f.dimensions = {C.SAR_DIMS[0]: H, C.SAR_DIMS[1]: W, C.GRID2KM_DIMS[0]: gh,
                            C.GRID2KM_DIMS[1]: gw, C.TIEPOINT_DIMS[0]: C.N_TIEPOINTS,
                            C.TIEPOINT_DIMS[1]: C.N_TIEPOINTS}
            out = {v: _create(f, v, C.SAR_DIMS, np.float32, (H, W)) for v in C.SAR_GRID_VARS}
            out.update({c: _create(f, c, C.SAR_DIMS, np.uint8, (H, W)) for c in charts})
            ext = {v: _Extremes() for v in C.SAR_VARS}
            n_valid = 0
            for r0 in range(0, H, block_rows):
                r1 = min(H, r0 + block_rows)
                n_valid += _convert_rows(rs, r0, r1, W, ia_part, out, ext, charts)
            for v in C.SAR_VARS:
                if n_valid and (ext[v].lo < DB_RANGE[0] or ext[v].hi > DB_RANGE[1]):
                    raise SceneError(rs.path, v, f"holds {ext[v].lo:g}..{ext[v].hi:g}, not "
                                     "sigma0 in dB", "store the SAR in dB (10 log10 of "
                                     "sigma0), as the raw AI4Arctic files do")
            for v, pol in zip(C.SAR_VARS, ("HH", "HV")):
                out[v].attrs.update({"polarisation": pol,
                                     "description": SAR_DESCRIPTION.format(pol=pol),
                                     "min": ext[v].lo if n_valid else 0.0,
                                     "max": ext[v].hi if n_valid else 0.0,
                                     "variable_fill_value": C.SAR_FILL})
            for c in charts:
                out[c].attrs.update({"polygon": CHART_TITLES[c],
                                     "chart_fill_value": C.MASK_VALUE})
            for name, z in grid2km.items():
                f.create_variable(name, C.GRID2KM_DIMS, np.float32, data=z)
            for name, grid in zip(C.TIEPOINT_VARS, (lat, lon)):
                f.create_variable(name, C.TIEPOINT_DIMS, np.float64,
                                  data=geo.to_stored(grid.astype(np.float64)))
            f.attrs.update({"scene_id": f"{rs.key}_prep.nc", "original_id": rs.path.name,
                            "ice_service": rs.key[-3:], "flip": 0, "pixel_spacing": 80,
                            SOURCE_ATTR: source_record(raw_path, labels)})
    return {"out": out_path, "kind": "train" if charts else "test", "shape": (H, W),
            "valid": n_valid / float(H * W)}


def _convert_rows(rs, r0, r1, W, ia_part, out, ext, charts) -> int:
    """Convert output rows ``r0:r1``; return the number of valid pixels among them."""
    a, b, w2 = FACTOR * r0, FACTOR * r1, FACTOR * W
    sar, invalid40 = {}, None
    for v in C.SAR_VARS:
        block = rs.rows(v, a, b)[:, :w2]
        bad = rs.sar_invalid(v, block)
        invalid40 = bad if invalid40 is None else invalid40 | bad
        sar[v] = block
    invalid = pool_any(invalid40)
    del invalid40
    valid = ~invalid
    values = {}
    for v in C.SAR_VARS:
        values[v] = pool_mean(sar.pop(v))
        ext[v].add(values[v], valid)
    zones, missing = rs.distance_zones(rs.rows("distance_map", a, b)[:, :w2])
    zones[missing] = 0.0
    count = 4.0 - sum(m.astype(np.float32) for m in _blocks(missing))
    # the mean of the zones that are there; none there: land (zone 0)
    values["distance_map"] = np.where(count > 0, sum(_blocks(zones)) / np.maximum(count, 1), 0.0)
    values["sar_incidenceangle"] = rs.ties.rows_of(ia_part, FACTOR * np.arange(r0, r1) + 0.5)
    for v in C.SAR_GRID_VARS:
        out[v][r0:r1, :] = _zscore(v, values.pop(v), invalid)
    if charts:
        ids, fill = rs.polygon_ids(rs.rows(POLYGON_RASTER, a, b)[:, :w2])
        for c, lab in rs.lookup.charts(ids, fill).items():
            out[c][r0:r1, :] = pool_max(lab)
    return int(np.count_nonzero(valid))
