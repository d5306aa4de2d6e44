"""The second stage: features, residual estimators, the train job's choice, model folders."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import tiny
from models import load_model, predict_scene, stage2 as S2
from models.manifest import Manifest, ManifestError
from models.predict import make_lattice
from pipeline import stage2 as P2
from pipeline import train_models
from pipeline.runner import SceneRunner
from scenes import contract as C
from scenes.reader import list_scenes, open_scene
from scenes.synth import write_synthetic_dataset

#: Enough scenes for the cross-fit (3 groups) and a validation scene.
TRAIN = dict(tiny.TRAIN, val_fraction=0.2)


def _lat(shape=(12, 14), seed=0, regression=True):
    rng = np.random.default_rng(seed)
    lat = {"SOD_proba": rng.dirichlet(np.ones(6), size=shape).transpose(2, 0, 1).astype(np.float32),
           "FLOE_proba": rng.dirichlet(np.ones(7), size=shape).transpose(2, 0, 1).astype(np.float32)}
    if regression:
        lat["SIC_value"] = rng.uniform(0, 10, size=shape).astype(np.float32)
    else:
        lat["SIC_proba"] = rng.dirichlet(np.ones(11), size=shape).transpose(2, 0, 1).astype(
            np.float32)
    valid = np.ones(shape, bool)
    valid[:2, :3] = False
    comp = rng.normal(size=(2,) + shape).astype(np.float32)
    return lat, valid, comp


@pytest.mark.parametrize("regression", [True, False])
def test_features_have_their_names_and_the_lattice_order(regression):
    lat, valid, comp = _lat(regression=regression)
    spec = dict(S2.DEFAULT_SPEC)
    F2, levels = S2.stage2_features(lat, valid, comp, 12, spec)
    names = S2.feature_names(spec)
    assert F2.shape == (valid.sum(), len(names)) and F2.dtype == np.float32
    assert levels.shape == (len(spec["thresholds"]),) + valid.shape
    ii, jj = np.nonzero(valid)
    sic = lat["SIC_value"] if regression else np.tensordot(np.arange(11), lat["SIC_proba"], 1)
    np.testing.assert_allclose(F2[:, names.index("s1_sic")], sic[ii, jj], rtol=1e-5)
    np.testing.assert_allclose(F2[:, names.index("s1_floe_p3")], lat["FLOE_proba"][3, ii, jj])
    # a region's mean is the mean of its points, the same at each of them
    col = F2[:, names.index("r1_s1_sod_p2")]
    for k in np.unique(levels[1][valid]):
        m = levels[1][ii, jj] == k
        np.testing.assert_allclose(col[m], lat["SOD_proba"][2, ii, jj][m].mean(), rtol=1e-5)
    assert {S2.feature_group(n) for n in names} == set(S2.GROUPS.values())


def test_input_stats_add_region_sar_and_amsr2_columns():
    lat, valid, comp = _lat()
    spec = dict(S2.DEFAULT_SPEC, input_stats=True)
    cols = S2.input_columns(spec, S2.REGION_INPUTS)
    inputs = np.ones((len(cols),) + valid.shape, np.float32)
    F2, _ = S2.stage2_features(lat, valid, comp, 12, spec, inputs=inputs)
    names = S2.feature_names(spec, S2.REGION_INPUTS)
    assert F2.shape[1] == len(names) and "r0_hh_std" in names
    np.testing.assert_allclose(F2[:, names.index("r2_amsr_pr_18_7_mean")], 1.0)
    with pytest.raises(ValueError, match="input_stats"):
        S2.stage2_features(lat, valid, comp, 12, spec)


def test_spec_is_checked():
    with pytest.raises(ValueError, match="increasing"):
        S2.check_spec(dict(S2.DEFAULT_SPEC, thresholds=[2.0, 1.0]))
    with pytest.raises(ValueError, match="unknown keys"):
        S2.check_spec(dict(S2.DEFAULT_SPEC, extra=1))


def _toy(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(6), size=n)
    z = rng.normal(size=n)
    y = np.where(z > 1, 5, P.argmax(1))  # stage 2 can learn: z > 1 means class 5
    X = np.column_stack([P, z]).astype(np.float32)
    return X, y, [f"s1_sod_p{k}" for k in range(6)] + ["z"]


def test_residual_classifier_starts_from_stage1_and_learns_a_correction():
    X, y, names = _toy()
    est = S2.Stage2Classifier(6, base_features=S2.base_features("SOD"), n_estimators=30,
                              min_child_samples=20, num_leaves=7, n_jobs=1)
    est.fit(X, y, feature_names=names, eval_set=[(X, y)])
    assert len(est.curves_[0]) == 31 and est.curves_[0][-1] < est.curves_[0][0]
    err = (est.predict(X) != y).mean()
    est.best_iteration_ = 0  # no rounds: stage 1's decisions
    assert (est.predict(X) == X[:, :6].argmax(1)).all()
    assert err < (X[:, :6].argmax(1) != y).mean()


def test_residual_regressor_round_trips_through_its_text(tmp_path):
    rng = np.random.default_rng(1)
    v = rng.uniform(0, 10, 2000)
    X = np.column_stack([v, rng.normal(size=2000)]).astype(np.float32)
    y = np.clip(np.rint(v + 0.7), 0, 10)
    est = S2.Stage2Regressor(11, n_estimators=10, min_child_samples=20, n_jobs=1)
    est.fit(X, y, feature_names=["s1_sic", "x"])
    est.save_model(tmp_path / "m.txt")
    import lightgbm as lgb
    again = S2.Stage2Regressor.from_booster(lgb.Booster(model_file=str(tmp_path / "m.txt")),
                                            ["s1_sic", "x"], **est.get_params())
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    assert np.abs(est.predict(X) - y).mean() < np.abs(np.clip(v, 0, 10) - y).mean()


def test_final_outputs_without_models_or_vote_are_stage1():
    lat, valid, comp = _lat()
    out = S2.final_outputs(lat, valid, comp, 12, spec=S2.DEFAULT_SPEC, models={})
    for k in lat:
        np.testing.assert_array_equal(out[k], lat[k])
    voted = S2.final_outputs(lat, valid, comp, 12, spec=S2.DEFAULT_SPEC, models={},
                             region_level=3)
    levels = S2.region_levels(lat, valid, comp, S2.DEFAULT_SPEC)
    lab = levels[3]
    k = lab[valid][0]
    np.testing.assert_allclose(voted["SIC_value"][lab == k], lat["SIC_value"][lab == k].mean(),
                               rtol=1e-5)


def test_bootstrap_share_prefers_a_gain_over_all_scenes():
    rng = np.random.default_rng(0)

    def conf(noise):
        out = []
        for _ in range(8):
            scene = {}
            for c in C.LABEL_CHARTS:
                k = C.N_CLASSES[c]
                cm = np.zeros((k, 256), np.int64)
                cm[np.arange(k), np.arange(k)] = 100
                cm[np.arange(k), (np.arange(k) + 1) % k] = noise + rng.integers(0, 3, k)
                scene[c] = cm
            out.append(scene)
        return out

    better, worse = conf(5), conf(40)
    assert P2.bootstrap_share(better, worse, seed=0)["share_better"] == 1.0
    assert P2.bootstrap_share(worse, better, seed=0)["share_better"] == 0.0
    assert P2.assign_folds(["a", "b", "c", "d"], 3, 0) == P2.assign_folds(["d", "c", "b", "a"], 3, 0)


# --- the train job, model folders, prediction ----------------------------------------
@pytest.fixture(scope="module")
def stage2_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage2")
    write_synthetic_dataset(root / "data", n_train=5, n_test=1, size=(100, 110), seed=74,
                            progress=False)
    man = train_models(root / "data" / "train", root / "model", **TRAIN)
    return root, man


def test_train_job_records_the_second_stage(stage2_model):
    root, man = stage2_model
    st = man.stage2
    assert st is not None and st.system in S2.SYSTEMS and st.system in st.systems
    assert set(st.rounds) == set(C.LABEL_CHARTS)
    assert set(st.files) == {c for c, r in st.rounds.items() if r > 0}
    assert st.selection["chosen"] == st.system and st.selection["why"]
    bundle = load_model(root / "model")
    assert bundle.stage2.system == st.system and set(bundle.stage2.models) == set(st.files)
    raw = json.loads((root / "model" / "manifest.json").read_text())
    assert Manifest.from_dict(raw).to_dict() == raw


def test_every_system_predicts_and_stage1_is_todays(stage2_model, tmp_path):
    root, man = stage2_model
    bundle = load_model(root / "model")
    path = list_scenes(root / "data" / "test", kind="test")[0]
    ds = open_scene(path)
    try:
        maps = {s: predict_scene(ds, bundle, system=s) for s in bundle.stage2.systems}
        chosen = predict_scene(ds, bundle)
        again = predict_scene(ds, bundle)
    finally:
        ds.close()
    for c in C.LABEL_CHARTS:
        np.testing.assert_array_equal(chosen[c], maps[bundle.stage2.system][c])
        np.testing.assert_array_equal(chosen[c], again[c])
    # the same stage 1 trained without the second stage: today's folder, today's maps
    plain = train_models(root / "data" / "train", tmp_path / "plain", stage2=False, **TRAIN)
    assert plain.stage2 is None
    assert "stage2" not in json.loads((tmp_path / "plain" / "manifest.json").read_text())
    for c in C.LABEL_CHARTS:
        assert (tmp_path / "plain" / f"{c}.txt").read_bytes() == \
            (root / "model" / f"{c}.txt").read_bytes()
    ds = open_scene(path)
    try:
        today = predict_scene(ds, load_model(tmp_path / "plain"))
    finally:
        ds.close()
    for c in C.LABEL_CHARTS:
        np.testing.assert_array_equal(today[c], maps["stage1"][c])
    with pytest.raises(ValueError, match="not in model"):
        predict_scene(None, load_model(tmp_path / "plain"), system="stage2")


def _same_folder(a, b, man):
    names = [f"{c}.txt" for c in C.LABEL_CHARTS] + [f.name for f in man.stage2.files.values()]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma = json.loads((a / "manifest.json").read_text())["stage2"]
    mb = json.loads((b / "manifest.json").read_text())["stage2"]
    assert ma == mb


def test_same_seed_same_stage2_bytes_with_joblib(stage2_model, tmp_path):
    root, man = stage2_model
    train_models(root / "data" / "train", tmp_path / "again",
                 runner=SceneRunner(n_jobs=2, progress=False), **TRAIN)
    _same_folder(tmp_path / "again", root / "model", man)


def test_same_seed_same_stage2_bytes_on_a_local_cluster(stage2_model, tmp_path):
    distributed = pytest.importorskip("distributed")
    root, man = stage2_model
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        train_models(root / "data" / "train", tmp_path / "dask",
                     runner=SceneRunner(client=client, progress=False), **TRAIN)
    _same_folder(tmp_path / "dask", root / "model", man)


def test_a_damaged_stage2_file_or_entry_is_refused(stage2_model, tmp_path):
    root, man = stage2_model
    bad = tmp_path / "model"
    shutil.copytree(root / "model", bad)
    raw = json.loads((bad / "manifest.json").read_text())
    raw["stage2"]["system"] = "stage3"
    (bad / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="stage2.system"):
        load_model(bad)
    raw["stage2"]["system"] = man.stage2.system
    raw["stage2"]["spec"]["thresholds"] = [3.0, 1.0]
    with pytest.raises(ManifestError, match="stage2.spec"):
        Manifest.from_dict(raw)
    if man.stage2.files:
        shutil.rmtree(bad)
        shutil.copytree(root / "model", bad)
        name = next(iter(man.stage2.files.values())).name
        (bad / name).write_text((bad / name).read_text().replace("Tree=0", "Tree=0 "))
        with pytest.raises(ValueError, match="damaged|bytes"):
            load_model(bad)


def test_stage2_scene_points_are_uniform_and_weighted(stage2_model):
    root, _ = stage2_model
    bundle = load_model(root / "model")
    from models.predict import bundle_models
    from pipeline.train import _eval_grid
    path = list_scenes(root / "data" / "train", kind="train")[0]
    part = P2.stage2_scene(path, bundle.feature_config, 4, bundle_models(bundle),
                           dict(S2.DEFAULT_SPEC), _eval_grid, 50, 0)
    assert part["F2"].shape == (min(50, part["valid_l"].sum()), len(S2.feature_names(
        S2.DEFAULT_SPEC)))
    want = make_lattice(part["lattice"].shape, 4)
    np.testing.assert_array_equal(part["lattice"].rows, want.rows)
    np.testing.assert_array_equal(part["lattice"].cols, want.cols)
    for c in C.LABEL_CHARTS:
        lab = part["y2"][c] != C.MASK_VALUE
        assert np.allclose(part["w2"][c][lab].sum() if lab.any() else 0,
                           part["w2"][c][0] * lab.sum())


def test_validation_outputs_reused_give_the_same_part(stage2_model):
    """A validation scene predicted on the model's lattice (the choice of today's settings)
    gives stage 2 the part it would get by featurizing the scene again."""
    root, _ = stage2_model
    bundle = load_model(root / "model")
    from models.predict import bundle_models, empty_outputs, predict_points
    from pipeline.train import _eval_grid, _val_scene
    path = list_scenes(root / "data" / "train", kind="train")[1]
    models = bundle_models(bundle)
    spec = dict(S2.DEFAULT_SPEC)
    want = P2.stage2_scene(path, bundle.feature_config, 4, models, spec, _eval_grid, 50, 7)
    v = _val_scene(path, bundle.feature_config, 4)
    lat = empty_outputs(models, v["lattice"].lattice_shape)
    predict_points(models, v["X"], v["ii"], v["jj"], lat)
    got = P2.stage2_part(v, lat, None, 4, spec, 50, 7)
    assert set(got) == set(want)
    for k in ("valid_l", "valid_out", "out_rows", "out_cols", "comp", "levels", "F2"):
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    for k in ("lat", "y_out", "y2", "w2"):
        assert set(got[k]) == set(want[k])
        for c in want[k]:
            np.testing.assert_array_equal(got[k][c], want[k][c], err_msg=f"{k} {c}")


def test_the_choice_reuses_the_confusions_of_the_chosen_maps(stage2_model):
    """``_select(per_scene=True)`` gives each scene's matrices of the maps its choice makes."""
    root, _ = stage2_model
    bundle = load_model(root / "model")
    from models import smoothing as sm
    from models.predict import bundle_models
    from pipeline.train import _eval_grid, _select
    models = bundle_models(bundle)
    scenes = [P2.stage2_scene(p, bundle.feature_config, 4, models, dict(S2.DEFAULT_SPEC),
                              _eval_grid, 50, 0)
              for p in list_scenes(root / "data" / "train", kind="train")[:3]]
    for p in scenes:
        p["render"] = {}
    lats = [p["lat"] for p in scenes]
    grid = [sm.check_spec(s) for s in sm.DEFAULT_GRID]
    mode = "regression" if "SIC_value" in lats[0] else "expected"
    settings, conf = P2._tuned(scenes, lats, mode, _select, grid, {})
    want = P2._confusions(scenes, lats, settings)
    assert len(conf) == len(want) == len(scenes)
    for got_s, want_s in zip(conf, want):
        for c in C.LABEL_CHARTS:
            np.testing.assert_array_equal(got_s[c], want_s[c], err_msg=c)


