"""Feature assembly: tiling, sparse points, interpolation, fill handling, names."""
from __future__ import annotations

import json

import numpy as np
import pytest

import featurize
from featurize import FeatureConfig, feature_groups, feature_names, featurize_at, \
    featurize_blocks
from featurize import groups, radiometer
from featurize.context import IntegralBuffers, box_stats_at, box_stats_rows, integral_images
from featurize.groups import FeatureGroup, scene_features
from scenes.contract import GRID2KM_VARS, to_physical
from scenes.reader import valid_mask
from scenes.synth import make_scene

SHAPE = (120, 131)  # rows not a multiple of the block sizes, 2 km grid 4 x 5
#: Small windows keep the tests fast; texture_factor 2 exercises the coarse path.
CONFIGS = {
    "default": FeatureConfig(),
    "coarse": FeatureConfig(texture_windows=(3, 7), texture_factor=2, texture_distances=(1, 2),
                            texture_props=("contrast", "entropy", "mean"),
                            context_scales=(3, 31), era5_features=radiometer.ERA5_FEATURES),
    "hv_only": FeatureConfig(sar_bands=("hv",), texture_windows=(5,), context_scales=(9,),
                             amsr2=False, geometry=False),
}


@pytest.fixture(scope="module")
def scene():
    ds = make_scene(SHAPE, seed=11, kind="test")
    fill = ds["nersc_sar_primary"].values == 0
    assert 0.02 < fill.mean() < 0.6, "the scene must have fill and valid pixels"
    return ds


def _full(ds, config, block_rows=10_000):
    return np.concatenate([X for _, _, X in featurize_blocks(ds, config, block_rows=block_rows)],
                          axis=1)


@pytest.fixture(scope="module")
def full(scene):
    return {name: _full(scene, cfg) for name, cfg in CONFIGS.items()}


def _plane(full_stack, config, name):
    return full_stack[feature_names(config).index(name)]


# --- names, groups, config ------------------------------------------------------
def test_feature_names_match_output_and_groups(scene, full):
    for name, cfg in CONFIGS.items():
        names = feature_names(cfg)
        assert len(names) == len(set(names)) == full[name].shape[0] == featurize.n_features(cfg)
        assert full[name].shape[1:] == SHAPE and full[name].dtype == np.float32
        assert list(feature_groups(cfg)) == names
    names = feature_names(FeatureConfig())
    for expected in ("hh_db", "hv_db", "hvmhh_db", "hh_ia_norm", "hh_mean_5", "hh_std_25",
                     "hvmhh_mean_101", "valid_frac_101", "hh_glcm11_contrast",
                     "hv_glcm25_entropy", "amsr_btemp_18_7h", "amsr_pr_36_5", "amsr_gr_36_18",
                     "amsr_pd_89", "era5_u10m", "era5_v10m", "era5_wind", "geo_incidence",
                     "geo_distance_zone"):
        assert expected in names
    assert not {"era5_t2m", "era5_skt", "era5_tcwv", "era5_tclw"} & set(names)
    assert "era5_t2m" in feature_names(CONFIGS["coarse"])
    assert names[:4] == ["hh_db", "hv_db", "hvmhh_db", "hh_ia_norm"]
    assert names[-5:] == ["geo_incidence", "geo_distance_zone", "scene_doy_sin",
                          "scene_doy_cos", "scene_service_dmi"]
    groups = feature_groups(FeatureConfig())
    assert set(groups.values()) == {"sar_intensity", "sar_context", "sar_texture_w11",
                                    "sar_texture_w25", "amsr2", "era5", "geometry", "scene"}
    assert groups["hv_glcm25_correlation"] == "sar_texture_w25"
    assert groups["hvmhh_std_5"] == "sar_context"


