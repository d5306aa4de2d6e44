"""Synthetic AI4Arctic scenes: physically motivated, in the exact real layout.

:func:`make_scene` builds one scene in memory; :func:`write_synthetic_dataset`
writes a train / test / reference folder set like the real challenge data.

How a scene is made
-------------------
1. A real scene's label histogram (``class_histograms()``) is drawn as the
   target composition; its month sets the season.
2. Chart: a rotated EW swath, land from a thresholded fractal field (with
   distance-to-land zones), domain-warped Voronoi polygons, each with an egg
   code (total concentration, up to three partials with stage and form); the
   65 % dominant-class rule turns ambiguous SOD/FLOE polygons into 255
   (:mod:`scenes._synth_chart`).
3. Surface, per 80 m pixel: ice or water inside each polygon (floe fields
   at the scale of the floe form, lead networks in compact big/vast floes),
   the partial's ice type in patches (:mod:`scenes._synth_kernels`).
4. ERA5 fields, AMSR2 brightness temperatures and C-band HH/HV with
   incidence-angle slopes, ridges, wind on open water, speckle and the
   thermal-noise residue (:mod:`scenes._synth_physics`).
5. Every input is z-scored with :func:`scenes.contract.to_zscore`; SAR-grid
   inputs are 0.0 outside the swath.

Chart-scale structure (polygons, land, ice edge) is relative to the scene
size, so a small scene looks like a shrunken chart, while SAR textures,
footprints and distances keep their physical 80 m / km scales.
"""
from __future__ import annotations

import calendar
import math
import re
import zlib
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from . import contract as C
from . import _synth_chart as chart
from . import _synth_kernels as K
from . import _synth_physics as phys
from . import geolocation as geo
from .reader import all_or_nothing, atomic_write_bytes

__all__ = ["make_scene", "write_synthetic_dataset", "dataset_plan", "scene_target", "DEFAULT_SHAPE"]

#: Shape of :func:`make_scene` when none is given, and the centre of the
#: default sizes of :func:`write_synthetic_dataset`.
DEFAULT_SHAPE = (400, 420)
KINDS = ("train", "test", "reference")
MIN_SIZE = C.GRID2KM_FACTOR
#: ``polygon`` attribute of the label charts (the starter pack's ICE_STRINGS).
CHART_TITLES = {"SIC": "Sea Ice Concentration [%]", "SOD": "Stage of Development",
                "FLOE": "Floe Size"}
SAR_DESCRIPTION = ("Sentinel-1 EW GRDM {pol} sigma0 in dB, thermal-noise corrected (NERSC), "
                   "2x2 averaged to 80 m (synthetic)")
#: Ice-chart regions per service with approximate centres (lat, lon).
REGIONS = {
    "dmi": {"CapeFarewell": (59.8, -44.0), "SouthWest": (62.5, -51.0), "SouthEast": (63.5, -40.0),
            "CentralWest": (68.5, -55.0), "CentralEast": (69.5, -22.0), "NorthWest": (74.5, -60.0),
            "NorthEast": (77.5, -16.0), "North": (82.0, -30.0), "Qaanaaq": (77.2, -70.0),
            "NorthAndCentralEast": (73.0, -19.0)},
    "cis": {"SGRDIEA": (74.0, -78.0), "SGRDIFOXE": (66.5, -78.5), "SGRDINFLD": (52.5, -54.0),
            "SGRDIWA": (72.0, -130.0), "SGRDIMID": (74.0, -100.0), "SGRDIHA": (61.0, -84.0)},
}
#: A straight stretch of real coast near each region, (lat, lon, bearing from sea to
#: land in degrees clockwise from north), picked with the offline GLOBE land mask
#: (global-land-mask): a scene with land is turned and placed so that its land lies
#: on the land side of this coast, so maps of synthetic products look plausible.
COASTS = {
    "dmi": {"CapeFarewell": (59.845, -43.732, 338.3), "SouthWest": (62.365, -50.124, 49.1),
            "SouthEast": (63.815, -40.605, 272.2), "CentralWest": (69.354, -52.914, 337.2),
            "CentralEast": (70.129, -23.669, 196.0), "NorthWest": (74.995, -57.644, 42.3),
            "NorthEast": (77.05, -18.285, 266.6), "North": (82.09, -30.0, 325.2),
            "Qaanaaq": (77.245, -70.0, 181.7), "NorthAndCentralEast": (73.45, -21.153, 349.4)},
    "cis": {"SGRDIEA": (73.595, -77.674, 210.5), "SGRDIFOXE": (67.399, -77.147, 70.6),
            "SGRDINFLD": (51.826, -56.142, 322.1), "SGRDIWA": (72.27, -125.635, 109.9),
            "SGRDIMID": (74.045, -98.532, 158.4), "SGRDIHA": (62.349, -82.702, 312.1)},
}
#: Open sea near each region (at least 60 km from land in the same mask), for
#: scenes with no land near.
OFFSHORE = {
    "dmi": {"CapeFarewell": (59.26, -44.0), "SouthWest": (62.5, -51.584),
            "SouthEast": (63.32, -39.597), "CentralWest": (68.5, -55.0),
            "CentralEast": (69.41, -21.743), "NorthWest": (74.5, -60.0),
            "NorthEast": (77.41, -15.585), "North": (82.629, -17.077),
            "Qaanaaq": (76.84, -73.653), "NorthAndCentralEast": (73.0, -19.0)},
    "cis": {"SGRDIEA": (74.18, -77.347), "SGRDIFOXE": (66.5, -78.5), "SGRDINFLD": (52.5, -54.0),
            "SGRDIWA": (72.0, -130.0), "SGRDIMID": (74.45, -100.979), "SGRDIHA": (61.0, -84.0)},
}
_KEY_RE = re.compile(r"^\d{8}T\d{6}_(dmi|cis)$")
#: Rows z-scored at a time (bounds the float64 temporaries of to_zscore).
_ZROWS = 256
#: Compression of the SAR-grid variables: fast enough for real-size scenes.
_ENCODING_BIG = {"zlib": True, "complevel": 1, "shuffle": True}


