"""Execution modes: local, joblib workers and a Dask LocalCluster give identical results;
lightgbm.dask training; the --scheduler option."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from distributed import Client, LocalCluster

from featurize import FeatureConfig
from models import load_model
from models.estimator import best_round, eval_curve
from models.manifest import Manifest
from models.sampling import build_training_set
from pipeline import SceneRunner, predict_folder, train_models
from pipeline.dask import dask_client, parse_scheduler
from pipeline.train import sample_scenes
from scenes.reader import list_scenes
from scenes.synth import write_synthetic_dataset

import tiny

ROOT = Path(__file__).resolve().parents[1]
TINY = tiny.PARAMS


@pytest.fixture(scope="module")
def client():
    # Worker processes, as `--scheduler local:2` starts them (lightgbm.dask needs one per worker).
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("modes")
    write_synthetic_dataset(out, n_train=4, n_test=3, size=(100, 110), seed=11, progress=False)
    train_models(out / "train", out / "model", seed=4, n_pixels=4000, val_fraction=0.25,
                 n_jobs=1, estimator_params=TINY, progress=False)
    return out


def _runners(client):
    return {"local": SceneRunner(progress=False), "joblib": SceneRunner(n_jobs=2, progress=False),
            "cluster": SceneRunner(client=client, progress=False)}


def test_predict_identical_local_joblib_cluster(data, client, tmp_path):
    files = {}
    for mode, runner in _runners(client).items():
        files[mode] = tmp_path / f"{mode}.nc"
        result = predict_folder(data / "test", data / "model", files[mode], runner=runner)
        assert len(result["scenes"]) == 3
    ref = files["local"].read_bytes()
    assert files["joblib"].read_bytes() == ref
    assert files["cluster"].read_bytes() == ref


def test_training_set_identical_local_joblib_cluster(data, client):
    paths = list_scenes(data / "train")
    sets = {mode: sample_scenes(runner, paths, config=FeatureConfig(), n_pixels=3000, seed=9)
            for mode, runner in _runners(client).items()}
    # the library path (joblib, no runner) draws the same set
    sets["library"] = build_training_set(paths, n_pixels=3000, seed=9, n_jobs=2, progress=False)
    ref = sets["local"]
    assert len(ref) > 1000
    for mode in ("joblib", "cluster", "library"):
        ts = sets[mode]
        assert ts.scene_keys == ref.scene_keys and ts.feature_names == ref.feature_names
        np.testing.assert_array_equal(ts.X, ref.X)
        for name in ("scene", "rows", "cols"):
            np.testing.assert_array_equal(getattr(ts, name), getattr(ref, name))
        for c in ("SIC", "SOD", "FLOE"):
            np.testing.assert_array_equal(ts.y[c], ref.y[c])
            np.testing.assert_array_equal(ts.weight[c], ref.weight[c])


def test_cluster_sampling_gives_the_same_models(data, client, tmp_path):
    kw = dict(seed=4, n_pixels=4000, val_fraction=0.25, n_jobs=1, estimator_params=TINY,
              progress=False)
    train_models(data / "train", tmp_path / "m", runner=SceneRunner(client=client, progress=False),
                 **kw)
    for c in ("SIC", "SOD", "FLOE"):
        assert (tmp_path / "m" / f"{c}.txt").read_bytes() == (data / "model" / f"{c}.txt").read_bytes()


def test_lightgbm_dask_training_on_the_cluster(data, client, tmp_path):
    out = tmp_path / "dist"
    man = train_models(data / "train", out, seed=4, n_pixels=4000, val_fraction=0.25, n_jobs=1,
                       estimator_params={**TINY, "n_estimators": 30},
                       runner=SceneRunner(client=client, progress=False), distributed=True)
    local = Manifest.from_dict(json.loads((data / "model" / "manifest.json").read_text()))
    assert man.training.distributed is True and local.training.distributed is False
    assert man.feature_names == local.feature_names  # same features, same order
    assert man.training.n_rows == local.training.n_rows  # the same sample
    assert man.training.rows_per_chart == local.training.rows_per_chart
    assert man.training.estimator_params["random_state"] == 4
    assert all(1 <= b <= 30 for b in man.training.best_iterations.values())
    bundle = load_model(out)
    assert bundle.models["SOD"].booster_.num_model_per_iteration() == 6  # all contract classes
    assert "[tree_learner: data]" in (out / "SOD.txt").read_text()  # data-parallel
    result = predict_folder(data / "test", out, tmp_path / "sub.nc")
    assert len(result["scenes"]) == 3


def test_round_selection_matches_lightgbm_early_stopping():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 5))
    y = np.digitize(X[:, 0] + 0.3 * X[:, 1] + rng.normal(0, 0.8, 1500), [-1, 0, 1])
    params = dict(objective="multiclass", num_class=4, learning_rate=0.5, num_leaves=31,
                  min_data_in_leaf=2, verbose=-1, seed=1, deterministic=True,
                  force_row_wise=True, num_threads=1)
    full = lgb.train(params, lgb.Dataset(X[:1000], y[:1000]), num_boost_round=100)
    for metric in ("multi_logloss", "multi_error"):
        ev = lgb.train({**params, "metric": metric}, lgb.Dataset(X[:1000], y[:1000]),
                       num_boost_round=100, valid_sets=[lgb.Dataset(X[1000:], y[1000:])],
                       callbacks=[lgb.early_stopping(3, verbose=False)])
        curve = eval_curve(full, X[1000:], y[1000:], metric)
        rec = {}
        lgb.train({**params, "metric": metric}, lgb.Dataset(X[:1000], y[:1000]),
                  num_boost_round=100, valid_sets=[lgb.Dataset(X[1000:], y[1000:])],
                  callbacks=[lgb.record_evaluation(rec)])
        np.testing.assert_allclose(curve, rec["valid_0"][metric], rtol=1e-6, atol=1e-9)
        assert best_round(curve, 3) == ev.best_iteration
    assert best_round([5, 4, 3, 3.5, 1], 10, min_rounds=3) == 5
    assert best_round([5, 4, 3, 3.5, 3.6, 3.7, 1], 2, min_rounds=3) == 3
    assert best_round([5, 4], 2, min_rounds=3) == 0


def test_parse_scheduler_and_unreachable_address():
    assert parse_scheduler("local") == ("local", None)
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://10.0.0.1:8786") == ("address", "tcp://10.0.0.1:8786")
    for bad in ("local:0", "local:x", " "):
        with pytest.raises(ValueError, match="--scheduler"):
            parse_scheduler(bad)
    with pytest.raises(RuntimeError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with dask_client("tcp://127.0.0.1:9", timeout="1s"):
            pass


def _cli(*args, prelude=""):
    code = prelude + "import sys\nfrom cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)


def test_cli_scheduler_local_matches_local_and_needs_dask(data, tmp_path):
    ref, out = tmp_path / "ref.nc", tmp_path / "cluster.nc"
    predict_folder(data / "test", data / "model", ref, progress=False)
    args = ["predict", "-q", "--data", data / "test", "--model", data / "model"]
    r = _cli(*args, "--out", out, "--scheduler", "local:2")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == ref.read_bytes()
    # without Dask: one line with the install command, exit 1, nothing written
    no_dask = "import sys\nsys.modules['dask'] = None\nsys.modules['distributed'] = None\n"
    r = _cli(*args, "--out", tmp_path / "x.nc", "--scheduler", "local:2", prelude=no_dask)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: --scheduler needs Dask, which is not installed: pip install '.[dask]'"]
    assert not (tmp_path / "x.nc").exists()
    r = _cli("train", "--data", data / "train", "--out", tmp_path / "m", "--distributed")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "--scheduler" in r.stderr
    assert not (tmp_path / "m").exists()
