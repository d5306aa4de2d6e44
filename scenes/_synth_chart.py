"""Ice-chart side of the synthetic generator (private): geometry and egg codes.

Everything here works on coarse grids (the polygon grid is 4 x coarser than
the 80 m grid, the land field 8 x on a padded domain) and produces the
per-polygon tables that :func:`scenes._synth_kernels.surface_kernel` paints
pixel by pixel.

The composition of each scene follows a real scene's label histogram (the
"target"): masked area is split into outside-swath, land and uncharted
polygons; the charted polygons are ordered along smooth "ice-ness", "age" and
"floe size" fields and cut at the target's cumulative class fractions, so that
classes come out with the target's area shares and in spatially coherent
bands (open water, marginal ice zone, pack).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft, ndimage, spatial
from scipy.special import ndtri

from . import contract as C
from ._synth_kernels import GLACIER, MODE_BLOB, MODE_NETWORK, MODE_SOLID, MODE_WATER

#: Polygon grid and land-field factors (SAR pixels per coarse cell).
POLY_FACTOR = 4
LAND_FACTOR = 8
PIXEL_KM = 0.08
#: Dominant-class rule of the AI4Arctic conversion (partial / total >= 65 %).
DOMINANT = 0.65
#: Distance-to-land zone edges in km (FORMAT.md): zone = 1 + #edges below d.
DIST_EDGES_KM = np.array(
    [0.5] + list(range(1, 21)) + list(range(25, 51, 5)) + list(range(60, 101, 10))
    + list(range(125, 301, 25)), dtype=np.float64)
assert len(DIST_EDGES_KM) == 40  # zones 1..41 above land (0)

# stage (SOD class) and form (FLOE class) codes used in the partial tables
BERGS = 6
CAKE = 1
#: Floe field (see surface_kernel) per leading form: sub-pixel cakes and small
#: floes -> white noise, medium -> 2, big -> 6, vast -> 24 pixel cells.
FIELD_OF_FORM = {1: 0, 2: 0, 3: 1, 4: 2, 5: 3, BERGS: 1}


# --- random fields ----------------------------------------------------------
def smooth_noise(rng, shape, sigma):
    """Unit-variance Gaussian noise smoothed with ``sigma`` cells, float32."""
    a = rng.standard_normal(shape, dtype=np.float32)
    if sigma > 0:
        a = ndimage.gaussian_filter(a, sigma, mode="wrap", truncate=3.0)
    return _standardise(a)


def fractal_noise(rng, shape, beta):
    """Power-law (``|k|**-beta`` spectrum) random field, unit variance, float32.

    Drawn on a 25 % larger periodic grid and cropped so that opposite edges
    are not correlated.
    """
    big = tuple(int(n * 1.25) + 8 for n in shape)
    spec = fft.rfft2(rng.standard_normal(big, dtype=np.float32))
    ky = fft.fftfreq(big[0]).astype(np.float32)[:, None]
    kx = fft.rfftfreq(big[1]).astype(np.float32)[None, :]
    k2 = ky * ky + kx * kx
    k2[0, 0] = np.inf
    spec *= np.maximum(k2, (1.0 / max(big)) ** 2) ** np.float32(-beta / 4.0)
    out = fft.irfft2(spec, s=big)[: shape[0], : shape[1]]
    return _standardise(np.ascontiguousarray(out, dtype=np.float32))


def ridge_field(rng, shape):
    """Field whose zero-crossings are the ridge lines: sub-parallel, along a random axis."""
    sig = (0.8, 3.0) if rng.random() < 0.5 else (3.0, 0.8)
    aniso = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sig, mode="wrap")
    return _standardise(_standardise(aniso) + 0.6 * smooth_noise(rng, shape, 1.2))


def _standardise(a):
    a -= a.mean(dtype=np.float64)
    a /= max(float(a.std(dtype=np.float64)), 1e-12)
    return a


def resample(grid, factor_src, shape_dst, factor_dst, offset_src=0.0):
    """Bilinear resampling between cell-centred grids given in SAR-pixel units.

    ``offset_src`` is the SAR-pixel coordinate of the source grid's origin
    (negative for a grid padded beyond the frame).
    """
    ys = ((np.arange(shape_dst[0]) + 0.5) * factor_dst - 0.5 - offset_src + 0.5) / factor_src - 0.5
    xs = ((np.arange(shape_dst[1]) + 0.5) * factor_dst - 0.5 - offset_src + 0.5) / factor_src - 0.5
    yy, xx = np.meshgrid(ys.astype(np.float32), xs.astype(np.float32), indexing="ij")
    return ndimage.map_coordinates(grid, [yy, xx], order=1, mode="nearest").astype(np.float32)


def ramp(shape, angle, factor=1.0):
    """Unit-slope linear ramp across the grid (range about -1..1) in direction ``angle``."""
    y = np.linspace(-1.0, 1.0, shape[0], dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, shape[1], dtype=np.float32)[None, :]
    return (np.cos(angle) * x + np.sin(angle) * y).astype(np.float32) * factor


# --- target composition ------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """A real scene whose label histogram a synthetic scene imitates."""

    name: str
    counts: dict  # chart -> np.ndarray of counts per class index (+ [-1] = masked)
    n_pixels: int

    @property
    def service(self) -> str:
        return self.name[-3:]

    def fractions(self, chart):
        """Class fractions over valid pixels, or None when the chart has none."""
        c = self.counts[chart][:-1].astype(np.float64)
        return c / c.sum() if c.sum() > 0 else None

    def masked_fraction(self):
        c = self.counts["SIC"]
        return float(c[-1] / max(c.sum(), 1))

    def extra_masked(self, chart):
        """Share of the ice area (SIC 1..10) that ``chart`` masks beyond SIC's mask."""
        ice = self.counts["SIC"][1:-1].sum()
        extra = self.counts[chart][-1] - self.counts["SIC"][-1]
        return float(np.clip(extra / ice, 0.0, 1.0)) if ice > 0 else 0.0


