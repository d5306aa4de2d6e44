"""Synthetic scene generator: layout, label logic, composition, physics, determinism."""
import itertools
import re

import numpy as np
import pytest
import xarray as xr

from scenes import contract as C
from scenes._synth_chart import GLACIER, egg_code
from scenes.reader import list_scenes, open_scene, scene_key
from scenes.synth import dataset_plan, make_scene, scene_target, write_synthetic_dataset

SMALL = (120, 130)
RAW_RE = re.compile(r"^S1[AB]_EW_GRDM_1SDH_(\d{8}T\d{6})_\d{8}T\d{6}_\d{6}_[0-9A-F]{6}_[0-9A-F]{4}_icechart_"
                    r"(cis_SGRDI[A-Z]+_\d{8}T\d{4}Z_pl_a|dmi_\d{12}_[A-Za-z]+_RIC)\.nc$")


def _label_hist(ds, chart):
    h = np.bincount(ds[chart].values.ravel(), minlength=256)
    return np.r_[h[: C.N_CLASSES[chart]], h[C.MASK_VALUE]].astype(np.float64)


def _phys(ds, var):
    return C.to_physical(var, ds[var].values)


# --- layout ------------------------------------------------------------------
@pytest.mark.parametrize("kind, names", [("train", C.TRAIN_VARS), ("test", C.TEST_VARS),
                                         ("reference", C.LABEL_CHARTS)])
def test_variables_dims_dtypes(kind, names):
    ds = make_scene(SMALL, seed=3, kind=kind)
    assert list(ds.data_vars) == list(names) and not ds.coords
    for v in names:
        assert ds[v].dims == C.VAR_DIMS[v] and ds[v].dtype == C.VAR_DTYPES[v], v
    sizes = dict(ds.sizes)
    assert (sizes["sar_lines"], sizes["sar_samples"]) == SMALL
    if kind != "reference":
        assert (sizes["2km_grid_lines"], sizes["2km_grid_samples"]) == C.grid2km_shape(SMALL) == (4, 5)
        assert (sizes["sar_sample_2dgrid_points"], sizes["sar_line_2dgrid_points"]) == (21, 21)


def test_attributes():
    ds = make_scene(SMALL, seed=4)
    key = ds.attrs["scene_id"][: C.KEY_LENGTH]
    assert C.parse_scene_name(ds.attrs["scene_id"]) == (key, False)
    m = RAW_RE.match(ds.attrs["original_id"])
    assert m and m.group(1) == key[:15] and f"_icechart_{ds.attrs['ice_service']}_" in ds.attrs["original_id"]
    assert ds.attrs["ice_service"] == key[-3:] and ds.attrs["flip"] == 0 and ds.attrs["pixel_spacing"] == 80
    for chart in C.LABEL_CHARTS:
        assert ds[chart].attrs["chart_fill_value"] == C.MASK_VALUE and isinstance(ds[chart].attrs["polygon"], str)
        assert "_FillValue" not in ds[chart].attrs
    valid = ds[C.SAR_VARS[0]].values != C.SAR_FILL
    for var, pol in zip(C.SAR_VARS, ("HH", "HV")):
        a = ds[var].attrs
        assert a["polarisation"] == pol and a["description"] and a["variable_fill_value"] == 0
        db = _phys(ds, var)[valid]
        assert -45 < a["min"] < a["max"] < 15
        assert abs(a["min"] - db.min()) < 1e-3 and abs(a["max"] - db.max()) < 1e-3
    lat, lon = ds.sar_grid2d_latitude.values, ds.sar_grid2d_longitude.values
    assert lat.min() > 45 and lat.max() < 89 and np.abs(lon).max() <= 180
    # tie points 6 x 6.5 pixels apart: neighbours within a km (plus longitude convergence)
    assert np.abs(np.diff(lat, axis=0)).max() * 111 < 1.0


def test_kinds_share_content():
    train = make_scene(SMALL, seed=5)
    xr.testing.assert_identical(make_scene(SMALL, seed=5, kind="test"), train.drop_vars(list(C.LABEL_CHARTS)))
    xr.testing.assert_identical(make_scene(SMALL, seed=5, kind="reference"), train[list(C.LABEL_CHARTS)])


