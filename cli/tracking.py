"""Optional MLflow tracking of the command-line runs (``--mlflow``).

Each tracked command opens one MLflow run before its work and logs its
parameters at once (:func:`tracked`), so a run that crashes is still
recorded (status FAILED, with its parameters); its metrics and artifacts
follow at the end, the run is closed and one line names it. Without
``--mlflow`` nothing is imported: MLflow is imported only here and in
:mod:`models.pyfunc`, and only when asked for; without MLflow, ``--mlflow``
stops the command before any work with one line on how to install it
(:func:`require_mlflow`).

Where runs go: ``MLFLOW_TRACKING_URI`` if set, else the SQLite store
``sqlite:///mlflow.db`` in the working directory (:func:`default_tracking_uri`;
artifacts under ``./mlruns``), which ``mlflow ui`` started in the same folder
reads by default and the MLflow API lists. ``pip install '.[mlflow]'``
installs MLflow with what that store and ``mlflow ui`` need. A bare
``mlflow-skinny`` (no SQLAlchemy) falls back, with a warning, to the file
store ``./mlruns``, which MLflow reads only with ``MLFLOW_ALLOW_FILE_STORE=true``.
The experiment is ``MLFLOW_EXPERIMENT_NAME`` / ``MLFLOW_EXPERIMENT_ID`` if set,
else ``seaice-gbm``; with ``MLFLOW_RUN_ID`` set (as ``mlflow run`` does) the
command logs into that run.

What is logged:

- train: its options at the start; then the feature configuration
  (``feature.*``), LightGBM settings (``lgbm.*``), sample size and the
  choices made (SIC mode, smoothing, best iterations) as params; validation
  scores per chart and combined (``val_*``, smoothed; ``val_unsmoothed_*``;
  none for a chart whose validation labels could not rank models) as
  metrics; the manifest and the model as an MLflow pyfunc model
  (:mod:`models.pyfunc`); ``--register NAME`` also registers that model.
- predict: model, data, stride and smoothing at the start; scene count and
  seconds. ``--model models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` predicts
  with a registered model (:func:`model_folder`).
- evaluate: submission and reference at the start; test scores per chart
  and combined (``test_*``); the report folder (CSVs, confusion and map
  PNGs) if one was written.
- importance: its settings, the per-pixel baseline scores and the group
  permutation drops as metrics; the importance CSV, PNGs and summary.
- demo: all of train and evaluate in one run.

The runs of one workflow are linked by content, not by paths: a run that
trains a model tags it with the digest of its model files
(``seaice.model_sha256``, from the manifest's checksums), a predict run tags
the digest of the submission it wrote (``seaice.submission_sha256``). A
predict run then records the training run of its model
(``seaice.train_run_id``: the registered version's run, or the latest run
that trained identical files) and an evaluate run the predict run of its
submission (``seaice.predict_run_id``, and that run's training run).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path

from evaluation.importance import PERM_METRIC, group_table
from models.manifest import Manifest
from scenes import contract as C

log = logging.getLogger(__name__)

INSTALL_HINT = ("--mlflow needs MLflow, which is not installed; install it with "
                "pip install '.[mlflow]'")
#: Experiment used when the environment names none.
EXPERIMENT = "seaice-gbm"
#: Registered-model URIs ``--model`` accepts.
REGISTERED = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/@]+))/?")
#: Tags that link the runs of a workflow (see the module doc).
MODEL_TAG, SUBMISSION_TAG = "seaice.model_sha256", "seaice.submission_sha256"
TRAIN_RUN_TAG, PREDICT_RUN_TAG = "seaice.train_run_id", "seaice.predict_run_id"

#: The run open in this process: its command and the params it has.
_open: dict = {}


class MlflowNotInstalled(RuntimeError):
    """``--mlflow`` was asked for but ``import mlflow`` fails."""


def require_mlflow():
    """The ``mlflow`` module, or :class:`MlflowNotInstalled` with the install line."""
    try:
        import mlflow
    except ImportError:
        raise MlflowNotInstalled(INSTALL_HINT) from None
    return mlflow


def _sqlite_store_installed() -> bool:
    try:
        import alembic  # noqa: F401  (the sqlite store migrates its schema with it)
        import sqlalchemy  # noqa: F401  (mlflow-skinny alone lacks both)
    except ImportError:
        return False
    return True


def default_tracking_uri(cwd=None) -> str:
    """``sqlite:///…/mlflow.db`` in ``cwd`` (as ``mlflow ui`` there reads by default).

    ``file:…/mlruns`` only where the SQLite store cannot be used (a bare
    ``mlflow-skinny``, without SQLAlchemy and Alembic).
    """
    cwd = Path.cwd() if cwd is None else Path(cwd)
    if not _sqlite_store_installed():
        return (cwd / "mlruns").resolve().as_uri()
    return f"sqlite:///{(cwd / 'mlflow.db').resolve()}"


def _is_file_store(uri: str) -> bool:
    return uri.startswith("file:") or "://" not in uri and not uri.startswith(("databricks",))


def configure(mlflow=None) -> str:
    """Set the tracking URI and experiment from the environment (see module doc); return the URI."""
    mlflow = require_mlflow() if mlflow is None else mlflow
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    if _is_file_store(uri):
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            log.warning("MLflow: SQLAlchemy or Alembic is missing, so runs go to the file store "
                        "%s, which MLflow reads only with MLFLOW_ALLOW_FILE_STORE=true; "
                        "pip install '.[mlflow]' for the SQLite store", uri)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    # a progress bar per artifact download buries the command's own output, and so do
    # the lines on creating the SQLite store's tables
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    if not any(os.environ.get(v) for v in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID",
                                            "MLFLOW_RUN_ID")):
        mlflow.set_experiment(EXPERIMENT)
    return uri


@contextlib.contextmanager
def _run(command: str):
    """The MLflow run of ``command``: the one :func:`tracked` opened, else a new one."""
    mlflow = require_mlflow()
    if _open.get("command") == command and mlflow.active_run() is not None:
        yield mlflow
        return
    uri = configure(mlflow)
    resume = bool(os.environ.get("MLFLOW_RUN_ID"))
    with mlflow.start_run(run_name=None if resume else command) as run:
        # a resumed run (mlflow run) already has its entry point's params
        have = set(mlflow.get_run(run.info.run_id).data.params) if resume else set()
        _open.update(command=command, params=have)
        try:
            mlflow.set_tag("seaice.command", command)
            yield mlflow
        finally:
            _open.clear()
    print(f"MLflow: {command} run {run.info.run_id} logged to {uri}")


def _on(args) -> bool:
    return bool(getattr(args, "mlflow", False))


def _value(v):
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, tuple, dict)) else v


def _log_params(mlflow, params: dict) -> None:
    """Log ``params`` but those the run already has (MLflow refuses to change a param)."""
    logged = _open.get("params", set())
    fresh = {k: v for k, v in params.items() if k not in logged}
    if fresh:
        mlflow.log_params(fresh)
        logged.update(fresh)


def _start_params(command: str, args) -> dict:
    """The options of ``command`` logged when its run opens (before any work)."""
    get = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    if command == "train":
        params = {"data": str(get("data")), "out": str(get("out")), "pixels": get("pixels"),
                  "val_fraction": get("val_fraction"), "seed": get("seed"),
                  "device": get("device"), "jobs": get("jobs"),
                  "distributed": bool(get("distributed")), "features": get("features") or "{}"}
        if get("register"):
            params["register"] = get("register")
    elif command == "predict":
        params = {"model": str(get("model")), "data": str(get("data")),
                  "submission": str(get("out")), "stride": get("stride") or "model",
                  "smoothing": not get("no_smoothing"), "jobs": get("jobs")}
    elif command == "evaluate":
        params = {"submission": str(get("submission")), "reference": str(get("reference"))}
    else:
        params = {}
    if get("scheduler"):
        params["scheduler"] = get("scheduler")
    return params


def tracked(command: str):
    """Decorate a command's ``run(args)``: with ``--mlflow``, it runs inside its MLflow run.

    The run opens before the work, with the command's options logged, so a
    command that fails leaves a FAILED run with its parameters; the
    ``log_*`` functions called inside log into that run.
    """
    def wrap(run):
        @functools.wraps(run)
        def inner(args):
            if not _on(args):
                return run(args)
            with _run(command) as mlflow:
                _log_params(mlflow, _start_params(command, args))
                return run(args)
        return inner
    return wrap


class _RegisterOption(argparse.Action):
    """``--register NAME``: implies ``--mlflow``; fails at once, in one line, without MLflow."""

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            require_mlflow()
        except MlflowNotInstalled as exc:
            parser.exit(1, f"error: {exc}\n")
        if not values.strip():
            parser.exit(1, "error: --register needs a model name, e.g. --register seaice\n")
        setattr(namespace, self.dest, values.strip())
        namespace.mlflow = True


def register_option(p) -> None:
    """``--register NAME`` of ``train``: register the logged model in the MLflow Model Registry."""
    p.add_argument("--register", metavar="NAME", action=_RegisterOption, default=None,
                   help="also register the model in the MLflow Model Registry under NAME (a new "
                        "version each run; implies --mlflow); predict with --model "
                        "models:/NAME/VERSION")


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
    if tr.validation_fallbacks:
        params["validation_fallbacks"] = _value(tr.validation_fallbacks)
    st = manifest.stage2
    params["stage2.system"] = st.system if st is not None else "none"
    if st is not None:
        params.update({f"stage2.rounds.{c}": r for c, r in st.rounds.items()})
        params.update({f"stage2.spec.{k}": _value(v) for k, v in st.spec.items()})
    return params


def validation_metrics(manifest: Manifest) -> dict:
    """``val_{chart}`` (the chosen, smoothed system) and ``val_unsmoothed_{chart}`` scores.

    A chart whose validation labels could not rank models has none, and
    then neither has the combined score: those numbers measure nothing.
    """
    scores = manifest.validation or {}
    skip = set(manifest.training.validation_fallbacks)
    if skip:
        skip.add("combined")
    out = {}
    for kind, prefix in (("smoothed", "val_"), ("unsmoothed", "val_unsmoothed_")):
        for k in (*C.LABEL_CHARTS, "combined"):
            if k in scores.get(kind, {}) and k not in skip:
                out[f"{prefix}{k}"] = float(scores[kind][k])
    # each candidate system on the selection scenes of the second stage
    st = manifest.stage2
    for system, sc in (st.selection.get("scores", {}) if st is not None else {}).items():
        name = system.replace("+", "_")
        out.update({f"selection_{name}_{k}": float(v) for k, v in sc.items()})
    return out


def model_digest(manifest: Manifest) -> str | None:
    """Digest of a model's files, from the manifest's checksums (None for a format-1 model)."""
    if not manifest.checksummed:
        return None
    files = sorted(manifest.files.items())
    if manifest.stage2 is not None and manifest.stage2.files:
        files += sorted((f"{c}_stage2", f) for c, f in manifest.stage2.files.items())
    text = "\n".join(f"{c} {f.sha256}" for c, f in files)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path) -> str:
    """SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _find_run(mlflow, tag: str, value: str):
    """The latest run (other than the active one) tagged ``tag = value``, or None."""
    client = mlflow.MlflowClient()
    ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        return None
    active = mlflow.active_run()
    runs = client.search_runs(ids, filter_string=f"tags.`{tag}` = '{value}'",
                              order_by=["attributes.start_time DESC"], max_results=5)
    return next((r for r in runs if active is None or r.info.run_id != active.info.run_id),
                None)


