"""Tests of the models package: estimators, sampling, smoothing, persistence, train/predict."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from featurize import FeatureConfig, radiometer
from models import (GPUUnavailableError, IceClassifier, IceRegressor, check_device,
                    load_model, predict_scene)
from pipeline import train_models
from models import _kernels, sampling, smoothing
from models.manifest import Manifest
from models.split import scene_label_counts
from models.predict import Renderer, axis_weights, make_lattice
from scenes import contract as C
from scenes.reader import list_scenes, open_scene
from scenes.synth import write_synthetic_dataset

import tiny

# Small, fast boosters: the tests check behaviour, not skill.
TINY = dict(n_estimators=15, num_leaves=7, min_child_samples=5, subsample=0.8, n_jobs=1)


def _toy(n=600, f=5, k=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    y = np.digitize(X[:, 0] + 0.3 * X[:, 1], np.linspace(-1, 1, k - 1)).astype(np.uint8)
    return X, y


# --- estimators -----------------------------------------------------------------------
def test_classifier_shapes_and_attributes():
    X, y = _toy(k=4)
    clf = IceClassifier(6, class_weight="inv_sqrt", **TINY)
    assert clf.get_params()["n_classes"] == 6 and not hasattr(clf, "booster_")
    clf.fit(X, y, feature_names=list("abcde"))
    assert list(clf.classes_) == list(range(6))  # all contract classes, 2 absent
    assert list(clf.feature_names_in_) == list("abcde") and clf.n_features_in_ == 5
    p = clf.predict_proba(X[:50])
    assert p.shape == (50, 6)
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-9)
    assert p[:, 4:].max() < 0.2  # absent classes stay improbable
    pred = clf.predict(X)
    assert pred.dtype == np.uint8 and pred.shape == (600,)
    assert (pred == y).mean() > 0.8
    # inv_sqrt: rarer classes weigh more per sample
    f = clf.class_weight_factors_
    counts = np.bincount(y, minlength=6)
    assert f[np.argmin(counts[:4])] > f[np.argmax(counts[:4])]


def test_regressor_predictions_clipped_to_class_range():
    X, y = _toy(k=11)
    reg = IceRegressor(11, **TINY).fit(X, y.astype(float) * 1.0)
    v = reg.predict(X * 10)  # far outside the training range
    assert v.shape == (600,) and v.min() >= 0 and v.max() <= 10
    c = reg.predict_classes(X)
    assert c.dtype == np.uint8 and c.max() <= 10
    assert reg.best_iteration_ == TINY["n_estimators"]


def test_random_state_determinism():
    X, y = _toy()
    a = IceClassifier(4, random_state=3, **TINY).fit(X, y).predict_proba(X)
    b = IceClassifier(4, random_state=3, **TINY).fit(X, y).predict_proba(X)
    c = IceClassifier(4, random_state=4, **TINY).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # bagging depends on the seed


def test_early_stopping_on_eval_set():
    X, y = _toy(n=1000)
    rng = np.random.default_rng(1)
    y_noisy = np.where(rng.random(1000) < 0.4, rng.integers(0, 4, 1000), y).astype(np.uint8)
    clf = IceClassifier(4, n_estimators=300, learning_rate=0.5, early_stopping_rounds=3,
                        min_rounds=1, num_leaves=31, min_child_samples=2, n_jobs=1)
    clf.fit(X[:600], y_noisy[:600], eval_set=(X[600:], y_noisy[600:]))
    assert 1 <= clf.best_iteration_ < 300
    loss = clf.evals_result_["eval0"]["multi_logloss"]
    assert clf.best_iteration_ + 2 <= len(loss) <= clf.best_iteration_ + 3  # patience 3
    assert loss[clf.best_iteration_ - 1] == min(loss)
    # a shifted eval set whose loss rises at once: the floor keeps min_rounds rounds
    shifted = (X[600:], (y[600:] + 2) % 4)
    clf = IceClassifier(4, n_estimators=300, early_stopping_rounds=3, min_rounds=25,
                        num_leaves=7, n_jobs=1).fit(X[:600], y[:600], eval_set=shifted)
    loss = clf.evals_result_["eval0"]["multi_logloss"]
    assert loss[0] == min(loss) and clf.best_iteration_ == 25 and len(loss) <= 28


def test_unfit_and_bad_input_errors():
    X, y = _toy()
    with pytest.raises(NotFittedError):
        IceClassifier(4).predict(X)
    with pytest.raises(ValueError, match="class indices"):
        IceClassifier(4, **TINY).fit(X, np.where(y == 0, 255, y))
    clf = IceClassifier(4, **TINY).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="device"):
        IceClassifier(4, device="tpu").fit(X, y)


def test_gpu_request_fails_cleanly_or_trains(tmp_path):
    try:
        check_device("gpu")
    except GPUUnavailableError as e:  # before any scene is read
        with pytest.raises(GPUUnavailableError):
            train_models(tmp_path / "no_such_dir", tmp_path / "m", device="gpu", progress=False)
        assert "\n" not in str(e)
    X, y = _toy()
    try:
        clf = IceClassifier(4, device="gpu", **TINY).fit(X, y)
    except GPUUnavailableError as e:
        msg = str(e)
        assert "\n" not in msg and "--device cpu" in msg
    else:  # a machine with an OpenCL GPU
        assert clf.predict_proba(X).shape == (600, 4)


# --- sampling -------------------------------------------------------------------------
def test_sqrt_allocation():
    counts = np.array([1_000_000, 10_000, 100, 0, 3])
    alloc = sampling.sqrt_allocation(counts, 3000)
    assert alloc.sum() == 3000 and np.all(alloc <= counts)
    assert alloc[3] == 0 and alloc[4] == 3 and alloc[2] > 0  # rare classes present
    assert alloc[0] > alloc[1] > alloc[2]
    assert alloc[0] / alloc[1] < 100 / 2  # flatter than proportional
    np.testing.assert_array_equal(sampling.sqrt_allocation(counts, 10**9), counts)


def test_draw_scene_weights_and_masks():
    rng = np.random.default_rng(0)
    H, W = 60, 70
    valid = rng.random((H, W)) > 0.1
    labels = {"SIC": rng.integers(0, 11, (H, W)).astype(np.uint8),
              "SOD": rng.choice([0, 1, 4, 255], (H, W), p=[.6, .01, .3, .09]).astype(np.uint8),
              "FLOE": np.full((H, W), 255, np.uint8)}
    idx, w = sampling.draw_scene(valid, labels, 900, np.random.default_rng(1))
    assert idx.size <= 900 and np.all(np.diff(idx) > 0)
    assert valid.ravel()[idx].all()
    for chart in ("SIC", "SOD"):
        y = labels[chart].ravel()[idx]
        assert np.all(w[chart][y == 255] == 0)
        # population weights add up to each class's valid pixel count
        for k in range(C.N_CLASSES[chart]):
            pop = int(((labels[chart] == k) & valid).sum())
            np.testing.assert_allclose(w[chart][y == k].sum(), pop if (y == k).any() else 0,
                                       rtol=1e-5)
    assert np.all(w["FLOE"] == 0)
    assert (labels["SOD"].ravel()[idx] == 1).any()  # the 1 % class is drawn


@pytest.mark.parametrize("n_max", [0, 7, 900, 10**6])
def test_draw_scene_equals_the_naive_draw(n_max):
    from naive import draw_scene_naive

    rng = np.random.default_rng(3)
    H, W = 50, 64
    valid = rng.random((H, W)) > 0.2
    labels = {"SIC": rng.integers(0, 11, (H, W)).astype(np.uint8),
              "SOD": rng.choice([0, 3, 255], (H, W), p=[.5, .3, .2]).astype(np.uint8),
              "FLOE": np.full((H, W), 255, np.uint8)}
    idx, w = sampling.draw_scene(valid, labels, n_max, np.random.default_rng(4))
    idx0, w0 = draw_scene_naive(valid, labels, n_max, np.random.default_rng(4))
    assert idx.dtype == idx0.dtype == np.int64
    np.testing.assert_array_equal(idx, idx0)
    for chart in labels:
        np.testing.assert_array_equal(w[chart], w0[chart])


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("models_synth")
    write_synthetic_dataset(out, n_train=3, n_test=1, size=(96, 112), seed=4321, progress=False)
    return out


def test_training_set_independent_of_n_jobs(tiny_data):
    paths = list_scenes(tiny_data / "train", kind="train")
    a = sampling.build_training_set(paths, n_pixels=1500, seed=5, n_jobs=1, progress=False)
    b = sampling.build_training_set(paths, n_pixels=1500, seed=5, n_jobs=2, progress=False)
    c = sampling.build_training_set(paths, n_pixels=1500, seed=6, n_jobs=1, progress=False)
    assert 0 < len(a) <= 1500 and a.X.dtype == np.float32
    assert a.X.shape == (len(a), len(a.feature_names))
    np.testing.assert_array_equal(a.X, b.X)
    for chart in C.LABEL_CHARTS:
        np.testing.assert_array_equal(a.y[chart], b.y[chart])
        assert a.y[chart].dtype == np.uint8
    assert not np.array_equal(a.rows, c.rows)
    assert a.scene_keys == [p.name[:19] for p in paths]
    # rows are valid SAR pixels
    ds = open_scene(paths[0])
    hh = ds[C.SAR_VARS[0]].values
    sel = a.scene == 0
    assert np.all(hh[a.rows[sel], a.cols[sel]] != 0)
    np.testing.assert_array_equal(ds["SIC"].values[a.rows[sel], a.cols[sel]], a.y["SIC"][sel])


# --- smoothing ------------------------------------------------------------------------
def _probs(shape=(3, 40, 50), seed=0):
    rng = np.random.default_rng(seed)
    p = rng.random(shape).astype(np.float32)
    return p / p.sum(axis=0)


@pytest.mark.parametrize("spec", list(smoothing.DEFAULT_GRID))
def test_smoothing_keeps_shape_classes_and_nodata(spec):
    p = _probs()
    valid = np.ones(p.shape[1:], bool)
    valid[:, :7] = False
    comp = np.stack([np.linspace(-1, 1, 50)[None].repeat(40, 0), p[0]])
    s = smoothing.smooth(p, valid, spec, stride=4, composite=comp)
    assert s.shape == p.shape and s.dtype == np.float32
    np.testing.assert_array_equal(s[:, ~valid], p[:, ~valid])
    np.testing.assert_allclose(s[:, valid].sum(axis=0), 1, atol=1e-5)
    assert s.min() >= -1e-6 and s.max() <= 1 + 1e-6
    v = smoothing.smooth(p[0] * 10, valid, spec, stride=4, composite=comp)
    assert v.shape == valid.shape and v[valid].min() >= -1e-5 and v[valid].max() <= 10 + 1e-5
    if spec["method"] != "none":
        assert s[:, valid].std() < p[:, valid].std()  # it did smooth


def test_gaussian_smoothing_is_valid_aware():
    a = np.zeros((30, 30), np.float32)
    valid = np.ones((30, 30), bool)
    valid[:, 15:] = False
    a[:, :15] = 3.0
    a[:, 15:] = 100.0  # fill values must not leak in
    s = smoothing.gaussian_smooth(a, valid, 4.0)
    np.testing.assert_allclose(s[:, :15], 3.0, rtol=1e-5)
    np.testing.assert_array_equal(s[:, 15:], 100.0)


def test_gaussian_smoothing_with_a_cache_is_the_same():
    rng = np.random.default_rng(3)
    valid = rng.random((40, 50)) > 0.2
    a, b = rng.random((3, 40, 50)).astype(np.float32), rng.random((40, 50)).astype(np.float32)
    cache = {}
    for x in (a, b, a):  # the second and third reuse the filtered mask of the first
        np.testing.assert_array_equal(smoothing.gaussian_smooth(x, valid, 2.5, cache=cache),
                                      smoothing.gaussian_smooth(x, valid, 2.5))
    assert list(cache) == [2.5]


def test_fill_invalid_and_bad_specs():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    valid = np.ones((3, 4), bool)
    valid[1, 1] = False
    f = smoothing.fill_invalid(a, valid)
    assert f[1, 1] in (a[0, 1], a[1, 0], a[1, 2], a[2, 1])
    with pytest.raises(ValueError, match="method"):
        smoothing.check_spec({"method": "median"})
    with pytest.raises(ValueError, match="sigma_px"):
        smoothing.check_spec({"method": "gaussian", "sigma_px": -1})


# --- upsampling -----------------------------------------------------------------------
def test_upsample_kernels_match_naive_bilinear():
    rng = np.random.default_rng(3)
    lattice = make_lattice((23, 31), 5)
    Hl, Wl = lattice.lattice_shape
    P = rng.random((Hl, Wl, 4)).astype(np.float32)
    ri, ra = axis_weights(lattice.rows, np.arange(23))
    ci, ca = axis_weights(lattice.cols, np.arange(31))
    valid = rng.random((23, 31)) > 0.2
    gate = rng.integers(0, 3, (23, 31)).astype(np.uint8)
    out = np.empty((23, 31), np.uint8)
    _kernels.upsample_argmax(P, ri, ra, ci, ca, 1, gate, True, valid, out)
    V = P[:, :, 0] * 10
    vout = np.empty((23, 31), np.uint8)
    _kernels.upsample_round(V, ri, ra, ci, ca, 10, 0.5, valid, vout)
    wout = np.empty((23, 31), np.uint8)
    _kernels.upsample_round(V, ri, ra, ci, ca, 10, 1.25, valid, wout)
    for y in range(23):
        for x in range(31):
            # naive: interpolate along rows then columns using lattice positions
            def interp(F):
                r = np.interp(y, lattice.rows, np.arange(Hl))
                c = np.interp(x, lattice.cols, np.arange(Wl))
                i0, j0 = int(np.floor(r)), int(np.floor(c))
                i1, j1 = min(i0 + 1, Hl - 1), min(j0 + 1, Wl - 1)
                a, b = r - i0, c - j0
                return ((1 - a) * (1 - b) * F[i0, j0] + (1 - a) * b * F[i0, j1]
                        + a * (1 - b) * F[i1, j0] + a * b * F[i1, j1])
            if not valid[y, x]:
                assert out[y, x] == 0 and vout[y, x] == 0
                continue
            want = 0 if gate[y, x] == 0 else 1 + int(np.argmax(interp(P)[1:]))
            assert out[y, x] == want
            assert vout[y, x] == min(10, int(np.floor(interp(V) + 0.5)))
            want = 0 if interp(V) < 1.25 else max(1, min(10, int(np.floor(interp(V) + 0.5))))
            assert wout[y, x] == want


# --- train / persist / predict --------------------------------------------------------
@pytest.fixture(scope="module")
def ranked_model(synth_dir, tmp_path_factory):
    """A tiny model whose validation scene can rank models (several classes in every chart).

    The shared tiny model holds out a scene of one class per chart, so it falls
    back to the default choices; here the scene with the most classes is there
    twice (as two dates), so one copy can be held out while training keeps them all.
    """
    data = tmp_path_factory.mktemp("ranked") / "train"
    data.mkdir()
    paths = list_scenes(synth_dir / "train", kind="train")
    for p in paths:
        shutil.copy(p, data)
    mixed = max(paths, key=lambda p: sum(np.count_nonzero(c) for c in
                                         scene_label_counts(p, step=1).values()))
    shutil.copy(mixed, data / ("1999" + mixed.name[4:]))
    out = tmp_path_factory.mktemp("ranked_model") / "model"
    return out, train_models(data, out, **{**tiny.TRAIN, "val_fraction": 0.25})


def test_train_models_manifest(tiny_model, ranked_model):
    out, man = tiny_model
    assert isinstance(man, Manifest) and man.saved and man.checksummed
    assert sorted(p.name for p in out.iterdir()) == ["FLOE.txt", "SIC.txt", "SOD.txt",
                                                      "manifest.json"]
    disk = json.loads((out / "manifest.json").read_text())
    assert disk == json.loads(json.dumps(man.to_dict())) and disk["format_version"] == 2
    assert Manifest.from_dict(disk) == man
    for chart, f in man.files.items():
        data = (out / f.name).read_bytes()
        assert f.name == f"{chart}.txt" and f.size == len(data)
        assert f.sha256 == hashlib.sha256(data).hexdigest()
    t = man.training
    assert len(t.val_scenes) == 1 and len(t.train_scenes) == 2
    assert not set(t.val_scenes) & set(t.train_scenes)
    assert t.seed == 11 and t.n_rows <= 4000 and t.skipped_scenes == ()
    assert man.estimators["SOD"].class_name == "IceClassifier"
    assert man.estimators["SOD"].best_iteration == t.best_iterations["SOD"]

    # the choices, on a validation scene that can rank models
    man = ranked_model[1]
    assert man.training.validation_fallbacks == {}
    assert man.sic_mode in ("regression", "argmax", "expected")
    assert set(man.validation["sic_modes"]) == {"regression", "argmax", "expected"}
    for key in ("smoothed", "unsmoothed"):
        assert set(man.validation[key]) >= {"SIC", "SOD", "FLOE", "combined"}
    # SIC mode and smoothing are chosen jointly over a grid that holds "none"
    v = man.validation
    assert man.water_rule in ("sic", "classifiers")
    assert v["smoothed"]["combined"] == max(w["combined"] for w in v["water_rules"].values())
    if man.water_rule == "sic":
        assert v["smoothed"]["SIC"] >= v["unsmoothed"]["SIC"]
        assert v["smoothed"]["SIC"] == max(max(d.values())
                                           for d in v["grid"]["SIC (water rule sic)"].values())
    assert 0 < man.training.early_stopping_points["SIC"]


def test_predict_scene_maps_and_consistency(tiny_model, synth_dir):
    out, _ = tiny_model
    bundle = load_model(out)
    ds = open_scene(list_scenes(synth_dir / "test", kind="test")[0])
    maps = predict_scene(ds, bundle)
    shape = ds[C.SAR_VARS[0]].shape
    valid = ds[C.SAR_VARS[0]].values != 0
    assert not valid.all()  # the synthetic swath has fill: the rule below is exercised
    for chart, m in maps.items():
        assert m.dtype == np.uint8 and m.shape == shape
        assert m.max() < C.N_CLASSES[chart]
        assert np.all(m[~valid] == 0)
    water = maps["SIC"] == 0
    for chart in ("SOD", "FLOE"):
        assert np.all(maps[chart][water] == 0)
        assert np.all(maps[chart][~water & valid] > 0)
    # every pixel path (stride 1) gives the same kind of maps
    full = predict_scene(ds, bundle, stride=1, smoothing=False)
    assert all(full[c].shape == shape and full[c].dtype == np.uint8 for c in full)
    assert np.all(full["SOD"][full["SIC"] == 0] == 0)


def test_same_seed_same_maps(tiny_model, synth_dir, tmp_path):
    out, man = tiny_model
    again = train_models(synth_dir / "train", tmp_path / "m2", **tiny.TRAIN)
    assert again.validation == man.validation
    assert again.smoothing == man.smoothing
    assert again.files == man.files  # same bytes, same checksums
    ds = open_scene(list_scenes(synth_dir / "test", kind="test")[0])
    a = predict_scene(ds, load_model(out))
    b = predict_scene(ds, load_model(tmp_path / "m2"))
    for chart in C.LABEL_CHARTS:
        np.testing.assert_array_equal(a[chart], b[chart])
    for chart in C.LABEL_CHARTS:
        assert (out / f"{chart}.txt").read_text() == (tmp_path / "m2" / f"{chart}.txt").read_text()


def test_load_model_refuses_mismatch_and_corruption(tiny_model, tmp_path):
    out, _ = tiny_model
    bad = tmp_path / "renamed"
    shutil.copytree(out, bad)
    man = json.loads((bad / "manifest.json").read_text())
    man["feature_names"][0] = "hh_db_old"
    (bad / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match=r"renamed.*features do not match.*retrain") as e:
        load_model(bad)
    assert "\n" not in str(e.value) and "hh_db_old" in str(e.value)

    cfg = tmp_path / "config"
    shutil.copytree(out, cfg)
    man = json.loads((cfg / "manifest.json").read_text())
    man["feature_config"]["texture_windows"] = [3]
    (cfg / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="features do not match"):
        load_model(cfg)

    missing = tmp_path / "missing"
    shutil.copytree(out, missing)
    (missing / "SOD.txt").unlink()
    with pytest.raises(ValueError, match="SOD.txt is missing"):
        load_model(missing)

    corrupt = tmp_path / "corrupt"
    shutil.copytree(out, corrupt)
    (corrupt / "FLOE.txt").write_text("this is not a LightGBM model\n")
    with pytest.raises(ValueError, match="FLOE.txt"):
        load_model(corrupt)

    (corrupt / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(corrupt)
    with pytest.raises(ValueError, match="no manifest.json"):
        load_model(tmp_path)


def test_model_saved_before_era5_features_existed_still_loads(tiny_data, tmp_path, caplog):
    """Format-1 manifests without ``era5_features`` used every ERA5 field, and load as such.

    Only the format-1 upgrade fills it in: a format-2 manifest without it is refused.
    """
    config = FeatureConfig(texture_windows=(), context_scales=(5,),
                           era5_features=radiometer.ERA5_FEATURES)
    out = tmp_path / "old"
    train_models(tiny_data / "train", out, config=config, val_fraction=0,
                 **{k: v for k, v in tiny.TRAIN.items() if k != "val_fraction"})
    man = json.loads((out / "manifest.json").read_text())
    del man["feature_config"]["era5_features"]
    (out / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="features do not match"):
        load_model(out)
    man["format_version"] = 1
    man["files"] = {c: f["name"] for c, f in man["files"].items()}
    (out / "manifest.json").write_text(json.dumps(man))
    with caplog.at_level(logging.WARNING):
        bundle = load_model(out)
    assert bundle.feature_config == config and "era5_t2m" in bundle.feature_names
    assert any("no checksums" in r.getMessage() for r in caplog.records)


def test_save_refuses_to_clobber(tiny_data, tmp_path):
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(ValueError, match="not empty"):
        train_models(tiny_data / "train", tmp_path, n_pixels=500, progress=False, n_jobs=1)
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_renderer_sic_modes_on_constant_lattice():
    lattice = make_lattice((20, 20), 4)
    Hl, Wl = lattice.lattice_shape
    P = np.zeros((11, Hl, Wl), np.float32)
    P[3] = 0.6
    P[9] = 0.4
    lat = {"SIC_proba": P, "SIC_value": np.full((Hl, Wl), 7.4, np.float32)}
    valid_l = np.ones((Hl, Wl), bool)
    r = Renderer(lat, lattice, valid_l, np.ones((20, 20), bool))
    assert np.all(r.sic("argmax") == 3)
    assert np.all(r.sic("expected") == 5)  # 0.6 * 3 + 0.4 * 9 = 5.4
    assert np.all(r.sic("regression", {"method": "gaussian", "sigma_px": 8}) == 7)
    assert np.all(r.sic("regression", None, water_threshold=7.5) == 0)
    lat["SIC_value"][:] = 0.3
    assert np.all(r.sic("regression") == 0)
    assert np.all(r.sic("regression", None, water_threshold=0.25) == 1)  # ice: at least 1


def test_predict_scene_without_valid_sar_is_all_zero(tiny_model):
    from scenes.synth import make_scene

    ds = make_scene((60, 70), seed=3, kind="test")
    ds[C.SAR_VARS[0]].values[:] = 0.0
    maps = predict_scene(ds, load_model(tiny_model[0]))
    for chart in C.LABEL_CHARTS:
        assert maps[chart].shape == (60, 70) and not maps[chart].any()


def test_water_rule_classifiers_keeps_maps_consistent():
    lattice = make_lattice((16, 16), 4)
    Hl, Wl = lattice.lattice_shape
    sod = np.zeros((6, Hl, Wl), np.float32)
    floe = np.zeros((7, Hl, Wl), np.float32)
    sod[0, :, :2], sod[5, :, :2] = 0.9, 0.1  # classifiers: water on the left
    sod[0, :, 2:], sod[5, :, 2:] = 0.1, 0.9
    floe[0], floe[4] = sod[0], sod[5]
    value = np.full((Hl, Wl), 3.0, np.float32)
    value[:, 2:] = 0.2  # the regression says water on the right
    lat = {"SIC_value": value, "SOD_proba": sod, "FLOE_proba": floe}
    valid = np.ones((16, 16), bool)
    valid[0, 0] = False
    r = Renderer(lat, lattice, np.ones((Hl, Wl), bool), valid)
    by_sic = r.maps("regression", {}, "sic")
    assert np.all(by_sic["SIC"][:, 10:] == 0) and np.all(by_sic["SOD"][:, 10:] == 0)
    by_clf = r.maps("regression", {}, "classifiers")
    assert np.all(by_clf["SIC"][1:, :4] == 0) and np.all(by_clf["FLOE"][1:, :4] == 0)
    assert np.all(by_clf["SIC"][:, 10:] == 1)  # ice by the classifiers: at least 10 %
    assert np.all(by_clf["SOD"][:, 10:] == 5) and np.all(by_clf["FLOE"][:, 10:] == 4)
    for m in by_clf.values():
        assert m[0, 0] == 0
    water = by_clf["SIC"] == 0
    assert np.all((by_clf["SOD"] == 0) == water) and np.all((by_clf["FLOE"] == 0) == water)
    # one ungated map, gated by each SIC map, is each gated map (the choices rely on it)
    for chart in ("SOD", "FLOE"):
        ungated = r.ice(chart, {"method": "none"}, None)
        assert ungated[0, 0] == 0 and np.all(ungated[valid] > 0)
        for sic in (by_sic["SIC"], by_clf["SIC"]):
            np.testing.assert_array_equal(Renderer.gate(ungated, sic),
                                          r.ice(chart, {"method": "none"}, sic))


def test_estimator_settings_size_leaves_to_the_sample():
    from models.estimator import DEFAULT_PARAMS as DEFAULT_ESTIMATOR_PARAMS, estimator_settings

    big = DEFAULT_ESTIMATOR_PARAMS["min_child_samples"]
    assert estimator_settings(2_000_000)["min_child_samples"] == big  # the measured default
    assert estimator_settings(500_000)["min_child_samples"] == min(big, 20_000)
    assert estimator_settings(30_000)["min_child_samples"] == 1_200  # a trial run still splits
    assert estimator_settings(100)["min_child_samples"] == 20
    assert estimator_settings(100, {"min_child_samples": 5})["min_child_samples"] == 5  # as asked
    assert estimator_settings(10**6, {"num_leaves": 7})["num_leaves"] == 7


def test_fit_error_names_the_chart_with_no_labelled_rows():
    """The message names the chart (it printed a literal '{chart}' once)."""
    from models.sampling import TrainingSet
    from pipeline.train import _fit

    n = 50
    ts = TrainingSet(X=np.zeros((n, 2), np.float32),
                     y={"SIC": np.zeros(n, np.uint8), "SOD": np.full(n, 255, np.uint8),
                        "FLOE": np.zeros(n, np.uint8)},
                     weight={c: np.ones(n, np.float32) for c in C.LABEL_CHARTS},
                     scene=np.zeros(n, np.int32), rows=np.zeros(n, np.int32),
                     cols=np.zeros(n, np.int32), scene_keys=["k"], feature_names=["a", "b"])
    with pytest.raises(ValueError, match=r"train on scenes whose SOD chart is not all masked"):
        _fit(IceClassifier(6, **TINY), ts, "SOD", None, "SOD")
