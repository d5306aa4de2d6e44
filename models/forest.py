"""LightGBM models evaluated by a numba kernel, with LightGBM's results bit for bit.

LightGBM's own prediction walks every tree for one row before the next, and
prepares each row apart; on a real-size scene's 180 k lattice points the
three charts' models took 2.3 s of a 10 s prediction on 2 cores.
:func:`models._kernels.forest_raw` walks the trees of a LightGBM text model
for blocks of rows at a time and takes 1.2 s. It follows LightGBM's decision
rule (missing values, its zero threshold) and sums the trees in LightGBM's
order in float64, and the softmax is LightGBM's, so scores and
probabilities are the same numbers (``tests/test_forest.py`` compares them
with :meth:`lightgbm.Booster.predict` on models and inputs made to hit each
rule).

Only what this product trains is handled: the ``regression`` (L2) and
``multiclass`` objectives, numerical splits, plain trees.
:meth:`Forest.from_text` returns None for anything else (categorical or
linear trees, other objectives, averaged output), and the caller predicts
with LightGBM.
"""
from __future__ import annotations

from contextlib import contextmanager

import numba
import numpy as np

from . import _kernels

#: Rows per block of the kernel: a block's features (1024 x 66 float32, 270 kB) stay in
#: the L2 cache while every tree passes over them; 1024-2048 were fastest on a real-size
#: scene's lattice (128: 1.6 x slower, 16384: 1.2 x).
BLOCK_ROWS = 1024
#: Objectives whose output :meth:`Forest.predict` reproduces.
OBJECTIVES = ("regression", "multiclass")


class Forest:
    """The trees of one LightGBM text model as flat arrays.

    Build with :meth:`from_text`. Node arrays (``feature``, ``threshold``,
    ``decision``, ``left``, ``right``) hold every tree's internal nodes one
    tree after the other, from ``node_start[t]``; ``leaf_value`` holds their
    leaves from ``leaf_start[t]``.
    """

    def __init__(self, *, objective, n_out, n_features, feature, threshold, decision, left,
                 right, leaf_value, node_start, leaf_start):
        self.objective, self.n_out, self.n_features = objective, n_out, n_features
        self.feature, self.threshold, self.decision = feature, threshold, decision
        self.left, self.right, self.leaf_value = left, right, leaf_value
        self.node_start, self.leaf_start = node_start, leaf_start

    @classmethod
    def from_text(cls, text: str) -> "Forest | None":
        """The model in LightGBM text ``text``, or None if it is not one :class:`Forest` handles.

        ``text`` is what :meth:`lightgbm.Booster.model_to_string` gives (saved
        models are checked by :mod:`models.lgbm_text` before LightGBM loads them).
        """
        head, _, body = text.partition("\nTree=")
        header = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
        objective = header.get("objective", "").split()
        if (not objective or objective[0] not in OBJECTIVES
                or (objective[0] == "regression" and len(objective) > 1)  # e.g. sqrt
                or "average_output" in head.splitlines()):
            return None
        n_out = int(header["num_tree_per_iteration"])
        arrays = {k: [] for k in ("feature", "threshold", "decision", "left", "right",
                                  "leaf_value", "node_start", "leaf_start")}
        n_nodes = n_leaves = 0
        for block in ("Tree=" + body).split("\nTree=") if body else ():
            block = block.split("\nend of trees", 1)[0]
            tree = dict(line.split("=", 1) for line in block.splitlines()[1:] if "=" in line)
            if int(tree.get("num_cat", "0")) or int(tree.get("is_linear", "0")):
                return None
            leaves = [float(v) for v in tree["leaf_value"].split()]
            arrays["leaf_start"].append(n_leaves)
            arrays["leaf_value"] += leaves
            n_leaves += len(leaves)
            if len(leaves) == 1:
                arrays["node_start"].append(-1)
                continue
            decision = [int(v) for v in tree["decision_type"].split()]
            if any(d & 1 for d in decision):  # a categorical split
                return None
            arrays["node_start"].append(n_nodes)
            arrays["feature"] += [int(v) for v in tree["split_feature"].split()]
            arrays["threshold"] += [float(v) for v in tree["threshold"].split()]
            arrays["decision"] += decision
            arrays["left"] += [int(v) for v in tree["left_child"].split()]
            arrays["right"] += [int(v) for v in tree["right_child"].split()]
            n_nodes += len(leaves) - 1
        types = dict(feature=np.int32, threshold=np.float64, decision=np.uint8, left=np.int32,
                     right=np.int32, leaf_value=np.float64, node_start=np.int64,
                     leaf_start=np.int64)
        return cls(objective=objective[0], n_out=n_out,
                   n_features=int(header["max_feature_idx"]) + 1,
                   **{k: np.array(v, types[k]) for k, v in arrays.items()})

    def raw(self, X, n_threads: int | None = None) -> np.ndarray:
        """Summed tree outputs, float64 ``(N, n_out)``, of float32 features ``X`` (N, F)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must be (n, {self.n_features}), got {X.shape}")
        out = np.empty((X.shape[0], self.n_out))
        with _threads(n_threads):
            _kernels.forest_raw(X, self.n_out, self.feature, self.threshold, self.decision,
                                self.left, self.right, self.leaf_value, self.node_start,
                                self.leaf_start, BLOCK_ROWS, out)
        return out

    def predict(self, X, n_threads: int | None = None) -> np.ndarray:
        """What :meth:`lightgbm.Booster.predict` gives: values (N,) or probabilities (N, K)."""
        out = self.raw(X, n_threads)
        if self.objective == "regression":
            return out[:, 0]
        with _threads(n_threads):
            _kernels.softmax_rows(out)
        return out


@contextmanager
def _threads(n):
    """Numba threads of this thread set to at most ``n`` for the block."""
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n or before), before)))
    try:
        yield
    finally:
        numba.set_num_threads(before)