def test_swath_fill_and_ranges():
    ds = make_scene((300, 320), seed=6)
    sar = {v: ds[v].values for v in C.SAR_GRID_VARS}
    invalid = sar[C.SAR_VARS[0]] == C.SAR_FILL
    for v in C.SAR_GRID_VARS:  # one no-data mask for every SAR-grid input
        np.testing.assert_array_equal(sar[v] == C.SAR_FILL, invalid, err_msg=v)
    assert 0.01 < invalid.mean() < 0.5 and invalid[0, 0] | invalid[0, -1] | invalid[-1, 0] | invalid[-1, -1]
    for chart in C.LABEL_CHARTS:
        assert (ds[chart].values[invalid] == C.MASK_VALUE).all()
    ia = _phys(ds, "sar_incidenceangle")[~invalid]
    assert 18.9 < ia.min() and ia.max() < 47.1 and ia.max() - ia.min() > 20
    zone = _phys(ds, "distance_map")[~invalid]
    np.testing.assert_allclose(zone, np.round(zone), atol=1e-4)
    assert zone.min() >= 0 and zone.max() <= 41
    land = np.zeros_like(invalid)
    land[~invalid] = np.round(zone) == 0
    assert (ds.SIC.values[land] == C.MASK_VALUE).all()
    for v in C.GRID2KM_VARS:
        assert np.isfinite(ds[v].values).all()


# --- labels --------------------------------------------------------------------
def _convert(ct, partials):
    """The starter pack's egg-code conversion: sum partials per class, 65 % rule."""
    out = []
    for pos in (1, 2):
        sums = {}
        for p in partials:
            cls = C.MASK_VALUE if (pos == 1 and p[1] == GLACIER) else p[pos]
            sums[cls] = sums.get(cls, 0) + p[0]
        lead = max(sums, key=sums.get)
        out.append(lead if sums[lead] * 100 / ct >= 65 else C.MASK_VALUE)
    return out


def test_egg_codes_follow_dominant_class_rule():
    rng = np.random.default_rng(0)
    for ct, ms, mf, _ in itertools.product(range(1, 11), (False, True), (False, True), range(8)):
        stage, form = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        partials, got_s, got_f = egg_code(ct, stage, form, ms, mf, rng)
        assert 1 <= len(partials) <= 3 and sum(p[0] for p in partials) == ct and min(p[0] for p in partials) >= 1
        assert len({(p[1], p[2]) for p in partials}) == len(partials)  # no duplicated partial
        assert (got_s, got_f) == ((ms, mf) if ct >= 2 else (False, False))
        assert _convert(ct, partials) == [C.MASK_VALUE if got_s else stage, C.MASK_VALUE if got_f else form]
    partials, *_ = egg_code(4, 3, 6, False, False, rng)  # icebergs: FLOE 6, SOD has no class
    assert _convert(4, partials) == [C.MASK_VALUE, 6]


def test_label_consistency_polygons_and_pixels():
    extra_sod = extra_floe = 0
    for seed in range(8):
        ds = make_scene((200, 210), seed=seed)
        sic, sod, floe = (ds[c].values for c in C.LABEL_CHARTS)
        masked = sic == C.MASK_VALUE
        assert (sod[masked] == C.MASK_VALUE).all() and (floe[masked] == C.MASK_VALUE).all()
        np.testing.assert_array_equal(sic == 0, sod == 0)
        np.testing.assert_array_equal(sic == 0, floe == 0)
        # one partial (10 %) is never ambiguous; its only SOD mask is glacier ice (bergs)
        ten = sic == 1
        assert (floe[ten] != C.MASK_VALUE).all() and ((sod[ten] != C.MASK_VALUE) | (floe[ten] == 6)).all()
        ice = (sic >= 1) & (sic <= 10)
        extra_sod += np.count_nonzero(ice & (sod == C.MASK_VALUE))
        extra_floe += np.count_nonzero(ice & (floe == C.MASK_VALUE))
        # labels are polygons, the SAR varies pixel to pixel
        hh = ds.nersc_sar_primary.values
        both = (hh[:, 1:] != 0) & (hh[:, :-1] != 0)
        assert np.mean(sic[:, 1:] != sic[:, :-1]) < 0.03
        assert np.mean(hh[:, 1:][both] != hh[:, :-1][both]) > 0.99
    assert extra_sod > 0 and extra_floe > 0


