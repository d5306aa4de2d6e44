"""The feature groups: each declares its features, its inputs and how to fill them.

:data:`REGISTRY` lists the groups in output order; :func:`enabled_groups`
gives those a :class:`~featurize.config.FeatureConfig` turns on. Feature
names, group labels and the fill order all come from it (see
:mod:`featurize.assemble` for the engine).

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

Fill pixels (:func:`scenes.contract.sar_valid` False): every SAR-grid feature
(the groups with ``nan_at_fill``: intensity, context, texture, geometry) is
NaN there; the AMSR2, ERA5 and scene features are defined everywhere.
LightGBM treats NaN as missing; such pixels are not scored anyway. Context
statistics leave fill pixels out exactly; GLCM windows that reach fill pixels
see them as the mid grey of :mod:`featurize.quantize` (``valid_frac_101``
tells the model where).
"""
from __future__ import annotations

import calendar
import datetime
from pathlib import Path

import numpy as np

from scenes.contract import SAR_BANDS, meanstd, parse_scene_name, to_physical

from . import context, quantize, radiometer
from .config import FeatureConfig

IA_VAR = "sar_incidenceangle"
DIST_VAR = "distance_map"
#: Largest distance-to-land zone id.
MAX_DISTANCE_ZONE = 41


class FeatureGroup:
    """One feature group: its features, the scene variables they need, how to fill them.

    A subclass sets :attr:`label` and implements :meth:`names` and
    :meth:`fill`; the other methods have defaults.
    """

    #: Group label of every feature (``feature_groups()`` values); see :meth:`labels`.
    label = ""
    #: True for SAR-grid features: the engine sets them to NaN at fill pixels.
    nan_at_fill = False

    def enabled(self, config: FeatureConfig) -> bool:
        """Whether ``config`` includes this group."""
        return True

    def names(self, config: FeatureConfig) -> list:
        """Feature names, in the order :meth:`fill` writes them."""
        raise NotImplementedError

    def labels(self, config: FeatureConfig) -> list:
        """The group label of each name (override for several labels)."""
        return [self.label] * len(self.names(config))

    def variables(self, config: FeatureConfig) -> list:
        """Scene variables read, besides the SAR bands that every group gets."""
        return []

    def halo(self, config: FeatureConfig) -> int:
        """Image rows needed above and below a row block (neighbourhood features)."""
        return 0

    def prepare(self, ds, config: FeatureConfig):
        """Per-scene work done once, before any block (and where bad scenes fail).

        Returns what :meth:`fill` gets as ``state``; None by default.
        """
        return None

    def fill(self, ctx, target, out, state) -> None:
        """Write this group's planes for one target, in :meth:`names` order.

        Parameters
        ----------
        ctx : featurize.assemble.Inputs
            Shared inputs of the target: ``config``, ``height`` (image rows),
            ``r0`` and the image rows read from it with the halo,
            ``rows_valid`` and ``rows_db`` (band -> dB, NaN at fill;
            "hvmhh" too with both bands), ``valid`` and ``ia`` at the target
            pixels, ``at(rows_array)`` and ``read(var)``.
        target : featurize.assemble.Block or Points
            Where the features go (``shape``, ``lo``, ``hi``); its
            ``box_stats``, ``glcm`` and ``bilinear`` compute neighbourhood
            features at its pixels.
        out : featurize.assemble.Planes
            ``out.put(plane)`` writes the next plane, ``out.claim(n)`` returns
            the next ``n`` planes to write into; exactly ``len(names)`` in all.
        state
            What :meth:`prepare` returned for this scene.
        """
        raise NotImplementedError


def context_bands(config: FeatureConfig) -> list:
    """SAR bands of the context and the shared inputs: the bands, then hvmhh with both."""
    bands = list(config.sar_bands)
    if len(bands) == 2:
        bands.append("hvmhh")
    return bands


class SarIntensity(FeatureGroup):
    label = "sar_intensity"
    nan_at_fill = True

    def names(self, config):
        names = [f"{b}_db" for b in context_bands(config)]
        if "hh" in config.sar_bands:
            names.append("hh_ia_norm")
        return names

    def variables(self, config):
        return [IA_VAR] if "hh" in config.sar_bands else []

    def fill(self, ctx, target, out, state):
        for b in context_bands(ctx.config):
            out.put(ctx.at(ctx.rows_db[b]))
        if "hh" in ctx.config.sar_bands:
            out.put(context.ia_normalised(ctx.at(ctx.rows_db["hh"]), ctx.ia,
                                          ctx.config.ia_slope, ctx.config.ia_ref))


