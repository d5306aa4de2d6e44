"""Physical models of the synthetic generator (private): SAR, ERA5, AMSR2.

Values are textbook-level C-band and passive-microwave signatures of sea ice
(e.g. Mäkynen & Karvonen 2017 for EW HH/HV per ice type, Eppler et al. 1992
for emissivities); they aim at plausible contrasts and confusions between
classes, not at a calibrated forward model.

Surface codes (rows of the tables): 0 open water, 1 new ice, 2 young ice,
3 thin first-year, 4 thick first-year, 5 old ice, 6 glacier ice (icebergs),
7 land.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from . import contract as C
from ._synth_chart import smooth_noise
from ._synth_kernels import LAND, N_SURFACE

# --- SAR -------------------------------------------------------------------
#: Mean sigma0 (dB) at 34 degrees incidence per surface code (water: see WATER).
HH0 = np.array([0.0, -20.5, -15.0, -18.0, -16.0, -10.5, -3.0, -9.0])
HV0 = np.array([0.0, -29.5, -25.5, -27.0, -24.5, -19.0, -12.0, -17.5])
#: Incidence-angle slopes (dB/degree); ice -0.2..-0.25 in HH.
HH_SLOPE = np.array([0.0, -0.25, -0.23, -0.22, -0.21, -0.19, -0.10, -0.15])
HV_SLOPE = np.array([0.0, -0.12, -0.12, -0.11, -0.10, -0.09, -0.05, -0.10])
#: Non-speckle texture amplitude (dB per unit texture field): deformation, mottling.
TEX_DB = np.array([0.0, 0.7, 1.4, 1.0, 1.3, 2.0, 3.0, 3.0])
#: Ridge and hummock brightening (dB at the ridge crest).
RIDGE_HH = np.array([0.0, 0.0, 2.5, 3.5, 6.0, 4.5, 0.0, 0.0])
RIDGE_HV = np.array([0.0, 0.0, 2.0, 3.0, 5.0, 3.5, 0.0, 0.0])
#: Extra HH brightness per floe form (cake/pancake rims, floe edges).
FORM_HH = np.array([0.0, 3.0, 1.2, 0.5, 0.0, 0.0, 0.0])
#: Open water: HH = a + b log10(U/7) + c (theta-34) + dir_gain cos(2 phi); HV likewise.
WATER = dict(hh=-17.5, hh_wind=18.0, hh_slope=-0.55, hv=-31.0, hv_wind=8.0, hv_slope=-0.15,
             gust=0.25, dir_gain=1.2)
#: Equivalent number of looks of the 80 m product: 4 looks at 40 m, then the 2 x 2 mean.
LOOKS = 16.0
#: Incidence-angle range of the EW swath (degrees) and its 5 sub-swath edges (fraction of range).
IA_RANGE = (19.0, 47.0)
SUB_EDGES = np.array([0.0, 0.21, 0.41, 0.60, 0.80, 1.0])


def sar_params(rng, service):
    """Random per-scene SAR parameters (noise floor, scalloping, icebergs)."""
    return dict(
        nesz=np.array([rng.uniform(-28.5, -26.5), -0.4, 2.5]),  # base dB, per sub-swath, edge rise
        sub_bias=rng.uniform(-0.15, 0.15, len(SUB_EDGES) - 1),
        scallop=np.array([rng.uniform(0.05, 0.15), rng.uniform(150.0, 300.0), rng.uniform(0, 2 * math.pi)]),
        p_berg=2e-5 if service == "dmi" else 2e-6,
    )


def water_vector():
    w = WATER
    return np.array([w["hh"], w["hh_wind"], w["hh_slope"], w["hv"], w["hv_wind"], w["hv_slope"],
                     w["gust"], w["dir_gain"]])


def polygon_offsets(n, ct, rng):
    """Per-polygon ice backscatter offsets (snow, salinity) and wind shelter of leads."""
    z = rng.standard_normal((2, n))
    dhh = 1.2 * z[0]
    dhv = 1.0 * (0.6 * z[0] + 0.8 * z[1])
    shelter = 1.0 - 0.7 * (np.asarray(ct) / 10.0) ** 1.5
    return dhh, dhv, shelter


# --- season -------------------------------------------------------------------
#: 2 m air temperature over pack ice by month (deg C), Arctic mean-ish.
_T_ICE_C = np.array([-26, -28, -25, -16, -6, -0.5, 0.5, 0, -4, -12, -19, -23], dtype=float)
_MELT = np.array([0, 0, 0, 0, 0.15, 0.6, 0.95, 0.85, 0.35, 0.05, 0, 0], dtype=float)


def season(month, lat, rng):
    """(air temperature over ice in K, melt factor 0..1) for a month and latitude."""
    t_ice = 273.15 + _T_ICE_C[month - 1] + 0.4 * (75.0 - lat) + rng.normal(0, 3.0)
    melt = float(np.clip(_MELT[month - 1] + rng.normal(0, 0.1), 0, 1))
    if melt > 0.3:
        t_ice = max(t_ice, 271.5)
    return min(t_ice, 276.0), melt


# --- ERA5 ---------------------------------------------------------------------
def era5_fields(comp, month, lat, look_angle, rng):
    """ERA5-like u10/v10 (image frame), t2m, skt, tcwv, tclw on the 2 km grid.

    Smooth (ERA5 is ~30 km) and consistent with the surface: colder air and
    skin over ice in winter, open water at its freezing point or above.
    """
    shape = comp.shape[:2]
    sig = 7.0  # cells: ~30 km smoothing of the surface fields
    water = ndimage.gaussian_filter(comp[..., 0], sig, mode="reflect")
    land = ndimage.gaussian_filter(comp[..., LAND], sig, mode="reflect")
    ice = np.clip(1.0 - water - land, 0.0, 1.0)
    t_ice, melt = season(month, lat, rng)
    sst = 271.35 + 3.5 * melt + rng.uniform(0, 1.0)
    t_water_air = 0.45 * t_ice + 0.55 * sst

    def big(sigma=12.0):  # large-scale weather variability
        return smooth_noise(rng, shape, sigma)

    t2m = ice * t_ice + water * t_water_air + land * (t_ice + 2.0) + 1.5 * big()
    skt_ice = np.minimum(t2m - 2.0 * (1 - melt), 273.15)
    skt = ice * skt_ice + water * sst + land * (t2m + 1.0)
    speed = float(rng.weibull(2.0) * 8.0 + 1.0)
    dirn = rng.uniform(0, 2 * math.pi)
    u = speed * math.cos(dirn) + 2.0 * big()
    v = speed * math.sin(dirn) + 2.0 * big()
    wet = 2.5 + 10.0 * melt
    tcwv = np.maximum(wet * (1.0 + 0.25 * water) * (1.0 + 0.3 * big()), 0.3)
    tclw = np.maximum((0.02 + 0.06 * melt) * (1.0 + 1.5 * big(8.0)), 0.0)
    wind_speed = np.hypot(u, v)
    # cos(2 phi): up/downwind brighter than crosswind relative to the radar look
    dir_mod = np.cos(2.0 * (np.arctan2(v, u) - look_angle))
    out = {k: np.asarray(a, np.float32) for k, a in zip(C.ERA5_VARS, (u, v, t2m, skt, tcwv, tclw))}
    return out, wind_speed.astype(np.float32), dir_mod.astype(np.float32), melt


# --- AMSR2 --------------------------------------------------------------------
AMSR2_FREQ = (("6_9", 6.925), ("7_3", 7.3), ("10_7", 10.65), ("18_7", 18.7), ("23_8", 23.8),
              ("36_5", 36.5), ("89_0", 89.0))
#: 3 dB footprint (km), along x across scan.
FOOTPRINT_KM = {"6_9": (35, 62), "7_3": (35, 62), "10_7": (24, 42), "18_7": (14, 22),
                "23_8": (15, 26), "36_5": (7, 12), "89_0": (3, 5)}
assert [f"btemp_{f}{p}" for f, _ in AMSR2_FREQ for p in "hv"] == list(C.AMSR2_VARS)
NEDT = {"6_9": 0.34, "7_3": 0.43, "10_7": 0.7, "18_7": 0.7, "23_8": 0.6, "36_5": 0.7, "89_0": 1.2}
#: Emissivity [surface code, channel, (H, V)].
EMIS = np.array([
    [[.28, .54], [.28, .55], [.29, .56], [.32, .60], [.34, .62], [.38, .67], [.48, .78]],  # water
    [[.70, .88], [.70, .88], [.72, .89], [.76, .90], [.78, .91], [.80, .91], [.83, .90]],  # new
    [[.82, .94], [.82, .94], [.84, .94], [.86, .94], [.87, .94], [.87, .93], [.86, .90]],  # young
    [[.86, .95], [.86, .95], [.87, .95], [.88, .95], [.88, .95], [.88, .94], [.85, .90]],  # thin FY
    [[.88, .96], [.88, .96], [.89, .96], [.90, .96], [.90, .95], [.89, .94], [.84, .89]],  # thick FY
    [[.82, .90], [.82, .90], [.79, .87], [.73, .80], [.70, .77], [.63, .69], [.56, .62]],  # old
    [[.78, .86], [.78, .86], [.74, .82], [.68, .75], [.65, .72], [.58, .64], [.52, .58]],  # glacier
    [[.90, .95], [.90, .95], [.89, .95], [.88, .94], [.87, .94], [.85, .93], [.82, .91]],  # land
])
#: Share of the ice-water interface temperature in the ice's effective temperature.
DEPTH = np.array([0.6, 0.6, 0.5, 0.4, 0.35, 0.25, 0.1])
#: Atmospheric opacity (nepers at nadir): dry, per kg/m2 vapour, per kg/m2 liquid.
KAPPA = np.array([[0.008, 1e-4, 0.005], [0.008, 1e-4, 0.006], [0.009, 2e-4, 0.012],
                  [0.012, 2.5e-3, 0.04], [0.015, 9e-3, 0.06], [0.03, 2.5e-3, 0.17],
                  [0.07, 1e-2, 0.9]])


def amsr2_tb(comp, era, wind_speed, melt, rng):
    """Brightness temperatures (K) per AMSR2 channel on the 2 km grid.

    Area-weighted emission of the surface codes in each cell, blurred by the
    channel's footprint (land spills over near coasts), seen through an
    absorbing and emitting atmosphere (vapour, cloud liquid with small-scale
    cloud structure that mostly shows at 89 GHz), plus instrument noise.
    """
    shape = comp.shape[:2]
    cell_km = 2.0
    skt, t2m = era["skt"].astype(np.float64), era["t2m"].astype(np.float64)
    t_phys = np.empty((N_SURFACE, len(AMSR2_FREQ)) + shape)
    t_snow = np.minimum(skt, 273.15)
    for c in range(N_SURFACE):
        for k in range(len(AMSR2_FREQ)):
            if c == 0:
                t_phys[c, k] = skt
            elif c == LAND:
                t_phys[c, k] = skt
            else:
                d = min(DEPTH[k] + (0.2 if c == 1 else 0.0), 1.0)
                t_phys[c, k] = d * 271.35 + (1 - d) * t_snow
    cloud = np.maximum(era["tclw"] + 0.05 * (1 + melt) * np.maximum(smooth_noise(rng, shape, 1.5), 0), 0)
    swap = rng.random() < 0.5
    out = {}
    for k, (name, ghz) in enumerate(AMSR2_FREQ):
        along, across = FOOTPRINT_KM[name]
        sig = np.array([along, across]) / (2.3548 * cell_km)
        if swap:
            sig = sig[::-1]
        tau = np.exp(-(KAPPA[k, 0] + KAPPA[k, 1] * era["tcwv"] + KAPPA[k, 2] * cloud) / math.cos(math.radians(55)))
        t_atm = t2m - 8.0
        for j, pol in enumerate("hv"):
            e = np.zeros(shape)
            et = np.zeros(shape)
            for c in range(N_SURFACE):
                ec = EMIS[c, k, j]
                if c == 0:  # wind roughening raises water emissivity (more in H)
                    ec = ec + (0.0045 if pol == "h" else 0.0015) * wind_speed * (ghz / 37.0) ** 0.3
                elif c != LAND and melt > 0:  # wet snow: ice turns near-blackbody
                    ec = ec + melt * (np.array([0.92, 0.96])[j] - ec)
                e += comp[..., c] * ec
                et += comp[..., c] * ec * t_phys[c, k]
            e = ndimage.gaussian_filter(e, sig, mode="reflect", truncate=3.0)
            et = ndimage.gaussian_filter(et, sig, mode="reflect", truncate=3.0)
            tb = tau * et + (1 - tau) * t_atm * (1 + tau * (1 - e)) + tau * tau * (1 - e) * 2.7
            tb = tb + NEDT[name] * rng.standard_normal(shape)
            out[f"btemp_{name}{pol}"] = tb.astype(np.float32)
    return out