def _log_model_dir(mlflow, model_dir, manifest, register=None):
    from mlflow.exceptions import MlflowException

    from models.pyfunc import log_model  # imports mlflow: only with --mlflow

    _log_params(mlflow, model_params(manifest))
    mlflow.log_metrics(validation_metrics(manifest))
    digest = model_digest(manifest)
    if digest:
        mlflow.set_tag(MODEL_TAG, digest)
    mlflow.log_artifact(str(Path(model_dir) / "manifest.json"))
    try:
        info = log_model(model_dir, registered_model_name=register)
    except MlflowException as exc:
        if register is None:
            raise
        msg = " ".join(str(exc.message).split())
        raise ValueError(f"--register {register}: the Model Registry refused it ({msg}); "
                         "choose another name") from None
    if register:
        version = info.registered_model_version
        print(f"MLflow: registered model {register} version {version}; predict with "
              f"--model models:/{register}/{version}")
    return info


def _test_metrics(result: dict) -> dict:
    return {f"test_{k}": float(v) for k, v in result["scores"].items()}


def log_train(args, model_dir, manifest: Manifest) -> None:
    """Log a training run: params, validation metrics, manifest, pyfunc model (registered)."""
    if not _on(args):
        return
    with _run("train") as mlflow:
        _log_params(mlflow, {"data": str(args.data)})
        _log_model_dir(mlflow, model_dir, manifest, register=getattr(args, "register", None))