def test_config_roundtrip_and_errors():
    for cfg in CONFIGS.values():
        d = json.loads(json.dumps(cfg.to_dict()))
        back = FeatureConfig.from_dict(d)
        assert back == cfg and feature_names(back) == feature_names(cfg)
    assert FeatureConfig(texture_windows=[11, 25]) == FeatureConfig()
    # ERA5 features keep their canonical order whatever order they are given in
    cfg = FeatureConfig(era5_features=["era5_wind", "era5_t2m"])
    assert cfg.era5_features == ("era5_t2m", "era5_wind")
    assert [n for n in feature_names(cfg) if n.startswith("era5")] == ["era5_t2m", "era5_wind"]
    assert FeatureConfig(era5=False, era5_features=()).era5_features == ()
    for bad in ({"sar_bands": ("vv",)}, {"context_scales": (4,)}, {"texture_windows": (1,)},
                {"texture_props": ("bogus",)}, {"texture_levels": 300},
                {"texture_distances": (11,)}, {"texture_factor": 0},
                {"era5_features": ("t2m",)}, {"era5_features": ()},
                {"era5_features": ("era5_wind", "era5_wind")}):
        with pytest.raises(ValueError):
            FeatureConfig(**bad)
    with pytest.raises(ValueError, match="unknown FeatureConfig keys"):
        FeatureConfig.from_dict({"texture_window": [5]})


# --- the group registry ------------------------------------------------------------
class _Toy(FeatureGroup):
    """Two planes: the stored distance map and a constant; SAR-grid, so NaN at fill."""

    label = "toy"
    nan_at_fill = True

    def __init__(self, planes_written=2):
        self.planes_written = planes_written

    def names(self, config):
        return ["toy_distance_z", "toy_seven"]

    def variables(self, config):
        return ["distance_map"]

    def fill(self, ctx, target, out, state):
        for k in range(self.planes_written):
            out.put(ctx.read("distance_map") if k == 0 else 7.0)


def _register_after_intensity(monkeypatch, group):
    registry = groups.REGISTRY[:1] + (group,) + groups.REGISTRY[1:]
    assert isinstance(groups.REGISTRY[0], groups.SarIntensity)
    monkeypatch.setattr(groups, "REGISTRY", registry)


def test_registered_group_appears_in_names_groups_and_output(scene, full, monkeypatch):
    cfg = CONFIGS["default"]
    base_names, base_groups = feature_names(cfg), feature_groups(cfg)
    rows, cols = np.array([0, 50, 119, 7]), np.array([130, 3, 64, 7])
    no_dist = scene.drop_vars(["distance_map"])
    featurize_at(no_dist, FeatureConfig(geometry=False), rows, cols)
    _register_after_intensity(monkeypatch, _Toy())
    names = feature_names(cfg)
    assert names == base_names[:4] + ["toy_distance_z", "toy_seven"] + base_names[4:]
    assert feature_groups(cfg) == {**base_groups, "toy_distance_z": "toy", "toy_seven": "toy"}
    assert featurize.n_features(cfg) == len(base_names) + 2
    X = _full(scene, cfg, block_rows=37)
    fill = ~valid_mask(scene)
    dist = np.where(fill, np.nan, scene["distance_map"].values)
    np.testing.assert_array_equal(X[4], dist)
    np.testing.assert_array_equal(X[5], np.where(fill, np.nan, np.float32(7.0)))
    np.testing.assert_array_equal(np.delete(X, [4, 5], axis=0), full["default"])
    np.testing.assert_array_equal(featurize_at(scene, cfg, rows, cols), X[:, rows, cols].T)
    # its variables are checked with the scene, even with the geometry group off
    with pytest.raises(ValueError, match=r"lacks variables \['distance_map'\]"):
        featurize_at(no_dist, FeatureConfig(geometry=False), rows, cols)


@pytest.mark.parametrize("written, message", [(1, "wrote 1 of its 2 planes"),
                                               (3, "writes more than its 2 planes")])
