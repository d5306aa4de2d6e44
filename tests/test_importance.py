"""Tests of evaluation.importance and ``run.py importance``."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from sklearn.metrics import f1_score, r2_score

from cli.main import main
from evaluation import importance as imp
from evaluation.metrics import ChartAccumulator
from featurize import feature_groups, featurize_at
from models import IceClassifier, IceRegressor, load_model
from models.sampling import draw_uniform, scene_seed
from pipeline import train_models
from scenes import contract as C
from scenes.reader import list_scenes, open_scene, scene_key, valid_mask

import tiny

TRAIN_PARAMS = tiny.PARAMS


@pytest.fixture(scope="module")
def imp_model(synth_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("imp_model") / "model"
    train_models(synth_dir / "train", out, seed=3, n_pixels=3000, val_fraction=0, n_jobs=1,
                 progress=False, stride=4, estimator_params=TRAIN_PARAMS)
    return load_model(out)


@pytest.fixture(scope="module")
def result(imp_model, synth_dir):
    return imp.compute_importance(imp_model, synth_dir / "test", n_per_scene=400, n_repeats=2,
                                  seed=5)


def _toy(n=4000, seed=0):
    """Columns 0, 1 carry the class; 2, 3 are pure noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.8, 0.0, 0.8]).astype(np.uint8)
    return X, y


# --- tables --------------------------------------------------------------------------
def test_tables_cover_every_feature_and_groups_sum(result, imp_model):
    t = result.table
    assert list(t.columns) == list(imp.COLUMNS)
    names = imp_model.feature_names
    groups = feature_groups(imp_model.feature_config)
    assert set(groups.values()) >= {"sar_intensity", "sar_context", "amsr2", "era5", "geometry"}
    for chart in C.LABEL_CHARTS:
        for metric in (*imp.TREE_METRICS, imp.SHAP_METRIC):
            part = t[(t.parameter == chart) & (t.metric == metric)]
            feats = part[part.feature != imp.GROUP_ROW]
            assert list(feats.feature) == names, (chart, metric)
            assert list(feats.group) == [groups[n] for n in names]
            assert np.isfinite(feats.value).all() and (feats.value >= 0).all()
            totals = part[part.feature == imp.GROUP_ROW].set_index("group").value
            assert set(totals.index) == set(groups.values())
            sums = feats.groupby("group").value.sum()
            np.testing.assert_allclose(totals[sums.index], sums, rtol=1e-12)
        assert t[(t.parameter == chart) & (t.metric == "split")].value.sum() > 0
        assert result.n_pixels[chart] > 0
        perm = t[(t.parameter == chart) & (t.metric == imp.PERM_METRIC)]
        assert set(perm.group) == set(groups.values()) and (perm.feature == imp.GROUP_ROW).all()
        assert np.isfinite(perm.value).all()
        # a group the model never splits on cannot change a prediction
        split = t[(t.parameter == chart) & (t.metric == "split") & (t.feature == imp.GROUP_ROW)]
        unused = set(split[split.value == 0].group)
        assert (perm[perm.group.isin(unused)].value == 0).all()
    # the models learned something: some group matters for SIC
    sic = t[(t.parameter == "SIC") & (t.metric == imp.PERM_METRIC)]
    assert sic.value.max() > 1.0


def test_gain_matches_the_booster(imp_model, result):
    t = result.table
    est = imp_model.models["SOD"]
    gain = est.booster_.feature_importance("gain", iteration=est.best_iteration_)
    rows = t[(t.parameter == "SOD") & (t.metric == "gain") & (t.feature != imp.GROUP_ROW)]
    np.testing.assert_allclose(rows.value.to_numpy(), gain)


def test_deterministic_for_a_seed(imp_model, synth_dir, result):
    again = imp.compute_importance(imp_model, synth_dir / "test", n_per_scene=400, n_repeats=2,
                                   seed=5)
    assert again.table.equals(result.table)
    assert again.baseline == result.baseline


def test_without_data_gain_and_split_only(imp_model):
    r = imp.compute_importance(imp_model)
    assert set(r.table.metric) == set(imp.TREE_METRICS)
    assert r.baseline == {} and r.scene_keys == []


