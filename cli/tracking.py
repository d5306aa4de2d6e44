"""Optional MLflow tracking of the command-line runs (``--mlflow``).

Each ``log_*`` function does nothing unless ``args.mlflow`` is set; then it
opens one MLflow run, logs the parameters, metrics and artifacts of its
command, closes the run and prints one line naming it. MLflow is imported
only here and in :mod:`models.pyfunc`, and only when asked for: without it,
``--mlflow`` stops the command before any work with one line on how to
install it (:func:`require_mlflow`).

Where runs go: ``MLFLOW_TRACKING_URI`` if set, else a local store in the
working directory (:func:`default_tracking_uri`): ``sqlite:///mlflow.db``
where SQLAlchemy is installed (full ``mlflow``, whose ``mlflow ui`` reads it
by default), else the file store ``./mlruns``, which ``mlflow-skinny`` alone
can write (MLflow 3 wants ``MLFLOW_ALLOW_FILE_STORE=true`` for it; set here,
and needed by ``mlflow ui --backend-store-uri ./mlruns`` too). The experiment
is ``MLFLOW_EXPERIMENT_NAME`` / ``MLFLOW_EXPERIMENT_ID`` if set, else
``seaice-gbm``; with ``MLFLOW_RUN_ID`` set (as ``mlflow run`` does) the
command logs into that run.

What is logged:

- train: data folder, feature configuration (``feature.*``), LightGBM
  settings (``lgbm.*``), seed, sample size and the choices made (SIC mode,
  smoothing, best iterations) as params; validation scores per chart and
  combined (``val_*``, smoothed; ``val_unsmoothed_*``) as metrics; the
  manifest and the model as an MLflow pyfunc model (:mod:`models.pyfunc`).
- predict: model, data, stride and smoothing; scene count and seconds.
- evaluate: test scores per chart and combined (``test_*``); the report
  folder (CSVs, confusion and map PNGs) if one was written.
- importance: its settings, the per-pixel baseline scores and the group
  permutation drops as metrics; the importance CSV, PNGs and summary.
- demo: all of train and evaluate in one run.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from evaluation.importance import PERM_METRIC, group_table
from models.manifest import Manifest
from scenes import contract as C

log = logging.getLogger(__name__)

INSTALL_HINT = ("--mlflow needs MLflow, which is not installed; install it with "
                "pip install '.[mlflow]' (or pip install mlflow-skinny)")
#: Experiment used when the environment names none.
EXPERIMENT = "seaice-gbm"


class MlflowNotInstalled(RuntimeError):
    """``--mlflow`` was asked for but ``import mlflow`` fails."""


def require_mlflow():
    """The ``mlflow`` module, or :class:`MlflowNotInstalled` with the install line."""
    try:
        import mlflow
    except ImportError:
        raise MlflowNotInstalled(INSTALL_HINT) from None
    return mlflow


def default_tracking_uri(cwd=None) -> str:
    """Local store in ``cwd``: ``sqlite:///…/mlflow.db`` with SQLAlchemy, else ``file:…/mlruns``."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    try:
        import sqlalchemy  # noqa: F401  (the sqlite store needs it; mlflow-skinny lacks it)
    except ImportError:
        return (cwd / "mlruns").resolve().as_uri()
    return f"sqlite:///{(cwd / 'mlflow.db').resolve()}"


def _is_file_store(uri: str) -> bool:
    return uri.startswith("file:") or "://" not in uri and not uri.startswith(("databricks",))


def configure(mlflow=None) -> str:
    """Set the tracking URI and experiment from the environment (see module doc); return the URI."""
    mlflow = require_mlflow() if mlflow is None else mlflow
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    if _is_file_store(uri):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    # a progress bar per artifact download buries the command's own output
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(uri)
    if not any(os.environ.get(v) for v in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID",
                                            "MLFLOW_RUN_ID")):
        mlflow.set_experiment(EXPERIMENT)
    return uri


@contextlib.contextmanager
def _run(command: str):
    mlflow = require_mlflow()
    uri = configure(mlflow)
    resume = bool(os.environ.get("MLFLOW_RUN_ID"))
    with mlflow.start_run(run_name=None if resume else command) as run:
        mlflow.set_tag("seaice.command", command)
        yield mlflow
    print(f"MLflow: {command} run {run.info.run_id} logged to {uri}")


def _on(args) -> bool:
    return bool(getattr(args, "mlflow", False))


def _value(v):
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, tuple, dict)) else v