def test_group_must_fill_exactly_its_planes(scene, monkeypatch, written, message):
    _register_after_intensity(monkeypatch, _Toy(planes_written=written))
    cfg = FeatureConfig(texture_windows=())
    with pytest.raises(AssertionError, match=message):
        next(featurize_blocks(scene, cfg))
    with pytest.raises(AssertionError, match=message):
        featurize_at(scene, cfg, np.array([3]), np.array([4]))


# --- tiling and points ------------------------------------------------------------
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("block_rows", [1, 7, 32, 119])
def test_tiled_equals_untiled(scene, full, name, block_rows):
    blocks = list(featurize_blocks(scene, CONFIGS[name], block_rows=block_rows))
    assert [b[0] for b in blocks] == list(range(0, SHAPE[0], block_rows))
    assert all(X.shape[1] == r1 - r0 <= block_rows for r0, r1, X in blocks)
    np.testing.assert_array_equal(np.concatenate([X for _, _, X in blocks], axis=1), full[name])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_featurize_at_equals_blocks(scene, full, name):
    rng = np.random.default_rng(5)
    H, W = SHAPE
    rows = np.r_[0, 0, H - 1, H - 1, 1, H - 2, rng.integers(0, H, 400)]
    cols = np.r_[0, W - 1, 0, W - 1, W - 2, 1, rng.integers(0, W, 400)]
    expected = full[name][:, rows, cols].T
    for block_rows in (5, 256):
        got = featurize_at(scene, CONFIGS[name], rows, cols, block_rows=block_rows)
        assert got.shape == (rows.size, featurize.n_features(CONFIGS[name]))
        np.testing.assert_array_equal(got, expected)
    assert featurize_at(scene, CONFIGS[name], rows[:0], cols[:0]).shape[0] == 0


def test_bad_inputs_raise_clear_errors(scene):
    with pytest.raises(ValueError, match="inside the scene"):
        featurize_at(scene, None, np.array([SHAPE[0]]), np.array([0]))
    with pytest.raises(ValueError, match="integer arrays"):
        featurize_at(scene, None, np.array([0.5]), np.array([0]))
    with pytest.raises(ValueError, match="lacks variables"):
        next(featurize_blocks(scene.drop_vars(["u10m_rotated"])))
    with pytest.raises(ValueError, match="block_rows"):
        next(featurize_blocks(scene, block_rows=0))


# --- fill pixels and context ---------------------------------------------------------
def _naive_context(db, valid, i, j, size):
    r = size // 2
    win = (slice(max(0, i - r), i + r + 1), slice(max(0, j - r), j + r + 1))
    x = db[win][valid[win]].astype(np.float64)
    return x.mean(), x.std(), x.size / valid[win].size


def test_context_ignores_fill_pixels(scene, full):
    cfg = CONFIGS["default"]
    valid = valid_mask(scene)
    np.testing.assert_array_equal(valid, scene["nersc_sar_primary"].values != 0)
    hh = to_physical("nersc_sar_primary", scene["nersc_sar_primary"].values)
    # valid pixels whose 5 x 5 box holds fill pixels: the swath border
    from scipy.ndimage import minimum_filter
    border = valid & ~minimum_filter(valid, size=5, mode="nearest")
    ii, jj = np.nonzero(border)
    assert ii.size > 20
    pick = np.random.default_rng(0).choice(ii.size, 20, replace=False)
    for i, j in zip(ii[pick], jj[pick]):
        for size in (5, 25, 101):
            mean, std, frac = _naive_context(hh, valid, i, j, size)
            assert _plane(full["default"], cfg, f"hh_mean_{size}")[i, j] == \
                pytest.approx(mean, abs=1e-3)
            assert _plane(full["default"], cfg, f"hh_std_{size}")[i, j] == \
                pytest.approx(std, abs=1e-3)
        assert _plane(full["default"], cfg, "valid_frac_101")[i, j] == pytest.approx(frac)


