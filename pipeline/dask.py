"""Per-scene work on a Dask cluster, and LightGBM trained across it (optional: ``.[dask]``).

``--scheduler ADDRESS`` connects to a running ``dask.distributed`` scheduler
(``tcp://host:8786``); ``--scheduler local[:N]`` starts a
:class:`distributed.LocalCluster` of N worker processes (default: one per
core), each with ``cores // N`` threads and running one scene at a time on
them (the :data:`SCENE_RESOURCE`). Scenes are submitted in order (earlier
scenes first), progress is reported as they finish, and results are consumed
in scene order, so the output does not depend on which worker ran what.

A remote cluster's workers need this package installed and the scene files,
the model folder and the cache folder at the same paths as this machine (a
shared file system). Start them with ``dask worker ADDRESS --nthreads K
--resources scene=1`` to run one scene at a time on K threads (otherwise
each thread runs its own scene on one core); unsetting Dask's
``MALLOC_TRIM_THRESHOLD_=65536`` (as ``local:N`` does) made featurizing 35 %
faster.

:class:`DaskTrainingSet` keeps each scene's sampled pixels on the worker that
drew them and trains with :mod:`lightgbm.dask` (data-parallel), for training
sets that do not fit one machine. LightGBM's Dask estimators have no early
stopping: all ``n_estimators`` rounds are trained, then the round early
stopping would have kept (patience ``early_stopping_rounds``, at least
``min_rounds``) is chosen on the validation set, as the local fit does.
"""
from __future__ import annotations

import copy
import logging
import sys
import warnings
from contextlib import contextmanager

import numba
import numpy as np

from featurize import feature_names
from models.estimator import IceClassifier, available_cores, lgb_feature_names
from models.sampling import pixels_per_scene, sample_scene, sampling_cache_config
from scenes import contract as C

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install '.[dask]'"
#: Worker resource of one scene at a time: a worker that has it (``local:N``
#: gives it to its workers; ``dask worker --resources scene=1``) runs one scene
#: at a time on all its threads, others run one scene per thread.
SCENE_RESOURCE = "scene"


class DaskNotInstalled(RuntimeError):
    """``--scheduler`` was given but dask.distributed is not importable."""


def require_dask() -> None:
    """Raise :class:`DaskNotInstalled` (one line, with the install command) without Dask."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise DaskNotInstalled("--scheduler needs Dask, which is not installed: "
                               f"{INSTALL_HINT}") from None


def parse_scheduler(spec: str):
    """``("local", n_workers or None)`` for ``local[:N]``, else ``("address", spec)``."""
    spec = str(spec).strip()
    if spec == "local" or spec.startswith("local:"):
        n = spec.partition(":")[2]
        if n == "":
            return "local", None
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--scheduler {spec}: expected local or local:N with N >= 1 workers")
        return "local", int(n)
    if not spec:
        raise ValueError("--scheduler needs an address (tcp://host:8786) or local[:N]")
    return "address", spec


@contextmanager
def dask_client(spec: str, *, processes: bool = True, timeout: str = "20s"):
    """A :class:`distributed.Client` for ``spec`` (see :func:`parse_scheduler`), closed on exit.

    ``local:N`` starts N workers with ``cores // N`` threads each (at least 1)
    that run one scene at a time (:data:`SCENE_RESOURCE`) and stops them on
    exit; an address is given ``timeout`` to answer.
    """
    require_dask()
    import dask
    from distributed import Client, LocalCluster

    kind, arg = parse_scheduler(spec)
    cluster = None
    if kind == "local":
        n = arg or available_cores()
        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers; with it,
        # featurizing (large short-lived arrays) was 35 % slower than in a plain process.
        environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
                   if k != "MALLOC_TRIM_THRESHOLD_"}
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=max(1, available_cores() // n),
                                   processes=processes, dashboard_address=None,
                                   silence_logs=logging.ERROR, resources={SCENE_RESOURCE: 1})
        client = Client(cluster)
    else:
        try:
            client = Client(arg, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            msg = " ".join(str(exc).split())[:200]
            raise RuntimeError(f"cannot reach the Dask scheduler at {arg} ({msg}); start one "
                               "with `dask scheduler` and workers with `dask worker ADDRESS`, "
                               "or use --scheduler local:N") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def limit_worker_threads() -> None:
    """On a Dask worker, give this task's numba the threads that are its share (no-op elsewhere).

    All the worker's threads with :data:`SCENE_RESOURCE` (one scene at a
    time), else one (the worker runs a scene per thread).
    """
    if "distributed" not in sys.modules:
        return  # not on a Dask worker (and importing distributed costs half a second)
    try:
        from distributed import get_worker
        state = get_worker().state
    except (ImportError, ValueError, AttributeError):
        return
    n = int(state.nthreads) if state.total_resources.get(SCENE_RESOURCE) else 1
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def submit_scenes(client, task, items):
    """Submit ``task(*item)`` per item, earlier items first; return the futures (in order).

    When every worker has :data:`SCENE_RESOURCE`, each task takes one.
    """
    workers = client.scheduler_info()["workers"].values()
    one_scene = bool(workers) and all((w.get("resources") or {}).get(SCENE_RESOURCE)
                                      for w in workers)
    extra = {"resources": {SCENE_RESOURCE: 1}} if one_scene else {}
    n = len(items)
    return [client.submit(task, *item, pure=False, priority=n - i, **extra)
            for i, item in enumerate(items)]


def _raise_failure(fut) -> None:
    """Raise the failed task's exception; a dead worker as one line with a fix."""
    from distributed import KilledWorker

    try:
        fut.result()
    except KilledWorker as exc:
        raise RuntimeError(f"Dask workers died while running a scene ({exc}); they may have run "
                           "out of memory: use fewer workers per machine or more memory each") \
            from None


