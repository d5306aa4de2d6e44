"""The AutoICE challenge scores.

Per chart, the valid reference pixels (``!= 255``) of all scenes are pooled;
SIC is scored by ``r2_score`` on class indices, SOD and FLOE by weighted F1.
Each score is x100 and rounded to 3 decimals; the combined score is
``round((2 SIC + 2 SOD + 1 FLOE) / 5, 3)`` of the rounded scores, and a
missing chart scores 0.

Pooling is done by accumulating a confusion matrix per chart
(:class:`ChartAccumulator`): both scores follow exactly from it, because the
values are small integers, so 20 real-size scenes never need to be held in
memory at once. With per-pixel weights the matrix holds summed weights, and
the scores are sklearn's with ``sample_weight``. ``tests/test_metrics.py``
checks the results against sklearn.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from scenes import _jit  # noqa: F401  (a writable numba cache for the kernel below)
from scenes import contract as C

#: Predictions are uint8, so a prediction axis of 256 holds any value.
_N_PRED = 256


@njit(cache=True, nogil=True)  # nogil: the validation choices count scenes on threads
def _confusion(true, pred, gate, use_gate, mask_value, cm):
    """Count ``(true, pred)`` pairs into ``cm``, skipping ``mask_value``; returns the largest
    reference class out of range (nothing counted then), or -1.

    With ``use_gate``, ``pred`` counts as 0 where ``gate`` is 0. Maps come in runs of
    one class: a run is counted at once, not pixel by pixel through the same cell
    (each increment waiting for the last: twice the time).
    """
    n_true = cm.shape[0]
    bad = -1
    for i in range(true.size):
        t = true[i]
        if t != mask_value and t >= n_true and t > bad:
            bad = t
    if bad >= 0 or true.size == 0:
        return np.int64(bad)
    run_t = true[0]
    run_p = pred[0]
    if use_gate and gate[0] == 0:
        run_p = 0
    run = 0
    for i in range(true.size):
        t = true[i]
        p = pred[i]
        if use_gate and gate[i] == 0:
            p = 0
        if t == run_t and p == run_p:
            run += 1
        else:
            if run_t != mask_value:
                cm[run_t, run_p] += run
            run_t = t
            run_p = p
            run = 1
    if run_t != mask_value:
        cm[run_t, run_p] += run
    return np.int64(-1)


class ChartAccumulator:
    """Confusion matrix of one chart, pooled over scenes.

    ``counts[true, pred]`` counts pixels (int64), or sums their weights
    (float64) once weighted pixels have been added.

    Parameters
    ----------
    chart : {"SIC", "SOD", "FLOE"}
    """

    def __init__(self, chart: str):
        self.chart = chart
        self.counts = np.zeros((C.N_CLASSES[chart], _N_PRED), np.int64)

    def add(self, true, pred, weight=None, *, gate=None) -> np.ndarray:
        """Add one scene's maps; return that scene's own confusion matrix.

        Pixels where ``true == 255`` are ignored; predictions may be any uint8.
        ``weight`` (optional, same shape, finite and >= 0) weighs each pixel;
        the matrices are then float64 sums of weights. ``gate`` (optional,
        same shape): ``pred`` counts as 0 where ``gate`` is 0, as
        ``np.where(gate == 0, 0, pred)`` would make it (an ice map gated by a
        SIC map's water), without making that map.
        """
        true = np.asarray(true).ravel()
        pred = np.asarray(pred).ravel()
        if true.shape != pred.shape:
            raise ValueError(f"{self.chart}: reference has {true.size} pixels, prediction {pred.size}")
        if gate is not None:
            gate = np.asarray(gate).ravel()
            if gate.shape != true.shape:
                raise ValueError(f"{self.chart}: reference has {true.size} pixels, gate {gate.size}")
        if (weight is None and true.dtype == np.uint8 and pred.dtype == np.uint8
                and self.counts.dtype == np.int64 and (gate is None or gate.dtype == np.uint8)):
            # uint8 maps in one pass: the validation choices add thousands of them
            cm = np.zeros_like(self.counts)
            bad = _confusion(true, pred, gate if gate is not None else true[:1], gate is not None,
                             C.MASK_VALUE, cm)
            if bad >= 0:
                raise ValueError(f"{self.chart}: reference class {bad} out of range")
            self.counts += cm
            return cm
        if gate is not None:
            pred = np.where(gate == 0, 0, pred)
        valid = true != C.MASK_VALUE
        t = true[valid].astype(np.int64)
        if t.size and t.max() >= C.N_CLASSES[self.chart]:
            raise ValueError(f"{self.chart}: reference class {t.max()} out of range")
        p = pred[valid].astype(np.int64)
        if p.size and (p.min() < 0 or p.max() >= _N_PRED):
            raise ValueError(f"{self.chart}: predictions must be 0..255")
        w = None
        if weight is not None:
            weight = np.asarray(weight, dtype=np.float64).ravel()
            if weight.shape != true.shape:
                raise ValueError(f"{self.chart}: reference has {true.size} pixels, "
                                 f"weight {weight.size}")
            w = weight[valid]
            if w.size and not (np.isfinite(w).all() and w.min() >= 0):
                raise ValueError(f"{self.chart}: weights must be finite and >= 0")
            if self.counts.dtype != np.float64:
                self.counts = self.counts.astype(np.float64)
        cm = np.bincount(t * _N_PRED + p, weights=w,
                         minlength=self.counts.size).reshape(self.counts.shape)
        self.counts += cm
        return cm

    def score(self) -> float:
        """The raw (unrounded, unscaled) score of everything added so far."""
        return score_from_confusion(self.chart, self.counts)


def r2_from_confusion(cm: np.ndarray) -> float:
    """``sklearn.metrics.r2_score`` of the pixels counted in ``cm[true, pred]``."""
    t = np.arange(cm.shape[0], dtype=np.float64)[:, None]
    p = np.arange(cm.shape[1], dtype=np.float64)[None, :]
    n = cm.sum()
    if n == 0:
        return float("nan")
    ss_res = float((cm * (t - p) ** 2).sum())
    mean = float((cm * t).sum()) / n
    ss_tot = float((cm * (t - mean) ** 2).sum())
    if ss_tot == 0.0:  # sklearn's force_finite convention
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def weighted_f1_from_confusion(cm: np.ndarray) -> float:
    """``f1_score(average="weighted")`` of the pixels counted in ``cm[true, pred]``.

    Classes only predicted have zero support and so zero weight; a class never
    predicted has F1 = 0 (sklearn's ``zero_division`` default).
    """
    n_true = cm.shape[0]
    support = cm.sum(axis=1).astype(np.float64)
    if support.sum() == 0:
        return float("nan")
    tp = np.diag(cm[:, :n_true]).astype(np.float64)
    predicted = cm.sum(axis=0)[:n_true].astype(np.float64)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float((f1 * support).sum() / support.sum())


def score_from_confusion(chart: str, cm: np.ndarray) -> float:
    """The chart's challenge metric (R2 for SIC, weighted F1 otherwise), unscaled."""
    return r2_from_confusion(cm) if chart == "SIC" else weighted_f1_from_confusion(cm)


def combine(raw: dict[str, float | None]) -> dict[str, float]:
    """Scale, round and combine per-chart raw scores as the challenge did.

    ``raw[chart]`` is the unscaled score, or None / missing for a chart that
    was not submitted (it scores 0).
    """
    out = {}
    for chart in C.LABEL_CHARTS:
        value = raw.get(chart)
        out[chart] = 0.0 if value is None or np.isnan(value) else round(float(value) * 100, 3)
    total = sum(C.CHART_WEIGHTS[c] * out[c] for c in C.LABEL_CHARTS)
    out["combined"] = round(total / sum(C.CHART_WEIGHTS.values()), 3)
    return out


def challenge_scores(true: dict, pred: dict) -> dict[str, float]:
    """Challenge scores of pooled label arrays.

    Parameters
    ----------
    true : dict chart -> array of uint8
        Reference labels (255 = masked), any shape; one array per chart, or a
        list of arrays (one per scene) to pool.
    pred : dict chart -> array
        Predictions at the same pixels; a chart absent from ``pred`` scores 0.

    Returns
    -------
    dict
        ``{"SIC", "SOD", "FLOE", "combined"}``, x100, rounded to 3 decimals.
    """
    raw = {}
    for chart in C.LABEL_CHARTS:
        if chart not in pred or pred[chart] is None or chart not in true:
            continue
        acc = ChartAccumulator(chart)
        ts, ps = true[chart], pred[chart]
        if isinstance(ts, (list, tuple)):
            for t, p in zip(ts, ps):
                acc.add(t, p)
        else:
            acc.add(ts, ps)
        raw[chart] = acc.score()
    return combine(raw)