@lru_cache(maxsize=None)
def real_targets() -> tuple[Target, ...]:
    """All real scenes of ``class_histograms()`` as targets, sorted by name."""
    out = []
    for name, charts in sorted(C.class_histograms().items()):
        counts = {}
        for chart in C.LABEL_CHARTS:
            n = C.N_CLASSES[chart]
            arr = np.zeros(n + 1, np.int64)
            for cls, cnt in charts[chart].items():
                arr[-1 if int(cls) == C.MASK_VALUE else int(cls)] += int(cnt)
            counts[chart] = arr
        out.append(Target(name, counts, int(counts["SIC"].sum())))
    return tuple(out)


@lru_cache(maxsize=None)
def pooled_prior(chart):
    """Pooled real class fractions of the ice classes of ``chart`` (fallback)."""
    tot = sum(t.counts[chart][1:-1] for t in real_targets()).astype(np.float64)
    return tot / tot.sum()


def pick_target(rng, service=None) -> Target:
    """A real scene drawn uniformly (of ``service`` when given)."""
    pool = [t for t in real_targets() if service is None or t.service == service]
    return pool[int(rng.integers(len(pool)))]


# --- swath ------------------------------------------------------------------
def swath_geometry(shape, outside, rng):
    """A rotated rectangle inscribed in the frame leaving about ``outside`` of it empty.

    Returns the kernel parameter vector (cx, cy, cos, sin, half_across,
    half_along, near_sign) as float64.
    """
    H, W = shape

    def sides(theta):
        c, s = math.cos(theta), math.sin(theta)
        det = c * c - s * s
        across = (W * c - H * s) / det
        along = (H * c - W * s) / det
        return across, along

    def empty(theta):
        a, b = sides(theta)
        return 1.0 - a * b / (H * W) if a > 0 and b > 0 else 1.0

    lo, hi = 0.0, 0.0
    while hi < 0.7 and empty(hi) < outside:
        hi += 0.01
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if empty(mid) < outside else (lo, mid)
    theta = lo if outside > 1e-4 else 0.0
    across, along = sides(theta)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    # mirror the rotation so both tilts occur; shrink a hair so edges stay inside
    c, s = math.cos(theta), sign * math.sin(theta)
    near = 1.0 if rng.random() < 0.5 else -1.0
    return np.array([(W - 1) / 2.0, (H - 1) / 2.0, c, s, across / 2.0 - 0.5,
                     along / 2.0 - 0.5, near], dtype=np.float64)


def swath_mask_coarse(sw, shape, factor):
    """Inside-swath mask of a coarse grid (cell centres)."""
    y = (np.arange(shape[0]) + 0.5) * factor - 0.5
    x = (np.arange(shape[1]) + 0.5) * factor - 0.5
    dx = x[None, :] - sw[0]
    dy = y[:, None] - sw[1]
    v = dx * sw[2] + dy * sw[3]
    u = -dx * sw[3] + dy * sw[2]
    return (np.abs(v) <= sw[4]) & (np.abs(u) <= sw[5])