def iter_ordered(client, futures, *, done=None):
    """Results of ``futures`` in their order, fetched as soon as they and all before are done.

    ``done()`` is called as each future finishes (in any order); a failed
    future raises at once and cancels the rest.
    """
    from distributed import as_completed

    index = {f.key: i for i, f in enumerate(futures)}
    finished = [False] * len(futures)
    nxt = 0
    try:
        for fut in as_completed(futures):
            if fut.status == "error":
                _raise_failure(fut)
            finished[index[fut.key]] = True
            if done is not None:
                done()
            while nxt < len(futures) and finished[nxt]:
                result = futures[nxt].result()
                futures[nxt] = None  # let the cluster forget it
                nxt += 1
                yield result
    finally:
        rest = [f for f in futures if f is not None]
        if rest:
            client.cancel(rest)


def wait_all(client, futures, *, done=None) -> None:
    """Wait for ``futures`` (results stay on the workers), raising the first failure."""
    from distributed import as_completed

    for fut in as_completed(futures):
        if fut.status == "error":
            client.cancel(futures)
            _raise_failure(fut)
        if done is not None:
            done()


# --- training across the cluster ------------------------------------------------
def _part_stats(part, chart, k):
    """Labelled rows, weight sum and weighted class counts of ``chart`` in one scene's sample."""
    y = part["y"][chart]
    rows = y != C.MASK_VALUE
    w = part["weight"][chart][rows].astype(np.float64)
    return int(rows.sum()), float(w.sum()), np.bincount(y[rows], weights=w, minlength=k)[:k]


def _part_n_rows(part):
    return len(part["X"]), {c: int((part["y"][c] != C.MASK_VALUE).sum()) for c in C.LABEL_CHARTS}


def _chart_part(part, chart, scale, factors, what):
    """``X``, ``y`` (float64) or final weights of one scene's labelled ``chart`` rows."""
    y = part["y"][chart]
    rows = y != C.MASK_VALUE
    if what == "X":
        return np.ascontiguousarray(part["X"][rows])
    yc = y[rows]
    if what == "y":
        return yc.astype(np.float64)
    w = part["weight"][chart][rows].astype(np.float64) * scale
    return w * factors[yc] if factors is not None else w


def _sklearn_params(params: dict) -> dict:
    """Our LightGBM parameters in :class:`lightgbm.LGBMModel` terms (threads left to Dask)."""
    rename = {"min_data_in_leaf": "min_child_samples", "bagging_fraction": "subsample",
              "bagging_freq": "subsample_freq", "feature_fraction": "colsample_bytree",
              "lambda_l2": "reg_lambda", "seed": "random_state"}
    out = {rename.get(k, k): v for k, v in params.items() if k != "num_threads"}
    return out


