"""Ice-chart products for analysts, per scene: GeoTIFF, CF-NetCDF, polygons, quicklook.

:class:`ProductWriter` is a writer of the predict job (see
:mod:`pipeline.predict`): it gets each scene's maps and confidence layers
and writes, in one output folder, for scene key ``K``:

- ``K_{SIC,SOD,FLOE}.tif`` and ``K_{chart}_confidence.tif`` (``K_SIC_spread.tif``
  for a SIC regression): Cloud-Optimized GeoTIFFs on the scene grid,
  georeferenced by the tie points as GCPs (:mod:`evaluation.rasters`); with a
  ``crs``, also ``K_{layer}_{epsg}.tif`` warped to it;
- ``K_charts.nc``: CF-1.8 NetCDF of SIC in percent, SOD and FLOE as flag
  variables, the confidence layers, 2-D latitude/longitude;
- ``K_polygons.gpkg`` (and ``.geojson``): the joint chart as simplified
  polygons with their SIGRID-3 codes (:mod:`evaluation.polygons`);
- ``K_quicklook.png``: the polygons over the HH image.

Every file is written to a temporary name in the folder and renamed into
place only when the ``with`` block ends without error; on error all of them
are removed. Same maps, same bytes: no product records the time it was made.
"""
from __future__ import annotations

import hashlib
import os
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from models.persistence import MANIFEST, read_manifest
from scenes import contract as C
from scenes.geolocation import TiePoints, tie_points
from scenes.reader import (SceneError, atomic_path, hdf5_in_memory, open_scene, remove_stale_tmp,
                           valid_mask)

from . import polygons as P
from . import rasters as R
from .geo import require, unwrap_longitudes

#: Product formats; "quicklook" is the PNG of the polygons over HH.
FORMATS = ("geotiff", "netcdf", "gpkg", "geojson", "quicklook")
DEFAULT_FORMATS = ("geotiff", "netcdf", "gpkg")
#: The warped GeoTIFFs' default CRS: NSIDC Sea Ice Polar Stereographic North.
DEFAULT_CRS = "EPSG:3413"
#: Rows of latitude/longitude computed and written at a time.
_ROWS = 512
#: Low mantissa bits cleared in the float32 latitudes/longitudes: they then
#: compress about twice as well, and still resolve about 7 m (pixels are 80 m).
_LATLON_DROP_BITS = 3
#: CF flag meanings (no spaces inside a meaning).
FLAG_MEANINGS = {chart: " ".join(n.replace(" ", "_").replace("-", "_") for n in C.CLASS_NAMES[chart])
                 for chart in ("SOD", "FLOE")}
LONG_NAMES = {"SIC": "sea ice concentration", "SOD": "stage of development of the sea ice",
              "FLOE": "floe size (form of the sea ice)"}


def parse_formats(text) -> tuple:
    """Formats from ``"geotiff,netcdf"`` (or a sequence); one line naming the unknown one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [s.strip().lower() for s in items if s.strip()]
    bad = [s for s in items if s not in FORMATS]
    if bad or not items:
        shown = ",".join(items) or repr(text)
        raise ValueError(f"--formats {shown}: unknown format {bad[0] if bad else '(none)'!r}; "
                         f"choose from {','.join(FORMATS)}")
    return tuple(dict.fromkeys(items))


def check_crs(crs: str | None, resolution: float | None):
    """The target CRS and resolution of the warped GeoTIFFs, checked (one line each)."""
    if crs is None:
        if resolution is not None:
            raise ValueError("--resolution applies to the warped GeoTIFFs: add --crs "
                             f"(e.g. --crs {DEFAULT_CRS})")
        return None, None
    pyproj = require("pyproj")
    try:
        parsed = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError:
        raise ValueError(f"--crs {crs}: not a coordinate reference system PROJ knows; use "
                         f"e.g. {DEFAULT_CRS} (Arctic polar stereographic)") from None
    if resolution is None:
        if not parsed.is_projected:
            raise ValueError(f"--crs {crs} is not projected: give --resolution in its units "
                             "(degrees)")
        resolution = 80.0  # metres, the scenes' pixel spacing
    if not resolution > 0:
        raise ValueError(f"--resolution {resolution}: must be a positive pixel size")
    return crs, float(resolution)


def model_info(model_dir) -> dict:
    """What the products record of the model: manifest hash, training run, software."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    t = manifest.training
    return {"model": model_dir.name,
            "model_manifest_sha256": hashlib.sha256((model_dir / MANIFEST).read_bytes()).hexdigest(),
            "model_training_run": (f"created {t.created_utc}, seed {t.seed}, "
                                   f"{len(t.train_scenes)} training scenes, {t.n_pixels} pixels"),
            "model_sic_mode": manifest.sic_mode,
            "model_software_version": str(manifest.versions.get("seaice-gbm", "unknown")),
            "software_version": software_version()}