def test_fill_does_not_bleed_into_context(scene):
    # every valid HH pixel set to one value far from what fill (z = 0) means
    ds = scene.copy(deep=True)
    z = ds["nersc_sar_primary"].values
    valid = z != 0
    z[valid] = 2.0
    cfg = FeatureConfig(texture_windows=(), amsr2=False, era5=False)
    X = _full(ds, cfg, block_rows=50)
    const = to_physical("nersc_sar_primary", np.float32(2.0))
    for size in cfg.context_scales:
        np.testing.assert_allclose(_plane(X, cfg, f"hh_mean_{size}")[valid], const, atol=1e-3)
        np.testing.assert_array_equal(_plane(X, cfg, f"hh_std_{size}")[valid], 0.0)


def test_fill_pixels_are_nan_in_sar_features_only(scene, full):
    cfg = CONFIGS["default"]
    fill = ~valid_mask(scene)
    groups = feature_groups(cfg)
    for k, name in enumerate(feature_names(cfg)):
        plane = full["default"][k]
        if groups[name] in ("amsr2", "era5", "scene"):
            assert np.isfinite(plane).all(), name
        else:
            assert np.isnan(plane[fill]).all(), name
            if name != "geo_incidence":
                assert np.isfinite(plane[~fill]).all(), name


def test_box_stats_do_not_depend_on_fill_values():
    rng = np.random.default_rng(2)
    db = rng.normal(-15, 3, (40, 50))
    valid = rng.random((40, 50)) > 0.3
    a = box_stats_rows([db], [-14.5], valid, (5, 11), row0=0, row1=40)
    db2 = np.where(valid, db, 1e6)  # garbage at fill pixels
    b = box_stats_rows([db2], [-14.5], valid, (5, 11), row0=0, row1=40)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("row_off", [0, 7])
def test_box_stats_at_points_direct_sums_equal_integral_images(row_off):
    rng = np.random.default_rng(5)
    h, w, h_img = 60, 45, 80  # rows row_off : row_off + 60 of an 80-row image
    bands = [rng.normal(-15, 3, (h, w)).astype(np.float32) for _ in range(2)]
    bands[1][rng.random((h, w)) < 0.05] = np.nan  # a NaN in a valid pixel sums as 0
    valid = rng.random((h, w)) > 0.3
    valid[:, :9] = False  # a swath border: boxes with no valid pixel give NaN
    r = 11 // 2  # the halo the largest box needs, except at the image's first row
    rows = rng.integers(row_off + r if row_off else 0, row_off + h - r, 300)
    cols = np.r_[rng.integers(0, w, 298), 0, w - 1]  # boxes clipped at both edges
    args = ([bands[0], bands[1]], [-14.5, -20.0], valid, (3, 11), rows, cols)
    kw = dict(row_off=row_off, h_img=h_img)
    direct = box_stats_at(*args, method="direct", **kw)
    integral = box_stats_at(*args, method="integral", **kw)
    np.testing.assert_array_equal(direct, integral)
    assert np.isnan(direct[0]).any() and np.isfinite(direct[0]).any()
    # what "auto" picks for a few points (direct) gives the same as for many (integral)
    np.testing.assert_array_equal(box_stats_at(*args[:4], rows[:3], cols[:3], **kw),
                                  integral[:, :3])
    with pytest.raises(ValueError, match="method"):
        box_stats_at(*args, method="fast", **kw)


