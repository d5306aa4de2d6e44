"""Open and check raw AI4Arctic scenes (40 m, ice charts as SIGRID-3 polygon codes).

FORMAT.md ("The raw dataset") describes these files only in part, so the
reader accepts the plausible variants of what it leaves open and refuses
anything else with one :class:`scenes.reader.SceneError` line naming the
file, the variable and the fix:

- names ``S1X_..._<start>_<stop>_..._icechart_<dmi|cis>_....nc``; the scene key
  is the start time and the service;
- any dim names; the 40 m rasters (``nersc_sar_primary``,
  ``nersc_sar_secondary``, ``distance_map``, ``polygon_icechart``) share one
  2-D shape, axis 0 along the lines;
- SAR in dB, float32 or float64; no data is NaN, 0, or the ``_FillValue`` /
  ``missing_value`` attribute;
- ``polygon_icechart`` of any integer dtype, or float with NaN (whole numbers
  elsewhere); pixels without a polygon hold NaN, the ``_FillValue`` /
  ``missing_value`` attribute, or the netCDF default fill of the dtype
  (65535 for uint16) when no entry has that id;
- ``polygon_codes`` as variable-length strings, fixed-length bytes or a
  character array, a data variable or a coordinate, with or without its
  header (:func:`scenes.icechart.parse_polygon_codes`);
- the tie points (``sar_grid_line``, ``sar_grid_sample``,
  ``sar_grid_latitude``, ``sar_grid_longitude``,
  ``sar_grid_incidenceangle``) of any shape, read flat, one value per point;
- the 2 km variables 2-D, of one shape, at least ``floor(n_80m / 25)`` per axis.

A file without both ``polygon_icechart`` and ``polygon_codes`` is a test
scene (no labels); one with only one of them is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import interpolate

from . import contract as C
from .icechart import PolygonLookup, PolygonTable, parse_polygon_codes
from .reader import SceneError

RASTER_VARS = C.SAR_VARS + ("distance_map",)
POLYGON_RASTER = "polygon_icechart"
POLYGON_CODES = "polygon_codes"
CHART_VARS = (POLYGON_RASTER, POLYGON_CODES)
#: Tie-point variables by role.
TIE_VARS = {"line": "sar_grid_line", "sample": "sar_grid_sample", "lat": "sar_grid_latitude",
            "lon": "sar_grid_longitude", "ia": "sar_grid_incidenceangle"}
#: 40 m pixels per 80 m pixel along each axis.
FACTOR = 2
#: Smallest raw side: one 2 km cell of the 80 m grid.
MIN_SIDE = FACTOR * C.GRID2KM_FACTOR
#: Largest distance-to-land zone id.
MAX_ZONE = 41
_NAME_RE = re.compile(r"^S1[A-Z]_[A-Z0-9]+_[A-Z0-9]+_[A-Z0-9]+_(?P<start>\d{8}T\d{6})_\d{8}T\d{6}_"
                      r".*_icechart_(?P<svc>dmi|cis)_.+\.nc$")
#: netCDF's default fill of each integer dtype (used when no _FillValue is written).
_NC_DEFAULT_FILL = {"i1": -127, "u1": 255, "i2": -32767, "u2": 65535, "i4": -2147483647,
                    "u4": 4294967295, "i8": -9223372036854775806, "u8": 18446744073709551614}
_RAW_FIX = "the file does not follow the raw AI4Arctic layout (README, 'Raw data'); " \
           "run `seaice check --raw FILE` to see its layout"


# --- names and folders ------------------------------------------------------------------
def raw_scene_key(name: str) -> str | None:
    """``YYYYMMDDTHHMMSS_{dmi|cis}`` of a raw file name (Sentinel-1 start, service), else None."""
    m = _NAME_RE.match(Path(name).name)
    return None if m is None else f"{m['start']}_{m['svc']}"


def rtt_name(raw_name: str) -> str:
    """The ready-to-train file name of a raw file: ``YYYYMMDDTHHMMSS_{dmi|cis}_prep.nc``."""
    key = raw_scene_key(raw_name)
    if key is None:
        raise ValueError(f"{raw_name}: not a raw AI4Arctic file name "
                         "(S1X_EW_GRDM_1SDH_<start>_<stop>_..._icechart_<dmi|cis>_....nc)")
    return f"{key}_prep.nc"


def raw_files(folder) -> list[Path]:
    """The raw scene files directly in ``folder``, sorted (none if it is not a folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".nc" and raw_scene_key(p.name))