def software_version() -> str:
    try:
        return f"seaice-gbm {metadata.version('seaice-gbm')}"
    except metadata.PackageNotFoundError:
        return "seaice-gbm (not installed)"


def confidence_layers(maps: dict) -> dict:
    """The confidence layers present in ``maps``, by chart: ``{chart: (name, array)}``.

    They are uint8 0..100 and 255 where there is no SAR data
    (:meth:`models.predict.Renderer.confidence`).
    """
    out = {}
    for chart in C.LABEL_CHARTS:
        for name in (f"{chart}_confidence", f"{chart}_spread"):
            if name in maps:
                out[chart] = (name, maps[name])
    return out


def epsg_tag(crs: str) -> str:
    """File-name tag of a CRS: ``EPSG:3413`` -> ``epsg3413``."""
    return "".join(ch for ch in crs.lower() if ch.isalnum())


class ProductWriter:
    """Write analysts' products per scene into a folder (see the module docstring).

    Parameters
    ----------
    out_dir : path-like
        Folder of the products; created if missing. Files of the same names
        are replaced, others left alone.
    formats : sequence of str
        Some of :data:`FORMATS`.
    crs : str, optional
        Also write warped GeoTIFFs in this CRS (``geotiff`` format).
    resolution : float, optional
        Their pixel size in ``crs`` units (default 80 m for a projected CRS).
    simplify_m, min_area_km2 : float
        Polygon simplification tolerance and smallest polygon.
    model : dict, optional
        :func:`model_info` of the model, recorded in the products.
    """

    option = "--products"
    wants_confidence = True

    def __init__(self, out_dir, *, formats=DEFAULT_FORMATS, crs=None, resolution=None,
                 simplify_m: float = P.DEFAULT_SIMPLIFY_M,
                 min_area_km2: float = P.DEFAULT_MIN_AREA_KM2, model: dict | None = None):
        self.path = Path(out_dir)
        self.formats = parse_formats(formats)
        if crs is not None and "geotiff" not in self.formats:
            raise ValueError(f"--crs warps the GeoTIFFs: add geotiff to --formats "
                             f"(now {','.join(self.formats)})")
        self.crs, self.resolution = check_crs(crs, resolution)
        if simplify_m < 0 or min_area_km2 < 0:
            raise ValueError("--simplify and --min-area must be >= 0")
        self.simplify_m, self.min_area_km2 = float(simplify_m), float(min_area_km2)
        self.model = dict(model or {})
        needs = [m for f, m in (("geotiff", "rasterio"), ("gpkg", "pyogrio"),
                                ("geojson", "pyogrio"), ("quicklook", "shapely"))
                 if f in self.formats]
        if needs:  # fail before any prediction, not after the first scene
            require(*dict.fromkeys(["rasterio", "shapely", *needs]))
        self._pending: list[tuple[Path, Path]] = []
        self.written: list[Path] = []
        self.keys: list[str] = []
        #: Seconds spent per product over all scenes, and polygons per scene.
        self.seconds: dict[str, float] = {}
        self.polygons: dict[str, int] = {}

    def _clock(self, name, t0) -> float:
        t1 = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + t1 - t0, 3)
        return t1

    def __enter__(self):
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SceneError(self.path, None, f"cannot be created ({exc.strerror or exc})",
                             "choose a writable --products folder") from None
        remove_stale_tmp(self.path)
        return self

    def _tmp(self, name: str) -> Path:
        final = self.path / name
        tmp = atomic_path(final)
        self._pending.append((tmp, final))
        return tmp

    def add(self, key: str, maps: dict, scene=None) -> None:
        """Write the products of one scene (to temporaries until the block ends)."""
        if scene is None:
            raise ValueError(f"{key}: products need the scene file (its geolocation and SAR)")
        if key in self.keys:
            raise ValueError(f"scene {key} added twice to {self.path}")
        t = time.perf_counter()
        conf = confidence_layers(maps)
        ds = open_scene(scene, validate=False)
        try:
            tp = tie_points(ds)
            # the confidence layers mark the pixels without SAR data: no second read of HH
            valid = (next(iter(conf.values()))[1] != R.NODATA) if conf else valid_mask(ds)
            pixel_m = float(ds.attrs.get("pixel_spacing", 80))
            attrs = {"scene_id": str(ds.attrs.get("scene_id", Path(scene).name)),
                     "original_id": str(ds.attrs.get("original_id", "")),
                     "ice_service": str(ds.attrs.get("ice_service", ""))}
            hh = ds[C.SAR_VARS[0]].values if "quicklook" in self.formats else None
        finally:
            ds.close()
        shape = tuple(valid.shape)
        for chart in C.LABEL_CHARTS:
            if np.asarray(maps[chart]).shape != shape:
                raise ValueError(f"{key} {chart}: map shape {np.shape(maps[chart])} is not the "
                                 f"scene's {shape}")
        tags = {**attrs, **self.model}
        t = self._clock("read scene", t)
        if "geotiff" in self.formats:
            self._geotiffs(key, maps, conf, valid, tp, tags)
            t = self._clock("geotiff", t)
        if "netcdf" in self.formats:
            write_netcdf(self._tmp(f"{key}_charts.nc"), maps, conf, valid, tp, tags)
            t = self._clock("netcdf", t)
        if {"gpkg", "geojson", "quicklook"} & set(self.formats):
            geoms, codes = P.vectorise(maps, valid, pixel_m=pixel_m, simplify_m=self.simplify_m,
                                       min_area_km2=self.min_area_km2)
            fields = P.attributes(codes, geoms, pixel_m)
            self.polygons[key] = int(len(geoms))
            if {"gpkg", "geojson"} & set(self.formats):
                lonlat = P.to_lonlat(geoms, tp)
                for fmt, driver in (("gpkg", "GPKG"), ("geojson", "GeoJSON")):
                    if fmt in self.formats:
                        P.write_polygons(self._tmp(f"{key}_polygons.{fmt}"), lonlat, fields,
                                         driver)
            t = self._clock("polygons", t)
            if "quicklook" in self.formats:
                from .quicklook import plot_polygons  # matplotlib: only when asked for

                plot_polygons(self._tmp(f"{key}_quicklook.png"), hh, geoms, fields["SOD"], tp,
                              title=f"{key}: predicted SOD polygons over HH")
                t = self._clock("quicklook", t)
        self.keys.append(key)

    def _geotiffs(self, key, maps, conf, valid, tp, tags):
        layers = {}
        for chart in C.LABEL_CHARTS:
            layers[chart] = np.where(valid, maps[chart], R.NODATA).astype(np.uint8)
            if chart in conf:  # already NODATA without SAR data
                name, arr = conf[chart]
                layers[name] = np.asarray(arr, np.uint8)
        for name, arr in layers.items():
            self._write_layer(key, name, arr, tags, tp=tp)
        if self.crs:
            for name, arr, transform in R.warp_layers(layers, tp, self.crs, self.resolution):
                self._write_layer(key, name, arr, tags, suffix=f"_{epsg_tag(self.crs)}",
                                  transform=transform, crs=self.crs)

    def _write_layer(self, key, name, arr, tags, suffix="", **where):
        chart = name if name in C.LABEL_CHARTS else None
        R.write_cog(self._tmp(f"{key}_{name}{suffix}.tif"), arr, chart=chart,
                    class_names=C.CLASS_NAMES[chart] if chart else (),
                    description=(LONG_NAMES[chart] + " class" if chart
                                 else layer_description(name)),
                    tags={**tags, "layer": name}, **where)

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                for tmp, final in self._pending:
                    os.replace(tmp, final)
                    self.written.append(final)
        finally:
            for tmp, _ in self._pending:
                tmp.unlink(missing_ok=True)
            self._pending = []
        return False