def test_integral_buffers_reused_across_blocks_give_fresh_results():
    rng = np.random.default_rng(6)
    buffers = IntegralBuffers()
    # a tall block leaves its sums in the memory; shorter blocks and a narrower one follow
    for h, w in ((50, 40), (31, 40), (50, 40), (12, 25)):
        bands = rng.normal(-15, 3, (2, h, w)).astype(np.float32)
        valid = rng.random((h, w)) > 0.3
        fresh = integral_images(bands, [-14.5, -20.0], valid)
        reused = integral_images(bands, [-14.5, -20.0], valid, buffers)
        for a, b in zip(fresh, reused):
            np.testing.assert_array_equal(a, b)
            assert b.flags.c_contiguous
        for b in reused:
            b[...] = 12345  # what the next block finds in the memory
        rows = rng.integers(0, h, 40)
        cols = rng.integers(0, w, 40)
        np.testing.assert_array_equal(
            box_stats_at(list(bands), [-14.5, -20.0], valid, (3, 11), rows, cols,
                         method="integral", buffers=buffers),
            box_stats_at(list(bands), [-14.5, -20.0], valid, (3, 11), rows, cols,
                         method="direct"))


def test_intensity_and_geometry_features(scene, full):
    cfg = CONFIGS["default"]
    X = full["default"]
    valid = valid_mask(scene)
    hh = to_physical("nersc_sar_primary", scene["nersc_sar_primary"].values)
    hv = to_physical("nersc_sar_secondary", scene["nersc_sar_secondary"].values)
    ia = to_physical("sar_incidenceangle", scene["sar_incidenceangle"].values)
    np.testing.assert_array_equal(_plane(X, cfg, "hh_db")[valid], hh[valid])
    np.testing.assert_allclose(_plane(X, cfg, "hvmhh_db")[valid], (hv - hh)[valid], atol=1e-5)
    np.testing.assert_allclose(_plane(X, cfg, "hh_ia_norm")[valid],
                               (hh + 0.22 * (ia - 35.0))[valid], atol=1e-4)
    np.testing.assert_array_equal(_plane(X, cfg, "geo_incidence")[valid], ia[valid])
    zone = _plane(X, cfg, "geo_distance_zone")[valid]
    assert np.array_equal(zone, np.round(zone)) and zone.min() >= 0 and zone.max() <= 41


# --- radiometer ------------------------------------------------------------------------
def test_bilinear_exact_on_linear_field():
    h2, w2 = 6, 7
    k, l = np.meshgrid(np.arange(h2), np.arange(w2), indexing="ij")
    field = (250.0 - 1.5 * k + 0.75 * l)[None]
    H, W = 25 * h2 + 9, 25 * w2 + 3  # a few rows beyond the last full cell
    out = radiometer.bilinear_rows(field, 0, H, W)
    ti = np.clip((np.arange(H) - 12) / 25, 0, h2 - 1)[:, None]
    tj = np.clip((np.arange(W) - 12) / 25, 0, w2 - 1)[None, :]
    np.testing.assert_allclose(out[0], 250.0 - 1.5 * ti + 0.75 * tj, rtol=0, atol=1e-4)
    # points and any row block give the same numbers
    rows = np.array([0, 11, 12, 13, 37, H - 1])
    cols = np.array([W - 1, 0, 12, 100, 37, 5])
    np.testing.assert_array_equal(radiometer.bilinear_points(field, rows, cols)[0],
                                  out[0, rows, cols])
    np.testing.assert_array_equal(radiometer.bilinear_rows(field, 40, 77, W), out[:, 40:77])


def test_cell_centres_hit_cell_values():
    rng = np.random.default_rng(3)
    field = rng.normal(200, 30, (2, 5, 4))
    out = radiometer.bilinear_rows(field, 0, 125, 100)
    centres_r, centres_c = 12 + 25 * np.arange(5), 12 + 25 * np.arange(4)
    np.testing.assert_array_equal(out[:, centres_r][:, :, centres_c], field.astype(np.float32))
    assert not np.array_equal(out[:, 13, 12], field[:, 0, 0].astype(np.float32))