def test_scenes_without_labels_skip_permutation(imp_model, synth_dir, tmp_path):
    lone = tmp_path / "test"
    shutil.copytree(synth_dir / "test", lone)  # no reference/ beside it
    r = imp.compute_importance(imp_model, lone, n_per_scene=200, n_repeats=1)
    assert set(r.table.metric) == {*imp.TREE_METRICS, imp.SHAP_METRIC}
    assert "no permutation" in imp.summary_lines(r)[0]
    with_ref = imp.compute_importance(imp_model, lone, reference_dir=synth_dir / "reference",
                                      n_per_scene=200, n_repeats=1)
    assert imp.PERM_METRIC in set(with_ref.table.metric)


def test_sample_pixels_valid_labelled_and_weighted(imp_model, synth_dir):
    paths = list_scenes(synth_dir / "test")
    s = imp.sample_pixels(paths, imp_model.feature_config, n_per_scene=300, seed=1,
                          reference_dir=synth_dir / "reference")
    assert s.labelled and s.X.shape == (len(s.weight), len(imp_model.feature_names))
    assert (s.y["SIC"] != C.MASK_VALUE).all()
    # the weights of a scene add up to its labelled valid pixels
    ref = open_scene(synth_dir / "reference" / f"{paths[0].name[:19]}_prep_reference.nc")
    ds = open_scene(paths[0])
    n_pool = int(((ds["nersc_sar_primary"].values != 0) & (ref["SIC"].values != 255)).sum())
    n0 = min(300, n_pool)
    assert s.weight[:n0].sum() == pytest.approx(n_pool)


def test_sample_pixels_draws_with_draw_uniform(imp_model, synth_dir):
    """The draw is ``draw_uniform`` on valid labelled pixels, seeded by seed and scene key."""
    paths = list_scenes(synth_dir / "test")
    s = imp.sample_pixels(paths[:1], imp_model.feature_config, n_per_scene=250, seed=4,
                          reference_dir=synth_dir / "reference")
    ds = open_scene(paths[0])
    ref = open_scene(synth_dir / "reference" / f"{scene_key(paths[0])}_prep_reference.nc")
    pool = valid_mask(ds) & (ref["SIC"].values != C.MASK_VALUE)
    rng = np.random.default_rng(scene_seed(4, scene_key(paths[0])))
    idx, weight = draw_uniform(pool, 250, rng)
    np.testing.assert_array_equal(s.weight, weight)
    np.testing.assert_array_equal(s.y["SOD"], ref["SOD"].values.ravel()[idx])
    rows, cols = np.divmod(idx, pool.shape[1])
    np.testing.assert_array_equal(s.X, featurize_at(ds, imp_model.feature_config, rows, cols))


def test_draw_uniform_is_the_seeded_sorted_choice():
    rng_a, rng_b = np.random.default_rng(11), np.random.default_rng(11)
    pool = np.random.default_rng(3).random((40, 50)) < 0.3
    idx, w = draw_uniform(pool, 100, rng_a)
    want = np.sort(rng_b.choice(np.flatnonzero(pool), size=100, replace=False))
    np.testing.assert_array_equal(idx, want)
    assert idx.dtype == np.int64 and pool.ravel()[idx].all()
    assert w.dtype == np.float64 and (w == pool.sum() / 100).all()
    small, w_small = draw_uniform(pool, 10**6, np.random.default_rng(0))  # all of the pool
    np.testing.assert_array_equal(small, np.flatnonzero(pool))
    assert (w_small == 1.0).all()
    empty, w_empty = draw_uniform(np.zeros((3, 4), bool), 5, np.random.default_rng(0))
    assert empty.size == 0 and w_empty.size == 0


# --- building blocks on a toy model ------------------------------------------------------
def test_permutation_of_a_noise_column_is_about_zero():
    X, y = _toy()
    clf = IceClassifier(4, n_estimators=40, num_leaves=15, min_child_samples=40, n_jobs=1)
    clf.fit(X[:3000], y[:3000])
    Xt, yt = X[3000:], y[3000:]

    def score(Xq):
        return imp.chart_score("SOD", yt, clf.predict(Xq))

    groups = {"signal": [0], "weak": [1], "noise": [2], "noise_pair": [2, 3]}
    drops = imp.permutation_drop(score, Xt, groups, n_repeats=4, seed=0)
    assert abs(drops["noise"][0]) < 1.0 and abs(drops["noise_pair"][0]) < 1.5
    assert drops["signal"][0] > 30 and drops["weak"][0] > 3
    assert drops["signal"][0] > drops["weak"][0]
    # a group's result does not depend on the other groups asked for
    alone = imp.permutation_drop(score, Xt, {"noise": [2]}, n_repeats=4, seed=0)
    assert alone["noise"] == drops["noise"]
    np.testing.assert_array_equal(Xt, X[3000:])  # input untouched


