"""Per-pixel feature stacks of a scene, in row blocks or at sparse points.

A :class:`FeatureConfig` fixes the features; :func:`feature_names` gives their
stable order and :func:`feature_groups` the group of each (for importance
analysis). :func:`featurize_blocks` walks a scene in row blocks, reading each
block with a halo of rows so that the tiled output is identical to the untiled
one, and allocates one block of features at a time. :func:`featurize_at`
computes the same values at chosen pixels only (sparse training samples).

Feature groups (in this order):

- ``sar_intensity``: ``hh_db``, ``hv_db``, ``hvmhh_db`` (HV - HH, the
  cross-polarisation ratio) and ``hh_ia_norm`` (HH at 35 deg incidence, see
  :mod:`featurize.context`).
- ``sar_context``: ``{band}_mean_{s}`` and ``{band}_std_{s}`` of hh, hv and
  hvmhh over ``s x s`` boxes of valid pixels, then ``valid_frac_{max s}``.
- ``sar_texture_w{w}``: ``{band}_glcm{w}_{prop}``, GLCM properties of the
  quantised dB image in ``w x w`` windows (:mod:`featurize.texture`).
- ``amsr2``, ``era5``: 2 km fields bilinearly interpolated
  (:mod:`featurize.radiometer`); of ERA5 only ``FeatureConfig.era5_features``
  (by default the 10 m wind).
- ``geometry``: ``geo_incidence`` (degrees) and ``geo_distance_zone``
  (distance-to-land zone id 0..41).
- ``scene``: ``scene_doy_sin``, ``scene_doy_cos`` (acquisition day of year on
  the unit circle: melt season changes every ice signature) and
  ``scene_service_dmi`` (1 for DMI charts, 0 for CIS: the two services chart
  differently), constant over a scene, read from its ``scene_id``.

Fill pixels (``valid_mask`` False, i.e. ``nersc_sar_primary == 0``): every
SAR-grid feature (intensity, context, texture, geometry) is NaN there; the
AMSR2, ERA5 and scene features are defined everywhere. LightGBM treats NaN as
missing; such pixels are not scored anyway. Context statistics leave fill
pixels out exactly; GLCM windows that reach fill pixels see them as the mid
grey of :mod:`featurize.quantize` (``valid_frac_101`` tells the model where).

Default configuration (66 features), its texture chosen by measurement with
``benchmarks/bench_featurize.py`` on 5000 x 5200 synthetic scenes, 2 threads:
GLCM contrast, homogeneity, entropy and correlation (a small, little
correlated set: contrast/homogeneity for local variation, entropy for
disorder, correlation for linear structure; the GLCM mean and variance
duplicate the context means and stds) of HH and HV at full 80 m resolution,
32 grey levels, distance 1, windows 11 and 25 px (0.9 and 2 km). A full scene
takes 48-56 s of CPU time (texture about 33 s, context 6 s, 2 km
interpolation 5 s), 47 s wall on two shared cores (about 30 s on idle ones),
peak RSS about 1.1 GB with 256-row blocks. ``texture_factor=2`` (GLCM on
160 m blocks, windows then 1.8 and 4 km) cuts that to 25-35 s of CPU (18.5 s
wall); we keep full resolution because it is inside the 60 s budget.
"""
from __future__ import annotations

import calendar
import datetime
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from scenes.contract import SAR_DIMS, meanstd, parse_scene_name, to_physical

from . import context, quantize, radiometer, texture

#: Contract variable of each SAR band.
SAR_BAND_VARS = {"hh": "nersc_sar_primary", "hv": "nersc_sar_secondary"}
_IA_VAR = "sar_incidenceangle"
_DIST_VAR = "distance_map"
#: Largest distance-to-land zone id.
MAX_DISTANCE_ZONE = 41


#: ERA5 features used by default (see FeatureConfig.era5_features).
DEFAULT_ERA5_FEATURES = ("era5_u10m", "era5_v10m", "era5_wind")