def test_class_frequencies_match_real_histograms():
    """Pooled over 24 scenes of 150 x 160: each scene's composition follows its real
    target scene (pooled class fractions within 0.01 of the targets'), and the pool
    resembles all 513 real scenes: masked SIC 0.40 +- 0.06, masked SOD/FLOE
    0.485 +- 0.06, among valid pixels water 0.57 +- 0.10 and 100 % 0.22 +- 0.07,
    rare classes (SIC 10 %, FLOE cake and bergs) below 2 %."""
    n = 24
    got = {c: 0.0 for c in C.LABEL_CHARTS}
    want = {c: 0.0 for c in C.LABEL_CHARTS}
    for seed in range(n):
        ds = make_scene((150, 160), seed=seed, kind="reference")
        _, counts = scene_target(seed)
        for c in C.LABEL_CHARTS:
            h = _label_hist(ds, c)
            got[c] = got[c] + h / h.sum() / n
            want[c] = want[c] + counts[c] / counts[c].sum() / n
    for c in C.LABEL_CHARTS:
        np.testing.assert_allclose(got[c], want[c], atol=0.01, err_msg=c)
    real = {c: sum(np.array([v[c].get(str(k), 0) for k in list(range(C.N_CLASSES[c])) + [255]], float)
                   for v in C.class_histograms().values()) for c in C.LABEL_CHARTS}
    for c in C.LABEL_CHARTS:
        real_masked = real[c][-1] / real[c].sum()
        assert abs(got[c][-1] - real_masked) < 0.06, c
    sic = got["SIC"][:-1] / got["SIC"][:-1].sum()
    real_sic = real["SIC"][:-1] / real["SIC"][:-1].sum()
    assert abs(sic[0] - real_sic[0]) < 0.10 and abs(sic[10] - real_sic[10]) < 0.07
    assert set(np.argsort(sic)[-2:]) == {0, 10}
    floe = got["FLOE"][:-1] / got["FLOE"][:-1].sum()
    assert sic[1] < 0.02 and floe[1] < 0.02 and floe[6] < 0.02


# --- physics ---------------------------------------------------------------------
def _winter_seed():
    for seed in range(200):
        name, counts = scene_target(seed)
        f = counts["SIC"][:-1] / max(counts["SIC"][:-1].sum(), 1)
        if int(name[4:6]) in (1, 2, 3) and 0.25 < f[0] < 0.6 and f[9:].sum() > 0.25:
            return seed
    raise AssertionError("no winter scene with water and pack ice among 200 seeds")


def test_physical_signatures():
    ds = make_scene((700, 720), seed=_winter_seed())
    sic = ds.SIC.values
    valid = ds.nersc_sar_primary.values != 0
    hh, hv, ia = (_phys(ds, v) for v in (*C.SAR_VARS, "sar_incidenceangle"))
    water, pack = valid & (sic == 0), valid & (sic >= 9) & (sic <= 10)
    near, far = ia < 28, ia > 38
    # open water darkens steeply with incidence angle; ice is brighter in HV
    assert np.median(hh[water & near]) - np.median(hh[water & far]) > 4.0
    assert np.median(hv[pack]) > np.median(hv[water]) + 1.0
    # AMSR2 at 18.7 GHz H: ice is far warmer than water; ERA5 skin colder over ice
    h2, w2 = C.grid2km_shape(sic.shape)
    blocks = sic[: h2 * 25, : w2 * 25].reshape(h2, 25, w2, 25).transpose(0, 2, 1, 3).reshape(h2, w2, -1)
    ok = (blocks != C.MASK_VALUE).all(-1)
    conc = blocks.mean(-1)[ok]
    assert np.corrcoef(conc, _phys(ds, "btemp_18_7h")[ok])[0, 1] > 0.6
    assert np.corrcoef(conc, _phys(ds, "skt")[ok])[0, 1] < -0.3
    tb89 = _phys(ds, "btemp_89_0v")
    assert 150 < tb89.min() and tb89.max() < 280


