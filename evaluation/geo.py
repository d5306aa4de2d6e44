"""The optional GIS packages of the products, and how a scene is georeferenced in them.

rasterio (GDAL in its wheel), pyproj, shapely and pyogrio come with the
``geo`` extra (``pip install 'seaice-gbm[geo]'``); they are imported only
when a product that needs them is written, and their absence is one line.
"""
from __future__ import annotations

import importlib

import numpy as np

from scenes.geolocation import TiePoints

#: What each package is for (for the message naming a missing one).
GEO_PACKAGES = {"rasterio": "GeoTIFF writing and warping (GDAL)",
                "pyproj": "coordinate reference systems", "shapely": "polygon geometry",
                "pyogrio": "GeoPackage / GeoJSON writing"}
#: CRS of the tie points, the GCPs and the polygons: WGS 84 latitude/longitude.
WGS84 = "EPSG:4326"


def require(*names: str):
    """Import the named optional modules (``rasterio.features`` ...), or raise one line
    naming the geo extra.

    Returns the module, or the modules in the order named.
    """
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            top = name.split(".")[0]
            raise ValueError(f"--products needs {top} ({GEO_PACKAGES.get(top, 'GIS')}): "
                             "pip install 'seaice-gbm[geo]'") from None
    return modules if len(modules) != 1 else modules[0]


def available() -> bool:
    """Whether every package of the geo extra can be imported."""
    try:
        require(*GEO_PACKAGES)
    except ValueError:
        return False
    return True


def gcps(tp: TiePoints) -> list:
    """The 441 tie points as rasterio ground control points (EPSG:4326).

    GDAL puts pixel centres at ``index + 0.5`` (the first pixel spans 0..1);
    tie point ``k`` lies on the centre of SAR pixel ``k * (n - 1) / 20``.
    """
    from rasterio.control import GroundControlPoint

    rows, cols = tp.rows, tp.cols
    return [GroundControlPoint(row=float(rows[i]) + 0.5, col=float(cols[j]) + 0.5,
                               x=float(tp.lon[i, j]), y=float(tp.lat[i, j]), z=0.0,
                               id=f"{i}_{j}")
            for i in range(rows.size) for j in range(cols.size)]


def unwrap_longitudes(lon, reference) -> np.ndarray:
    """``lon`` in 0..360 if the scene's tie points (``reference``) straddle the
    antimeridian, so that its polygons stay whole; else unchanged."""
    reference = np.asarray(reference)
    if np.ptp(reference) > 180:
        return np.mod(lon, 360.0)
    return np.asarray(lon)
