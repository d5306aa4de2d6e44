"""Synthetic raw AI4Arctic scenes: 40 m, ice charts as SIGRID-3 polygon codes.

A raw scene is made from a synthetic ready-to-train scene
(:func:`scenes.synth.make_scene`, 80 m) so that converting it back
(:mod:`scenes.rawconvert`) gives that scene again:

- Each 80 m pixel becomes 2 x 2 pixels at 40 m. HH and HV go back to dB and
  get a zero-mean 2 x 2 pattern (``+a, -a; -a, +a``, ``a`` random per block)
  so the 40 m image has texture and the 2 x 2 mean is the 80 m value;
  no-data pixels are NaN. ``distance_map`` holds the zone ids (uint8).
- Polygons: every connected region of one (SIC, SOD, FLOE) triple of the
  80 m charts is a polygon with a random id (``polygon_icechart``, uint16,
  ``_FillValue`` 65535). Its code string is built to convert to exactly that
  triple, drawing among the ways the rules allow (:func:`polygon_code`): CT
  codes 0/1/2/55 or a water polygon for SIC 0, CA left empty, layers of one
  class that only reach 65 % together, a dominant pair beside a third layer,
  mixed layers below 65 %, unknown stage or form codes, fast ice, and an
  unknown CT; the least used feasible way is taken each time, so a scene with
  a few dozen polygons uses them all. Regions masked in all three charts are
  left without a polygon (fill) or get an unknown CT, by turns at random.
  Codes are converted by the rules only in :mod:`scenes.icechart`: the
  labels here come from the generator, so the round trip tests the converter.
- Tie points (21 x 21, line by line, 1-D): latitude and longitude from the
  80 m scene's tie points, the incidence angle from a quadratic fit of its
  incidence angle (exact for the generator's geometry up to interpolation).
- The 2 km variables in physical units (float64), one extra row and column
  that the converter cuts off; ``amsr2_swath_map``, ``swath_segmentation``
  and ``sar_grid_height`` as placeholders.

An odd requested side gets one extra 40 m row (column) of no data, which the
converter drops. Same seed -> same bytes.
"""
from __future__ import annotations

import math
import zlib
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
from skimage.measure import label as connected_regions
from tqdm.auto import tqdm

from . import contract as C
from . import geolocation as geo
from . import sigrid as S
from .raw import FACTOR, MIN_SIDE
from .reader import all_or_nothing, atomic_write_bytes, hdf5_in_memory
from .synth import KINDS, dataset_plan, make_scene

#: Polygon id of pixels without a polygon.
FILL_ID = 65535
#: Most polygons of one scene (more regions share their triple's first polygon).
MAX_POLYGONS = 60000
#: Standard deviation (dB) of the 2 x 2 pattern added to the SAR.
PATTERN_DB = 0.8
BLOCK_ROWS = 256
_DIMS = ("sar_lines", "sar_samples")
_GRID_DIMS = ("2km_grid_lines", "2km_grid_samples")
_TIE_DIM = "sar_grid_points"

# --- codes of each class, from the one table ----------------------------------------
_CT = {k: sorted(c for c, v in S.SIC_OF_CODE.items() if v == k) for k in range(11)}
_STAGE = {k: sorted(c for c, v in S.SOD_OF_CODE.items() if v == k) for k in range(6)}
_FORM = {k: sorted(c for c, v in S.FLOE_OF_CODE.items() if v == k) for k in range(7)}
_STAGE_UNKNOWN = sorted(c for c, v in S.SOD_OF_CODE.items() if v == S.UNKNOWN) + [S.NOT_FILLED]
_FORM_UNKNOWN = sorted(c for c, v in S.FLOE_OF_CODE.items() if v == S.UNKNOWN) + [S.NOT_FILLED]
_UNKNOWN_CT = (99, S.NOT_FILLED)