def layer_description(name: str) -> str:
    """Long name of a confidence layer."""
    chart, kind = name.split("_", 1)
    if kind == "spread":
        return ("spread of the SIC regression: standard deviation (% concentration) of its "
                "values within about 5 lattice points")
    return f"probability (%) of the mapped {LONG_NAMES[chart]} class"


def write_netcdf(path, maps: dict, conf: dict, valid, tp: TiePoints, attrs: dict) -> None:
    """CF-1.8 NetCDF4 of one scene's charts and confidence layers (see the module docstring)."""
    H, W = valid.shape
    chunks = (min(H, _ROWS), min(W, 1024))
    gz = {"compression": "gzip", "compression_opts": 1, "shuffle": True, "chunks": chunks}
    with hdf5_in_memory(path) as f:  # a full disk must not crash HDF5
        f.dimensions.update({"line": H, "sample": W})
        f.attrs.update({
            "Conventions": "CF-1.8",
            "title": "Sea ice charts (SIC, SOD, FLOE) predicted from one Sentinel-1 scene",
            "summary": "Per-pixel gradient-boosted classification of AI4Arctic ready-to-train "
                       "SAR, AMSR2 and ERA5 inputs on the scene's 80 m SAR grid; confidence "
                       "layers give the model's probability of each mapped class.",
            "source": f"{attrs.get('software_version', software_version())}; scene "
                      f"{attrs.get('scene_id', '')}",
            "references": "AI4Arctic Sea Ice Challenge dataset (ESA/DTU); SIGRID-3 classes as "
                          "in the challenge",
            "history": "written by `seaice predict --products`",
            **{k: str(v) for k, v in attrs.items()}})
        lat = f.create_variable("lat", ("line", "sample"), np.float32, **gz)
        lat.attrs.update(standard_name="latitude", long_name="latitude of the pixel centre",
                         units="degrees_north")
        lon = f.create_variable("lon", ("line", "sample"), np.float32, **gz)
        lon.attrs.update(standard_name="longitude", long_name="longitude of the pixel centre",
                         units="degrees_east",
                         comment="interpolated between the scene's 21 x 21 tie points on the "
                                 "sphere; resolved to about 7 m")
        cols = np.arange(W)
        for r0 in range(0, H, _ROWS):
            la, lo = tp.grid(np.arange(r0, min(H, r0 + _ROWS)), cols, np.float32)
            lat[r0:r0 + la.shape[0], :] = _drop_bits(la)
            lon[r0:r0 + la.shape[0], :] = _drop_bits(unwrap_longitudes(lo, tp.lon))
        for chart in C.LABEL_CHARTS:
            values = np.asarray(maps[chart], np.uint8)
            if chart == "SIC":
                values = values * np.uint8(10)  # class k is k x 10 %
            var = f.create_variable(chart, ("line", "sample"), np.uint8, fillvalue=np.uint8(255),
                                    data=np.where(valid, values, 255).astype(np.uint8), **gz)
            var.attrs["long_name"] = LONG_NAMES[chart]
            var.attrs["coordinates"] = "lat lon"
            if chart == "SIC":
                var.attrs.update(standard_name="sea_ice_area_fraction", units="%",
                                 valid_range=np.array([0, 100], np.uint8),
                                 comment="challenge class k (0..10) is k x 10 %")
            else:
                n = C.N_CLASSES[chart]
                var.attrs.update(flag_values=np.arange(n, dtype=np.uint8),
                                 flag_meanings=FLAG_MEANINGS[chart],
                                 valid_range=np.array([0, n - 1], np.uint8))
            if chart in conf:
                name, arr = conf[chart]
                var.attrs["ancillary_variables"] = name
                cv = f.create_variable(name, ("line", "sample"), np.uint8,
                                       fillvalue=np.uint8(255), data=np.asarray(arr, np.uint8),
                                       **gz)
                cv.attrs.update(long_name=layer_description(name), units="%",
                                valid_range=np.array([0, 100], np.uint8), coordinates="lat lon")
                if name.endswith("_spread"):
                    cv.attrs["standard_name"] = "sea_ice_area_fraction standard_error"


def _drop_bits(a) -> np.ndarray:
    """float32 of ``a`` with the lowest :data:`_LATLON_DROP_BITS` mantissa bits rounded off."""
    x = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    half = np.uint32(1 << (_LATLON_DROP_BITS - 1))
    mask = np.uint32(~((1 << _LATLON_DROP_BITS) - 1) & 0xFFFFFFFF)
    return ((x + half) & mask).view(np.float32)