@dataclass(frozen=True)
class FeatureConfig:
    """What :func:`featurize_blocks` computes.

    Parameters
    ----------
    sar_bands : tuple of {"hh", "hv"}
        SAR bands for intensity, context and texture features (``hvmhh``
        appears when both are given, ``hh_ia_norm`` when "hh" is).
    ia_slope, ia_ref : float
        HH incidence-angle normalisation: ``HH + ia_slope * (IA - ia_ref)``.
    context_scales : tuple of odd int
        Box sizes (SAR pixels) of the context means and stds; () for none.
    texture_windows : tuple of odd int
        GLCM window sizes (SAR pixels); () for no texture.
    texture_levels : int
        Grey levels of the quantised dB image.
    texture_distances : tuple of int
        GLCM pixel-pair distances.
    texture_props : tuple of str
        GLCM properties (names of :mod:`featurize.texture`).
    texture_factor : int
        The GLCM runs on an image averaged over ``f x f`` blocks of valid
        pixels (1 = full 80 m resolution), with windows counted in its own
        pixels; each 80 m pixel takes the value of its block.
    amsr2, era5, geometry, scene : bool
        Include the AMSR2, ERA5, geometry and scene groups.
    era5_features : tuple of str
        The ERA5 features of the ``era5`` group (names of
        ``radiometer.ERA5_FEATURES``); by default the 10 m wind (u, v, speed),
        which drives open-water backscatter. Temperature, skin temperature,
        water vapour and cloud water are left out by default: their smooth
        30 km fields let the trees recognise training scenes (see the README).
    """

    sar_bands: tuple = ("hh", "hv")
    ia_slope: float = context.IA_SLOPE_DB_PER_DEG
    ia_ref: float = context.IA_REF_DEG
    context_scales: tuple = (5, 25, 101)
    texture_windows: tuple = (11, 25)
    texture_levels: int = 32
    texture_distances: tuple = (1,)
    texture_props: tuple = ("contrast", "homogeneity", "entropy", "correlation")
    texture_factor: int = 1
    amsr2: bool = True
    era5: bool = True
    geometry: bool = True
    scene: bool = True
    era5_features: tuple = DEFAULT_ERA5_FEATURES

    def __post_init__(self):
        for name in ("sar_bands", "context_scales", "texture_windows", "texture_distances",
                     "texture_props", "era5_features"):
            value = getattr(self, name)
            if isinstance(value, (str, int)):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        # Types first, so that a config read from JSON fails with its key's name.
        for name in ("context_scales", "texture_windows", "texture_distances"):
            if not all(_is_number(v) for v in getattr(self, name)):
                raise ValueError(f"{name} must be whole numbers, got {getattr(self, name)}")
        for name in ("ia_slope", "ia_ref", "texture_levels", "texture_factor"):
            if not _is_number(getattr(self, name)):
                raise ValueError(f"{name} must be a number, got {getattr(self, name)!r}")
        for name in ("amsr2", "era5", "geometry", "scene"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        era5 = self.era5_features
        if any(n not in radiometer.ERA5_FEATURES for n in era5) or len(set(era5)) != len(era5) \
                or (self.era5 and not era5):
            raise ValueError(f"era5_features must be distinct names from "
                             f"{radiometer.ERA5_FEATURES}, got {era5}; set era5=false for none")
        object.__setattr__(self, "era5_features",
                           tuple(n for n in radiometer.ERA5_FEATURES if n in era5))
        bad = [b for b in self.sar_bands if b not in SAR_BAND_VARS]
        if not self.sar_bands or bad or len(set(self.sar_bands)) != len(self.sar_bands):
            raise ValueError(f"sar_bands must be distinct names from {tuple(SAR_BAND_VARS)}, "
                             f"got {self.sar_bands}")
        for name, least in (("context_scales", 1), ("texture_windows", 3)):
            value = getattr(self, name)
            if any(int(v) != v or v < least or v % 2 == 0 for v in value):
                raise ValueError(f"{name} must be odd pixel sizes >= {least}, got {value}")
            object.__setattr__(self, name, tuple(int(v) for v in value))
        if self.texture_windows:
            if not self.texture_props or not self.texture_distances:
                raise ValueError("texture_windows need texture_props and texture_distances; "
                                 "set texture_windows=() for no texture")
            if any(int(d) != d or not 1 <= d < min(self.texture_windows)
                   for d in self.texture_distances):
                raise ValueError(f"texture_distances must be ints in 1..smallest window - 1, "
                                 f"got {self.texture_distances}")
            bad = [p for p in self.texture_props if p not in texture.SUPPORTED_PROPS]
            if bad:
                raise ValueError(f"unknown texture_props {bad}; choose from "
                                 f"{texture.SUPPORTED_PROPS}")
            if int(self.texture_levels) != self.texture_levels or \
                    not 2 <= self.texture_levels <= 256:
                raise ValueError(f"texture_levels must be an int in 2..256, "
                                 f"got {self.texture_levels}")
            if int(self.texture_factor) != self.texture_factor or self.texture_factor < 1:
                raise ValueError(f"texture_factor must be a positive int, got "
                                 f"{self.texture_factor}")
            for name in ("texture_levels", "texture_factor"):
                object.__setattr__(self, name, int(getattr(self, name)))
            object.__setattr__(self, "texture_distances",
                               tuple(int(d) for d in self.texture_distances))

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown FeatureConfig keys {unknown}; known: {sorted(known)}")
        return cls(**d)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _context_bands(config):
    bands = list(config.sar_bands)
    if len(bands) == 2:
        bands.append("hvmhh")
    return bands


def _intensity_names(config):
    names = [f"{b}_db" for b in config.sar_bands]
    if len(config.sar_bands) == 2:
        names.append("hvmhh_db")
    if "hh" in config.sar_bands:
        names.append("hh_ia_norm")
    return names


def _context_names(config):
    if not config.context_scales:
        return []
    names = [f"{b}_{stat}_{s}" for s in config.context_scales
             for b in _context_bands(config) for stat in ("mean", "std")]
    return names + [f"valid_frac_{max(config.context_scales)}"]


_GEOMETRY_NAMES = ["geo_incidence", "geo_distance_zone"]
_SCENE_NAMES = ["scene_doy_sin", "scene_doy_cos", "scene_service_dmi"]


def feature_groups(config: FeatureConfig | None = None) -> dict:
    """Ordered ``{feature name: group}`` (same order as :func:`feature_names`)."""
    config = FeatureConfig() if config is None else config
    groups = {n: "sar_intensity" for n in _intensity_names(config)}
    groups.update({n: "sar_context" for n in _context_names(config)})
    for w in config.texture_windows:
        groups.update({f"{b}_glcm{w}_{p}": f"sar_texture_w{w}"
                       for b in config.sar_bands for p in config.texture_props})
    groups.update({n: "amsr2" for n in radiometer.AMSR2_FEATURES if config.amsr2})
    groups.update({n: "era5" for n in config.era5_features if config.era5})
    if config.geometry:
        groups.update({n: "geometry" for n in _GEOMETRY_NAMES})
    if config.scene:
        groups.update({n: "scene" for n in _SCENE_NAMES})
    return groups


def feature_names(config: FeatureConfig | None = None) -> list:
    """Stable ordered feature names; their count is the ``F`` of the outputs."""
    return list(feature_groups(config))


# --- scene access -------------------------------------------------------------
def _required_vars(config):
    need = [SAR_BAND_VARS["hh"]] + [SAR_BAND_VARS[b] for b in config.sar_bands]
    if "hh" in config.sar_bands or config.geometry:
        need.append(_IA_VAR)
    if config.geometry:
        need.append(_DIST_VAR)
    if config.amsr2:
        need += list(radiometer.AMSR2_VARS)
    if config.era5:
        need += [v for n in config.era5_features for v in radiometer.ERA5_SOURCES[n]]
    return list(dict.fromkeys(need))


def _check_scene(ds, config):
    missing = [v for v in _required_vars(config) if v not in ds.variables]
    if missing:
        raise ValueError(f"scene lacks variables {missing}; open a full train/test scene "
                         "(scenes.reader.open_scene) or turn those feature groups off")
    hh = ds[SAR_BAND_VARS["hh"]]
    if hh.dims != SAR_DIMS:
        raise ValueError(f"nersc_sar_primary has dims {hh.dims}, expected {SAR_DIMS}")
    return hh.shape


def scene_features(ds) -> tuple:
    """``(sin, cos)`` of the acquisition day of year and the DMI flag of a scene.

    Read from the ``scene_id`` attribute (``YYYYMMDDTHHMMSS_{dmi|cis}_prep.nc``,
    FORMAT.md), else from the file name.
    """
    source = ds.encoding.get("source", "")
    for name in (ds.attrs.get("scene_id"), Path(source).name if source else None):
        parsed = parse_scene_name(str(name or ""))
        if parsed:
            key = parsed[0]
            try:
                when = datetime.datetime.strptime(key[:15], "%Y%m%dT%H%M%S")
            except ValueError:
                continue
            days = 366 if calendar.isleap(when.year) else 365
            angle = 2 * np.pi * (when.timetuple().tm_yday - 0.5) / days
            return float(np.sin(angle)), float(np.cos(angle)), float(key.endswith("_dmi"))
    raise ValueError(f"{source or 'scene'}: attribute scene_id {ds.attrs.get('scene_id')!r} does "
                     "not give the acquisition date and ice service; name scenes "
                     "YYYYMMDDTHHMMSS_{dmi|cis}_prep.nc as FORMAT.md does, or train with the "
                     "scene feature group off (FeatureConfig(scene=False))")


def _read_rows(ds, var, row0, row1):
    return np.asarray(ds[var].isel({SAR_DIMS[0]: slice(row0, row1)}).values)


def valid_mask(ds, rows=None):
    """Valid SAR pixels, ``nersc_sar_primary != 0``; ``rows`` an optional slice."""
    hh = ds[SAR_BAND_VARS["hh"]]
    if rows is not None:
        hh = hh.isel({SAR_DIMS[0]: rows})
    return np.asarray(hh.values) != 0


def _band_centres(bands):
    ms = meanstd()
    mean = {b: ms[v]["mean"] for b, v in SAR_BAND_VARS.items()}
    mean["hvmhh"] = mean["hv"] - mean["hh"]
    return [mean[b] for b in bands]


class _Rows:
    """SAR-grid inputs of image rows ``r0:r1`` in physical units, NaN at fill."""

    def __init__(self, ds, config, r0, r1):
        self.r0 = r0
        self.valid = _read_rows(ds, SAR_BAND_VARS["hh"], r0, r1) != 0
        self.db = {}
        for b in config.sar_bands:
            x = to_physical(SAR_BAND_VARS[b], _read_rows(ds, SAR_BAND_VARS[b], r0, r1))
            x[~self.valid] = np.nan
            self.db[b] = x
        if len(config.sar_bands) == 2:
            self.db["hvmhh"] = self.db["hv"] - self.db["hh"]


def _geometry(ia_deg, dist_z, valid):
    zone = np.clip(np.rint(to_physical(_DIST_VAR, dist_z)), 0, MAX_DISTANCE_ZONE)
    zone[~valid] = np.nan
    return [ia_deg, zone]


def _incidence(ia_z, valid):
    ia = to_physical(_IA_VAR, ia_z)
    ia[~valid | (ia_z == 0)] = np.nan
    return ia


def _halo(config):
    h = max(config.context_scales, default=1) // 2
    if config.texture_windows:
        h = max(h, _texture_halo(config))
    return h


# --- texture ---------------------------------------------------------------------
def _texture_halo(config):
    """Image rows a texture block needs on each side (with room to reach a full window)."""
    return (max(config.texture_windows) + 1) * config.texture_factor


def _coarsen(db, f):
    """Mean of the valid (non-NaN) values of each ``f x f`` block; NaN if none."""
    if f == 1:
        return db
    h, w = db.shape
    hc, wc = -(-h // f), -(-w // f)
    pad = np.full((hc * f, wc * f), np.nan, np.float32)
    pad[:h, :w] = db
    blocks = pad.reshape(hc, f, wc, f)
    n = np.sum(~np.isnan(blocks), axis=(1, 3))
    total = np.nansum(blocks, axis=(1, 3), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan).astype(np.float32)


def _texture(config, region, H, row0, row1, query):
    """Texture planes for image rows ``row0:row1`` of ``region``.

    The GLCM runs on the texture image (``texture_factor`` x coarser) rows
    ``t0:t1``: the rows of ``row0:row1`` plus a halo of half the largest window
    (at least a full window where the image has it, as the GLCM needs one).
    ``query(grey, t0, window)`` returns the planes wanted from the GLCM of
    that strip.
    """
    f = config.texture_factor
    hc = -(-H // f)
    wmax = max(config.texture_windows)
    t0 = max(0, row0 // f - wmax // 2)
    t1 = min(hc, (row1 - 1) // f + 1 + wmax // 2)
    t1 = min(hc, max(t1, t0 + wmax))
    t0 = max(0, min(t0, t1 - wmax))
    a, b = t0 * f - region.r0, min(H, t1 * f) - region.r0
    if a < 0 or b > region.valid.shape[0]:
        raise AssertionError("texture strip outside the rows read")  # a bug, not bad input
    grey = {band: quantize.quantize_db(_coarsen(region.db[band][a:b], f), band,
                                       config.texture_levels)
            for band in config.sar_bands}
    planes = []
    for w in config.texture_windows:
        for band in config.sar_bands:
            planes.extend(query(grey[band], t0, w))
    return planes


def _glcm_kwargs(config, window):
    return dict(window=window, levels=config.texture_levels,
                distances=config.texture_distances, props=config.texture_props)


# --- where the features go: a row block or a set of points -----------------------
class _Block:
    """Image rows ``lo:hi``, all columns; planes are (rows, W)."""

    def __init__(self, lo, hi, width):
        self.lo, self.hi, self.width = lo, hi, width
        self.shape = (hi - lo, width)

    def take(self, region_array, r0):
        return region_array[self.lo - r0:self.hi - r0]

    def read(self, ds, var):
        return _read_rows(ds, var, self.lo, self.hi)

    def context(self, bands_db, centres, valid, scales, r0, H, out):
        context.box_stats_rows(bands_db, centres, valid, scales, row0=self.lo,
                               row1=self.hi, row_off=r0, h_img=H, out=out)

    def texture(self, config, region, H):
        f = config.texture_factor
        ti = np.arange(self.lo, self.hi) // f
        tj = np.arange(self.width) // f

        def query(grey, t0, w):
            t = texture.glcm(grey, **_glcm_kwargs(config, w))
            if f == 1:
                return t[:, self.lo - t0:self.hi - t0]
            # each 80 m pixel takes the value of the texture pixel it lies in
            return t[:, ti - t0][:, :, tj]

        return _texture(config, region, H, self.lo, self.hi, query)

    def grid(self, fields, out):
        radiometer.bilinear_rows(fields, self.lo, self.hi, self.width, out=out)


class _Points:
    """Image pixels ``(rows[k], cols[k])`` within rows ``lo:hi``; planes are (N,)."""

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        self.lo, self.hi = int(rows.min()), int(rows.max()) + 1
        self.shape = rows.shape

    def take(self, region_array, r0):
        return region_array[self.rows - r0, self.cols]

    def read(self, ds, var):
        return self.take(_read_rows(ds, var, self.lo, self.hi), self.lo)

    def context(self, bands_db, centres, valid, scales, r0, H, out):
        out[:] = context.box_stats_at(bands_db, centres, valid, scales, self.rows, self.cols,
                                      row_off=r0, h_img=H)

    def texture(self, config, region, H):
        f = config.texture_factor

        def query(grey, t0, w):
            return texture.glcm_at(grey, self.rows // f - t0, self.cols // f,
                                   **_glcm_kwargs(config, w))

        return _texture(config, region, H, self.lo, self.hi, query)

    def grid(self, fields, out):
        out[:] = radiometer.bilinear_points(fields, self.rows, self.cols)


class _Scene:
    """Per-scene state shared by all blocks or point groups."""

    def __init__(self, ds, config):
        self.ds, self.config = ds, config
        self.H, self.W = _check_scene(ds, config)
        self.grid = (radiometer.grid_fields(ds, amsr2=config.amsr2, era5=config.era5,
                                            era5_features=config.era5_features)[1]
                     if config.amsr2 or config.era5 else None)
        self.halo = _halo(config)
        self.context_bands = _context_bands(config)
        self.centres = _band_centres(self.context_bands)
        self.n_features = n_features(config)
        self.scene_values = scene_features(ds) if config.scene else None

    def fill(self, target, out):
        """Write every feature of ``target`` into ``out`` (F, *target.shape)."""
        ds, config = self.ds, self.config
        r0 = max(0, target.lo - self.halo)
        region = _Rows(ds, config, r0, min(self.H, target.hi + self.halo))
        valid = target.take(region.valid, r0)
        ia = None
        if "hh" in config.sar_bands or config.geometry:
            ia = _incidence(target.read(ds, _IA_VAR), valid)
        k = 0
        for b in config.sar_bands:
            out[k] = target.take(region.db[b], r0)
            k += 1
        if len(config.sar_bands) == 2:
            out[k] = target.take(region.db["hvmhh"], r0)
            k += 1
        if "hh" in config.sar_bands:
            out[k] = context.ia_normalised(target.take(region.db["hh"], r0), ia,
                                           config.ia_slope, config.ia_ref)
            k += 1
        k_masked = k
        if config.context_scales:
            n = context.n_stats(len(self.context_bands), config.context_scales)
            target.context([region.db[b] for b in self.context_bands], self.centres,
                           region.valid, config.context_scales, r0, self.H, out[k:k + n])
            k += n
        if config.texture_windows:
            for plane in target.texture(config, region, self.H):
                out[k] = plane
                k += 1
        np.copyto(out[k_masked:k], np.nan, where=~valid)
        if self.grid is not None:
            target.grid(self.grid, out[k:k + len(self.grid)])
            k += len(self.grid)
        if config.geometry:
            out[k:k + 2] = _geometry(ia, target.read(ds, _DIST_VAR), valid)
            k += 2
        if self.scene_values is not None:
            for value in self.scene_values:
                out[k] = value
                k += 1
        if k != self.n_features:
            raise AssertionError(f"wrote {k} of {self.n_features} features")  # a bug


# --- public ---------------------------------------------------------------------
def n_features(config: FeatureConfig | None = None) -> int:
    """Number of features ``F``."""
    return len(feature_groups(config))


def featurize_blocks(ds, config: FeatureConfig | None = None, *, block_rows: int = 256):
    """Feature stacks of a scene, one row block at a time.

    Parameters
    ----------
    ds : xarray.Dataset
        A scene as opened by :func:`scenes.reader.open_scene` (z-scored
        variables, SAR fill 0.0); may be lazy, only a block plus its halo is
        read at a time.
    config : FeatureConfig, optional
    block_rows : int
        Rows per block. The output does not depend on it.

    Returns
    -------
    iterator of (row0, row1, X)
        ``X`` is a new float32 array (n_features, row1 - row0, n_samples) in
        :func:`feature_names` order. The scene and arguments are checked
        before the iterator is returned.
    """
    config = FeatureConfig() if config is None else config
    block_rows = int(block_rows)
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    # validate now, not at the first next()
    return _blocks(_Scene(ds, config), block_rows)


def _blocks(scene, block_rows):
    for row0 in range(0, scene.H, block_rows):
        row1 = min(scene.H, row0 + block_rows)
        X = np.empty((scene.n_features, row1 - row0, scene.W), np.float32)
        scene.fill(_Block(row0, row1, scene.W), X)
        yield row0, row1, X


def featurize_at(ds, config: FeatureConfig | None = None, rows=None, cols=None, *,
                 block_rows: int = 256):
    """Features at chosen pixels, equal to :func:`featurize_blocks` there.

    Parameters
    ----------
    ds : xarray.Dataset
    config : FeatureConfig, optional
    rows, cols : int arrays (N,)
        Pixel positions (any order, repeats allowed).
    block_rows : int
        Points are processed in groups spanning at most this many rows, each
        read with its halo; it bounds memory, not the result.

    Returns
    -------
    float32 array (N, n_features)
    """
    config = FeatureConfig() if config is None else config
    scene = _Scene(ds, config)
    rows = np.asarray(rows)
    cols = np.asarray(cols)
    if rows.ndim != 1 or rows.shape != cols.shape or not (
            np.issubdtype(rows.dtype, np.integer) and np.issubdtype(cols.dtype, np.integer)):
        raise ValueError("rows and cols must be 1-D integer arrays of the same length")
    if rows.size and (rows.min() < 0 or rows.max() >= scene.H or cols.min() < 0
                      or cols.max() >= scene.W):
        raise ValueError(f"points must lie inside the scene's {scene.H} x {scene.W} SAR grid")
    rows = rows.astype(np.int64)
    cols = cols.astype(np.int64)
    out = np.empty((rows.size, scene.n_features), np.float32)
    order = np.argsort(rows, kind="stable")
    starts = np.arange(0, scene.H, max(int(block_rows), 1))
    bounds = np.searchsorted(rows[order], np.r_[starts, scene.H])
    for g0, g1 in zip(bounds[:-1], bounds[1:]):
        if g0 == g1:
            continue
        idx = order[g0:g1]
        planes = np.empty((scene.n_features, idx.size), np.float32)
        scene.fill(_Points(rows[idx], cols[idx]), planes)
        out[idx] = planes.T
    return out