# --- registered models ---------------------------------------------------------------------
def _registered_version(mlflow, uri: str):
    """The model version a ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` URI names."""
    from mlflow.exceptions import MlflowException

    m = REGISTERED.fullmatch(uri)
    if m is None:
        raise ValueError(f"--model {uri}: not a registered-model URI; give models:/NAME/VERSION "
                         "or models:/NAME@ALIAS (or a model folder)")
    client = mlflow.MlflowClient()
    try:
        if m["version"]:
            return client.get_model_version(m["name"], m["version"])
        return client.get_model_version_by_alias(m["name"], m["alias"])
    except MlflowException as exc:
        msg = " ".join(str(exc.message).split())
        raise ValueError(f"--model {uri}: not in the Model Registry at "
                         f"{mlflow.get_tracking_uri()} ({msg}); check the name and version, or "
                         "set MLFLOW_TRACKING_URI to the store it was registered in") from None


@contextlib.contextmanager
def model_folder(args):
    """The model folder of ``--model``: the folder itself, or a registered model's.

    For ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` the model is
    looked up in the Model Registry (needs MLflow; the store as for
    ``--mlflow``), its model folder downloaded to a temporary folder that is
    removed when the block ends; ``args.model_run_id`` is set to the run
    that logged it.
    """
    model = str(args.model)
    if not model.startswith("models:/"):
        yield Path(model)
        return
    mlflow = require_mlflow()
    from models.pyfunc import download_model_dir  # imports mlflow

    configure(mlflow)
    version = _registered_version(mlflow, model)
    with tempfile.TemporaryDirectory(prefix="seaice-model-") as tmp:
        folder = download_model_dir(f"models:/{version.name}/{version.version}", tmp)
        args.model_run_id = version.run_id
        log.info("%s: version %s of %s, logged by run %s", model, version.version, version.name,
                 version.run_id)
        yield folder