def _rng(seed, name):
    """Independent generator per purpose (as the 80 m generator seeds its stages)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]))


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _conc_code(tenths, rng):
    """A partial-concentration code of ``tenths`` (1..10)."""
    return _pick(rng, _CT[tenths])


def _halves(c):
    """Two (three for 3) layers, each below 65 % of ``c`` tenths."""
    return (1, 1, 1) if c == 3 else (c - c // 2, c // 2)


def _dominant(c):
    """Three layers, the first two summing to >= 65 % of ``c`` though each is below it."""
    pair = -(-13 * c // 20)
    return (pair - pair // 2, pair // 2, c - pair)


def _parts(structure, c):
    """Tenths of each layer: one layer, halves, or a dominant pair and a third."""
    return {"single": (c,), "halves": _halves(c), "dominant": _dominant(c)}[structure]


def _assignments(target, parts, chart):
    """Ways to give each layer a class so that ``chart`` comes out as ``target``."""
    c = sum(parts)
    if target != S.UNKNOWN:
        ways = ["all"]
        if len(parts) == 3 and 20 * (parts[0] + parts[1]) >= 13 * c and parts[2] > 0:
            ways.append("pair")
        return ways
    ways = ["unknown"]
    if len(parts) > 1 and 20 * max(parts) < 13 * c:
        ways.append("mixed")
    if chart == "FLOE":
        ways.append("fast")
    return ways


def _layer_codes(way, target, parts, chart, rng):
    """Stage (form) code of each layer for one assignment way."""
    known, unknown = (_STAGE, _STAGE_UNKNOWN) if chart == "SOD" else (_FORM, _FORM_UNKNOWN)
    ice = [k for k in known if k > 0]
    n = len(parts)
    if way == "all":
        return [_pick(rng, known[target]) for _ in range(n)]
    if way == "pair":
        other = _pick(rng, [k for k in ice if k != target])
        return [_pick(rng, known[target]), _pick(rng, known[target]), _pick(rng, known[other])]
    if way == "mixed":
        classes = rng.permutation(ice)[:n]
        return [_pick(rng, known[int(k)]) for k in classes]
    if way == "fast":  # any layer with fast ice, whatever the others say
        codes = [_pick(rng, known[_pick(rng, ice)]) for _ in range(n)]
        codes[int(rng.integers(n))] = S.FAST_ICE
        return codes
    return [_pick(rng, unknown) for _ in range(n)]


def polygon_code(sic, sod, floe, rng, used: Counter | None = None) -> tuple[dict, str]:
    """SIGRID-3 fields of a polygon whose classes are ``(sic, sod, floe)``, and the way taken.

    Parameters
    ----------
    sic, sod, floe : int
        The wanted classes (255 = unknown). SIC 0 needs SOD = FLOE = 0; SIC
        255 needs SOD = FLOE = 255.
    rng : numpy.random.Generator
    used : Counter, optional
        How often each way was taken so far; the least used feasible way is
        taken (and counted), so that every way appears. Default: at random.

    Returns
    -------
    (dict, str)
        ``{field: int code or POLY_TYPE str}`` for every field of
        :data:`scenes.sigrid.POLYGON_FIELDS` but ``id``; the way's name.
    """
    sic, sod, floe = int(sic), int(sod), int(floe)
    fields = {f: S.NOT_FILLED for f in S.POLYGON_FIELDS[1:-1]}
    fields["POLY_TYPE"] = S.ICE
    if sic == 0 or sic == S.UNKNOWN:
        if (sod, floe) != ((0, 0) if sic == 0 else (S.UNKNOWN, S.UNKNOWN)):
            raise ValueError(f"no polygon code gives SIC {sic} with SOD {sod} and FLOE {floe}")
        ways = (["water-W", "water-ct", "water-ct-stages"] if sic == 0 else ["ct-unknown"])
    else:
        ways = []
        for structure in ("single", "halves", "dominant")[: min(sic, 3)]:
            parts = _parts(structure, sic)
            for a in _assignments(sod, parts, "SOD"):
                for b in _assignments(floe, parts, "FLOE"):
                    ways.append(f"{structure}:{a}/{b}")
    if used is None:
        way = _pick(rng, ways)
    else:
        least = min(used[w] for w in ways)
        way = _pick(rng, [w for w in ways if used[w] == least])
        used[way] += 1
    if way == "water-W":  # a water polygon is SIC 0 whatever its codes say
        fields["POLY_TYPE"] = _pick(rng, [S.WATER, S.WATER.lower()])
        fields["CT"] = _pick(rng, [S.NOT_FILLED, 0, 30, 92])
    elif way.startswith("water-ct"):
        fields["CT"] = _pick(rng, _CT[0])
        if way == "water-ct-stages":  # SIC 0 makes SOD and FLOE 0 even with ice codes
            fields["SA"], fields["FA"] = _pick(rng, [87, 93]), _pick(rng, [4, 5])
    elif way == "ct-unknown":
        fields["CT"] = _pick(rng, list(_UNKNOWN_CT))
    else:
        structure, ab = way.split(":")
        a, b = ab.split("/")
        parts = _parts(structure, sic)
        fields["CT"] = _pick(rng, _CT[sic])
        stages = _layer_codes(a, sod, parts, "SOD", rng)
        forms = _layer_codes(b, floe, parts, "FLOE", rng)
        for k, (cf, sf, ff) in enumerate(S.LAYERS[: len(parts)]):
            fields[cf] = _conc_code(parts[k], rng)
            fields[sf], fields[ff] = stages[k], forms[k]
        if structure == "single" and rng.random() < 0.5:
            fields["CA"] = S.NOT_FILLED  # CA takes CT
    return fields, way


def format_entry(pid: int, fields: dict, rng) -> str:
    """One ``polygon_codes`` entry; form codes sometimes blank-padded like real files."""
    out = [str(int(pid))]
    for f in S.POLYGON_FIELDS[1:-1]:
        v = fields[f]
        text = str(v)
        if f in ("FA", "FB", "FC") and 0 <= v < 10 and rng.random() < 0.5:
            text = f" {v}"
        out.append(text)
    out.append(fields["POLY_TYPE"])
    return ";".join(out)


# --- one scene -----------------------------------------------------------------------------
def _polygons(ds, rng):
    """80 m polygon-id raster (uint16), the code entries and the count of each way."""
    triple = (ds["SIC"].values.astype(np.int32) | ds["SOD"].values.astype(np.int32) << 8
              | ds["FLOE"].values.astype(np.int32) << 16)
    regions = connected_regions(triple, background=-1, connectivity=1)
    n = int(regions.max())
    first = np.unique(regions.ravel(), return_index=True)[1]
    region_triple = triple.ravel()[first]  # region k (1..n) at position k - 1
    masked = region_triple == (C.MASK_VALUE | C.MASK_VALUE << 8 | C.MASK_VALUE << 16)
    poly_of_region = np.arange(n)
    if n > MAX_POLYGONS:  # later regions join the first region of their triple
        firsts = {}
        for k in range(n):
            t = int(region_triple[k])
            firsts.setdefault(t, k)
            if k >= MAX_POLYGONS:
                poly_of_region[k] = firsts[t]
    no_polygon = masked & (rng.random(n) < 0.5)
    owners = np.unique(poly_of_region[~no_polygon])
    ids = rng.choice(np.arange(1, FILL_ID), size=len(owners) + 2, replace=False)
    id_of_owner = dict(zip(owners.tolist(), ids[: len(owners)].tolist()))
    id_of_region = np.full(n + 1, FILL_ID, np.uint16)
    for k in range(n):
        if not no_polygon[k]:
            id_of_region[k + 1] = id_of_owner[int(poly_of_region[k])]
    used, entries = Counter(), ["id;" + ";".join(S.POLYGON_FIELDS[1:])]
    for owner in owners.tolist():
        t = int(region_triple[owner])
        fields, _ = polygon_code(t & 0xFF, t >> 8 & 0xFF, t >> 16 & 0xFF, rng, used)
        entries.append(format_entry(id_of_owner[owner], fields, rng))
    for pid in ids[len(owners):]:  # entries no pixel uses, as real tables may have
        fields, _ = polygon_code(5, 4, 3, rng)
        entries.append(format_entry(int(pid), fields, rng))
    return id_of_region[regions], entries, used


def _upsample(x):
    return np.repeat(np.repeat(x, FACTOR, axis=0), FACTOR, axis=1)


def _pad(x, shape, value):
    """``x`` grown to ``shape`` with ``value`` (the odd extra row/column)."""
    if x.shape == shape:
        return x
    out = np.full(shape, value, x.dtype)
    out[: x.shape[0], : x.shape[1]] = x
    return out


def _ia_fit(ds):
    """Quadratic (in 80 m row, col) least-squares fit of the scene's incidence angle, degrees."""
    z = ds["sar_incidenceangle"].values
    H, W = z.shape
    step = max(1, int(math.sqrt(H * W / 200_000)))
    r, c = np.mgrid[0:H:step, 0:W:step]
    zz = z[::step, ::step]
    ok = zz != C.SAR_FILL
    r, c = r[ok] / H, c[ok] / W
    ia = C.to_physical("sar_incidenceangle", zz[ok]).astype(np.float64)
    basis = lambda r, c: np.stack([np.ones_like(r), r, c, r * r, r * c, c * c], -1)  # noqa: E731
    coef = np.linalg.lstsq(basis(r, c), ia, rcond=None)[0]
    return lambda rows, cols: basis(np.asarray(rows) / H, np.asarray(cols) / W) @ coef