# --- determinism, writing, validation ------------------------------------------------
def test_deterministic_per_seed():
    a, b, c = make_scene(SMALL, seed=21), make_scene(SMALL, seed=21), make_scene(SMALL, seed=22)
    xr.testing.assert_identical(a, b)
    assert a.attrs == b.attrs and a.attrs["scene_id"] != c.attrs["scene_id"]
    assert not np.array_equal(a.nersc_sar_primary.values, c.nersc_sar_primary.values)
    assert dataset_plan(n_train=3, n_test=2, seed=9) == dataset_plan(n_train=3, n_test=2, seed=9)


def test_write_reopen_identical_and_valid(tmp_path):
    out = write_synthetic_dataset(tmp_path / "a", n_train=2, n_test=2, size=(100, 110), seed=5, progress=False)
    plan = dataset_plan(n_train=2, n_test=2, size=(100, 110), seed=5)
    assert [p.name for p in out["train"]] == [f"{k}_prep.nc" for _, _, k, _ in plan[:2]]
    assert [scene_key(p) for p in out["reference"]] == [scene_key(p) for p in out["test"]]
    assert list_scenes(tmp_path / "a" / "reference", kind="reference") == sorted(out["reference"])
    files = out["train"] + out["test"]
    for (kind, seed, key, shape), path in zip(plan, files):
        ds = open_scene(path, kind=kind).load()
        want = make_scene(shape, seed=seed, kind=kind)
        assert {k: ds.attrs[k] for k in want.attrs} == want.attrs and want.attrs["scene_id"] == path.name
        for v in want.data_vars:
            xr.testing.assert_identical(ds[v], want[v])
        if kind == "test":
            ref = open_scene(tmp_path / "a" / "reference" / f"{key}_prep_reference.nc").load()
            assert {k: ref.attrs[k] for k in want.attrs} == want.attrs
            for v in C.LABEL_CHARTS:
                xr.testing.assert_identical(ref[v], make_scene(shape, seed=seed)[v])
    again = write_synthetic_dataset(tmp_path / "b", n_train=2, n_test=2, size=(100, 110), seed=5, progress=False)
    for p, q in zip(sum(out.values(), []), sum(again.values(), [])):
        assert p.read_bytes() == q.read_bytes(), p.name
    assert not list(tmp_path.rglob("*.tmp"))


def test_sizes():
    default = [s for *_, s in dataset_plan(n_train=6, n_test=0)]
    assert len(set(default)) > 1 and all(370 <= h <= 430 and 390 <= w <= 450 for h, w in default)
    assert all(280 <= h <= 320 and 280 <= w <= 320 for *_, (h, w) in dataset_plan(n_train=3, n_test=0, size=300))
    assert {s for *_, s in dataset_plan(n_train=2, n_test=1, size=(60, 70))} == {(60, 70)}
    for _, seed, _, (h, w) in dataset_plan(n_train=4, n_test=0, size="real"):
        n_real = scene_target(seed)[1]["SIC"].sum()
        assert abs(h * w - n_real) < 0.001 * n_real + w and abs(w / h - 5200 / 5000) < 0.01


@pytest.mark.parametrize("call, message", [
    (lambda: make_scene((24, 100)), "shape"),
    (lambda: make_scene((100,)), "shape"),
    (lambda: make_scene(SMALL, kind="val"), "kind"),
    (lambda: make_scene(SMALL, seed=-1), "seed"),
    (lambda: make_scene(SMALL, scene_key="2020_cis"), "scene_key"),
    (lambda: make_scene(SMALL, scene_key="20201345T000000_cis"), "date"),
    (lambda: make_scene(SMALL, scene_key="20200101T000000_cis", service="dmi"), "disagree"),
    (lambda: make_scene(SMALL, service="nic"), "service"),
    (lambda: dataset_plan(size="huge"), "size"),
    (lambda: dataset_plan(size=10), "size"),
    (lambda: dataset_plan(n_train=-1), "n_train"),
])
def test_bad_input_is_one_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_key_and_service_arguments():
    ds = make_scene(SMALL, seed=1, scene_key="20190305T101112_cis")
    assert ds.attrs["scene_id"] == "20190305T101112_cis_prep.nc" and ds.attrs["ice_service"] == "cis"
    assert "_20190305T101112_" in ds.attrs["original_id"]
    assert make_scene(SMALL, seed=1, service="dmi").attrs["ice_service"] == "dmi"
