"""Ice-chart polygons from the predicted maps, with their SIGRID-3 codes.

The joint SIC/SOD/FLOE map is one class per pixel combination. Regions
smaller than the minimum area are first merged into their largest neighbour
(GDAL's sieve), so that no gap opens; the regions are then vectorised
(``rasterio.features.shapes``, 4-connected), simplified together as one
coverage (``shapely.coverage_simplify``: shared edges stay shared, no gaps or
overlaps) with a tolerance in metres, and carried to latitude/longitude by
the scene's geolocation (:mod:`scenes.geolocation`), vertex by vertex. Each
polygon gets its classes and the SIGRID-3 fields they stand for
(:func:`scenes.sigrid.export_codes`), written two characters wide as in
SIGRID-3 files (``"92"``, ``"-9"`` not filled).
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np

from scenes import contract as C
from scenes.geolocation import TiePoints
from scenes.sigrid import export_codes

from .geo import WGS84, require, unwrap_longitudes

#: Default simplification tolerance (m) and smallest polygon (km2).
DEFAULT_SIMPLIFY_M = 100.0
DEFAULT_MIN_AREA_KM2 = 0.5
#: Layer name inside the GeoPackage.
LAYER = "ice_chart"
#: The modification time every GeoPackage records (see write_polygons).
FIXED_DATE = "2000-01-01T00:00:00.000Z"
#: Joint code of a pixel: (SIC * 6 + SOD) * 7 + FLOE, all below this.
_N_CODES = C.N_CLASSES["SIC"] * C.N_CLASSES["SOD"] * C.N_CLASSES["FLOE"]
#: Attribute fields of a polygon, in order.
FIELDS = ("SIC", "SIC_pct", "SOD", "SOD_name", "FLOE", "FLOE_name", "CT", "CA", "SA", "FA",
          "POLY_TYPE", "area_km2")


def joint_code(maps: dict) -> np.ndarray:
    """uint16 code of each pixel's (SIC, SOD, FLOE) classes: (SIC * 6 + SOD) * 7 + FLOE."""
    code = np.asarray(maps["SIC"]).astype(np.uint16)  # in place from here: 26 M pixels
    code *= C.N_CLASSES["SOD"]
    code += maps["SOD"]
    code *= C.N_CLASSES["FLOE"]
    code += maps["FLOE"]
    return code


def split_code(code):
    """``(SIC, SOD, FLOE)`` classes of a joint code."""
    code = int(code)
    floe = code % C.N_CLASSES["FLOE"]
    rest = code // C.N_CLASSES["FLOE"]
    return rest // C.N_CLASSES["SOD"], rest % C.N_CLASSES["SOD"], floe


def vectorise(maps: dict, valid, *, pixel_m: float = 80.0,
              simplify_m: float = DEFAULT_SIMPLIFY_M,
              min_area_km2: float = DEFAULT_MIN_AREA_KM2):
    """Polygons of the joint map in pixel coordinates, and their joint codes.

    Pixel ``(r, c)`` covers ``c..c+1`` x ``r..r+1`` (GDAL's convention), so its
    centre is at SAR index ``(r, c)`` + 0.5.

    Parameters
    ----------
    maps : dict chart -> uint8 (H, W)
    valid : bool (H, W)
        Pixels with SAR data; others get no polygon.
    pixel_m : float
        Pixel spacing, to turn the tolerance and the area into pixels.
    simplify_m, min_area_km2 : float
        Simplification tolerance and smallest polygon.

    Returns
    -------
    geoms : shapely geometry array (valid polygons / multipolygons)
    codes : int array of joint codes
    """
    features = require("rasterio.features")
    shapely = require("shapely")
    code = joint_code(maps)
    valid = np.ascontiguousarray(valid, dtype=bool)
    min_px = int(round(min_area_km2 * 1e6 / pixel_m ** 2))
    if min_px > 1:
        code = features.sieve(code, size=min_px, mask=valid, connectivity=4)
    shapes = list(features.shapes(code, mask=valid, connectivity=4))
    if not shapes:
        return shapely.from_wkb([]), np.zeros(0, np.int64)
    geoms = _polygons(shapely, [g["coordinates"] for g, _ in shapes])
    codes = np.array([int(v) for _, v in shapes], np.int64)
    if simplify_m > 0:
        geoms = shapely.coverage_simplify(geoms, tolerance=simplify_m / pixel_m)
    return _valid_polygons(shapely, geoms), codes


