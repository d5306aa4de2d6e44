"""Tests of the MLflow tracking (evaluation.tracking), the pyfunc model and the MLproject."""
from __future__ import annotations

import os
import shlex
import sys
import types
from argparse import Namespace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from cli.main import build_parser, main
from cli import tracking
from evaluation.submission import open_submission, read_map
from models import load_model, predict_scene
from scenes import contract as C
from scenes.reader import list_scenes, open_scene, scene_key

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh local tracking store for one test (SQLite, as by default, where installed);
    the environment restored afterwards."""
    if tracking._sqlite_store_installed():
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    else:  # a bare mlflow-skinny
        uri = (tmp_path / "mlruns").as_uri()
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # artifacts of a SQLite store go to ./mlruns
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    yield uri
    mlflow.set_tracking_uri(None)


def _runs(command):
    client = MlflowClient()
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    return client.search_runs([exp.experiment_id],
                              filter_string=f"tags.`seaice.command` = '{command}'")


def _artifacts(run_id, path=None):
    return {Path(a.path).name for a in MlflowClient().list_artifacts(run_id, path)}


# --- without MLflow ----------------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "predict", "evaluate", "importance", "demo"])
def test_mlflow_flag_without_mlflow_is_one_line(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    out = tmp_path / "out"
    argv = {"train": ["--data", str(tmp_path), "--out", str(out)],
            "predict": ["--data", str(tmp_path), "--model", str(tmp_path), "--out", str(out)],
            "evaluate": ["--submission", str(out), "--reference", str(tmp_path)],
            "importance": ["--model", str(tmp_path), "--out", str(out)],
            "demo": ["--out", str(out)]}[command]
    with pytest.raises(SystemExit) as exc:
        main([command, *argv, "--mlflow"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install '.[mlflow]'" in err
    assert not out.exists()  # stopped before any work


def test_without_the_flag_mlflow_is_not_needed(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    assert main(["importance", "--model", str(tiny_model[0]), "--out", str(tmp_path / "i"),
                 "-q"]) == 0
    assert (tmp_path / "i" / "importance.csv").is_file()
    tracking.log_train(Namespace(mlflow=False), tiny_model[0], tiny_model[1])  # a no-op


def test_require_mlflow_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(tracking.MlflowNotInstalled, match=r"pip install '\.\[mlflow\]'"):
        tracking.require_mlflow()


# --- where runs go -------------------------------------------------------------------------
def test_default_store_is_local_and_works_with_skinny(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # mlflow-skinny alone
    assert tracking.default_tracking_uri(tmp_path) == (tmp_path / "mlruns").resolve().as_uri()
    monkeypatch.setitem(sys.modules, "sqlalchemy", types.ModuleType("sqlalchemy"))
    monkeypatch.setitem(sys.modules, "alembic", types.ModuleType("alembic"))
    assert tracking.default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    try:
        result = {"scores": {"SIC": 1.0, "SOD": 2.0, "FLOE": 3.0, "combined": 1.8}}
        tracking.log_evaluate(Namespace(mlflow=True, submission="s.nc", reference="r"), result)
        assert (tmp_path / "mlruns" / "0" / "meta.yaml").is_file() or \
            any((tmp_path / "mlruns").glob("*/meta.yaml"))
        assert _runs("evaluate")[0].data.metrics["test_combined"] == 1.8
    finally:
        mlflow.set_tracking_uri(None)


def test_mlflow_run_id_logs_into_that_run(store, monkeypatch):
    tracking.configure()
    with mlflow.start_run() as outer:
        pass
    monkeypatch.setenv("MLFLOW_RUN_ID", outer.info.run_id)
    result = {"scores": {"SIC": 10.0, "SOD": 20.0, "FLOE": 30.0, "combined": 18.0}}
    tracking.log_evaluate(Namespace(mlflow=True, submission="s.nc", reference="r"), result)
    run = MlflowClient().get_run(outer.info.run_id)
    assert run.data.metrics["test_SOD"] == 20.0 and run.data.tags["seaice.command"] == "evaluate"


# --- train run and the pyfunc model -------------------------------------------------------------
def test_train_run_and_pyfunc_model_predict_like_run_py(tiny_model, synth_dir, store, tmp_path,
                                                        capsys):
    model_dir, manifest = tiny_model
    tracking.log_train(Namespace(mlflow=True, data=str(synth_dir / "train")), model_dir, manifest)
    assert "MLflow: train run" in capsys.readouterr().out
    (run,) = _runs("train")
    p, m = run.data.params, run.data.metrics
    assert p["data"] == str(synth_dir / "train")
    assert p["seed"] == "11" and p["n_pixels"] == "4000" and p["lgbm.num_leaves"] == "7"
    assert p["feature.context_scales"] == "[5, 25, 101]" and p["sic_mode"] == manifest.sic_mode
    assert p["n_features"] == str(len(manifest.feature_names))
    fallbacks = manifest.training.validation_fallbacks
    for chart in (*C.LABEL_CHARTS, "combined"):
        if fallbacks and (chart == "combined" or chart in fallbacks):
            # its validation labels could not rank models: its number measures nothing
            assert f"val_{chart}" not in m and f"val_unsmoothed_{chart}" not in m
            continue
        assert m[f"val_{chart}"] == manifest.validation["smoothed"][chart]
        assert m[f"val_unsmoothed_{chart}"] == manifest.validation["unsmoothed"][chart]
    assert "manifest.json" in _artifacts(run.info.run_id)

    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    sig = model.metadata.signature
    assert sig.inputs.input_names() == ["scene_path"]
    assert sig.outputs.input_names() == ["scene", "SIC", "SOD", "FLOE"]
    assert model.metadata.saved_input_example_info is not None
    test_dir = synth_dir / "test"
    paths = list_scenes(test_dir)
    out = model.predict(pd.DataFrame({"scene_path": [str(q) for q in paths]}))
    assert list(out["scene"]) == [scene_key(q) for q in paths]

    sub = tmp_path / "upload_package.nc"
    assert main(["predict", "--data", str(test_dir), "--model", str(model_dir), "--out", str(sub),
                 "-q"]) == 0
    bundle = load_model(model_dir)
    with open_submission(sub) as s:
        for i, path in enumerate(paths):
            ds = open_scene(path)
            direct = predict_scene(ds, bundle)
            coarse = predict_scene(ds, bundle, stride=2, smoothing=False)
            ds.close()
            for chart in C.LABEL_CHARTS:
                got = out.loc[i, chart]
                assert got.dtype == np.uint8 and got.shape == direct[chart].shape
                np.testing.assert_array_equal(got, direct[chart])
                np.testing.assert_array_equal(got, read_map(s, scene_key(path), chart))
    # params reach predict_scene
    again = model.predict(pd.DataFrame({"scene_path": [str(paths[-1])]}),
                          params={"stride": 2, "smoothing": False})
    for chart in C.LABEL_CHARTS:
        np.testing.assert_array_equal(again.loc[0, chart], coarse[chart])


def test_pyfunc_rejects_a_frame_without_the_path_column(tiny_model):
    from models.pyfunc import _scene_paths

    with pytest.raises(ValueError, match="scene_path"):
        _scene_paths(pd.DataFrame({"path": ["x"]}))
    assert _scene_paths("a.nc") == ["a.nc"] and _scene_paths(["a", "b"]) == ["a", "b"]


# --- predict, evaluate, importance from the command line -------------------------------------------
def test_cli_runs_are_logged(tiny_model, synth_dir, store, tmp_path):
    model_dir, manifest = tiny_model
    tracking.log_train(Namespace(mlflow=True, data=str(synth_dir / "train")), model_dir, manifest)
    test_dir, ref_dir = synth_dir / "test", synth_dir / "reference"
    sub, report, imp = tmp_path / "sub.nc", tmp_path / "report", tmp_path / "imp"
    assert main(["predict", "--data", str(test_dir), "--model", str(model_dir), "--out", str(sub),
                 "--mlflow", "-q"]) == 0
    assert main(["evaluate", "--submission", str(sub), "--reference", str(ref_dir), "--report",
                 str(report), "--scenes", str(test_dir), "--json", "--mlflow", "-q"]) == 0
    assert main(["importance", "--model", str(model_dir), "--data", str(test_dir), "--out",
                 str(imp), "--pixels-per-scene", "200", "--repeats", "1", "--mlflow", "-q"]) == 0

    (pred,) = _runs("predict")
    assert pred.data.metrics["n_scenes"] == 2 and pred.data.params["smoothing"] == "True"
    # the runs of the workflow are linked: predict -> its model's training run,
    # evaluate -> the predict run that wrote the submission (and its training run)
    (train,) = _runs("train")
    assert pred.data.tags[tracking.TRAIN_RUN_TAG] == train.info.run_id
    assert pred.data.tags[tracking.SUBMISSION_TAG] == tracking.file_digest(sub)
    (ev,) = _runs("evaluate")
    assert ev.data.tags[tracking.PREDICT_RUN_TAG] == pred.info.run_id
    assert ev.data.tags[tracking.TRAIN_RUN_TAG] == train.info.run_id
    from evaluation.scoring import score_submission
    scores = score_submission(sub, ref_dir)["scores"]
    assert {k: ev.data.metrics[f"test_{k}"] for k in scores} == scores
    logged = _artifacts(ev.info.run_id, "report")
    keys = [scene_key(q) for q in list_scenes(test_dir)]
    assert {f"maps_{k}.png" for k in keys} | {"confusion_SIC.png", "per_scene_scores.csv"} <= logged
    for k in keys:  # the figures are real images
        assert (report / f"maps_{k}.png").stat().st_size > 10_000
    (im,) = _runs("importance")
    assert {"importance.csv", "importance_groups.png", "importance_features.png"} <= _artifacts(
        im.info.run_id, "importance")
    assert "importance_baseline_SIC" in im.data.metrics
    assert any(k.startswith("perm_drop.SOD.") for k in im.data.metrics)


def test_evaluate_map_options_checked(tiny_model, synth_dir, tmp_path, capsys):
    base = ["evaluate", "--submission", str(tmp_path / "none.nc"), "--reference",
            str(synth_dir / "reference")]
    assert main([*base, "--scenes", str(synth_dir / "test")]) == 1
    assert "--report" in capsys.readouterr().err
    assert main([*base, "--report", str(tmp_path / "r"), "--scenes", str(synth_dir / "test"),
                 "--maps", "20000101T000000_dmi"]) == 1
    assert "no such scene" in capsys.readouterr().err


# --- MLproject -------------------------------------------------------------------------------------
def test_mlproject_entry_points_match_the_cli():
    from mlflow.projects._project_spec import load_project

    project = load_project(str(ROOT))
    assert {"train", "predict", "evaluate"} <= set(project._entry_points)
    parser = build_parser()
    for name, ep in project._entry_points.items():
        values = {k: (p.default if p.default is not None else f"/x/{k}")
                  for k, p in ep.parameters.items()}
        argv = shlex.split(ep.command.format(**values))
        assert argv[:2] == ["python", "run.py"], name
        args = parser.parse_args(argv[2:])
        assert args.command == name and args.mlflow is True


# --- the SQLite store, runs opened before the work, the Model Registry ----------------------
def test_default_sqlite_store_lists_runs_without_the_file_store_switch(tmp_path, monkeypatch):
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("alembic")
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE", "MLFLOW_RUN_ID",
                "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    try:
        result = {"scores": {"SIC": 1.0, "SOD": 2.0, "FLOE": 3.0, "combined": 1.8}}
        tracking.log_evaluate(Namespace(mlflow=True, submission="s.nc", reference="r"), result)
    finally:
        mlflow.set_tracking_uri(None)
    assert (tmp_path / "mlflow.db").is_file()
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # MLflow reads this store as it is
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.metrics["test_combined"] == 1.8


def test_a_failed_command_leaves_a_failed_run_with_its_parameters(store, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "-q", "--data", str(empty), "--out", str(tmp_path / "m"),
                 "--mlflow"]) == 1
    (run,) = _runs("train")
    assert run.info.status == "FAILED"
    assert run.data.params["data"] == str(empty) and run.data.params["pixels"] == "auto"
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: ")


def test_register_then_predict_with_the_registered_model(tiny_model, synth_dir, store, tmp_path,
                                                         capsys):
    model_dir, manifest = tiny_model
    args = build_parser().parse_args(["train", "--data", str(synth_dir / "train"), "--out",
                                      str(tmp_path / "unused"), "--register", "seaice-tiny"])
    assert args.mlflow is True and args.register == "seaice-tiny"  # --register implies --mlflow
    tracking.log_train(args, model_dir, manifest)
    assert ("MLflow: registered model seaice-tiny version 1; predict with --model "
            "models:/seaice-tiny/1") in capsys.readouterr().out
    MlflowClient().set_registered_model_alias("seaice-tiny", "champion", "1")
    (train,) = _runs("train")

    test_dir = synth_dir / "test"
    direct = tmp_path / "direct.nc"
    assert main(["predict", "-q", "--data", str(test_dir), "--model", str(model_dir), "--out",
                 str(direct), "--no-cache"]) == 0
    for i, uri in enumerate(("models:/seaice-tiny/1", "models:/seaice-tiny@champion")):
        sub = tmp_path / f"registered{i}.nc"
        assert main(["predict", "-q", "--data", str(test_dir), "--model", uri, "--out",
                     str(sub), "--no-cache", "--mlflow"]) == 0
        assert sub.read_bytes() == direct.read_bytes()
    runs = _runs("predict")
    assert sorted(r.data.params["model"] for r in runs) == ["models:/seaice-tiny/1",
                                                            "models:/seaice-tiny@champion"]
    assert all(r.data.tags[tracking.TRAIN_RUN_TAG] == train.info.run_id for r in runs)

    capsys.readouterr()
    for uri, says in (("models:/seaice-tiny/7", "not in the Model Registry"),
                      ("models:/nothing@champion", "not in the Model Registry"),
                      ("models:/seaice-tiny", "models:/NAME/VERSION or models:/NAME@ALIAS")):
        assert main(["predict", "-q", "--data", str(test_dir), "--model", uri, "--out",
                     str(tmp_path / "bad.nc"), "--no-cache"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err and uri in err, err
    assert not (tmp_path / "bad.nc").exists()


def test_register_without_mlflow_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "m"), "--register", "x"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install '.[mlflow]'" in err