def write_raw_scene(path, ds, *, seed: int = 0, chart: bool = True, shape=None,
                    block_rows: int = BLOCK_ROWS) -> dict:
    """Write the raw (40 m) version of the 80 m training scene ``ds``.

    Parameters
    ----------
    path : path-like
        The raw file to write (its name should be ``ds.attrs["original_id"]``).
    ds : xarray.Dataset
        A training scene (:func:`scenes.synth.make_scene`).
    seed : int
        Seeds polygon ids, codes and the SAR pattern.
    chart : bool
        Write ``polygon_icechart`` and ``polygon_codes`` (False: a test scene).
    shape : (int, int), optional
        40 m shape: twice the 80 m shape, plus one for an odd side.
    block_rows : int
        80 m rows written at a time.

    Returns
    -------
    dict
        ``{"path": Path, "shape": (H, W), "polygons": n, "ways": Counter}``.
    """
    path = Path(path)
    H80, W80 = (int(n) for n in ds["SIC"].shape)
    shape = (FACTOR * H80, FACTOR * W80) if shape is None else tuple(int(n) for n in shape)
    if shape[0] // FACTOR != H80 or shape[1] // FACTOR != W80:
        raise ValueError(f"shape {shape} does not halve to the scene's {H80} x {W80}")
    H, W = shape
    rng = _rng(seed, "raw")
    ids80, entries, ways = _polygons(ds, rng) if chart else (None, [], Counter())
    ties_80 = geo.tie_points(ds)
    tl = np.round(geo.tiepoint_positions(H)).astype(np.int64)
    ts = np.round(geo.tiepoint_positions(W)).astype(np.int64)
    line, sample = (a.ravel() for a in np.meshgrid(tl, ts, indexing="ij"))  # line by line
    # 40 m coordinate q sits at 80 m coordinate (q - 0.5) / 2
    lat, lon = ties_80.latlon((line - 0.5) / FACTOR, (sample - 0.5) / FACTOR)
    ia = _ia_fit(ds)((line - 0.5) / FACTOR, (sample - 0.5) / FACTOR)
    with hdf5_in_memory(path) as f:  # a full disk must not crash HDF5
        gh, gw = ds.sizes[C.GRID2KM_DIMS[0]] + 1, ds.sizes[C.GRID2KM_DIMS[1]] + 1
        f.dimensions = {_DIMS[0]: H, _DIMS[1]: W, _GRID_DIMS[0]: gh, _GRID_DIMS[1]: gw,
                        _TIE_DIM: line.size}
        big = dict(chunks=(min(H, 512), min(W, 512)), compression="gzip", compression_opts=1,
                   shuffle=True)
        out = {v: f.create_variable(v, _DIMS, np.float32, **big) for v in C.SAR_VARS}
        out["distance_map"] = f.create_variable("distance_map", _DIMS, np.uint8, **big)
        for v, pol in zip(C.SAR_VARS, ("HH", "HV")):
            out[v].attrs.update({"polarisation": pol, "units": "dB",
                                 "description": f"synthetic Sentinel-1 EW {pol} sigma0, 40 m"})
        if chart:
            out["polygon_icechart"] = f.create_variable(
                "polygon_icechart", _DIMS, np.uint16, fillvalue=np.uint16(FILL_ID), **big)
            f.dimensions["polygon_codes"] = len(entries)
            codes = f.create_variable("polygon_codes", ("polygon_codes",), h5py.string_dtype())
            codes[...] = np.array(entries, dtype=object)
        noise = _rng(seed, "raw-sar")
        for r0 in range(0, H80, block_rows):
            r1 = min(H80, r0 + block_rows)
            a, b = FACTOR * r0, FACTOR * r1 + (H - FACTOR * H80 if r1 == H80 else 0)
            rows = (b - a, W)
            pattern = np.float32(PATTERN_DB) * _upsample(
                noise.standard_normal((r1 - r0, W80), dtype=np.float32))
            pattern[0::2, 1::2] *= -1
            pattern[1::2, 0::2] *= -1
            for v in C.SAR_VARS:
                z = ds[v].values[r0:r1]
                db = np.where(z == C.SAR_FILL, np.nan, C.to_physical(v, z))
                x = _upsample(db) + pattern
                x[x == 0] = np.float32(1e-6)  # 0 dB would read as no data
                out[v][a:b, :] = _pad(x.astype(np.float32), rows, np.nan)
            z = ds["distance_map"].values[r0:r1]
            zone = np.where(z == C.SAR_FILL, 0, np.rint(C.to_physical("distance_map", z)))
            out["distance_map"][a:b, :] = _pad(_upsample(zone.astype(np.uint8)), rows, 0)
            if chart:
                out["polygon_icechart"][a:b, :] = _pad(_upsample(ids80[r0:r1]), rows,
                                                       np.uint16(FILL_ID))
        for name in C.GRID2KM_VARS:
            phys = C.to_physical(name, ds[name].values).astype(np.float64)
            f.create_variable(name, _GRID_DIMS, np.float64,
                              data=np.pad(phys, ((0, 1), (0, 1)), mode="edge"))
        for name in ("amsr2_swath_map", "swath_segmentation"):
            f.create_variable(name, _GRID_DIMS, np.int8, data=np.zeros((gh, gw), np.int8))
        for name, values in (("sar_grid_line", line.astype(np.float64)),
                             ("sar_grid_sample", sample.astype(np.float64)),
                             ("sar_grid_latitude", lat), ("sar_grid_longitude", lon),
                             ("sar_grid_height", np.zeros(line.size)),
                             ("sar_grid_incidenceangle", ia)):
            f.create_variable(name, (_TIE_DIM,), np.float64, data=values)
        f.attrs.update({"scene_id": path.name, "ice_service": ds.attrs["ice_service"],
                        "pixel_spacing": 40})
    return {"path": path, "shape": shape, "polygons": max(len(entries) - 1, 0), "ways": ways}