class SarContext(FeatureGroup):
    label = "sar_context"
    nan_at_fill = True

    def enabled(self, config):
        return bool(config.context_scales)

    def names(self, config):
        names = [f"{b}_{stat}_{s}" for s in config.context_scales
                 for b in context_bands(config) for stat in ("mean", "std")]
        return names + [f"valid_frac_{max(config.context_scales)}"]

    def halo(self, config):
        return max(config.context_scales) // 2

    def prepare(self, ds, config):
        """The fixed centre (dB) of each band's fixed-point sums (its global mean), and
        memory for the integral images that every target of the scene reuses."""
        mean = {b: meanstd()[v]["mean"] for b, v in SAR_BANDS.items()}
        mean["hvmhh"] = mean["hv"] - mean["hh"]
        return [mean[b] for b in context_bands(config)], context.IntegralBuffers()

    def fill(self, ctx, target, out, state):
        bands = context_bands(ctx.config)
        centres, buffers = state
        target.box_stats([ctx.rows_db[b] for b in bands], centres, ctx.rows_valid,
                         ctx.config.context_scales, ctx.r0, ctx.height,
                         out.claim(len(self.names(ctx.config))), buffers)


class SarTexture(FeatureGroup):
    """GLCM texture, one group label per window.

    The GLCM runs on the texture image (``texture_factor`` x coarser), on a
    strip of it around the target rows (see :func:`texture_strip`).
    """

    nan_at_fill = True

    def enabled(self, config):
        return bool(config.texture_windows)

    def names(self, config):
        return [f"{b}_glcm{w}_{p}" for w in config.texture_windows
                for b in config.sar_bands for p in config.texture_props]

    def labels(self, config):
        return [f"sar_texture_w{w}" for w in config.texture_windows
                for _ in config.sar_bands for _ in config.texture_props]

    def halo(self, config):
        # room for texture_strip to reach a full window
        return (max(config.texture_windows) + 1) * config.texture_factor

    def fill(self, ctx, target, out, state):
        config = ctx.config
        f = config.texture_factor
        t0, t1 = texture_strip(config, ctx.height, target.lo, target.hi)
        a, b = t0 * f - ctx.r0, min(ctx.height, t1 * f) - ctx.r0
        if a < 0 or b > ctx.rows_valid.shape[0]:
            raise AssertionError("texture strip outside the rows read")  # a bug, not bad input
        grey = {band: quantize.quantize_db(coarsen(ctx.rows_db[band][a:b], f), band,
                                           config.texture_levels)
                for band in config.sar_bands}
        for w in config.texture_windows:
            for band in config.sar_bands:
                for plane in target.glcm(grey[band], t0, f, window=w,
                                         levels=config.texture_levels,
                                         distances=config.texture_distances,
                                         props=config.texture_props):
                    out.put(plane)


def texture_strip(config: FeatureConfig, height: int, row0: int, row1: int) -> tuple:
    """Rows ``t0:t1`` of the texture image that image rows ``row0:row1`` need.

    Their own rows plus half the largest window on each side, at least a full
    window where the image has it (the GLCM needs one).
    """
    f = config.texture_factor
    hc = -(-height // f)
    wmax = max(config.texture_windows)
    t0 = max(0, row0 // f - wmax // 2)
    t1 = min(hc, (row1 - 1) // f + 1 + wmax // 2)
    t1 = min(hc, max(t1, t0 + wmax))
    t0 = max(0, min(t0, t1 - wmax))
    return t0, t1


def coarsen(db, f):
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


class Amsr2(FeatureGroup):
    label = "amsr2"

    def enabled(self, config):
        return config.amsr2

    def names(self, config):
        return list(radiometer.AMSR2_FEATURES)

    def variables(self, config):
        return list(radiometer.AMSR2_VARS)

    def prepare(self, ds, config):
        return radiometer.grid_fields(ds, amsr2=True, era5=False)[1]

    def fill(self, ctx, target, out, state):
        target.bilinear(state, out.claim(len(state)))


class Era5(FeatureGroup):
    label = "era5"

    def enabled(self, config):
        return config.era5

    def names(self, config):
        return list(config.era5_features)

    def variables(self, config):
        return [v for n in config.era5_features for v in radiometer.ERA5_SOURCES[n]]

    def prepare(self, ds, config):
        return radiometer.grid_fields(ds, amsr2=False, era5=True,
                                      era5_features=config.era5_features)[1]

    def fill(self, ctx, target, out, state):
        target.bilinear(state, out.claim(len(state)))


class Geometry(FeatureGroup):
    label = "geometry"
    nan_at_fill = True

    def enabled(self, config):
        return config.geometry

    def names(self, config):
        return ["geo_incidence", "geo_distance_zone"]

    def variables(self, config):
        return [IA_VAR, DIST_VAR]

    def fill(self, ctx, target, out, state):
        out.put(ctx.ia)
        out.put(np.clip(np.rint(to_physical(DIST_VAR, ctx.read(DIST_VAR))), 0,
                        MAX_DISTANCE_ZONE))


class Scene(FeatureGroup):
    label = "scene"

    def enabled(self, config):
        return config.scene

    def names(self, config):
        return ["scene_doy_sin", "scene_doy_cos", "scene_service_dmi"]

    def prepare(self, ds, config):
        return scene_features(ds)

    def fill(self, ctx, target, out, state):
        for value in state:
            out.put(value)


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


#: Every feature group, in output order.
REGISTRY = (SarIntensity(), SarContext(), SarTexture(), Amsr2(), Era5(), Geometry(), Scene())


def enabled_groups(config: FeatureConfig) -> list:
    """The groups of :data:`REGISTRY` that ``config`` turns on, in order."""
    return [g for g in REGISTRY if g.enabled(config)]
