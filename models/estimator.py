"""LightGBM estimators of the three ice charts, sklearn-style.

:class:`IceClassifier` (multiclass, all ``n_classes`` of the contract even
when a small sample lacks some) serves SOD, FLOE and the classification
variant of SIC; :class:`IceRegressor` (L2 on the class index, clipped to the
class range) serves SIC as regression, the way the challenge winner treated it.

Both wrap :func:`lightgbm.train` directly, for full control of the seeds
(``deterministic=True``, ``force_row_wise=True``, a fixed thread count: the
same seed and data give the same booster), early stopping on an eval set and
the device. ``device="gpu"`` uses LightGBM's OpenCL learner; when no such
device exists, :class:`GPUUnavailableError` is raised with a one-line message.
"""
from __future__ import annotations

import os
import re

import lightgbm as lgb
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import NotFittedError
from tqdm.auto import tqdm

from scenes.contract import N_CLASSES

from .forest import Forest

DEVICES = ("cpu", "gpu")

#: The one table of default LightGBM settings: the estimators' defaults and
#: what training uses unless told otherwise. Strongly regularised (large
#: leaves, half the features per tree): pixels of one chart polygon are
#: near-copies, so a training set of millions of pixels holds only some
#: hundreds of independent samples, and small leaves learn single polygons
#: and scenes. On three development datasets this raised the held-out
#: combined score ("full system, every pixel" of
#: ``benchmarks/bench_baseline.py --seed 11 12 13 --n-pixels 500000``) from
#: 62.9 / 91.7 / 85.2 to 76.0 / 90.1 / 91.1, mean 79.9 -> 85.8, against
#: num_leaves 63, min_child_samples 1000, colsample_bytree 0.8 before
#: (``--params`` gives those back), and halved training time.
DEFAULT_PARAMS = dict(n_estimators=300, learning_rate=0.1, num_leaves=31, max_depth=-1,
                      min_child_samples=20_000, subsample=0.3, colsample_bytree=0.5,
                      reg_lambda=1.0, max_bin=63, early_stopping_rounds=20, min_rounds=40)
#: Small samples get smaller leaves: at most this share of the requested
#: training pixels per leaf (20 k is 1/25 of 500 k), unless the caller sets
#: min_child_samples; otherwise a 30 k-pixel trial run could not split at all.
MIN_LEAF_SHARE = 1 / 25
_D = DEFAULT_PARAMS
#: Words in LightGBM's messages when a GPU learner cannot start.
_GPU_ERROR_WORDS = ("opencl", "gpu", "cuda", "boost.compute", "device")


class GPUUnavailableError(RuntimeError):
    """``device="gpu"`` was asked for but LightGBM found no usable GPU."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_n_jobs(n_jobs) -> int:
    """Concrete thread count: None or -1 mean every core this process may use."""
    n_cpu = available_cores()
    if n_jobs is None:
        return n_cpu
    n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs must be a positive count or negative (-1 = all cores), got 0")
    return n_jobs if n_jobs > 0 else max(1, n_cpu + 1 + n_jobs)


def check_device(device: str) -> None:
    """Fail fast: fit a 2-round model on ``device``; :class:`GPUUnavailableError` if it cannot.

    Lets a long training run stop before its pixels are sampled rather than after.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    IceRegressor(2, device=device, n_estimators=2, min_child_samples=5, n_jobs=1).fit(
        X, (X[:, 0] > 0).astype(float))


def lgb_feature_names(names):
    """Feature names LightGBM accepts (it rejects JSON special characters)."""
    return [re.sub(r"[^0-9A-Za-z_]", "_", str(n)) for n in names]


