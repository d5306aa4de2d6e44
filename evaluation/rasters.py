"""Cloud-Optimized GeoTIFFs of the charts and confidence layers, and their warped copies.

A chart COG is uint8 classes (nodata 255) with the chart's colour table
(:mod:`evaluation.colours`), the class names as band metadata
(``class_0 = open water`` ...), internal overviews made with mode resampling
(a class, never an average of classes) and the scene's 441 tie points as
GCPs in EPSG:4326: GIS software places and warps it from those. A
confidence COG is uint8 0..100 percent (nodata 255), overviews by average.
:func:`warp_layers` resamples layers to a map projection (nearest neighbour,
GDAL's thin-plate-spline GCP transformer, exact at the tie points).
"""
from __future__ import annotations

import warnings

import numpy as np

from models.estimator import available_cores
from scenes.geolocation import TiePoints

from .colours import colour_table
from .geo import WGS84, gcps, require

#: uint8 value of pixels without SAR data in every raster product.
NODATA = 255
#: COG creation options shared by every product raster.
COG_OPTIONS = {"compress": "DEFLATE", "level": 6, "blocksize": 512, "bigtiff": "IF_SAFER"}


def write_cog(path, data, *, tp: TiePoints | None = None, transform=None, crs=None,
              chart: str | None = None, class_names=(), description: str = "",
              tags: dict | None = None) -> None:
    """Write one uint8 layer as a COG at ``path`` (the caller's temporary name).

    Parameters
    ----------
    data : uint8 (H, W)
        Classes or percent; :data:`NODATA` where there is no SAR data.
    tp : TiePoints, optional
        Georeference by the scene's tie points as GCPs (scene geometry) ...
    transform, crs : optional
        ... or by an affine transform in ``crs`` (a warped layer).
    chart : str, optional
        A class layer of this chart: colour table, mode overviews; else a
        percent layer (average overviews).
    class_names : sequence of str
        Written as band metadata ``class_<k>``.
    description : str
        Band description.
    tags : dict, optional
        Dataset metadata (scene, model).
    """
    rasterio = require("rasterio")
    from rasterio.errors import NotGeoreferencedWarning

    H, W = data.shape
    profile = dict(driver="COG", width=W, height=H, count=1, dtype="uint8", nodata=NODATA,
                   overview_resampling="mode" if chart else "average", **COG_OPTIONS)
    if transform is not None:
        profile.update(transform=transform, crs=crs)
    with warnings.catch_warnings():
        # GCP-georeferenced: GDAL warns that there is no geotransform, as it should be
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            if tp is not None:
                dst.gcps = (gcps(tp), rasterio.crs.CRS.from_string(WGS84))
            dst.write(np.ascontiguousarray(data, dtype=np.uint8), 1)
            if chart:
                dst.write_colormap(1, colour_table(chart))
            dst.set_band_description(1, description)
            if class_names:
                dst.update_tags(1, **{f"class_{k}": name for k, name in enumerate(class_names)})
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})


def warp_layers(layers: dict, tp: TiePoints, crs: str, resolution: float):
    """Resample uint8 layers from the scene grid to a regular grid in ``crs``, one by one.

    Parameters
    ----------
    layers : dict name -> uint8 (H, W)
        :data:`NODATA` where there is no data.
    tp : TiePoints
        The scene's tie points (GCPs, thin-plate-spline transformer).
    crs : str
        Target CRS (``EPSG:3413`` ...), checked by the caller.
    resolution : float
        Pixel size in ``crs`` units.

    Yields
    ------
    (name, uint8 (h, w), affine transform)
        The warped layers. They are warped in one pass (the GCP transform is
        solved once: 1.5 x faster than layer by layer), so memory holds all.
    """
    rasterio = require("rasterio")
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    H, W = tp.shape
    points = gcps(tp)
    src_crs = rasterio.crs.CRS.from_string(WGS84)
    dst_crs = rasterio.crs.CRS.from_string(crs)
    transform, w, h = calculate_default_transform(src_crs, dst_crs, W, H, gcps=points,
                                                  resolution=resolution)
    names = list(layers)
    dst = np.full((len(names), h, w), NODATA, np.uint8)
    reproject(np.stack([np.asarray(layers[n], np.uint8) for n in names]), dst, gcps=points,
              src_crs=src_crs, src_nodata=NODATA, dst_transform=transform, dst_crs=dst_crs,
              dst_nodata=NODATA, resampling=Resampling.nearest, tps=True,
              num_threads=available_cores())
    for name, band in zip(names, dst):
        yield name, band, transform