class DaskTrainingSet:
    """Sampled pixels kept on the workers, one part per scene (see :mod:`models.sampling`).

    Build with :meth:`sample`; :meth:`fit` trains an
    :class:`~models.estimator.IceClassifier` / :class:`~models.estimator.IceRegressor`
    spec with :mod:`lightgbm.dask` on the parts, and keeps the round that
    :meth:`~models.estimator.IceClassifier.select_round` picks (the local fit's rule).
    """

    def __init__(self, client, parts, scene_keys, feature_names):
        self.client = client
        self.parts = parts
        self.scene_keys = list(scene_keys)
        self.feature_names = list(feature_names)
        sizes = client.gather(client.map(_part_n_rows, parts, pure=False))
        self._sizes = [s[0] for s in sizes]
        self._labelled = {c: [s[1][c] for s in sizes] for c in C.LABEL_CHARTS}

    def __len__(self):
        return int(sum(self._sizes))

    def n_rows(self, chart: str) -> int:
        """Rows where ``chart`` is labelled."""
        return int(sum(self._labelled[chart]))

    @classmethod
    def sample(cls, runner, scenes, *, config, n_pixels: int, seed: int):
        """Draw and featurize each scene's pixels on the cluster (as ``build_training_set``)."""
        scenes = list(scenes)
        n_max = pixels_per_scene(n_pixels, len(scenes))
        done = runner.submit(sample_scene, scenes, task="sample", desc="sampling scenes",
                             cache_config=sampling_cache_config(config, seed, n_max),
                             kwargs=dict(n_max=n_max, seed=seed, config=config))
        if not done:
            raise ValueError("every training scene was skipped as bad input; nothing to train on")
        keys = [p.name[: C.KEY_LENGTH] for p, _ in done]
        return cls(runner.client, [f for _, f in done], keys, feature_names(config))

    def _chart_arrays(self, chart, scale, factors):
        import dask.array as da

        keep = [i for i, n in enumerate(self._labelled[chart]) if n]
        F = len(self.feature_names)
        # Deal the scenes' parts round-robin over the workers: lightgbm.dask trains
        # on the workers that hold data, and scene sampling may have left every
        # part on one of them (then it silently trains serially, on one machine).
        workers = sorted(self.client.scheduler_info()["workers"])
        home = {i: [workers[j % len(workers)]] for j, i in enumerate(keep)}
        out = []
        for what in ("X", "y", "w"):
            futs = [self.client.submit(_chart_part, self.parts[i], chart, scale, factors, what,
                                       workers=home[i], allow_other_workers=False, pure=False)
                    for i in keep]
            n = [self._labelled[chart][i] for i in keep]
            shape = [(m, F) if what == "X" else (m,) for m in n]
            dtype = np.float32 if what == "X" else np.float64
            out.append(da.concatenate([da.from_delayed(f, shape=s, dtype=dtype)
                                       for f, s in zip(futs, shape)]))
        return out

    def fit(self, est, chart: str, eval_set=None, label: str = ""):
        """Fit a copy of ``est`` on the labelled ``chart`` rows across the cluster.

        Same weights as the local path (population weights scaled to mean 1,
        times the classifier's class weights), same feature order and seeds;
        the booster is data-parallel, so it differs from a local fit.

        Returns
        -------
        A fitted estimator of ``est``'s class (loadable and saved like a local one).
        """
        from lightgbm.dask import DaskLGBMRegressor

        k = C.N_CLASSES[chart]
        stats = self.client.gather(self.client.map(_part_stats, self.parts, chart=chart, k=k,
                                                   pure=False))
        n = sum(s[0] for s in stats)
        if n == 0:
            raise ValueError(f"no labelled {chart} pixels among the training samples; "
                             f"train on scenes whose {chart} chart is not all masked (255)")
        scale = n / sum(s[1] for s in stats)  # weights to mean 1, as the local _fit does
        est = copy.deepcopy(est)
        params = est._lgb_params()
        factors = None
        if isinstance(est, IceClassifier):
            freq = np.sum([s[2] for s in stats], axis=0) * scale
            est._fit_prepare(np.arange(k), freq)  # bincount(arange(k), freq) == freq
            factors = est.class_weight_factors_
        X, y, w = self._chart_arrays(chart, scale, factors)
        model = DaskLGBMRegressor(client=self.client, n_estimators=int(est.n_estimators),
                                  **_sklearn_params(params))
        with warnings.catch_warnings():
            # lightgbm.dask sets each worker's threads itself and warns about ours.
            warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
            model.fit(X, y, sample_weight=w, feature_name=lgb_feature_names(self.feature_names))
        booster = model.booster_
        fitted = type(est).from_booster(booster, self.feature_names, **est.get_params())
        if factors is not None:
            fitted.class_weight_factors_ = factors
        fitted.evals_result_ = {}
        if eval_set is not None and len(eval_set[1]) and est.early_stopping_rounds:
            # The eval set is unweighted, as in the local fit (it stands for the scored pixels).
            fitted.select_round(eval_set[0], eval_set[1])
        log.info("%s: %d rows on %d parts (lightgbm.dask), best round %d", label, n,
                 len(self.parts), fitted.best_iteration_)
        return fitted