def _as_X(X, n_features=None, what="X"):
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) and X.dtype != bool:
        raise ValueError(f"{what} must be numeric, got dtype {X.dtype}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{what} has {X.shape[1]} features but the model was fitted "
                         f"with {n_features}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float32)
    return X


def _as_weight(w, n, what):
    if w is None:
        return None
    w = np.asarray(w, dtype=np.float64).ravel()
    if w.shape != (n,):
        raise ValueError(f"{what} has {w.size} values for {n} samples")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{what} must be finite and >= 0")
    return w


def best_round(curve, patience: int, min_rounds: int = 1) -> int:
    """The round early stopping keeps, from eval scores after each round (lower is better).

    The best round from ``min_rounds`` on, scanning until ``patience`` rounds
    pass without a better one; 0 if the curve is shorter than ``min_rounds``.
    The one rule of every fit: the local callback applies it round by round,
    a fit without callbacks (``lightgbm.dask``) to the whole curve afterwards.
    """
    best, best_score = 0, np.inf
    for r, score in enumerate(curve, start=1):
        if r >= min_rounds and (best == 0 or score < best_score):
            best, best_score = r, score
        if best and r - best >= max(1, patience):
            break
    return best


def eval_curve(booster, X, y, metric: str, weight=None) -> list:
    """Eval-set score after each round (lower is better), in one pass over the trees.

    ``metric`` is LightGBM's name: ``multi_logloss``, ``multi_error`` or ``l2``.
    """
    y = np.asarray(y)
    w = np.ones(len(y)) if weight is None else np.asarray(weight, np.float64)
    rows = np.arange(len(y))
    raw, curve = None, []
    for i in range(booster.current_iteration()):
        step = booster.predict(X, raw_score=True, start_iteration=i, num_iteration=1)
        raw = step if raw is None else raw + step
        if metric == "multi_logloss":
            z = raw.reshape(len(y), -1)
            z = z - z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            loss = -logp[rows, y.astype(np.int64)]
        elif metric == "multi_error":
            loss = (raw.reshape(len(y), -1).argmax(axis=1) != y).astype(np.float64)
        elif metric == "l2":
            loss = (raw - y) ** 2
        else:
            raise ValueError(f"no round selection for eval metric {metric!r}; use "
                             "multi_logloss, multi_error or l2")
        curve.append(float((w * loss).sum() / w.sum()))
    return curve


class _EarlyStopping:
    """LightGBM callback applying :func:`best_round` after every round."""

    order = 30  # after lightgbm.record_evaluation

    def __init__(self, patience: int, min_rounds: int):
        self.patience = max(1, patience)
        self.min_rounds = max(1, min_rounds)
        self.curve, self.results = [], []
        self.best_round = 0

    def __call__(self, env):
        if not env.evaluation_result_list:
            return
        result = env.evaluation_result_list[0]
        # (name, metric, value, higher_better); the rule wants lower-is-better
        self.curve.append(-result[2] if result[3] else result[2])
        self.results.append(list(env.evaluation_result_list))
        self.best_round = best_round(self.curve, self.patience, self.min_rounds)
        if self.best_round and len(self.curve) - self.best_round >= self.patience:
            raise lgb.callback.EarlyStopException(self.best_round - 1,
                                                  self.results[self.best_round - 1])


class _RoundProgress:
    """LightGBM callback advancing a progress bar by one boosting round.

    A fit of a large sample runs for minutes; without it the run showed no
    sign of life between models.
    """

    order = 10  # before early stopping, which may end the fit in its round

    def __init__(self, bar):
        self.bar = bar

    def __call__(self, env):
        self.bar.update(1)


class _LGBMBase(BaseEstimator):
    """Shared parameters, training and prediction of the two estimators.

    Defaults are :data:`DEFAULT_PARAMS`.

    Parameters
    ----------
    n_estimators : int
        Most boosting rounds (early stopping may keep fewer).
    learning_rate : float
    num_leaves : int
    max_depth : int
        -1 for no limit.
    min_child_samples : int
        Fewest samples in a leaf; large, because neighbouring pixels of one
        chart polygon are far from independent samples.
    subsample : float
        Row fraction drawn for each tree (bagging); also the main lever on
        training time.
    colsample_bytree : float
        Feature fraction per tree.
    reg_lambda : float
        L2 penalty on leaf values.
    max_bin : int
        Histogram bins per feature.
    early_stopping_rounds : int or None
        Rounds without improvement on the eval set before stopping; only
        used when ``fit`` gets an ``eval_set``.
    min_rounds : int
        Rounds always kept: the best round is sought from here on. Held-out
        scenes differ from the training scenes as whole scenes, so their
        loss can rise after a handful of rounds while the decisions still
        improve; this floor stops such a set from cutting training to 1 round.
    eval_metric : str or None
        LightGBM metric of the eval set (default: the objective's loss).
    random_state : int
        Seed of LightGBM's bagging and feature sampling.
    n_jobs : int or None
        Threads; None or -1 for all cores. Results are reproducible for the
        same thread count.
    device : {"cpu", "gpu"}
        ``"gpu"`` trains with LightGBM's OpenCL learner.
    """

    _objective = None
    _metric = None

    def __init__(self, *, n_estimators=_D["n_estimators"], learning_rate=_D["learning_rate"],
                 num_leaves=_D["num_leaves"], max_depth=_D["max_depth"],
                 min_child_samples=_D["min_child_samples"], subsample=_D["subsample"],
                 colsample_bytree=_D["colsample_bytree"], reg_lambda=_D["reg_lambda"],
                 max_bin=_D["max_bin"], early_stopping_rounds=_D["early_stopping_rounds"],
                 min_rounds=_D["min_rounds"], eval_metric=None, random_state=0, n_jobs=None,
                 device="cpu"):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.max_bin = max_bin
        self.early_stopping_rounds = early_stopping_rounds
        self.min_rounds = min_rounds
        self.eval_metric = eval_metric
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.device = device

    # --- hooks of the subclasses ------------------------------------------------
    def _check_y(self, y, what):
        raise NotImplementedError

    def _extra_params(self):
        return {}

    def _weights(self, y, w):
        """Training weights (the classifier adds class weights here)."""
        return w

    # --- fitting ------------------------------------------------------------------
    def _lgb_params(self):
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if int(self.n_estimators) < 1:
            raise ValueError(f"n_estimators must be >= 1, got {self.n_estimators}")
        if not 0 < float(self.subsample) <= 1 or not 0 < float(self.colsample_bytree) <= 1:
            raise ValueError("subsample and colsample_bytree must be in (0, 1]")
        seed = int(self.random_state)
        params = {
            "objective": self._objective,
            "metric": self.eval_metric or self._metric,
            "learning_rate": float(self.learning_rate),
            "num_leaves": int(self.num_leaves),
            "max_depth": int(self.max_depth),
            "min_data_in_leaf": int(self.min_child_samples),
            "bagging_fraction": float(self.subsample),
            "bagging_freq": 1 if float(self.subsample) < 1 else 0,
            "feature_fraction": float(self.colsample_bytree),
            "lambda_l2": float(self.reg_lambda),
            "max_bin": int(self.max_bin),
            "seed": seed,
            "bagging_seed": seed + 1,
            "feature_fraction_seed": seed + 2,
            "data_random_seed": seed + 3,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": resolve_n_jobs(self.n_jobs),
            "device_type": self.device,
            "verbose": -1,
        }
        if self.device == "gpu":
            # The OpenCL learner's single precision would break determinism.
            params["gpu_use_dp"] = True
        params.update(self._extra_params())
        return params

    def fit(self, X, y, *, eval_set=None, sample_weight=None, feature_names=None,
            progress=False):
        """Fit on ``X`` (n_samples, n_features), NaN allowed (missing).

        Parameters
        ----------
        X : array (n_samples, n_features)
        y : array (n_samples,)
        eval_set : tuple or list of tuples, optional
            ``(X_val, y_val)`` or ``(X_val, y_val, w_val)``; the first is used
            for early stopping.
        sample_weight : array (n_samples,), optional
        feature_names : list of str, optional
            Stored as ``feature_names_in_`` (default ``x0, x1, ...``).
        progress : bool or str
            Show a progress bar of the boosting rounds (a string labels it);
            it does not change the model.

        Returns
        -------
        self
        """
        X = _as_X(X)
        n, f = X.shape
        if n == 0:
            raise ValueError("X has no samples; train on at least one labelled pixel")
        y = self._check_y(y, "y")
        if y.shape != (n,):
            raise ValueError(f"y has {y.size} values for {n} samples")
        if feature_names is None:
            feature_names = [f"x{i}" for i in range(f)]
        feature_names = [str(s) for s in feature_names]
        if len(feature_names) != f:
            raise ValueError(f"{len(feature_names)} feature_names for {f} features")
        w = _as_weight(sample_weight, n, "sample_weight")
        params = self._lgb_params()
        self._fit_prepare(y, w)
        names = lgb_feature_names(feature_names)
        train = lgb.Dataset(X, label=y, weight=self._weights(y, w), feature_name=names,
                            params={"max_bin": params["max_bin"], "verbose": -1},
                            free_raw_data=True)
        valid_sets, callbacks, stopper = [], [], None
        self.evals_result_ = {}
        if eval_set is not None:
            if isinstance(eval_set, tuple):
                eval_set = [eval_set]
            for i, item in enumerate(eval_set):
                if len(item) not in (2, 3):
                    raise ValueError("eval_set items must be (X, y) or (X, y, weight)")
                Xv = _as_X(item[0], f, f"eval_set[{i}] X")
                yv = self._check_y(item[1], f"eval_set[{i}] y")
                if yv.shape != (Xv.shape[0],):
                    raise ValueError(f"eval_set[{i}] y has {yv.size} values for "
                                     f"{Xv.shape[0]} samples")
                wv = _as_weight(item[2] if len(item) == 3 else None, Xv.shape[0],
                                f"eval_set[{i}] weight")
                # No class weights here: the eval set stands for the pooled
                # pixels the challenge scores.
                valid_sets.append(lgb.Dataset(Xv, label=yv, weight=wv, reference=train,
                                              free_raw_data=True))
            callbacks.append(lgb.record_evaluation(self.evals_result_))
            if self.early_stopping_rounds:
                stopper = _EarlyStopping(int(self.early_stopping_rounds), int(self.min_rounds))
                callbacks.append(stopper)
        bar = None
        if progress:
            bar = tqdm(total=int(self.n_estimators), unit="round", leave=False,
                       desc=progress if isinstance(progress, str) else type(self).__name__)
            callbacks.append(_RoundProgress(bar))
        try:
            booster = lgb.train(params, train, num_boost_round=int(self.n_estimators),
                                valid_sets=valid_sets or None,
                                valid_names=[f"eval{i}" for i in range(len(valid_sets))] or None,
                                callbacks=callbacks)
        except lgb.basic.LightGBMError as e:
            msg = " ".join(str(e).split())
            if self.device == "gpu" and any(k in msg.lower() for k in _GPU_ERROR_WORDS):
                raise GPUUnavailableError(
                    f"the GPU device failed: LightGBM says '{msg}'; train on the CPU "
                    "(--device cpu), or install an OpenCL GPU driver and a GPU-enabled "
                    "LightGBM") from None
            raise
        finally:
            if bar is not None:
                bar.close()
        self._set_fitted(booster, feature_names)
        if stopper is not None and stopper.best_round:
            self.best_iteration_ = stopper.best_round
        return self

    def select_round(self, X, y, weight=None) -> int:
        """Keep the round :func:`best_round` picks on ``(X, y)`` after a fit without callbacks.

        For fits that cannot stop early themselves (``lightgbm.dask``): all
        rounds are trained, then the same rule as the local callback chooses.
        Sets and returns ``best_iteration_``; records the curve in ``evals_result_``.
        """
        self._check_fitted()
        metric = self._lgb_params()["metric"]
        curve = eval_curve(self.booster_, _as_X(X, self.n_features_in_), y, metric, weight)
        best = best_round(curve, int(self.early_stopping_rounds), int(self.min_rounds or 1))
        if best:
            self.best_iteration_ = best
        self.evals_result_ = {"eval0": {metric: curve}}
        return self.best_iteration_

    def _fit_prepare(self, y, w):
        pass

    def _set_fitted(self, booster, feature_names):
        self.booster_ = booster
        self.best_iteration_ = booster.current_iteration()
        self.n_features_in_ = booster.num_feature()
        self.feature_names_in_ = np.asarray(feature_names, dtype=object)

    @classmethod
    def from_booster(cls, booster, feature_names, **params):
        """A fitted estimator around a loaded booster (all its iterations)."""
        est = cls(**params)
        if booster.num_feature() != len(feature_names):
            raise ValueError(f"booster has {booster.num_feature()} features but "
                             f"{len(feature_names)} feature names were given")
        est._from_booster(booster)
        est._set_fitted(booster, [str(s) for s in feature_names])
        est.best_iteration_ = booster.current_iteration()
        return est

    def _from_booster(self, booster):
        pass

    # --- prediction -----------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "booster_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _raw_predict(self, X):
        self._check_fitted()
        X = _as_X(X, self.n_features_in_)
        if X.shape[0] == 0:
            return None
        forest = self._forest()
        if forest is not None:
            return forest.predict(X, resolve_n_jobs(self.n_jobs))
        return self.booster_.predict(X, num_iteration=self.best_iteration_,
                                     num_threads=resolve_n_jobs(self.n_jobs))

    def _forest(self):
        """The booster's trees up to ``best_iteration_`` as a :class:`~models.forest.Forest`.

        Built on first use and kept while ``best_iteration_`` stays; None when
        the model is not one it handles (LightGBM predicts then).
        """
        cached = self.__dict__.get("_forest_cache")
        if cached is None or cached[0] is not self.booster_ or cached[1] != self.best_iteration_:
            text = self.booster_.model_to_string(num_iteration=self.best_iteration_)
            cached = self._forest_cache = (self.booster_, self.best_iteration_,
                                           Forest.from_text(text))
        return cached[2]

    def __getstate__(self):
        # the trees are rebuilt from the booster where they are needed
        state = dict(super().__getstate__())  # a copy: it may be our own __dict__
        state.pop("_forest_cache", None)
        return state

    def save_model(self, path):
        """Write the booster (up to ``best_iteration_``) as LightGBM text."""
        self._check_fitted()
        self.booster_.save_model(str(path), num_iteration=self.best_iteration_)


class IceClassifier(ClassifierMixin, _LGBMBase):
    """Multiclass LightGBM over classes ``0 .. n_classes - 1``.

    Parameters
    ----------
    n_classes : int
        Number of classes of the chart (``scenes.contract.N_CLASSES``).
    class_weight : None, "inv_sqrt" or dict
        ``"inv_sqrt"``: each class weighted by its (sample-weighted)
        frequency to the power -1/2, normalised to keep the total weight,
        clipped to ``class_weight_clip``; a dict maps class -> factor.
    class_weight_clip : (float, float)
        Bounds of the ``"inv_sqrt"`` factors.
    **params
        See :class:`_LGBMBase`.
    """

    _objective = "multiclass"
    _metric = "multi_logloss"

    def __init__(self, n_classes=2, *, class_weight=None, class_weight_clip=(0.1, 10.0),
                 n_estimators=_D["n_estimators"], learning_rate=_D["learning_rate"],
                 num_leaves=_D["num_leaves"], max_depth=_D["max_depth"],
                 min_child_samples=_D["min_child_samples"], subsample=_D["subsample"],
                 colsample_bytree=_D["colsample_bytree"], reg_lambda=_D["reg_lambda"],
                 max_bin=_D["max_bin"], early_stopping_rounds=_D["early_stopping_rounds"],
                 min_rounds=_D["min_rounds"], eval_metric=None, random_state=0, n_jobs=None,
                 device="cpu"):
        super().__init__(n_estimators=n_estimators, learning_rate=learning_rate,
                         num_leaves=num_leaves, max_depth=max_depth,
                         min_child_samples=min_child_samples, subsample=subsample,
                         colsample_bytree=colsample_bytree, reg_lambda=reg_lambda,
                         max_bin=max_bin, early_stopping_rounds=early_stopping_rounds,
                         min_rounds=min_rounds, eval_metric=eval_metric,
                         random_state=random_state, n_jobs=n_jobs, device=device)
        self.n_classes = n_classes
        self.class_weight = class_weight
        self.class_weight_clip = class_weight_clip

    def _check_y(self, y, what):
        k = int(self.n_classes)
        if k < 2:
            raise ValueError(f"n_classes must be >= 2, got {self.n_classes}")
        y = np.asarray(y).ravel()
        if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k):
            raise ValueError(f"{what} must hold class indices 0..{k - 1} "
                             f"(drop masked 255 pixels first), got values "
                             f"{np.unique(y)[:12].tolist()}")
        return y.astype(np.int32)

    def _extra_params(self):
        return {"num_class": int(self.n_classes)}

    def _fit_prepare(self, y, w):
        k = int(self.n_classes)
        self.classes_ = np.arange(k)
        cw = self.class_weight
        if cw is None:
            factors = np.ones(k)
        elif isinstance(cw, str) and cw == "inv_sqrt":
            freq = np.bincount(y, weights=w, minlength=k).astype(np.float64)
            freq /= freq.sum()
            present = freq > 0
            factors = np.ones(k)
            factors[present] = freq[present] ** -0.5
            factors /= float((freq * factors).sum())
            lo, hi = self.class_weight_clip
            factors = np.clip(factors, lo, hi)
        elif isinstance(cw, dict):
            factors = np.array([float(cw.get(c, cw.get(str(c), 1.0))) for c in range(k)])
        else:
            raise ValueError(f"class_weight must be None, 'inv_sqrt' or a dict, got {cw!r}")
        self.class_weight_factors_ = factors

    def _weights(self, y, w):
        f = self.class_weight_factors_[y]
        return f if w is None else w * f

    def _from_booster(self, booster):
        k = int(self.n_classes)
        n_tree_per_iter = booster.num_model_per_iteration()
        if n_tree_per_iter != k:
            raise ValueError(f"booster has {n_tree_per_iter} classes, expected {k}")
        self.classes_ = np.arange(k)

    def predict_proba(self, X):
        """Class probabilities, float64 (n_samples, n_classes); rows sum to 1."""
        p = self._raw_predict(X)
        if p is None:
            return np.zeros((0, int(self.n_classes)))
        return p.reshape(-1, int(self.n_classes))

    def predict(self, X):
        """Most probable class index per sample (uint8)."""
        return np.argmax(self.predict_proba(X), axis=1).astype(np.uint8)