def model_params(manifest: Manifest) -> dict:
    """MLflow params of a model manifest: features, LightGBM settings, sampling, choices."""
    tr = manifest.training
    params = {f"feature.{k}": _value(v) for k, v in manifest.feature_config.items()}
    params.update({f"lgbm.{k}": _value(v) for k, v in tr.estimator_params.items()})
    params.update(seed=tr.seed, n_pixels=tr.n_pixels, n_rows=tr.n_rows,
                  val_fraction=tr.val_fraction, device=tr.device, val_stride=tr.val_stride)
    params.update(n_features=len(manifest.feature_names), sic_mode=manifest.sic_mode,
                  stride=manifest.stride, n_train_scenes=len(tr.train_scenes),
                  n_val_scenes=len(tr.val_scenes))
    params.update({f"smoothing.{c}": _value(s) for c, s in manifest.smoothing.items()})
    params.update({f"best_iteration.{k}": v for k, v in tr.best_iterations.items()})
    return params


def validation_metrics(manifest: Manifest) -> dict:
    """``val_{chart}`` (the chosen, smoothed system) and ``val_unsmoothed_{chart}`` scores."""
    scores = manifest.validation or {}
    out = {}
    for kind, prefix in (("smoothed", "val_"), ("unsmoothed", "val_unsmoothed_")):
        for k in (*C.LABEL_CHARTS, "combined"):
            if k in scores.get(kind, {}):
                out[f"{prefix}{k}"] = float(scores[kind][k])
    return out


def _log_model_dir(mlflow, model_dir, manifest):
    from models.pyfunc import log_model  # imports mlflow: only with --mlflow

    mlflow.log_params(model_params(manifest))
    mlflow.log_metrics(validation_metrics(manifest))
    mlflow.log_artifact(str(Path(model_dir) / "manifest.json"))
    log_model(model_dir)


def _test_metrics(result: dict) -> dict:
    return {f"test_{k}": float(v) for k, v in result["scores"].items()}


def log_train(args, model_dir, manifest: Manifest) -> None:
    """Log a training run: params, validation metrics, manifest, pyfunc model."""
    if not _on(args):
        return
    with _run("train") as mlflow:
        mlflow.log_param("data", str(args.data))
        _log_model_dir(mlflow, model_dir, manifest)


def log_predict(args, result: dict) -> None:
    """Log a prediction run: model, data, settings, scene count and timing."""
    if not _on(args):
        return
    with _run("predict") as mlflow:
        mlflow.log_params({"model": str(args.model), "data": str(args.data),
                           "submission": str(result["out"]), "stride": args.stride or "model",
                           "smoothing": not args.no_smoothing})
        seconds = list(result["seconds"].values())
        mlflow.log_metrics({"n_scenes": len(result["scenes"]),
                            "predict_seconds_total": float(sum(seconds)),
                            "predict_seconds_per_scene": float(sum(seconds) / max(len(seconds), 1))})
        manifest = Path(args.model) / "manifest.json"
        if manifest.is_file():
            mlflow.log_artifact(str(manifest))


def log_evaluate(args, result: dict) -> None:
    """Log an evaluation run: test scores and the report folder."""
    if not _on(args):
        return
    with _run("evaluate") as mlflow:
        mlflow.log_params({"submission": str(args.submission), "reference": str(args.reference)})
        mlflow.log_metrics(_test_metrics(result))
        if getattr(args, "report", None):
            mlflow.log_artifacts(str(args.report), "report")


def log_importance(args, result, paths: dict) -> None:
    """Log an importance run: settings, baseline and permutation metrics, CSV/PNG/summary."""
    if not _on(args):
        return
    with _run("importance") as mlflow:
        mlflow.log_params({"model": str(args.model), "data": str(args.data),
                           **{k: _value(v) for k, v in result.meta.items()
                              if k not in ("model", "scenes")}})
        metrics = {f"importance_baseline_{c}": float(v) for c, v in result.baseline.items()}
        for chart, d in group_table(result.table, PERM_METRIC).items():
            metrics.update({f"perm_drop.{chart}.{g}": float(v) for g, v in d.items()})
        mlflow.log_metrics(metrics)
        for p in paths.values():
            mlflow.log_artifact(str(p), "importance")


def log_demo(args, model_dir, manifest: Manifest, result: dict, report_dir) -> None:
    """Log the demo as one run: training params, validation and test scores, model, report."""
    if not _on(args):
        return
    with _run("demo") as mlflow:
        mlflow.log_params({"demo.train": args.train, "demo.test": args.test,
                           "demo.size": _value(args.size)})
        _log_model_dir(mlflow, model_dir, manifest)
        mlflow.log_metrics(_test_metrics(result))
        mlflow.log_artifacts(str(report_dir), "report")
