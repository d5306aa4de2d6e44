"""models.forest: the numba tree kernel gives LightGBM's predictions bit for bit.

LightGBM itself is the reference. Models and inputs are made to reach every
branch of the decision rule: missing types None, Zero and NaN, default left
and right, values on and next to thresholds, zeros, LightGBM's zero
threshold, denormals, infinities and single-leaf trees.
"""
import pickle
import re

import lightgbm as lgb
import numpy as np
import pytest

from models.estimator import IceClassifier, IceRegressor
from models.forest import Forest


def _data(seed, n=3000, f=6, nan_share=0.1, zero_share=0.1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    X[rng.random((n, f)) < zero_share] = 0.0
    X[rng.random((n, f)) < nan_share] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.isnan(X[:, 1]) + (X[:, 2] == 0) * 2
         + 0.3 * rng.normal(size=n))
    return X, y


def _booster(X, y, objective, **params):
    params = dict(objective=objective, num_leaves=15, min_data_in_leaf=5, verbose=-1, seed=1,
                  deterministic=True, num_threads=1, **params)
    if objective == "multiclass":
        params["num_class"] = 4
        y = np.digitize(y, np.quantile(y, [0.25, 0.5, 0.75]))
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=25)


def _hard_inputs(booster, seed, n=4000):
    """Rows mixing normal values with every special value and the model's own thresholds."""
    rng = np.random.default_rng(seed)
    thresholds = []
    for tree in booster.dump_model()["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "threshold" in node:
                thresholds.append(node["threshold"])
                stack += [node["left_child"], node["right_child"]]
    thresholds = np.array(thresholds)
    t32 = thresholds[np.abs(thresholds) < np.finfo(np.float32).max].astype(np.float32)
    special = np.concatenate([
        [np.nan, 0.0, -0.0, 1e-36, -1e-36, 1e-35, 2e-35, 1e-40, -1e-40, np.inf, -np.inf,
         np.float32(np.finfo(np.float32).max)],
        t32, np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, np.float32(-np.inf)),
    ]).astype(np.float32)
    X = rng.normal(size=(n, booster.num_feature())).astype(np.float32)
    pick = rng.random(X.shape) < 0.5
    X[pick] = rng.choice(special, size=int(pick.sum()))
    return X


CASES = {
    "regression, NaN seen in training": ("regression", {}, 0.1),
    "regression, no NaN in training": ("regression", {}, 0.0),
    "regression, zero as missing": ("regression", {"zero_as_missing": True}, 0.1),
    "multiclass, NaN seen in training": ("multiclass", {}, 0.1),
    "multiclass, zero as missing": ("multiclass", {"zero_as_missing": True}, 0.0),
    "multiclass, missing values off": ("multiclass", {"use_missing": False}, 0.1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_equals_lightgbm(case):
    objective, params, nan_share = CASES[case]
    X, y = _data(3, nan_share=nan_share)
    booster = _booster(X, y, objective, **params)
    forest = Forest.from_text(booster.model_to_string())
    assert forest is not None
    Xt = _hard_inputs(booster, 4)
    raw = forest.raw(Xt, 2)
    ref_raw = booster.predict(Xt, raw_score=True).reshape(raw.shape)
    assert np.array_equal(raw, ref_raw)
    assert np.array_equal(forest.predict(Xt, 2), booster.predict(Xt))
    # the kernel reaches both sides of a missing-value rule (the data were made for it)
    decisions = forest.decision
    if params.get("zero_as_missing"):
        assert np.any((decisions >> 2) & 3 == 1)
    elif params.get("use_missing", True) and nan_share:
        assert np.any((decisions >> 2) & 3 == 2)


def test_single_leaf_trees_and_fewer_iterations():
    X, _ = _data(5)
    booster = _booster(X, np.full(len(X), 2.5), "regression")  # nothing to split on
    forest = Forest.from_text(booster.model_to_string())
    assert np.all(forest.node_start < 0)
    assert np.array_equal(forest.predict(X), booster.predict(X))
    X, y = _data(6)
    booster = _booster(X, y, "multiclass")
    forest = Forest.from_text(booster.model_to_string(num_iteration=7))
    assert forest.node_start.size == 7 * 4
    assert np.array_equal(forest.predict(X), booster.predict(X, num_iteration=7))


def test_models_it_does_not_handle_are_left_to_lightgbm():
    X, y = _data(7)
    assert Forest.from_text(_booster(X, y > 0, "binary").model_to_string()) is None
    assert Forest.from_text(_booster(X, np.abs(y), "regression",
                                     reg_sqrt=True).model_to_string()) is None
    Xc = X.copy()
    Xc[:, 3] = np.random.default_rng(0).integers(0, 5, len(X))
    cat = lgb.train(dict(objective="regression", verbose=-1, num_leaves=15, min_data_in_leaf=5),
                    lgb.Dataset(Xc, y + 3 * (Xc[:, 3] == 2), categorical_feature=[3]),
                    num_boost_round=10)
    assert re.search(r"num_cat=[1-9]", cat.model_to_string())  # a categorical split
    assert Forest.from_text(cat.model_to_string()) is None


@pytest.mark.parametrize("cls", [IceClassifier, IceRegressor])
def test_estimators_predict_with_the_kernel(cls):
    X, y = _data(8, n=4000)
    y = np.clip(np.round(y + 2), 0, 5).astype(np.uint8)
    est = cls(n_classes=6, n_estimators=15, min_child_samples=20, random_state=0,
              n_jobs=1).fit(X, y)
    Xt = _hard_inputs(est.booster_, 9)
    ref = est.booster_.predict(Xt, num_iteration=est.best_iteration_)
    assert np.array_equal(est._raw_predict(Xt), ref)
    assert est._forest() is not None
    # early stopping's round is honoured, and a change of it is seen
    est.best_iteration_ = 5
    assert np.array_equal(est._raw_predict(Xt),
                          est.booster_.predict(Xt, num_iteration=5))
    # the trees are not pickled (they are rebuilt from the booster)
    copy = pickle.loads(pickle.dumps(est))
    assert "_forest_cache" in est.__dict__ and "_forest_cache" not in copy.__dict__
    assert np.array_equal(copy._raw_predict(Xt), est._raw_predict(Xt))