class IceRegressor(RegressorMixin, _LGBMBase):
    """L2 regression on class indices, predictions clipped to ``0 .. n_classes - 1``.

    Parameters
    ----------
    n_classes : int
        Number of classes of the chart (11 for SIC).
    **params
        See :class:`_LGBMBase`.
    """

    _objective = "regression"
    _metric = "l2"

    def __init__(self, n_classes=11, *, n_estimators=_D["n_estimators"], learning_rate=_D["learning_rate"],
                 num_leaves=_D["num_leaves"], max_depth=_D["max_depth"],
                 min_child_samples=_D["min_child_samples"], subsample=_D["subsample"],
                 colsample_bytree=_D["colsample_bytree"], reg_lambda=_D["reg_lambda"],
                 max_bin=_D["max_bin"], early_stopping_rounds=_D["early_stopping_rounds"],
                 min_rounds=_D["min_rounds"], eval_metric=None, random_state=0, n_jobs=None,
                 device="cpu"):
        super().__init__(n_estimators=n_estimators, learning_rate=learning_rate,
                         num_leaves=num_leaves, max_depth=max_depth,
                         min_child_samples=min_child_samples, subsample=subsample,
                         colsample_bytree=colsample_bytree, reg_lambda=reg_lambda,
                         max_bin=max_bin, early_stopping_rounds=early_stopping_rounds,
                         min_rounds=min_rounds, eval_metric=eval_metric,
                         random_state=random_state, n_jobs=n_jobs, device=device)
        self.n_classes = n_classes

    def _check_y(self, y, what):
        y = np.asarray(y, dtype=np.float64).ravel()
        k = int(self.n_classes)
        if y.size and (not np.all(np.isfinite(y)) or y.min() < 0 or y.max() > k - 1):
            raise ValueError(f"{what} must hold class indices 0..{k - 1} "
                             "(drop masked 255 pixels first)")
        return y

    def _from_booster(self, booster):
        if booster.num_model_per_iteration() != 1:
            raise ValueError("booster is not a single-output regression model")

    def predict(self, X):
        """Class-index values as float64, clipped to ``[0, n_classes - 1]``."""
        v = self._raw_predict(X)
        if v is None:
            return np.zeros(0)
        return np.clip(v, 0, int(self.n_classes) - 1)

    def predict_classes(self, X):
        """Predictions rounded to the nearest class (uint8)."""
        return np.rint(self.predict(X)).astype(np.uint8)