def log_predict(args, result: dict, model_dir=None) -> None:
    """Log a prediction run: scene count and timing, manifest, links to the training run."""
    if not _on(args):
        return
    with _run("predict") as mlflow:
        _log_params(mlflow, _start_params("predict", args))
        seconds = list(result["seconds"].values())
        mlflow.log_metrics({"n_scenes": len(result["scenes"]),
                            "predict_seconds_total": float(sum(seconds)),
                            "predict_seconds_per_scene": float(sum(seconds) / max(len(seconds), 1))})
        manifest_path = Path(model_dir or args.model) / "manifest.json"
        train_run = getattr(args, "model_run_id", None)
        if manifest_path.is_file():
            mlflow.log_artifact(str(manifest_path))
            digest = model_digest(Manifest.from_dict(json.loads(manifest_path.read_text()),
                                                     source=str(manifest_path)))
            if digest:
                _log_params(mlflow, {"model_sha256": digest})
                if train_run is None:
                    found = _find_run(mlflow, MODEL_TAG, digest)
                    train_run = found.info.run_id if found else None
        if train_run:
            mlflow.set_tag(TRAIN_RUN_TAG, train_run)
        out = Path(result["out"])
        if out.is_file():
            mlflow.set_tag(SUBMISSION_TAG, file_digest(out))


def log_evaluate(args, result: dict) -> None:
    """Log an evaluation run: test scores, the report folder, the submission's predict run."""
    if not _on(args):
        return
    with _run("evaluate") as mlflow:
        _log_params(mlflow, _start_params("evaluate", args))
        mlflow.log_metrics(_test_metrics(result))
        found = None
        if Path(args.submission).is_file():
            digest = file_digest(args.submission)
            _log_params(mlflow, {"submission_sha256": digest})
            found = _find_run(mlflow, SUBMISSION_TAG, digest)
        if found is not None:
            mlflow.set_tag(PREDICT_RUN_TAG, found.info.run_id)
            if TRAIN_RUN_TAG in found.data.tags:
                mlflow.set_tag(TRAIN_RUN_TAG, found.data.tags[TRAIN_RUN_TAG])
        if getattr(args, "report", None):
            mlflow.log_artifacts(str(args.report), "report")


def log_importance(args, result, paths: dict) -> None:
    """Log an importance run: settings, baseline and permutation metrics, CSV/PNG/summary."""
    if not _on(args):
        return
    with _run("importance") as mlflow:
        _log_params(mlflow, {"model": str(args.model), "data": str(args.data),
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
        _log_params(mlflow, {"demo.train": args.train, "demo.test": args.test,
                             "demo.size": _value(args.size)})
        _log_model_dir(mlflow, model_dir, manifest)
        mlflow.log_metrics(_test_metrics(result))
        mlflow.log_artifacts(str(report_dir), "report")
