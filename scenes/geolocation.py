"""Latitude and longitude of any SAR pixel of a ready-to-train scene.

A scene stores no CRS or geotransform: ``sar_grid2d_latitude`` and
``sar_grid2d_longitude`` (21 x 21 float64, FORMAT.md "Geolocation") are
ground control points spread evenly over the whole scene, tie point ``k``
along an axis sitting at SAR index ``k * (n - 1) / 20`` of that axis. Between
tie points a pixel's position is interpolated bilinearly on the unit sphere
(3-D unit vectors, then normalised), so scenes across the antimeridian or
near the pole interpolate as well as any other.

Axis order. The dims are named ``(sar_sample_2dgrid_points,
sar_line_2dgrid_points)``, but the public code that uses these arrays (the
challenge winner's) interpolates array axis 0 along the SAR lines, and the
raw files' 441 tie points come line by line. This module takes
:data:`TIEPOINT_ORDER` = ``"lines_first"``: ``array[i, j]`` is the tie point
of line ``i * (H - 1) / 20`` and sample ``j * (W - 1) / 20``, whatever the
dims say. It cannot be checked without real scenes; ``seaice check
--geolocation`` (:func:`land_agreement`) checks it on one: the pixels next to
the coast where the SAR has no data are land, so the right order puts them
on land in an independent land mask, the wrong one mostly does not. The
synthetic generator writes its tie points in this same order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import _geo_kernels
from . import contract as C
from .reader import SceneError

#: How the stored 21 x 21 arrays map to the SAR grid (see the module docstring).
TIEPOINT_ORDER = "lines_first"
#: The two possible readings: array axis 0 along the lines, or along the samples.
AXIS_ORDERS = ("lines_first", "samples_first")
#: Distance-map zone of pixels within 0.5 km of land; zones above 21 are over 20 km out.
COAST_ZONE = 1
OFFSHORE_ZONE = 22


def check_order(order: str) -> str:
    """``order`` if it is one of :data:`AXIS_ORDERS`, else one ValueError line."""
    if order not in AXIS_ORDERS:
        raise ValueError(f"tie-point axis order must be one of {AXIS_ORDERS}, got {order!r}")
    return order


def to_stored(grid, order: str = TIEPOINT_ORDER) -> np.ndarray:
    """A (line, sample) tie-point grid as stored under ``order`` (and back: its own inverse)."""
    grid = np.asarray(grid)
    return grid if check_order(order) == "lines_first" else grid.T


def tiepoint_positions(n: int) -> np.ndarray:
    """SAR indices of the 21 tie points along an axis of ``n`` pixels: ``k * (n - 1) / 20``."""
    return np.arange(C.N_TIEPOINTS) * (int(n) - 1) / (C.N_TIEPOINTS - 1)


def _unit(lat, lon):
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def _latlon(v):
    norm = np.sqrt((v ** 2).sum(axis=-1))
    lat = np.degrees(np.arcsin(np.clip(v[..., 2] / norm, -1, 1)))
    lon = np.degrees(np.arctan2(v[..., 1], v[..., 0]))
    return lat, lon


def _cell(pos, n):
    """Tie cell below each SAR index ``pos`` and the fraction through it (extrapolates)."""
    step = (n - 1) / (C.N_TIEPOINTS - 1)
    u = np.asarray(pos, dtype=np.float64) / step
    i0 = np.clip(np.floor(u), 0, C.N_TIEPOINTS - 2).astype(np.int64)
    return i0, u - i0


@dataclass(frozen=True)
class TiePoints:
    """A scene's tie points in (line, sample) order and its SAR shape.

    ``lat`` and ``lon`` are float64 (21, 21): ``lat[i, j]`` is the latitude of
    SAR pixel ``(rows[i], cols[j])`` with ``rows = tiepoint_positions(H)``.
    """

    lat: np.ndarray
    lon: np.ndarray
    shape: tuple

    @property
    def rows(self) -> np.ndarray:
        return tiepoint_positions(self.shape[0])

    @property
    def cols(self) -> np.ndarray:
        return tiepoint_positions(self.shape[1])

    def latlon(self, rows, cols):
        """Latitude and longitude (degrees, float64) at SAR indices ``(rows, cols)``.

        ``rows`` and ``cols`` broadcast against each other and may be
        fractional (pixel centres are whole numbers; ``-0.5`` is the outer
        edge of the first pixel); positions outside the tie grid extrapolate
        linearly from its edge cells.
        """
        rows, cols = np.broadcast_arrays(np.asarray(rows, np.float64), np.asarray(cols, np.float64))
        i0, a = _cell(rows, self.shape[0])
        j0, b = _cell(cols, self.shape[1])
        v = _unit(self.lat, self.lon)
        a, b = a[..., None], b[..., None]
        out = ((1 - a) * ((1 - b) * v[i0, j0] + b * v[i0, j0 + 1])
               + a * ((1 - b) * v[i0 + 1, j0] + b * v[i0 + 1, j0 + 1]))
        return _latlon(out)

    def index_of(self, lat, lon, *, iterations: int = 8):
        """SAR indices ``(rows, cols)`` (float64) of positions: :meth:`latlon` inverted.

        Gauss-Newton steps on the unit sphere from the nearest tie point;
        exact to well under a thousandth of a pixel inside the scene.
        """
        lat, lon = np.broadcast_arrays(np.asarray(lat, np.float64), np.asarray(lon, np.float64))
        target = _unit(lat, lon).reshape(-1, 3)
        ties = _unit(self.lat, self.lon).reshape(-1, 3)
        nearest = np.concatenate([np.argmax(target[a:a + 65536] @ ties.T, axis=1)
                                  for a in range(0, max(len(target), 1), 65536)])[:len(target)]
        r = self.rows[nearest // C.N_TIEPOINTS]
        c = self.cols[nearest % C.N_TIEPOINTS]
        for _ in range(iterations):
            f0 = _unit(*self.latlon(r, c))
            jr = _unit(*self.latlon(r + 1, c)) - f0
            jc = _unit(*self.latlon(r, c + 1)) - f0
            d = target - f0
            a11, a12, a22 = (jr * jr).sum(1), (jr * jc).sum(1), (jc * jc).sum(1)
            b1, b2 = (jr * d).sum(1), (jc * d).sum(1)
            det = a11 * a22 - a12 * a12
            r = r + (a22 * b1 - a12 * b2) / det
            c = c + (a11 * b2 - a12 * b1) / det
        return r.reshape(lat.shape), c.reshape(lat.shape)

    def grid(self, rows, cols, dtype=np.float64):
        """Latitude and longitude (``(len(rows), len(cols))`` of ``dtype``) of a grid of pixels.

        The numbers of :meth:`latlon` at every (row, col) pair, in one fused pass.
        """
        i0, a = _cell(np.asarray(rows, np.float64).ravel(), self.shape[0])
        j0, b = _cell(np.asarray(cols, np.float64).ravel(), self.shape[1])
        lat = np.empty((i0.size, j0.size), dtype)
        lon = np.empty((i0.size, j0.size), dtype)
        _geo_kernels.grid_latlon(np.ascontiguousarray(_unit(self.lat, self.lon)), i0, a, j0, b,
                                 lat, lon)
        return lat, lon

    def corners(self):
        """(lat, lon) of the centres of the four corner pixels: top-left, top-right,
        bottom-right, bottom-left; these are the corner tie points."""
        H, W = self.shape
        lat, lon = self.latlon([0, 0, H - 1, H - 1], [0, W - 1, W - 1, 0])
        return list(zip(lat.tolist(), lon.tolist()))


def tie_points(ds, order: str = TIEPOINT_ORDER) -> TiePoints:
    """The tie points of an open scene, read under axis ``order``.

    Raises
    ------
    SceneError
        A tie-point variable is missing, not 21 x 21, or holds values that are
        not finite latitudes / longitudes.
    """
    check_order(order)
    path = ds.encoding.get("source", ds.attrs.get("scene_id", "scene"))
    shape = tuple(int(ds.sizes[d]) for d in C.SAR_DIMS)
    grids = []
    for var, limit in zip(C.TIEPOINT_VARS, (90.0, 360.0)):
        if var not in ds.variables:
            raise SceneError(path, var, "missing, so the scene cannot be placed on a map",
                             "use a scene with its tie-point grids (a train or test scene)")
        a = np.asarray(ds[var].values, dtype=np.float64)
        if a.shape != (C.N_TIEPOINTS, C.N_TIEPOINTS):
            raise SceneError(path, var, f"has shape {a.shape}, expected "
                             f"({C.N_TIEPOINTS}, {C.N_TIEPOINTS}) tie points",
                             "the file does not follow the ready-to-train layout")
        if not np.isfinite(a).all() or np.abs(a).max() > limit:
            raise SceneError(path, var, f"holds values that are not finite degrees within "
                             f"+-{limit:g}", "the tie points are damaged: use the original file")
        grids.append(to_stored(a, order))
    return TiePoints(grids[0], grids[1], shape)


# --- checking the axis order on a real scene ------------------------------------------
def coastal_samples(ds, *, radius_px: int = 6, max_points: int = 20000, seed: int = 0):
    """SAR pixels that must be land and pixels that must be sea, from the scene alone.

    Land: pixels without SAR data within ``radius_px`` of a valid pixel the
    distance map puts within 0.5 km of land (zone 1), since the SAR of a
    ready-to-train scene is 0 over land; and valid pixels of zone 0 (land),
    for scenes that keep SAR over land. Sea: valid pixels over 20 km from
    land. Each is a seeded sample of at most ``max_points``.

    Returns
    -------
    dict
        ``{"land": (rows, cols), "sea": (rows, cols)}`` int64 index arrays.
    """
    valid = C.sar_valid(ds[C.SAR_VARS[0]].values)
    zone = np.rint(C.to_physical("distance_map", ds["distance_map"].values))
    coast = (valid & (zone == COAST_ZONE)).astype(np.uint8)
    near = ndimage.maximum_filter(coast, size=2 * int(radius_px) + 1).astype(bool) & ~valid
    land = near | (valid & (zone == 0))
    sea = valid & (zone >= OFFSHORE_ZONE)
    del coast, near, zone, valid
    rng = np.random.default_rng(seed)
    out = {}
    for name, mask in (("land", land), ("sea", sea)):
        r, c = np.nonzero(mask)
        if r.size > max_points:
            keep = np.sort(rng.choice(r.size, max_points, replace=False))
            r, c = r[keep], c[keep]
        out[name] = (r.astype(np.int64), c.astype(np.int64))
    return out


def land_agreement(ds, is_land, *, orders=AXIS_ORDERS, **sample_kw) -> dict:
    """How well each axis order puts the scene's own land and sea where a land mask has them.

    Parameters
    ----------
    ds : xarray.Dataset
        A train or test scene (needs the SAR, ``distance_map`` and tie points).
    is_land : callable
        ``is_land(lat, lon) -> bool array``, an independent land mask
        (:func:`global_land` by default in ``seaice check --geolocation``).
    orders : sequence of str
        Axis orders to try.
    sample_kw
        Passed to :func:`coastal_samples`.

    Returns
    -------
    dict
        ``{order: {"land": n, "land_on_land": k, "sea": m, "sea_on_sea": q}}``:
        of ``n`` pixels the scene marks as land, ``k`` fall on land; of ``m``
        pixels over 20 km offshore, ``q`` fall on sea. The right order has both
        shares high.
    """
    samples = coastal_samples(ds, **sample_kw)
    result = {}
    for order in orders:
        tp = tie_points(ds, order)
        row = {}
        for name, want_land in (("land", True), ("sea", False)):
            r, c = samples[name]
            hits = 0
            if r.size:
                lat, lon = tp.latlon(r, c)
                hits = int(np.count_nonzero(np.asarray(is_land(lat, lon), bool) == want_land))
            row[name] = int(r.size)
            row[f"{name}_on_{name}"] = hits
        result[order] = row
    return result


def global_land(lat, lon) -> np.ndarray:
    """Land (True) at the given degrees in an offline 1 km global land mask.

    The mask is the GLOBE-based one of the ``global-land-mask`` package (part of
    the ``geo`` extra); loading it takes about 1 GB and a few seconds.
    """
    try:
        from global_land_mask import globe  # optional: the geo extra
    except ImportError:
        raise ValueError("--geolocation needs the offline land mask of the geo extra: "
                         "pip install 'seaice-gbm[geo]' (or pip install global-land-mask)") from None
    lon = (np.asarray(lon, np.float64) + 180.0) % 360.0 - 180.0
    return globe.is_land(np.asarray(lat, np.float64), lon)