# --- seeds ----------------------------------------------------------------
def _rng(seed, name):
    """Independent generator per purpose: skipping one stage never shifts another."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))


def _hash_keys(rng, n):
    return rng.integers(0, 2 ** 63, n, dtype=np.int64).astype(np.uint64)


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_shape(shape):
    try:
        h, w = (int(v) for v in shape)
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shape)
    except (TypeError, ValueError):
        ok = False
    if not ok or h < MIN_SIZE or w < MIN_SIZE:
        raise ValueError(f"shape must be (H, W) integers >= {MIN_SIZE} (one 2 km cell), got {shape!r}")
    return h, w


# --- identity: target, key, raw name, location ----------------------------
def scene_target(seed=0, *, scene_key=None, service=None):
    """The real scene whose label histogram the scene of ``seed`` imitates.

    Returns ``(target_name, counts)`` with ``counts[chart]`` the real pixel
    counts per class index (last entry: masked). Useful to check a synthetic
    scene's composition against its target.
    """
    target, _ = _identity(_check_seed(seed), scene_key, service)
    return target.name, {c: a.copy() for c, a in target.counts.items()}


def _identity(seed, scene_key, service):
    if service is not None and service not in ("dmi", "cis"):
        raise ValueError(f"service must be 'dmi' or 'cis', got {service!r}")
    if scene_key is not None:
        if not isinstance(scene_key, str) or not _KEY_RE.match(scene_key):
            raise ValueError(f"scene_key must look like YYYYMMDDTHHMMSS_dmi or _cis, got {scene_key!r}")
        try:
            datetime.strptime(scene_key[:15], "%Y%m%dT%H%M%S")
        except ValueError:
            raise ValueError(f"scene_key {scene_key!r} holds no valid date and time") from None
        if service is not None and scene_key[-3:] != service:
            raise ValueError(f"scene_key {scene_key!r} and service {service!r} disagree; pass one of them")
        service = scene_key[-3:]
    target = chart.pick_target(_rng(seed, "target"), service)
    key = scene_key or _make_key(_rng(seed, "key"), target)
    return target, key


def _make_key(rng, target):
    """A key in the target's year and month (sets the season), random day and time."""
    year, month = int(target.name[:4]), int(target.name[4:6])
    day = int(rng.integers(1, calendar.monthrange(year, month)[1] + 1))
    secs = int(rng.integers(0, 86400))
    return f"{year:04d}{month:02d}{day:02d}T{secs // 3600:02d}{secs // 60 % 60:02d}{secs % 60:02d}_{target.service}"


