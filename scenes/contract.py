"""The AI4Arctic ready-to-train scene format, as constants.

Everything here mirrors ``FORMAT.md`` (the project's data contract): variable
names, dimension names, dtypes, fill values, classes and the real z-score
statistics. Other modules import these names instead of spelling strings.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

import numpy as np

# --- dimensions -------------------------------------------------------------
SAR_DIMS = ("sar_lines", "sar_samples")
GRID2KM_DIMS = ("2km_grid_lines", "2km_grid_samples")
TIEPOINT_DIMS = ("sar_sample_2dgrid_points", "sar_line_2dgrid_points")
N_TIEPOINTS = 21
#: One 2 km cell covers this many SAR pixels along each axis.
GRID2KM_FACTOR = 25

# --- variables --------------------------------------------------------------
LABEL_CHARTS = ("SIC", "SOD", "FLOE")
SAR_VARS = ("nersc_sar_primary", "nersc_sar_secondary")
#: Contract variable of each SAR band (HH is the primary, HV the secondary channel).
SAR_BANDS = {"hh": "nersc_sar_primary", "hv": "nersc_sar_secondary"}
SAR_GRID_VARS = SAR_VARS + ("sar_incidenceangle", "distance_map")
AMSR2_VARS = tuple(
    f"btemp_{freq}{pol}"
    for freq in ("6_9", "7_3", "10_7", "18_7", "23_8", "36_5", "89_0")
    for pol in ("h", "v")
)
ERA5_VARS = ("u10m_rotated", "v10m_rotated", "t2m", "skt", "tcwv", "tclw")
GRID2KM_VARS = AMSR2_VARS + ERA5_VARS
TIEPOINT_VARS = ("sar_grid2d_latitude", "sar_grid2d_longitude")
#: The 24 z-scored model inputs of a scene (SAR grid first, then 2 km grid).
INPUT_VARS = SAR_GRID_VARS + GRID2KM_VARS
#: Variables of a test scene (26) and of a training scene (29).
TEST_VARS = INPUT_VARS + TIEPOINT_VARS
TRAIN_VARS = TEST_VARS + LABEL_CHARTS

VAR_DIMS = {
    **{v: SAR_DIMS for v in SAR_GRID_VARS + LABEL_CHARTS},
    **{v: GRID2KM_DIMS for v in GRID2KM_VARS},
    **{v: TIEPOINT_DIMS for v in TIEPOINT_VARS},
}
VAR_DTYPES = {
    **{v: np.dtype("float32") for v in INPUT_VARS},
    **{v: np.dtype("float64") for v in TIEPOINT_VARS},
    **{v: np.dtype("uint8") for v in LABEL_CHARTS},
}

# --- fills ------------------------------------------------------------------
#: Label value for "no chart information" (land, outside swath, 65 % rule).
MASK_VALUE = 255
#: Invalid SAR-grid input pixels are exactly this value (after z-scoring).
SAR_FILL = 0.0



def sar_valid(hh) -> np.ndarray:
    """Valid SAR pixels of ``nersc_sar_primary`` values: every pixel that is not the fill.

    The one definition of "valid" for every layer (features, sampling,
    prediction, validation, figures): HV shares HH's fill.
    """
    return np.asarray(hh) != SAR_FILL


# --- classes ----------------------------------------------------------------
N_CLASSES = {"SIC": 11, "SOD": 6, "FLOE": 7}
CLASS_NAMES = {
    "SIC": tuple(f"{10 * k}%" for k in range(11)),
    "SOD": ("open water", "new ice", "young ice", "thin first-year",
            "thick first-year", "old ice"),
    "FLOE": ("open water", "cake ice", "small floe", "medium floe",
             "big floe", "vast floe", "bergs"),
}
#: Weights of the charts in the combined challenge score.
CHART_WEIGHTS = {"SIC": 2, "SOD": 2, "FLOE": 1}

# --- file names -------------------------------------------------------------
KEY_LENGTH = 19
_NAME_RE = re.compile(
    r"^(?P<key>\d{8}T\d{6}_(?:dmi|cis))_prep(?P<ref>_reference)?\.nc$"
)


def parse_scene_name(name: str) -> tuple[str, bool] | None:
    """Return ``(scene_key, is_reference)`` for a scene file name, else None."""
    m = _NAME_RE.match(name)
    if m is None:
        return None
    return m.group("key"), m.group("ref") is not None


def grid2km_shape(sar_shape: tuple[int, int]) -> tuple[int, int]:
    """Shape of the 2 km grid for a SAR grid shape: ``floor(n / 25)`` each."""
    return tuple(int(n) // GRID2KM_FACTOR for n in sar_shape)


# --- statistics -------------------------------------------------------------
@lru_cache(maxsize=None)
def meanstd() -> dict[str, dict[str, float]]:
    """The real z-score statistics (``global_meanstd.json``) shipped with us."""
    text = resources.files("scenes").joinpath("data/global_meanstd.json").read_text()
    return json.loads(text)


@lru_cache(maxsize=None)
def class_histograms() -> dict[str, dict[str, dict[str, int]]]:
    """Real per-scene label histograms of the 513 training scenes.

    ``{scene: {chart: {class: pixel_count}}}`` with class ``"255"`` = masked.
    """
    text = resources.files("scenes").joinpath("data/scene_prep_bins.json").read_text()
    return json.loads(text)


def to_zscore(name: str, x):
    """Physical units (dB, K, degrees, m/s ...) -> z-score, float32."""
    s = meanstd()[name]
    return ((np.asarray(x, dtype=np.float64) - s["mean"]) / s["std"]).astype(np.float32)


def to_physical(name: str, z):
    """z-score -> physical units, float32. SAR fill pixels are not special-cased."""
    s = meanstd()[name]
    return (np.asarray(z, dtype=np.float64) * s["std"] + s["mean"]).astype(np.float32)