def _polygons(shapely, polys):
    """Polygons from GeoJSON rings (shell first), built in bulk: ten times faster than
    one ``shape()`` per polygon on the half million vertices of a real scene."""
    rings = [r for p in polys for r in p]
    lengths = np.fromiter((len(r) for r in rings), np.int64, len(rings))
    xy = np.fromiter(itertools.chain.from_iterable(itertools.chain.from_iterable(rings)),
                     np.float64, 2 * int(lengths.sum())).reshape(-1, 2)
    lr = shapely.linearrings(xy, indices=np.repeat(np.arange(len(rings)), lengths))
    return shapely.polygons(lr, indices=np.repeat(np.arange(len(polys)), [len(p) for p in polys]))


def _valid_polygons(shapely, geoms):
    bad = ~shapely.is_valid(geoms)
    if bad.any():  # rare: keep the polygonal part of the repaired geometry
        geoms = geoms.copy()
        geoms[bad] = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
    return geoms


def to_lonlat(geoms, tp: TiePoints):
    """Pixel-coordinate geometries carried to (lon, lat) degrees by the scene's geolocation."""
    shapely = require("shapely")

    def move(xy):
        lat, lon = tp.latlon(xy[:, 1] - 0.5, xy[:, 0] - 0.5)
        return np.column_stack([unwrap_longitudes(lon, tp.lon), lat])

    return _valid_polygons(shapely, shapely.transform(geoms, move))


def attributes(codes, geoms_px, pixel_m: float = 80.0) -> dict:
    """Field arrays (see :data:`FIELDS`) of polygons with these joint codes."""
    shapely = require("shapely")
    rows = {name: [] for name in FIELDS}
    for code in codes:
        sic, sod, floe = split_code(code)
        sigrid = export_codes(sic, sod, floe)
        rows["SIC"].append(sic)
        rows["SIC_pct"].append(10 * sic)
        rows["SOD"].append(sod)
        rows["SOD_name"].append(C.CLASS_NAMES["SOD"][sod])
        rows["FLOE"].append(floe)
        rows["FLOE_name"].append(C.CLASS_NAMES["FLOE"][floe])
        for field in ("CT", "CA", "SA", "FA"):
            rows[field].append(sigrid_text(sigrid[field]))
        rows["POLY_TYPE"].append(sigrid["POLY_TYPE"])
    rows["area_km2"] = np.round(shapely.area(geoms_px) * pixel_m ** 2 / 1e6, 4)
    out = {}
    for name, values in rows.items():
        kind = np.float64 if name == "area_km2" else (np.int32 if name in
                                                      ("SIC", "SIC_pct", "SOD", "FLOE") else object)
        out[name] = np.asarray(values, dtype=kind)
    return out


def sigrid_text(value: int) -> str:
    """A SIGRID-3 code as written in its files: two digits, ``"-9"`` for not filled."""
    return "-9" if value < 0 else f"{int(value):02d}"


def write_polygons(path, geoms_lonlat, fields: dict, driver: str = "GPKG") -> None:
    """Write polygons (EPSG:4326) and their fields with OGR (``GPKG`` or ``GeoJSON``)."""
    pyogrio = require("pyogrio")
    shapely = require("shapely")
    names = list(fields)
    options = {"layer_options": {"RFC7946": "YES"}} if driver == "GeoJSON" else {}
    # GeoPackages record when they were written: a fixed date keeps same maps, same bytes
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_DATE})
    try:
        with warnings.catch_warnings():
            # the temporary name does not end in .gpkg; the file is renamed to one that does
            warnings.filterwarnings("ignore", message="The filename extension should be")
            pyogrio.raw.write(str(path), geometry=shapely.to_wkb(geoms_lonlat),
                              field_data=[fields[n] for n in names], fields=names, crs=WGS84,
                              geometry_type="MultiPolygon", promote_to_multi=True,
                              driver=driver, layer=LAYER, **options)
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})