def _raw_name(key, rng):
    """Raw AI4Arctic file name (Sentinel-1 product + ice chart) for a key, and the region."""
    t0 = datetime.strptime(key[:15], "%Y%m%dT%H%M%S")
    svc = key[-3:]
    t1 = t0 + timedelta(seconds=int(rng.choice([60, 60, 60, 54, 36])))
    period = 12 * 86400 / 175  # Sentinel-1 repeat: 175 orbits in 12 days
    if t0 < datetime(2021, 12, 23) and t0 > datetime(2016, 5, 1) and rng.random() < 0.45:
        mission, orbit0, t_ref, dt0, dt_rate = "S1B", 12478, datetime(2018, 8, 29, 13, 15, 43), 0x017032, 8.07
    else:
        mission, orbit0, t_ref, dt0, dt_rate = "S1A", 20301, datetime(2018, 1, 24, 19, 47, 59), 0x022AA4, 8.54
    orbit = max(1, orbit0 + int((t0 - t_ref).total_seconds() / period))
    dtid = max(1, int(dt0 + (orbit - orbit0) * dt_rate + rng.integers(0, 8))) % 0x1000000
    base = (f"{mission}_EW_GRDM_1SDH_{t0:%Y%m%dT%H%M%S}_{t1:%Y%m%dT%H%M%S}_{orbit:06d}_"
            f"{dtid:06X}_{int(rng.integers(0, 0x10000)):04X}")
    regions = sorted(REGIONS[svc])
    region = regions[int(rng.integers(len(regions)))]
    if svc == "cis":
        tc = t0 - timedelta(minutes=int(rng.integers(0, 16)))
        return f"{base}_icechart_cis_{region}_{tc:%Y%m%dT%H%M}Z_pl_a.nc", region
    tc = t0 + timedelta(minutes=int(rng.integers(-5, 6)))
    return f"{base}_icechart_dmi_{tc:%Y%m%d%H%M}_{region}_RIC.nc", region


def _tie_points(shape, lat0, lon0, heading):
    """21 x 21 lat/lon (float64) of a scene centred at (lat0, lon0), stored in the
    axis order :data:`scenes.geolocation.TIEPOINT_ORDER` reads."""
    H, W = shape
    rows = geo.tiepoint_positions(H)[:, None]
    cols = geo.tiepoint_positions(W)[None, :]
    x = (cols - (W - 1) / 2) * chart.PIXEL_KM
    y = ((H - 1) / 2 - rows) * chart.PIXEL_KM
    east = x * math.cos(heading) - y * math.sin(heading)
    north = x * math.sin(heading) + y * math.cos(heading)
    lat = lat0 + north / 111.2
    lon = lon0 + east / (111.2 * np.cos(np.radians(lat)))
    lon = (lon + 180.0) % 360.0 - 180.0
    return geo.to_stored(lat.astype(np.float64)), geo.to_stored(lon.astype(np.float64))


def _placement(shape, land, svc, region, rng):
    """Centre (lat, lon) and heading that put the scene's land on its region's coast.

    The land's direction from the frame's centre (its centroid's) is turned
    to the coast's bearing, and the scene is moved off the coast point so that
    a straight coastline across the frame leaves as much of the frame on its
    land side as the scene has land. A scene without land in its frame is
    centred on the region's open-sea point.
    """
    H, W = shape
    lat_c, lon_c, bearing = COASTS[svc][region]
    m = land.mask4
    if not m.any():
        return (*OFFSHORE[svc][region], rng.uniform(-math.pi, math.pi))
    f = chart.POLY_FACTOR
    r, c = np.indices(m.shape)
    x = ((c + 0.5) * f - (W - 1) / 2) * chart.PIXEL_KM
    y = ((H - 1) / 2 - (r + 0.5) * f) * chart.PIXEL_KM
    theta = math.atan2(float(y[m].mean() - y.mean()), float(x[m].mean() - x.mean()))
    heading = math.radians(90.0 - bearing) - theta
    s = float(np.quantile(x * math.cos(theta) + y * math.sin(theta), 1.0 - float(m.mean())))
    b = math.radians(bearing)
    lat0 = lat_c - s * math.cos(b) / 111.2
    lon0 = lon_c - s * math.sin(b) / (111.2 * math.cos(math.radians(lat_c)))
    return lat0, lon0, heading