# --- a dataset --------------------------------------------------------------------------------
def _size80(size):
    """The 80 m size spec of a raw (40 m) one, and the odd extra (rows, cols)."""
    if size is None or size == "real":
        return size, (0, 0)
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size < MIN_SIDE:
            raise ValueError(f"size must be >= {MIN_SIDE} (40 m pixels), got {size}")
        return int(size) // FACTOR, (0, 0)
    if isinstance(size, (tuple, list)) and len(size) == 2:
        h, w = (int(v) for v in size)
        if min(h, w) < MIN_SIDE:
            raise ValueError(f"size must be >= {MIN_SIDE} x {MIN_SIDE} (40 m pixels), got {size!r}")
        return (h // FACTOR, w // FACTOR), (h % FACTOR, w % FACTOR)
    raise ValueError(f"size must be None, an int S, a tuple (H, W) or 'real', got {size!r}")


def _write_reference(ds, path: Path) -> Path:
    """The 80 m labels as a ``*_prep_reference.nc`` (what conversion of the raw file gives)."""
    enc = {c: {"_FillValue": None, "zlib": True, "complevel": 1} for c in C.LABEL_CHARTS}
    atomic_write_bytes(path, ds[list(C.LABEL_CHARTS)].to_netcdf(engine="h5netcdf",
                                                                encoding=enc))
    return path


def write_raw_dataset(out_dir, *, n_train=4, n_test=2, size=None, seed=0, progress=True) -> dict:
    """Write ``out_dir/train`` and ``out_dir/test`` as raw files, ``out_dir/reference`` at 80 m.

    Parameters
    ----------
    out_dir : path-like
        Created if missing.
    n_train, n_test : int
        Training scenes (with ice charts) and test scenes (without, like the
        challenge's raw test files; their labels go to
        ``reference/*_prep_reference.nc``).
    size : None, int, (int, int) or "real"
        The 40 m size: None about 800 x 840; S about S x S; (H, W) exactly;
        "real" twice the real scenes' 80 m sizes.
    seed : int
        Same seed -> identical files; the scenes are those of
        :func:`scenes.synth.dataset_plan` at half the size.
    progress : bool

    Returns
    -------
    dict
        ``{"train": [Path], "test": [Path], "reference": [Path], "ways": Counter}``.
    """
    size80, odd = _size80(size)
    plan = dataset_plan(n_train=n_train, n_test=n_test, size=size80, seed=seed)
    out = Path(out_dir)
    written = {k: [] for k in KINDS}
    ways = Counter()
    subs = sorted(({"train"} if n_train else set()) | ({"test", "reference"} if n_test else set()))
    # On an error (a full disk, say) what this call made is removed again: no half dataset.
    with all_or_nothing([out, *(out / sub for sub in subs)], written):
        for kind, s, key, shape80 in tqdm(plan, desc="synthetic raw scenes", unit="scene",
                                          disable=not progress):
            ds = make_scene(shape80, seed=s, kind="train")
            shape = (FACTOR * shape80[0] + odd[0], FACTOR * shape80[1] + odd[1])
            r = write_raw_scene(out / kind / ds.attrs["original_id"], ds, seed=s,
                                chart=kind == "train", shape=shape)
            written[kind].append(r["path"])
            ways += r["ways"]
            if kind == "test":
                written["reference"].append(
                    _write_reference(ds, out / "reference" / f"{key}_prep_reference.nc"))
            del ds
    written["ways"] = ways
    return written