# --- land -------------------------------------------------------------------
@dataclass
class Land:
    field4: np.ndarray  # continuous land field on the polygon grid; land where > thr
    thr: float
    mask4: np.ndarray
    dist4_km: np.ndarray  # distance to the nearest land (in or out of frame), km


def make_land(shape, land_frac, swath4, rng):
    """Land field with ``land_frac`` of the frame (inside the swath) as land.

    The field lives on a domain padded by 0.75 scene widths so that the
    distance map also sees land just outside the frame.
    """
    H, W = shape
    shape4 = swath4.shape
    pad = int(0.75 * max(H, W)) // LAND_FACTOR * LAND_FACTOR
    shape8 = (-(-(H + 2 * pad) // LAND_FACTOR), -(-(W + 2 * pad) // LAND_FACTOR))
    big = fractal_noise(rng, shape8, beta=3.4)
    big += ramp(shape8, rng.uniform(0, 2 * math.pi), rng.uniform(1.0, 3.0))
    field4 = resample(big, LAND_FACTOR, shape4, POLY_FACTOR, offset_src=-pad)
    # coastline detail below the land grid's resolution: fjords, skerries
    field4 += 0.12 * fractal_noise(rng, shape4, beta=2.2)
    inside = field4[swath4]
    if land_frac > 0 and inside.size:
        q = 1.0 - min(land_frac / max(swath4.mean(), 1e-6), 0.98)
        thr = float(np.quantile(inside, q))
    else:
        thr = float(field4.max()) + 0.05 + 0.3 * rng.random()
    mask4 = field4 > thr
    # distance: in-frame land at the polygon grid, off-frame land at the land grid
    if mask4.any():
        d_in = ndimage.distance_transform_edt(~mask4).astype(np.float32) * (POLY_FACTOR * PIXEL_KM)
    else:
        d_in = np.full(shape4, np.inf, np.float32)
    off = big > thr
    r0, c0 = pad // LAND_FACTOR, pad // LAND_FACTOR
    off[r0: r0 + -(-H // LAND_FACTOR), c0: c0 + -(-W // LAND_FACTOR)] = False
    if off.any():
        d_off = ndimage.distance_transform_edt(~off).astype(np.float32) * (LAND_FACTOR * PIXEL_KM)
        d_off = resample(d_off, LAND_FACTOR, shape4, POLY_FACTOR, offset_src=-pad)
    else:
        d_off = np.full(shape4, np.inf, np.float32)
    dist = np.minimum(d_in, d_off)
    dist[~np.isfinite(dist)] = 1e4
    return Land(field4.astype(np.float32), thr, mask4, dist.astype(np.float32))


# --- polygons ----------------------------------------------------------------
def make_polygons(shape4, iceness, water_frac, rng):
    """Domain-warped Voronoi polygons, denser near the ice edge.

    Returns ``(pid4, seeds, warp)``: polygon ids at the polygon-grid cell
    centres, seed positions (SAR pixels, float64 (n, 2)) and the warp field
    (2, hc, wc) in SAR pixels. A pixel at (y, x) belongs to the seed nearest to
    ``(y, x) + warp(y, x)``; the kernels evaluate that per pixel so polygon
    edges are smooth at 80 m.
    """
    hc, wc = shape4
    f = POLY_FACTOR
    n = int(rng.integers(20, 61))
    n = max(2, min(n, hc * wc // 16))
    edge = float(np.quantile(iceness, np.clip(water_frac, 0.02, 0.98)))
    cand = np.column_stack([rng.uniform(0, hc, 30 * n), rng.uniform(0, wc, 30 * n)])
    at = iceness[cand[:, 0].astype(int).clip(0, hc - 1), cand[:, 1].astype(int).clip(0, wc - 1)]
    w = 0.25 + np.exp(-(((at - edge) / 0.4) ** 2))
    seeds = cand[rng.choice(len(cand), n, replace=False, p=w / w.sum())] * f
    amp = 0.35 * math.sqrt(hc * wc / n) * f
    warp = np.stack([amp * fractal_noise(rng, shape4, beta=3.0), amp * fractal_noise(rng, shape4, beta=3.0)])
    yy = (np.arange(hc) + 0.5) * f - 0.5
    xx = (np.arange(wc) + 0.5) * f - 0.5
    q = np.stack(np.meshgrid(yy, xx, indexing="ij")).astype(np.float32) + warp
    _, pid = spatial.cKDTree(seeds).query(q.reshape(2, -1).T, workers=-1)
    return pid.reshape(shape4).astype(np.uint16), seeds.astype(np.float64), warp.astype(np.float32)


def quantile_walk(key, weight, fractions):
    """Class index per polygon: polygons sorted by ``key`` cut at cumulative ``fractions``.

    The class of a polygon is the one whose cumulative-fraction interval
    holds the middle of the polygon's cumulative weight, so area shares
    follow ``fractions`` (up to one polygon per class boundary).
    """
    order = np.argsort(key, kind="stable")
    w = weight[order].astype(np.float64)
    total = w.sum()
    if total > 0:
        mid = (np.cumsum(w) - 0.5 * w) / total
    else:
        mid = (np.arange(len(w)) + 0.5) / max(len(w), 1)
    cdf = np.cumsum(fractions) / np.sum(fractions)
    cls = np.minimum(np.searchsorted(cdf, mid, side="right"), len(fractions) - 1)
    out = np.empty(len(key), np.int64)
    out[order] = cls
    return out


def select_area(key, weight, eligible, target_area):
    """Eligible polygons taken in ``key`` order until about ``target_area`` is covered."""
    chosen = np.zeros(len(key), bool)
    acc = 0.0
    for p in np.argsort(key, kind="stable"):
        if eligible[p] and acc + 0.5 * weight[p] < target_area:
            chosen[p] = True
            acc += weight[p]
    return chosen


# --- egg codes ----------------------------------------------------------------
_PATTERNS = {1: ((0,),), 2: ((0, 0), (0, 1)),
             3: ((0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (0, 1, 2))}


def _partitions(total, n, largest=None):
    """Non-increasing tuples of ``n`` positive ints summing to ``total``."""
    largest = total if largest is None else largest
    if n == 1:
        return [(total,)] if 1 <= total <= largest else []
    out = []
    for first in range(min(total - n + 1, largest), 0, -1):
        out += [(first,) + rest for rest in _partitions(total - first, n - 1, first)]
    return out


def _leading(parts, groups):
    sums = np.zeros(3)
    for c, g in zip(parts, groups):
        sums[g] += c
    g = int(np.argmax(sums))
    return g, sums[g] / sum(parts)


@lru_cache(maxsize=None)
def egg_options(ct):
    """All egg codes with total ``ct`` tenths: (parts, stage groups, form groups, flags).

    A partial is (concentration, stage, form); partials sharing a stage
    (form) group add up for SOD (FLOE), as the AI4Arctic conversion does.
    Two partials never share both. Flags tell whether SOD / FLOE fall below
    the dominant-class rule (then that chart is 255).
    """
    out = []
    for n in range(1, min(3, ct) + 1):
        for parts in _partitions(ct, n):
            for sp in _PATTERNS[n]:
                for fp in _PATTERNS[n]:
                    if any(sp[i] == sp[j] and fp[i] == fp[j] for i in range(n) for j in range(i + 1, n)):
                        continue
                    gs, frs = _leading(parts, sp)
                    gf, frf = _leading(parts, fp)
                    out.append((parts, sp, fp, gs, gf, frs < DOMINANT, frf < DOMINANT))
    return tuple(out)


def _others(lead, used, lo, hi, rng):
    cand = [k for k in range(lo, hi + 1) if k not in used]
    w = np.exp(-np.abs(np.array(cand) - lead) / 1.2)
    return cand[int(rng.choice(len(cand), p=w / w.sum()))]


def egg_code(ct, stage, form, sod_mixed, floe_mixed, rng):
    """Partials ``[(tenths, stage, form), ...]`` realising the requested flags.

    The leading stage (form) group gets ``stage`` (``form``); other groups get
    neighbouring classes. Falls back to the nearest feasible flags (a 10 %
    polygon cannot be mixed).
    """
    if form == BERGS:
        return [(ct, GLACIER, BERGS)], False, False
    opts = egg_options(ct)
    for want in ((sod_mixed, floe_mixed), (sod_mixed, False), (False, floe_mixed), (False, False)):
        ok = [o for o in opts if (o[5], o[6]) == want]
        if ok:
            break
    ns = np.array([len(o[0]) for o in ok])
    pn = np.array([{1: 0.3, 2: 0.4, 3: 0.3}[k] for k in sorted(set(ns))])
    n = sorted(set(ns))[int(rng.choice(len(pn), p=pn / pn.sum()))]
    ok = [o for o in ok if len(o[0]) == n]
    parts, sp, fp, gs, gf, ms, mf = ok[int(rng.integers(len(ok)))]
    stage_of = {gs: stage}
    for g in sp:
        if g not in stage_of:
            stage_of[g] = _others(stage, set(stage_of.values()), 1, 5, rng)
    form_of = {gf: form}
    for g in fp:
        if g not in form_of:
            form_of[g] = _others(form, set(form_of.values()), 1, 5, rng)
    partials = [(c, stage_of[a], form_of[b]) for c, a, b in zip(parts, sp, fp)]
    return partials, ms, mf


# --- the chart -----------------------------------------------------------------
@dataclass
class Chart:
    """Polygon map (polygon grid) and per-polygon tables for the kernels."""

    pid4: np.ndarray
    seeds: np.ndarray
    warp: np.ndarray
    tables: dict
    n_polygons: int


def _polygon_means(pid4, field, n, weight=None):
    w = np.ones(pid4.shape, np.float64) if weight is None else weight.astype(np.float64)
    num = np.bincount(pid4.ravel(), (field * w).ravel(), minlength=n)
    den = np.bincount(pid4.ravel(), w.ravel(), minlength=n)
    allm = np.bincount(pid4.ravel(), field.ravel(), minlength=n) / np.maximum(
        np.bincount(pid4.ravel(), minlength=n), 1)
    return np.where(den > 0, num / np.maximum(den, 1e-12), allm)


def make_chart(target, shape4, swath4, land, outside, month, rng):
    """Polygons with SIC/SOD/FLOE egg codes matching ``target``'s composition."""
    hc, wc = shape4
    n_cells = hc * wc
    sic_frac = target.fractions("SIC")
    if sic_frac is None:  # nothing charted in the real scene: any plausible mix
        sic_frac = np.r_[0.5, 0.5 * pooled_prior("SIC")]
    # ice-ness: large-scale field plus a ramp (the ice edge) pushed away from land
    ice = fractal_noise(rng, shape4, beta=3.6) + ramp(shape4, rng.uniform(0, 2 * math.pi),
                                                      rng.uniform(0.8, 2.5))
    ice += 0.6 * np.exp(-land.dist4_km / 30.0)  # coastal pack / fast ice
    ice = _standardise(ice)
    pid4, seeds, warp = make_polygons(shape4, ice, sic_frac[0], rng)
    n = len(seeds)
    valid4 = swath4 & ~land.mask4
    area = np.bincount(pid4.ravel(), valid4.ravel(), minlength=n).astype(np.float64)
    iceness = _polygon_means(pid4, ice, n, valid4) + 0.25 * rng.standard_normal(n)

    # uncharted polygons take what the target masks beyond swath and land
    uncharted_area = max(target.masked_fraction() - outside - land.mask4[swath4].sum() / n_cells,
                         0.0) * n_cells
    cy, cx = (_polygon_means(pid4, g, n) for g in np.indices(shape4))
    a = rng.uniform(0, 2 * math.pi)
    uncharted = select_area(np.cos(a) * cy + np.sin(a) * cx, area, area > 0, uncharted_area)
    charted_area = np.where(uncharted, 0.0, area)

    ct = quantile_walk(iceness, charted_area, sic_frac)
    is_ice = ct > 0
    ice_area = np.where(is_ice, charted_area, 0.0)

    # fast ice: 100 % polygons on the coast (FLOE 255 in the real conversion)
    touches_land = np.bincount(pid4.ravel(), ndimage.binary_dilation(land.mask4, iterations=2).ravel(),
                               minlength=n) > 0
    p_fast = 0.6 if month in (11, 12, 1, 2, 3, 4, 5, 6) else 0.1
    fast = (ct == 10) & touches_land & (rng.random(n) < p_fast) & ~uncharted

    # ambiguous (mixed) polygons: shared key so SOD and FLOE ambiguity go together
    shared = rng.random(n)
    can_mix = is_ice & (ct >= 2)
    sod_mixed = select_area(0.75 * shared + 0.25 * rng.random(n), ice_area, can_mix,
                            target.extra_masked("SOD") * ice_area.sum())
    fast_area = ice_area[fast].sum()
    floe_mixed = select_area(0.75 * shared + 0.25 * rng.random(n), ice_area, can_mix & ~fast,
                             target.extra_masked("FLOE") * ice_area.sum() - fast_area)

    # leading stage: age grows into the pack
    age_f = _standardise(fractal_noise(rng, shape4, beta=3.2) + 0.8 * ice)
    age = _polygon_means(pid4, age_f, n, valid4) + 0.3 * rng.standard_normal(n)
    sod_frac = target.fractions("SOD")
    sod_frac = sod_frac[1:] if sod_frac is not None and sod_frac[1:].sum() > 0 else pooled_prior("SOD")
    w_sod = np.where(is_ice & ~sod_mixed, charted_area, 0.0)
    stage = np.where(is_ice, 1 + quantile_walk(np.where(is_ice, age, -np.inf), w_sod, sod_frac), 0)

    # leading form: bigger floes in old, compact ice; bergs (rare) at the small end
    floe_key = (np.argsort(np.argsort(age)) / n + ct / 10.0 + 0.4 * rng.standard_normal(n))
    floe_frac = target.fractions("FLOE")
    floe_frac = floe_frac[1:] if floe_frac is not None and floe_frac[1:].sum() > 0 else pooled_prior("FLOE")
    walk_order = np.array([6, 1, 2, 3, 4, 5])
    w_floe = np.where(is_ice & ~floe_mixed & ~fast, charted_area, 0.0)
    form = np.where(is_ice, walk_order[quantile_walk(np.where(is_ice, floe_key, -np.inf), w_floe,
                                                     floe_frac[walk_order - 1])], 0)
    form = np.where(fast, 5, form)

    tables = _tables(n, ct, stage, form, sod_mixed, floe_mixed, fast, uncharted, rng)
    return Chart(pid4, seeds, warp, tables, n)


def _tables(n, ct, stage, form, sod_mixed, floe_mixed, fast, uncharted, rng):
    """Kernel tables: labels, geometry mode and partials per polygon."""
    t = {
        "mode": np.zeros(n, np.uint8), "field_id": np.zeros(n, np.uint8),
        "thr": np.zeros(n, np.float32), "lead_thr": np.zeros(n, np.float32),
        "cum": np.ones((n, 2), np.float32), "pstage": np.zeros((n, 3), np.uint8),
        "pform": np.zeros((n, 3), np.uint8), "sic_lab": np.zeros(n, np.uint8),
        "sod_lab": np.zeros(n, np.uint8), "floe_lab": np.zeros(n, np.uint8),
        "ct": ct.astype(np.int64), "partials": [None] * n, "cake": np.zeros(n),
    }
    for p in range(n):
        c = int(ct[p])
        if c == 0:
            t["mode"][p] = MODE_WATER
            t["partials"][p] = []
        else:
            partials, ms, mf = egg_code(c, int(stage[p]), int(form[p]), bool(sod_mixed[p]),
                                        bool(floe_mixed[p]) and not fast[p], rng)
            if fast[p]:
                partials = [(cc, s, 5) for cc, s, _f in partials]
            t["partials"][p] = partials
            cum = np.cumsum([q[0] for q in partials]) / c
            t["cum"][p, : len(cum) - 1] = cum[:-1]
            for k in range(3):
                q = partials[min(k, len(partials) - 1)]
                t["pstage"][p, k], t["pform"][p, k] = q[1], q[2]
            big = max(partials, key=lambda q: q[0])
            lead_form = int(form[p]) if not fast[p] else 5
            t["sod_lab"][p] = C.MASK_VALUE if ms or partials[0][1] == GLACIER else stage[p]
            t["floe_lab"][p] = C.MASK_VALUE if mf or fast[p] else lead_form
            f_geom = big[2]
            water = 1.0 - c / 10.0
            if fast[p]:
                t["mode"][p] = MODE_SOLID
            elif f_geom in (4, 5) and c >= 8:
                # compact big/vast floes: water (or refrozen leads) in a lead network
                t["mode"][p] = MODE_NETWORK
                t["field_id"][p] = FIELD_OF_FORM[f_geom]
                t["thr"][p] = ndtri(0.5 + 0.5 * water) if water > 0 else -1.0
                t["lead_thr"][p] = ndtri(0.51) if water == 0 else 0.0
            elif c == 10:
                t["mode"][p] = MODE_SOLID
            else:
                t["mode"][p] = MODE_BLOB
                t["field_id"][p] = FIELD_OF_FORM[f_geom]
                t["thr"][p] = ndtri(water)
                if f_geom == CAKE:  # the SAR sees cakes and water mixed in each pixel
                    t["cake"][p] = c / 10.0
        t["sic_lab"][p] = c
        if uncharted[p]:
            t["sic_lab"][p] = t["sod_lab"][p] = t["floe_lab"][p] = C.MASK_VALUE
        elif c == 0:
            t["sod_lab"][p] = t["floe_lab"][p] = 0
    return t