# --- the scene ------------------------------------------------------------------
def make_scene(shape=DEFAULT_SHAPE, *, seed=0, kind="train", scene_key=None, service=None):
    """One synthetic scene in memory, in the real ready-to-train layout.

    Parameters
    ----------
    shape : (int, int)
        SAR grid ``(sar_lines, sar_samples)``, each >= 25.
    seed : int
        Same seed (and arguments) -> identical scene.
    kind : {"train", "test", "reference"}
        29 variables; the 26 without labels; or only SIC/SOD/FLOE.
        All kinds of one seed share the same labels and inputs.
    scene_key : str, optional
        ``YYYYMMDDTHHMMSS_{dmi|cis}``; default: drawn from the seed.
    service : {"dmi", "cis"}, optional
        Ice service; default: the key's, or drawn.

    Returns
    -------
    xarray.Dataset
        No coordinate variables; global attributes ``scene_id``,
        ``original_id``, ``ice_service``, ``flip``, ``pixel_spacing``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    H, W = _check_shape(shape)
    seed = _check_seed(seed)
    target, key = _identity(seed, scene_key, service)
    svc = key[-3:]
    rng_meta = _rng(seed, "meta")
    original_id, region = _raw_name(key, rng_meta)
    lat0 = REGIONS[svc][region][0] + rng_meta.uniform(-1.5, 1.5)  # sets the ERA5 climate
    month = int(key[4:6])

    sw, land, ch = _chart(H, W, seed, target, month)
    surf = _surface(H, W, seed, sw, land, ch)
    attrs = {"scene_id": f"{key}_prep.nc", "original_id": original_id, "ice_service": svc,
             "flip": 0, "pixel_spacing": 80}
    out = {}
    if kind in ("train", "reference"):
        for c in C.LABEL_CHARTS:
            out[c] = (surf.pop(c), {"polygon": CHART_TITLES[c], "chart_fill_value": C.MASK_VALUE})
    if kind == "reference":
        return _assemble(out, attrs, C.LABEL_CHARTS)

    # 2 km grid: ERA5 and AMSR2 from the surface composition
    comp = K.composition_kernel(surf["stage"], *C.grid2km_shape((H, W)), C.GRID2KM_FACTOR)
    look = math.atan2(sw[3] * sw[6], sw[2] * sw[6])  # range direction in the image
    era, wind, dir_mod, melt = phys.era5_fields(comp, month, lat0, look, _rng(seed, "era5"))
    tb = phys.amsr2_tb(comp, era, wind, melt, _rng(seed, "amsr2"))
    hh, hv = _sar(H, W, seed, svc, sw, ch, surf, wind, dir_mod, melt)

    for name, arr, pol in ((C.SAR_VARS[0], hh, "HH"), (C.SAR_VARS[1], hv, "HV")):
        lo, hi = _zscore_sar_grid(name, arr)
        out[name] = (arr, {"polarisation": pol, "description": SAR_DESCRIPTION.format(pol=pol),
                           "min": lo, "max": hi, "variable_fill_value": C.SAR_FILL})
    for name, arr in zip(C.SAR_GRID_VARS[2:], (surf["ia"], surf["dist"])):
        _zscore_sar_grid(name, arr)
        out[name] = (arr, {})
    for name in C.GRID2KM_VARS:
        out[name] = (C.to_zscore(name, tb[name] if name in tb else era[name]), {})
    # placed on a real coast; lat0 above stays the ERA5 latitude (tie points feed no feature)
    place = _placement((H, W), land, svc, region, _rng(seed, "placement"))
    for name, arr in zip(C.TIEPOINT_VARS, _tie_points((H, W), *place)):
        out[name] = (arr, {})
    return _assemble(out, attrs, C.TRAIN_VARS if kind == "train" else C.TEST_VARS)


def _chart(H, W, seed, target, month):
    """Swath, land and the ice chart of a scene (coarse grids and polygon tables)."""
    shape4 = (-(-H // chart.POLY_FACTOR), -(-W // chart.POLY_FACTOR))
    rg = _rng(seed, "swath")
    masked = target.masked_fraction()
    sw = chart.swath_geometry((H, W), min(masked, rg.uniform(0.05, 0.30)), rg)
    swath4 = chart.swath_mask_coarse(sw, shape4, chart.POLY_FACTOR)
    outside = 1.0 - float(swath4.mean())
    # what the target masks beyond the swath goes to land first, the rest is uncharted
    spare = masked - outside
    land_goal = min(spare, rg.uniform(0.10, 0.50)) if spare > 0.02 else 0.0
    land = chart.make_land((H, W), land_goal, swath4, _rng(seed, "land"))
    ch = chart.make_chart(target, shape4, swath4, land, outside, month, _rng(seed, "chart"))
    return sw, land, ch


def _coarse(H, W, factor):
    return -(-H // factor), -(-W // factor)


def _surface(H, W, seed, sw, land, ch):
    """Per-pixel stage, form, surface polygon, labels, incidence angle and distance zone."""
    rf = _rng(seed, "floes")
    fields = [chart.smooth_noise(rf, _coarse(H, W, f), s) for f, s in ((2, 0.8), (6, 1.0), (24, 1.0), (32, 1.0))]
    amp = min(12.0, 0.02 * min(H, W))  # chart generalisation: SAR edges stray ~1 km
    shift = np.stack([amp * chart.smooth_noise(rf, _coarse(H, W, 16), 1.5) for _ in range(2)])
    out = {name: np.empty((H, W), dtype) for name, dtype in (
        ("stage", np.uint8), ("form", np.uint8), ("spid", np.uint16), ("SIC", np.uint8), ("SOD", np.uint8),
        ("FLOE", np.uint8), ("ia", np.float32), ("dist", np.float32))}
    t = ch.tables
    K.surface_kernel(ch.pid4, ch.seeds, ch.warp, shift, land.field4, land.thr, land.dist4_km,
                     chart.DIST_EDGES_KM, sw, np.array(phys.IA_RANGE), t["mode"], t["field_id"], t["thr"],
                     t["lead_thr"], t["cum"], t["pstage"], t["pform"], t["sic_lab"], t["sod_lab"],
                     t["floe_lab"], *fields, _hash_keys(rf, 1)[0], *out.values())
    return out


def _sar(H, W, seed, svc, sw, ch, surf, wind, dir_mod, melt):
    """HH and HV sigma0 in dB (float32, NaN outside the swath)."""
    rs = _rng(seed, "sar")
    tex = chart.smooth_noise(rs, _coarse(H, W, 2), 1.0)
    ridge = chart.ridge_field(rs, _coarse(H, W, 5))
    ridge_on = chart.smooth_noise(rs, _coarse(H, W, 16), 1.0) - np.float32(0.3)
    land_tex = chart.smooth_noise(rs, _coarse(H, W, 6), 1.5)
    gust = chart.smooth_noise(rs, _coarse(H, W, 40), 1.0)
    sp = phys.sar_params(rs, svc)
    t = ch.tables
    dhh, dhv, shelter = phys.polygon_offsets(ch.n_polygons, t["ct"], rs)
    hh = np.empty((H, W), np.float32)
    hv = np.empty((H, W), np.float32)
    K.sar_kernel(surf["stage"], surf["form"], surf["spid"], sw, np.array(phys.IA_RANGE), wind, dir_mod,
                 gust, tex, ridge, ridge_on, land_tex, phys.HH0, phys.HV0, phys.HH_SLOPE, phys.HV_SLOPE,
                 phys.TEX_DB, phys.RIDGE_HH, phys.RIDGE_HV, phys.FORM_HH, dhh, dhv, shelter, t["cake"],
                 np.ascontiguousarray(t["pstage"][:, 0]), phys.water_vector(), melt, sp["nesz"],
                 phys.SUB_EDGES, sp["sub_bias"], sp["scallop"], phys.LOOKS, _hash_keys(rs, 3),
                 sp["p_berg"], hh, hv)
    return hh, hv


def _zscore_sar_grid(name, arr):
    """z-score ``arr`` in place (NaN = outside the swath -> exactly 0.0); raw (min, max)."""
    lo, hi = np.inf, -np.inf
    tiny = np.float32(1e-7)
    for r0 in range(0, arr.shape[0], _ZROWS):
        block = arr[r0: r0 + _ZROWS]
        valid = ~np.isnan(block)
        if valid.any():
            lo = min(lo, float(block[valid].min()))
            hi = max(hi, float(block[valid].max()))
        z = C.to_zscore(name, block)
        z[~valid] = C.SAR_FILL
        # a valid pixel must never read as the no-data value
        z[valid & (z == C.SAR_FILL)] = tiny
        block[...] = z
    return lo, hi


def _assemble(out, attrs, order):
    """Dataset of ``order``'s variables, no fill values written (none are decoded)."""
    variables = {v: xr.Variable(C.VAR_DIMS[v], out[v][0], dict(out[v][1]), encoding={"_FillValue": None})
                 for v in order}
    return xr.Dataset(variables, attrs=dict(attrs))