def test_chart_score_is_the_weighted_challenge_metric():
    rng = np.random.default_rng(2)
    true = rng.integers(0, 11, 500).astype(np.uint8)
    pred = np.clip(true.astype(int) + rng.integers(-2, 3, 500), 0, 10).astype(np.uint8)
    w = rng.uniform(0.5, 3, 500)
    true[:20] = C.MASK_VALUE
    keep = true != C.MASK_VALUE
    assert imp.chart_score("SIC", true, pred, w) == pytest.approx(
        100 * r2_score(true[keep], pred[keep], sample_weight=w[keep]))
    t6, p6 = true % 6, pred % 6
    t6[:20] = C.MASK_VALUE
    assert imp.chart_score("SOD", t6, p6, w) == pytest.approx(
        100 * f1_score(t6[keep], p6[keep], average="weighted", sample_weight=w[keep]))
    # it is the metrics module's (weighted) accumulator, scaled
    acc = ChartAccumulator("SOD")
    acc.add(t6, p6, w)
    assert imp.chart_score("SOD", t6, p6, w) == 100.0 * acc.score()
    assert imp.chart_score("SOD", t6, p6) == pytest.approx(
        100 * f1_score(t6[keep], p6[keep], average="weighted"))


def test_mean_abs_shap_layout_and_noise():
    X, y = _toy()
    clf = IceClassifier(4, n_estimators=20, num_leaves=7, min_child_samples=40, n_jobs=1)
    clf.fit(X, y)
    contrib = clf.booster_.predict(X[:50], pred_contrib=True)
    # per class, the F contributions and the bias (last) add up to the raw score
    raw = clf.booster_.predict(X[:50], raw_score=True)
    np.testing.assert_allclose(contrib.reshape(50, 4, 5).sum(axis=2), raw, atol=1e-6)
    s = imp.mean_abs_shap(clf, X[:500])
    assert s.shape == (4,) and s[0] > s[1] > max(s[2], s[3])
    manual = np.abs(contrib.reshape(50, 4, 5)[:, :, :4]).mean(axis=1).mean(axis=0)
    np.testing.assert_allclose(imp.mean_abs_shap(clf, X[:50]), manual)
    reg = IceRegressor(11, n_estimators=20, num_leaves=7, min_child_samples=40,
                       n_jobs=1).fit(X, y * 3.0)
    r = imp.mean_abs_shap(reg, X[:300], weight=np.ones(300))
    assert r.shape == (4,) and r[0] > r[2]


def test_chart_predict_follows_the_sic_mode(imp_model, result):
    X = np.random.default_rng(0).normal(size=(20, len(imp_model.feature_names))).astype(np.float32)
    p = imp.chart_predict(imp_model, "SIC", X)
    assert p.dtype == np.uint8 and p.max() <= 10
    if imp_model.sic_mode == "regression":
        np.testing.assert_array_equal(p, imp_model.models["SIC"].predict_classes(X))
    else:
        proba = imp_model.models["SIC"].predict_proba(X)
        want = (np.argmax(proba, 1) if imp_model.sic_mode == "argmax"
                else np.rint(proba @ np.arange(11)))
        np.testing.assert_array_equal(p, want)


# --- outputs and command line ----------------------------------------------------------------
def test_cli_writes_csv_figures_and_summary(imp_model, synth_dir, tmp_path, capsys):
    import matplotlib.image as mpimg
    import pandas as pd

    out = tmp_path / "imp"
    rc = main(["importance", "--model", str(imp_model.model_dir), "--data",
               str(synth_dir / "test"), "--out", str(out), "--pixels-per-scene", "300",
               "--repeats", "1", "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    for chart in C.LABEL_CHARTS:
        assert f"\n{chart} (per-pixel" in text
    assert "top groups by permutation drop" in text and "top groups by gain share" in text
    t = pd.read_csv(out / "importance.csv")
    assert list(t.columns) == list(imp.COLUMNS) and len(t) > 0
    for name in ("importance_features.png", "importance_groups.png"):
        img = mpimg.imread(out / name)
        assert img.shape[0] > 200 and img.shape[1] > 400 and img.std() > 0.01
    assert (out / "importance_summary.json").stat().st_size > 0


def test_cli_rejects_reference_without_data(imp_model, tmp_path, capsys):
    rc = main(["importance", "--model", str(imp_model.model_dir), "--reference", str(tmp_path),
               "--out", str(tmp_path / "o")])
    assert rc == 1 and "--reference needs --data" in capsys.readouterr().err
