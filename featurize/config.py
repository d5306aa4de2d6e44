"""What the features are: :class:`FeatureConfig`.

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

from dataclasses import asdict, dataclass, fields

import numpy as np

from scenes.contract import SAR_BANDS

from . import context, radiometer, texture

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
        bad = [b for b in self.sar_bands if b not in SAR_BANDS]
        if not self.sar_bands or bad or len(set(self.sar_bands)) != len(self.sar_bands):
            raise ValueError(f"sar_bands must be distinct names from {tuple(SAR_BANDS)}, "
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