# --- the dataset -------------------------------------------------------------------
def _check_size(size):
    if size is None or size == "real":
        return size
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size < MIN_SIZE:
            raise ValueError(f"size must be >= {MIN_SIZE}, got {size}")
        return int(size)
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return _check_shape(size)
    raise ValueError(f"size must be None, an int S, a tuple (H, W) or 'real', got {size!r}")


def _shape_for(size, target, rng):
    """Scene shape for a ``size`` spec: default ~400x420, S -> ~SxS, (H, W), or real sizes."""
    if isinstance(size, tuple):
        return size
    if size == "real":
        # real pixel count with the typical 5000 x 5200 aspect
        h = max(MIN_SIZE, int(round(math.sqrt(target.n_pixels * 5000 / 5200))))
        return h, max(MIN_SIZE, int(round(target.n_pixels / h)))
    base = DEFAULT_SHAPE if size is None else (size, size)
    jitter = lambda n: max(MIN_SIZE, int(round(n * (1 + rng.uniform(-0.06, 0.06)))))  # noqa: E731
    return jitter(base[0]), jitter(base[1])


def dataset_plan(*, n_train=4, n_test=2, size=None, seed=0):
    """The scenes :func:`write_synthetic_dataset` writes, without making them.

    Returns
    -------
    list of (kind, scene_seed, scene_key, shape)
        ``make_scene(shape, seed=scene_seed)`` is the scene (its key is
        ``scene_key``); kind is "train" or "test". Keys are unique.
    """
    seed = _check_seed(seed)
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    size = _check_size(size)
    rng_size = _rng(seed, "sizes")
    plan, keys = [], set()
    for i in range(n_train + n_test):
        # scene seeds from the dataset seed; redraw on a (rare) key clash
        for attempt in range(1000):
            s = int(np.random.SeedSequence([seed, i, attempt]).generate_state(1)[0])
            target, key = _identity(s, None, None)
            if key not in keys:
                break
        keys.add(key)
        plan.append(("train" if i < n_train else "test", s, key, _shape_for(size, target, rng_size)))
    return plan