@pytest.fixture(scope="module")
def forced_model(stage2_model, tmp_path_factory):
    """The same data with every chart's stage 2 kept (3 rounds) and stage2+regions chosen."""
    root, _ = stage2_model
    out = tmp_path_factory.mktemp("forced") / "model"
    P2.FORCE_ROUNDS, P2.FORCE_SYSTEM = 3, "stage2+regions"
    try:
        man = train_models(root / "data" / "train", out, **TRAIN)
    finally:
        P2.FORCE_ROUNDS = P2.FORCE_SYSTEM = None
    return out, man


def test_forced_worst_case_predicts_with_every_stage2_model(stage2_model, forced_model):
    root, _ = stage2_model
    out, man = forced_model
    assert man.stage2.system == "stage2+regions" and set(man.stage2.files) == set(C.LABEL_CHARTS)
    assert "forced" in man.stage2.selection["why"]
    bundle = load_model(out)
    path = list_scenes(root / "data" / "test", kind="test")[0]
    ds = open_scene(path)
    try:
        timings = {}
        maps = predict_scene(ds, bundle, timings=timings, confidence=True)
        today = predict_scene(ds, bundle, system="stage1")
    finally:
        ds.close()
    assert "stage2" in timings and set(C.LABEL_CHARTS) <= set(maps)
    assert any((maps[c] != today[c]).any() for c in C.LABEL_CHARTS)