def list_raw_scenes(folder) -> list[Path]:
    """Sorted raw scene files of a folder.

    Raises
    ------
    SceneError
        Not a folder, no raw files, or two files with the same scene key.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SceneError(folder, None, "is not a folder", "pass the folder that holds the raw files")
    paths = raw_files(folder)
    if not paths:
        raise SceneError(folder, None, "contains no raw scene files "
                         "(S1X_EW_GRDM_1SDH_<start>_<stop>_..._icechart_<dmi|cis>_....nc)",
                         "check the path, or write synthetic ones with `seaice synth --raw`")
    seen: dict[str, Path] = {}
    for p in paths:
        key = raw_scene_key(p.name)
        if key in seen:
            raise SceneError(p, None, f"has the same scene key {key} as {seen[key].name}",
                             "keep one raw file per scene in the folder")
        seen[key] = p
    return paths


# --- opening ------------------------------------------------------------------------------
def _open(path: Path) -> xr.Dataset:
    """The file, undecoded (fills and dtypes as stored); NetCDF4/HDF5, else NetCDF3."""
    if not path.is_file():
        raise SceneError(path, None, "no such file", "check the path")
    errors = []
    for engine in ("h5netcdf", "scipy"):
        try:
            return xr.open_dataset(path, engine=engine, mask_and_scale=False, decode_times=False,
                                   decode_coords=False)
        except Exception as exc:  # each backend raises its own types for a file it cannot read
            errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    raise SceneError(path, None, f"cannot be read as NetCDF ({errors[0]})",
                     "the file is truncated or not a raw scene: download it again")


def _fills(da) -> list:
    """Declared fill values of a variable (``_FillValue``, ``missing_value``)."""
    out = []
    for name in ("_FillValue", "missing_value"):
        if name in da.attrs:
            out += list(np.atleast_1d(da.attrs[name]))
    return out


def _code_strings(da, path) -> np.ndarray:
    """``polygon_codes`` as a 1-D array of str or bytes, whatever string type stored it."""
    values = np.asarray(da.values)
    if values.dtype.kind == "S" and values.ndim == 2:  # a character array not joined on read
        values = np.array([b"".join(row) for row in values])
    if values.ndim != 1:
        raise SceneError(path, POLYGON_CODES,
                         f"has shape {values.shape}, expected one string per polygon (1-D)",
                         _RAW_FIX)
    if values.dtype.kind not in "OSU":
        raise SceneError(path, POLYGON_CODES,
                         f"has dtype {values.dtype}, expected strings 'id;CT;CA;...;POLY_TYPE'",
                         _RAW_FIX)
    return values


@dataclass(frozen=True)
class TieGrid:
    """Tie-point fields on a rectilinear grid of 40 m (line, sample) positions.

    ``values[name]`` is (len(lines), len(samples)); latitude and longitude are
    held as unit vectors (``"x"``, ``"y"``, ``"z"``) so that interpolation
    works across the antimeridian and near the pole.
    """

    lines: np.ndarray
    samples: np.ndarray
    values: dict

    @staticmethod
    def from_points(line, sample, fields: dict) -> "TieGrid":
        """Grid of scattered or rectilinear tie points.

        Rectilinear points (every line with every sample, once) are used as
        they are; any other layout is first interpolated linearly onto a
        rectilinear grid over the points' extent (nearest point outside
        their hull).
        """
        line, sample = np.asarray(line, np.float64), np.asarray(sample, np.float64)
        ul, li = np.unique(line, return_inverse=True)
        us, si = np.unique(sample, return_inverse=True)
        flat = li * len(us) + si
        if len(ul) * len(us) == line.size and len(np.unique(flat)) == line.size and \
                len(ul) > 1 and len(us) > 1:
            out = {}
            for name, v in fields.items():
                grid = np.empty(line.size)
                grid[flat] = v
                out[name] = grid.reshape(len(ul), len(us))
            return TieGrid(ul, us, out)
        n = max(2, int(round(np.sqrt(line.size))))
        gl = np.linspace(line.min(), line.max(), n)
        gs = np.linspace(sample.min(), sample.max(), n)
        q = np.stack(np.meshgrid(gl, gs, indexing="ij"), axis=-1).reshape(-1, 2)
        pts = np.column_stack([line, sample])
        out = {}
        for name, v in fields.items():
            lin = interpolate.LinearNDInterpolator(pts, v)(q)
            near = interpolate.NearestNDInterpolator(pts, v)(q)
            out[name] = np.where(np.isfinite(lin), lin, near).reshape(n, n)
        return TieGrid(gl, gs, out)

    @staticmethod
    def _weights(axis, pos):
        pos = np.clip(np.asarray(pos, np.float64), axis[0], axis[-1])  # no extrapolation
        i0 = np.clip(np.searchsorted(axis, pos, side="right") - 1, 0, len(axis) - 2)
        w = (pos - axis[i0]) / (axis[i0 + 1] - axis[i0])
        return i0, w

    def along_samples(self, name, samples) -> np.ndarray:
        """Field ``name`` at every tie line and the given sample positions."""
        j0, w = self._weights(self.samples, samples)
        v = self.values[name]
        return v[:, j0] * (1 - w) + v[:, j0 + 1] * w

    def rows_of(self, partial: np.ndarray, lines) -> np.ndarray:
        """Rows at ``lines`` of a field already interpolated along the samples."""
        i0, w = self._weights(self.lines, lines)
        return partial[i0] * (1 - w)[:, None] + partial[i0 + 1] * w[:, None]

    def grid(self, name, lines, samples) -> np.ndarray:
        """Field ``name`` bilinear at every (line, sample) pair of the two position lists."""
        return self.rows_of(self.along_samples(name, samples), lines)

    def latlon(self, lines, samples):
        """Latitude and longitude (degrees) on the grid of ``lines`` x ``samples``."""
        x, y, z = (self.grid(k, lines, samples) for k in "xyz")
        return np.degrees(np.arctan2(z, np.hypot(x, y))), np.degrees(np.arctan2(y, x))


def unit_vectors(lat, lon):
    """(x, y, z) of points on the unit sphere at ``lat``, ``lon`` degrees."""
    la, lo = np.radians(lat), np.radians(lon)
    return np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)


class RawScene:
    """A raw scene opened lazily, its metadata checked; 40 m values read in row blocks.

    Parameters
    ----------
    path : path-like
        A raw AI4Arctic file.
    labels : {"auto", "require", "skip"}
        Read the ice chart if there is one; refuse a file without one; or
        ignore it (inputs only).

    Attributes
    ----------
    path : Path
    key : str
        ``YYYYMMDDTHHMMSS_{dmi|cis}``.
    shape : (int, int)
        40 m raster shape.
    shape80 : (int, int)
        The ready-to-train shape: ``floor(n / 2)`` each.
    lookup : PolygonLookup or None
        Polygon id -> classes, None without a chart.
    table : PolygonTable or None
    ties : TieGrid
        Line, sample, lat/lon (unit vectors) and incidence angle.

    Raises
    ------
    SceneError
        On the first thing that does not fit the raw layout.
    """

    def __init__(self, path, *, labels: str = "auto"):
        if labels not in ("auto", "require", "skip"):
            raise ValueError(f"labels must be 'auto', 'require' or 'skip', got {labels!r}")
        self.path = Path(path)
        self.key = raw_scene_key(self.path.name)
        if self.key is None:
            raise SceneError(self.path, None, "is not named like a raw AI4Arctic file "
                             "(S1X_EW_GRDM_1SDH_<start>_<stop>_..._icechart_<dmi|cis>_....nc)",
                             "keep the original file name: the scene key comes from it")
        self.ds = _open(self.path)
        try:
            self._check(labels)
        except BaseException:
            self.ds.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.ds.close()

    def _error(self, var, problem, fix=_RAW_FIX):
        return SceneError(self.path, var, problem, fix)

    # -- checks ------------------------------------------------------------------------------
    def _check(self, labels):
        ds = self.ds
        for var in RASTER_VARS + tuple(TIE_VARS.values()) + C.GRID2KM_VARS:
            if var not in ds.variables:
                raise self._error(var, "missing (a raw scene needs the SAR, distance_map, the "
                                  "sar_grid_* tie points and the AMSR2/ERA5 2 km variables)")
        hh = ds[C.SAR_VARS[0]]
        if hh.ndim != 2:
            raise self._error(C.SAR_VARS[0], f"has {hh.ndim} dims {hh.dims}, expected 2 "
                              "(lines, samples)")
        dims = [d.lower() for d in hh.dims]
        if "sample" in dims[0] and "line" in dims[1]:
            raise self._error(C.SAR_VARS[0], f"has dims {hh.dims}: samples before lines",
                              "the converter reads axis 0 as the lines; transpose the rasters")
        self.shape = tuple(int(n) for n in hh.shape)
        if min(self.shape) < MIN_SIDE:
            raise self._error(C.SAR_VARS[0], f"is {self.shape[0]} x {self.shape[1]} pixels, "
                              f"smaller than one 2 km cell at 80 m ({MIN_SIDE} x {MIN_SIDE} at 40 m)",
                              "use scenes of at least that size")
        self.shape80 = (self.shape[0] // FACTOR, self.shape[1] // FACTOR)
        chart_present = [v for v in CHART_VARS if v in ds.variables]
        self.has_chart = labels != "skip" and bool(chart_present)
        if labels != "skip" and len(chart_present) == 1:
            missing = (set(CHART_VARS) - set(chart_present)).pop()
            raise self._error(missing, f"missing while {chart_present[0]} is there: the ice "
                              "chart needs both the polygon raster and its codes",
                              "use the complete raw file (or convert without labels)")
        if labels == "require" and not chart_present:
            raise self._error(POLYGON_RASTER, "missing: a training scene needs its ice chart "
                              "(polygon_icechart and polygon_codes)",
                              "use raw training files, or convert these as test scenes")
        rasters = RASTER_VARS + ((POLYGON_RASTER,) if self.has_chart else ())
        for var in rasters:
            da = ds[var]
            if tuple(da.shape) != self.shape:
                raise self._error(var, f"has shape {tuple(da.shape)}, expected {self.shape} like "
                                  f"{C.SAR_VARS[0]}")
            if "scale_factor" in da.attrs or "add_offset" in da.attrs:
                raise self._error(var, "is packed (scale_factor/add_offset)",
                                  "store it unpacked, in physical units")
        for var in C.SAR_VARS:
            if ds[var].dtype.kind != "f":
                raise self._error(var, f"has dtype {ds[var].dtype}, expected float32 or float64 "
                                  "sigma0 in dB")
        if ds["distance_map"].dtype.kind not in "fiu":
            raise self._error("distance_map", f"has dtype {ds['distance_map'].dtype}, expected "
                              "numbers (zone ids 0..41)")
        self._check_grid2km()
        self._check_ties()
        self.table = self.lookup = None
        if self.has_chart:
            self._check_chart()

    def _check_grid2km(self):
        need = C.grid2km_shape(self.shape80)
        shape = None
        for var in C.GRID2KM_VARS:
            da = self.ds[var]
            if da.ndim != 2 or da.dtype.kind not in "fiu":
                raise self._error(var, f"has dims {da.dims} and dtype {da.dtype}, expected a "
                                  "2-D grid of numbers")
            if shape is None:
                shape = tuple(da.shape)
            elif tuple(da.shape) != shape:
                raise self._error(var, f"has shape {tuple(da.shape)}, expected {shape} like "
                                  f"{C.GRID2KM_VARS[0]}")
        if shape[0] < need[0] or shape[1] < need[1]:
            raise self._error(C.GRID2KM_VARS[0], f"2 km grid is {shape[0]} x {shape[1]}, smaller "
                              f"than the {need[0]} x {need[1]} cells (floor(n/25)) the "
                              f"{self.shape80[0]} x {self.shape80[1]} 80 m grid needs")
        self.grid2km_shape = need

    def _check_ties(self):
        values = {}
        for role, var in TIE_VARS.items():
            da = self.ds[var]
            if da.dtype.kind not in "fiu":
                raise self._error(var, f"has dtype {da.dtype}, expected numbers")
            v = np.asarray(da.values, np.float64).ravel()
            if not np.isfinite(v).all():
                raise self._error(var, "holds NaN or infinite values",
                                  "every tie point needs its line, sample, latitude, longitude "
                                  "and incidence angle")
            values[role] = v
        sizes = {TIE_VARS[r]: v.size for r, v in values.items()}
        if len(set(sizes.values())) != 1 or values["line"].size < 4:
            raise self._error(TIE_VARS["line"], f"tie-point variables have {sizes} values; "
                              "expected the same count (about 441), at least 4")
        H, W = self.shape
        for role, limit, what in (("line", H - 1, "line index"), ("sample", W - 1, "sample index")):
            v = values[role]
            if v.min() < -0.5 or v.max() > limit + 0.5:
                raise self._error(TIE_VARS[role], f"holds {what} {v.min():g}..{v.max():g} outside "
                                  f"the raster's 0..{limit}")
        for role, lo, hi in (("lat", -90, 90), ("lon", -360, 360), ("ia", 0, 90)):
            v = values[role]
            if v.min() < lo or v.max() > hi:
                raise self._error(TIE_VARS[role], f"holds {v.min():g}..{v.max():g}, outside "
                                  f"{lo}..{hi} degrees")
        x, y, z = unit_vectors(values["lat"], values["lon"])
        self.ties = TieGrid.from_points(values["line"], values["sample"],
                                        {"x": x, "y": y, "z": z, "ia": values["ia"]})

    def _check_chart(self):
        codes = self.ds[POLYGON_CODES]
        self.table: PolygonTable = parse_polygon_codes(_code_strings(codes, self.path), self.path,
                                                       POLYGON_CODES)
        raster = self.ds[POLYGON_RASTER]
        if raster.dtype.kind not in "fiu":
            raise self._error(POLYGON_RASTER, f"has dtype {raster.dtype}, expected integer "
                              "polygon ids")
        fills = _fills(raster)
        default = _NC_DEFAULT_FILL.get(raster.dtype.str[1:])
        if default is not None and default not in set(self.table.ids.tolist()):
            fills.append(default)  # netCDF fills unwritten pixels with it when no _FillValue is set
        self.pid_fills = fills
        self.lookup = PolygonLookup(self.table, self.path, POLYGON_RASTER)

    # -- reading -------------------------------------------------------------------------------
    def rows(self, var, r0: int, r1: int) -> np.ndarray:
        """40 m rows ``r0:r1`` of a raster, as stored."""
        da = self.ds[var]
        return np.asarray(da.isel({da.dims[0]: slice(r0, r1)}).values)

    def sar_invalid(self, var, block) -> np.ndarray:
        """No-data pixels of a SAR block: NaN, infinite, 0 or a declared fill."""
        bad = ~np.isfinite(block) | (block == 0)
        for f in _fills(self.ds[var]):
            bad |= block == f
        return bad

    def polygon_ids(self, block):
        """``(ids, no-polygon mask)`` of a ``polygon_icechart`` block (integer ids)."""
        fill = np.zeros(block.shape, bool)
        for f in self.pid_fills:
            if not (isinstance(f, (float, np.floating)) and np.isnan(f)):  # NaN: below
                fill |= block == f
        if block.dtype.kind != "f":
            return block, fill
        fill |= ~np.isfinite(block)
        ids = np.where(fill, 0, block)
        broken = ids != np.floor(ids)
        if broken.any():
            raise self._error(POLYGON_RASTER, f"holds {ids[broken][0]!r}, not a whole polygon id",
                              "polygon ids must be whole numbers (NaN = no polygon)")
        return ids.astype(np.int64), fill

    def distance_zones(self, block) -> tuple[np.ndarray, np.ndarray]:
        """``(float32 zones, missing mask)`` of a ``distance_map`` block; zones checked 0..41."""
        da = self.ds["distance_map"]
        missing = np.zeros(block.shape, bool)
        for f in _fills(da):
            missing |= block == f
        if block.dtype.kind == "f":
            missing |= ~np.isfinite(block)
        else:
            default = _NC_DEFAULT_FILL.get(block.dtype.str[1:])
            missing |= block == default
        zones = block.astype(np.float32)
        ok = zones[~missing]
        if ok.size and (ok.min() < 0 or ok.max() > MAX_ZONE):
            bad = ok.min() if ok.min() < 0 else ok.max()
            raise self._error("distance_map", f"holds {bad:g}, outside the zone ids 0..{MAX_ZONE}",
                              "distance_map must hold the distance-to-land zone ids of FORMAT.md")
        return zones, missing

    def grid2km(self, var) -> np.ndarray:
        """A 2 km variable (float64, physical units) cut to ``floor(n_80m / 25)`` per axis.

        Raises
        ------
        SceneError
            NaN or infinite values in the kept cells (the contract never masks them).
        """
        da = self.ds[var]
        gh, gw = self.grid2km_shape
        v = np.asarray(da.isel({da.dims[0]: slice(0, gh), da.dims[1]: slice(0, gw)}).values,
                       np.float64)
        for f in _fills(da):
            v[v == f] = np.nan
        if not np.isfinite(v).all():
            raise self._error(var, f"holds {int((~np.isfinite(v)).sum())} NaN, infinite or fill "
                              "value(s) in the 2 km cells the scene keeps",
                              "the ready-to-train format never masks the 2 km variables; "
                              "fill them (e.g. nearest valid cell) before converting")
        return v


def open_raw(path, *, labels: str = "auto") -> RawScene:
    """Open and check one raw scene (metadata and the polygon table; values are read later)."""
    return RawScene(path, labels=labels)


# --- the layout report --------------------------------------------------------------------
def _fmt_attr(v) -> str:
    text = repr(v.item() if isinstance(v, np.generic) else v)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_raw(path, *, n_codes: int = 5) -> list[str]:
    """Lines describing a raw file's layout: variables, dims, dtypes, fills, first codes.

    Reads metadata, the polygon codes and the tie points, never a whole
    raster; meant to be read next to the assumptions of the README when a
    real file does not convert.
    """
    path = Path(path)
    ds = _open(path)
    try:
        key = raw_scene_key(path.name)
        lines = [f"{path.name}: scene key {key or 'NONE (name not recognised)'}; "
                 f"dims {', '.join(f'{d}={n}' for d, n in ds.sizes.items())}"]
        groups: dict[str, list[str]] = {}  # variables of one layout on one line
        for name in sorted(ds.variables, key=str):
            da = ds[name]
            extra = "".join(f" {a}={_fmt_attr(da.attrs[a])}" for a in
                            ("_FillValue", "missing_value", "scale_factor", "add_offset")
                            if a in da.attrs)
            groups.setdefault(f"{da.dtype} {tuple(da.dims)} {tuple(da.shape)}{extra}",
                              []).append(str(name))
        for layout, names in groups.items():
            lines.append(f"  {', '.join(names)}: {layout}")
        if POLYGON_CODES in ds.variables:
            try:
                codes = _code_strings(ds[POLYGON_CODES], path)
                shown = [str(c.decode() if isinstance(c, bytes) else c) for c in codes[:n_codes]]
                lines.append(f"  first {len(shown)} of {codes.size} polygon_codes entries:")
                lines += [f"    {s!r}" for s in shown]
            except SceneError as exc:
                lines.append(f"  polygon_codes: {exc}")
        for role in ("line", "sample", "ia"):
            var = TIE_VARS[role]
            if var in ds.variables:
                v = np.asarray(ds[var].values).ravel()
                if v.size and v.dtype.kind in "fiu":
                    lines.append(f"  {var}: {v.size} values, {np.nanmin(v):g}..{np.nanmax(v):g}")
        attrs = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in list(ds.attrs.items())[:8])
        if attrs:
            lines.append(f"  global attributes: {attrs}")
    finally:
        ds.close()
    return lines