def write_synthetic_dataset(out_dir, *, n_train=4, n_test=2, size=None, seed=0, progress=True):
    """Write ``out_dir/train``, ``out_dir/test`` and ``out_dir/reference`` like the real data.

    Parameters
    ----------
    out_dir : path-like
        Created if missing; existing files with the same names are replaced.
    n_train, n_test : int
        Number of training scenes and of test scenes (each with its
        ``*_prep_reference.nc`` holding that scene's labels).
    size : None, int, (int, int) or "real"
        None: about 400 x 420, varying per scene; S: about S x S; (H, W):
        exactly; "real": the pixel count of each scene's real target scene
        with the 5000 x 5200 aspect.
    seed : int
        Same seed -> identical files (see :func:`dataset_plan`).
    progress : bool
        Show a tqdm bar over scenes.

    Returns
    -------
    dict
        ``{"train": [Path, ...], "test": [...], "reference": [...]}``.
    """
    plan = dataset_plan(n_train=n_train, n_test=n_test, size=size, seed=seed)
    out = Path(out_dir)
    written = {k: [] for k in KINDS}
    subs = sorted(({"train"} if n_train else set()) | ({"test", "reference"} if n_test else set()))
    # On an error (a full disk, say) what this call made is removed again: no half dataset.
    with all_or_nothing([out, *(out / sub for sub in subs)], written):
        for kind, s, key, shape in tqdm(plan, desc="synthetic scenes", unit="scene",
                                        disable=not progress):
            ds = make_scene(shape, seed=s, kind="train")
            if kind == "train":
                written["train"].append(_write(ds, out / "train" / f"{key}_prep.nc"))
            else:
                written["test"].append(_write(ds.drop_vars(list(C.LABEL_CHARTS)),
                                              out / "test" / f"{key}_prep.nc"))
                written["reference"].append(_write(ds[list(C.LABEL_CHARTS)],
                                                   out / "reference" / f"{key}_prep_reference.nc"))
            del ds
    return written


def _write(ds, path):
    """Write with h5netcdf to a temporary sibling, then rename into place.

    The file is built in memory and written out here: HDF5 cannot recover
    from a failed write to disk (it crashes the process when it exits), while
    a failed write of our own is one ``OSError`` line naming ``path``.
    """
    enc = {}
    for v in ds.data_vars:
        e = {"_FillValue": None}
        if ds[v].dims == C.SAR_DIMS:
            e.update(_ENCODING_BIG, chunksizes=tuple(min(n, 512) for n in ds[v].shape))
        enc[v] = e
    data = ds.to_netcdf(engine="h5netcdf", encoding=enc)
    atomic_write_bytes(path, data)
    return path