def test_importance_has_the_stage2_groups(stage2_model, forced_model):
    from evaluation.importance import compute_importance, summary_lines
    root, _ = stage2_model
    out, _ = forced_model
    res = compute_importance(out, root / "data" / "test", n_per_scene=300, n_repeats=1)
    t = res.table
    s2 = t[t["parameter"].str.endswith("_stage2")]
    assert set(s2["parameter"]) == {f"{c}_stage2" for c in C.LABEL_CHARTS}
    assert set(s2["group"]) == set(S2.GROUPS.values()) | set()
    assert {"gain", "split", "mean_abs_shap", "permutation_drop"} <= set(s2["metric"])
    assert any("stage 2" in line for line in summary_lines(res))


def test_threads_give_the_same_choice_and_outputs(stage2_model):
    """The selection renders and scores scenes on threads: the same outputs, scores and choice."""
    root, man = stage2_model
    bundle = load_model(root / "model")
    from models import smoothing as sm
    from models.predict import Renderer, bundle_models
    from pipeline.train import _eval_grid, _select
    models = bundle_models(bundle)
    spec = dict(S2.DEFAULT_SPEC)
    scenes = [P2.stage2_scene(p, bundle.feature_config, 4, models, spec, _eval_grid, 50, 0)
              for p in list_scenes(root / "data" / "train", kind="train")[:4]]
    rows = np.concatenate([p["F2"] for p in scenes])
    stage2 = {}
    for chart in C.LABEL_CHARTS:  # a few rounds on the scenes' own points: outputs that differ
        y = np.concatenate([p["y2"][chart] for p in scenes])
        est = P2.make_stage2(chart, dict(tiny.PARAMS, n_jobs=1, random_state=0), 3)
        stage2[chart] = est.fit(rows[y != C.MASK_VALUE], y[y != C.MASK_VALUE],
                                feature_names=S2.feature_names(spec, list(models["SOD"].feature_names_in_)))
    outs = {n: P2.selection_outputs(scenes, [stage2] * len(scenes), 4, spec, threads=n)
            for n in (1, 3)}
    for a, b in zip(outs[1], outs[3]):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    lat1, lat2 = [p["lat"] for p in scenes], outs[1]
    grid = [sm.check_spec(s) for s in sm.DEFAULT_GRID]
    settings = dict(sic_mode=man.sic_mode, water_rule=man.water_rule,
                    water_threshold=man.water_threshold, smoothing=man.smoothing)
    chosen = {}
    for n in (1, 3):
        for p in scenes:
            p["render"] = {}
        chosen[n] = P2.choose_system(scenes, lat1, lat2, settings, _select, grid, {}, 0,
                                     use_stage2=True, threads=n)
        renderers = [(Renderer(lat, p["lattice"], p["valid_l"], p["valid_out"], p["out_rows"],
                               p["out_cols"], composite=p["comp"]), p)
                     for p, lat in zip(scenes, lat2)]
        chosen[n] += (_select(renderers, grid, ("regression",), threads=n),)
    assert chosen[1] == chosen[3]