def test_radiometer_features_physical(scene, full):
    cfg = CONFIGS["coarse"]  # all ERA5 features
    X = full["coarse"]
    tb = {v: to_physical(v, scene[v].values).astype(np.float64) for v in GRID2KM_VARS}
    i, j = 12 + 25 * 2, 12 + 25 * 3  # a cell centre: the cell's own value
    cell = (2, 3)
    expect = {
        "amsr_btemp_18_7h": tb["btemp_18_7h"][cell],
        "amsr_pr_18_7": (tb["btemp_18_7v"] - tb["btemp_18_7h"])[cell]
        / (tb["btemp_18_7v"] + tb["btemp_18_7h"])[cell],
        "amsr_gr_36_18": (tb["btemp_36_5v"] - tb["btemp_18_7v"])[cell]
        / (tb["btemp_36_5v"] + tb["btemp_18_7v"])[cell],
        "amsr_pd_89": (tb["btemp_89_0v"] - tb["btemp_89_0h"])[cell],
        "era5_t2m": tb["t2m"][cell],
        "era5_wind": np.hypot(tb["u10m_rotated"], tb["v10m_rotated"])[cell],
    }
    for name, value in expect.items():
        assert _plane(X, cfg, name)[i, j] == pytest.approx(value, rel=1e-6), name


# --- scene group ------------------------------------------------------------------
def _with_id(ds, scene_id):
    out = ds.copy()
    out.attrs = {**ds.attrs, "scene_id": scene_id}
    out.encoding = {}
    return out


def test_scene_features_read_date_and_service_from_scene_id(scene):
    s, c, dmi = scene_features(_with_id(scene, "20210101T120000_dmi_prep.nc"))
    assert dmi == 1.0 and c == pytest.approx(1.0, abs=1e-3) and abs(s) < 0.01  # 1 January
    s, c, dmi = scene_features(_with_id(scene, "20200701T000000_cis_prep.nc"))  # day 183 of 366
    assert dmi == 0.0 and c == pytest.approx(-1.0, abs=1e-3)
    assert np.hypot(s, c) == pytest.approx(1.0)


def test_scene_group_is_constant_columns_everywhere(scene):
    cfg = FeatureConfig(texture_windows=(), context_scales=(3,), scene=True)
    ds = _with_id(scene, "20190415T000000_dmi_prep.nc")
    X = _full(ds, cfg, block_rows=37)
    names = feature_names(cfg)
    assert names[-3:] == ["scene_doy_sin", "scene_doy_cos", "scene_service_dmi"]
    assert set(feature_groups(cfg).values()) >= {"scene"}
    for k, value in zip(range(-3, 0), scene_features(ds)):
        assert np.all(X[k] == np.float32(value))  # fill pixels too, like AMSR2
    rows, cols = np.array([0, 60, 119]), np.array([130, 3, 64])
    np.testing.assert_array_equal(featurize_at(ds, cfg, rows, cols), X[:, rows, cols].T)


def test_scene_group_needs_a_dated_scene_id(scene):
    cfg = FeatureConfig(texture_windows=(), scene=True)
    with pytest.raises(ValueError, match=r"scene_id .*FeatureConfig\(scene=False\)"):
        featurize_at(_with_id(scene, "my_scene.nc"), cfg, np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="scene_id"):  # a date that is no date
        featurize_at(_with_id(scene, "20211341T000000_cis_prep.nc"), cfg, np.array([0]),
                     np.array([0]))


def test_default_features_read_only_the_wind_of_era5(scene):
    """The default ERA5 features need u10/v10 only; asking for t2m needs t2m."""
    no_t2m = scene.drop_vars(["t2m", "skt", "tcwv", "tclw"])
    rows, cols = np.array([3, 60]), np.array([4, 100])
    np.testing.assert_array_equal(featurize_at(no_t2m, FeatureConfig(), rows, cols),
                                  featurize_at(scene, FeatureConfig(), rows, cols))
    with pytest.raises(ValueError, match="t2m"):
        featurize_at(no_t2m, FeatureConfig(era5_features=("era5_t2m",)), rows, cols)