#: Estimator classes by the name a manifest records; :func:`models.persistence.load_model`
#: rebuilds each saved model with the class named here.
ESTIMATOR_CLASSES = {cls.__name__: cls for cls in (IceClassifier, IceRegressor)}


def estimator_settings(n_pixels: int, changes=None) -> dict:
    """:data:`DEFAULT_PARAMS` with ``changes``, leaves sized to ``n_pixels``.

    Unless ``changes`` sets ``min_child_samples``, it is at most
    ``MIN_LEAF_SHARE * n_pixels`` (and at least 20).
    """
    params = {**DEFAULT_PARAMS, **(changes or {})}
    if "min_child_samples" not in (changes or {}):
        params["min_child_samples"] = int(min(params["min_child_samples"],
                                              max(20, n_pixels * MIN_LEAF_SHARE)))
    return params


def make_estimators(params: dict, *, sic_classifier: bool = True) -> dict:
    """The unfitted models of a system, by model key (see :data:`models.predict.MODEL_KEYS`).

    SIC: an L2 regressor on the class index and, to compare, an 11-class
    classifier (early-stopped on log-loss, as its probabilities feed the
    expected-value mode). SOD, FLOE: classifiers with inverse-sqrt class
    weights, early-stopped on the error rate, since only their argmax is used.
    """
    est = {"SIC_regression": IceRegressor(N_CLASSES["SIC"], **params)}
    if sic_classifier:
        est["SIC_classification"] = IceClassifier(N_CLASSES["SIC"], class_weight=None, **params)
    for chart in ("SOD", "FLOE"):
        est[chart] = IceClassifier(N_CLASSES[chart], class_weight="inv_sqrt",
                                   eval_metric="multi_error", **params)
    return est
