"""Fixed-range quantisation of SAR backscatter (dB) to GLCM grey levels.

GLCM texture depends on the grey levels, so each band maps one FIXED
physical range to ``levels`` equal bins, the same in every scene (a per-scene
stretch would make "contrast 3" mean something different in each scene):

==========  ====================  =========================================
band        range (dB)            why
==========  ====================  =========================================
HH          -30 .. 0              global mean -14.5, std 5.7 dB
                                  (``global_meanstd.json``): mean -2.7 / +2.6
                                  std; calm open water near -30 at far range,
                                  deformed / multi-year ice and wind-roughened
                                  water up to about -5..0 dB at C band.
HV          -38 .. -10            global mean -24.7, std 4.7 dB: mean -2.8 /
                                  +3.1 std; the noise-corrected open-water
                                  floor lies near -30..-35, multi-year and
                                  ridged ice about -20..-12 dB.
==========  ====================  =========================================

Grey level ``floor((db - lo) / (hi - lo) * levels)``, clipped to
``0 .. levels - 1`` (values outside the range saturate).

Fill pixels (NaN in dB, or z-score exactly 0.0 in the scene files) map to
the level of the band's global mean dB, which is what z = 0 de-scales to: a
mid grey, so the swath border adds no extreme contrast. Texture there and
within half a window of it is not meaningful; the caller masks fill pixels.
"""
from __future__ import annotations

import numpy as np

from scenes.contract import SAR_BANDS, SAR_VARS, meanstd

#: Fixed physical range (dB) quantised per band, keyed by contract variable.
DB_RANGES = {
    SAR_BANDS["hh"]: (-30.0, 0.0),
    SAR_BANDS["hv"]: (-38.0, -10.0),
}
_ALIASES = {
    **SAR_BANDS,
    "primary": SAR_BANDS["hh"], "secondary": SAR_BANDS["hv"],
    **{v: v for v in SAR_BANDS.values()},
}


def band_var(band: str) -> str:
    """Contract variable of a band name (``"hh"``/``"HH"``, ``"hv"``, or the variable)."""
    var = _ALIASES.get(str(band).lower())
    if var is None:
        raise ValueError(f"unknown SAR band {band!r}; use 'hh', 'hv' or one of {SAR_VARS}.")
    return var


def _check_levels(levels):
    if not isinstance(levels, (int, np.integer)) or not 2 <= levels <= 256:
        raise ValueError(f"levels must be an integer in 2..256, got {levels!r}.")
    return int(levels)


def fill_level(band: str, levels: int) -> int:
    """Grey level given to fill pixels: the level of the band's global mean dB."""
    var = band_var(band)
    levels = _check_levels(levels)
    lo, hi = DB_RANGES[var]
    level = int(np.floor((meanstd()[var]["mean"] - lo) / (hi - lo) * levels))
    return min(max(level, 0), levels - 1)


def quantize_db(db, band: str, levels: int) -> np.ndarray:
    """Backscatter in dB -> uint8 grey levels over the band's fixed range.

    Parameters
    ----------
    db : array_like of float
        Sigma0 in dB; NaN marks fill pixels.
    band : str
        ``"hh"`` or ``"hv"`` (or the contract variable name).
    levels : int
        Number of grey levels, 2..256.

    Returns
    -------
    uint8 array of ``db``'s shape, values in ``0 .. levels - 1``; fill
    pixels get :func:`fill_level`.
    """
    var = band_var(band)
    levels = _check_levels(levels)
    lo, hi = DB_RANGES[var]
    x = np.asarray(db, dtype=np.float32)
    scaled = (x - np.float32(lo)) * np.float32(levels / (hi - lo))
    nan = np.isnan(scaled)
    np.floor(scaled, out=scaled)
    np.clip(scaled, 0, levels - 1, out=scaled)
    scaled[nan] = fill_level(var, levels)
    return scaled.astype(np.uint8)
