"""The challenge metrics equal sklearn's on pooled random inputs."""
import numpy as np
import pytest
from sklearn.metrics import f1_score, r2_score

from evaluation.metrics import ChartAccumulator, challenge_scores, combine
from scenes import contract as C


def _random_chart(rng, chart, n, mask_frac=0.3, pred_noise=0.4):
    k = C.N_CLASSES[chart]
    true = rng.integers(0, k, n).astype(np.uint8)
    pred = true.copy()
    flip = rng.random(n) < pred_noise
    pred[flip] = rng.integers(0, k, flip.sum())
    true[rng.random(n) < mask_frac] = C.MASK_VALUE
    return true, pred


def _sklearn_scores(true, pred):
    raw = {}
    for chart in C.LABEL_CHARTS:
        t = np.concatenate(true[chart]); p = np.concatenate(pred[chart])
        v = t != 255
        fn = r2_score if chart == "SIC" else (lambda a, b: f1_score(a, b, average="weighted"))
        raw[chart] = fn(t[v], p[v])
    out = {c: round(raw[c] * 100, 3) for c in C.LABEL_CHARTS}
    out["combined"] = round((2 * out["SIC"] + 2 * out["SOD"] + out["FLOE"]) / 5, 3)
    return raw, out


@pytest.mark.parametrize("seed", range(5))
def test_pooled_scores_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    true = {c: [] for c in C.LABEL_CHARTS}
    pred = {c: [] for c in C.LABEL_CHARTS}
    for _ in range(3):  # three "scenes" of different sizes, pooled
        n = int(rng.integers(200, 3000))
        for chart in C.LABEL_CHARTS:
            t, p = _random_chart(rng, chart, n)
            true[chart].append(t); pred[chart].append(p)
    raw, expected = _sklearn_scores(true, pred)
    for chart in C.LABEL_CHARTS:
        acc = ChartAccumulator(chart)
        for t, p in zip(true[chart], pred[chart]):
            acc.add(t, p)
        assert acc.score() == pytest.approx(raw[chart], rel=1e-12, abs=1e-12)
    assert challenge_scores(true, pred) == expected


def test_uint8_maps_count_as_any_other():
    # uint8 maps without weights take a one-pass kernel; int64 copies the general path
    rng = np.random.default_rng(7)
    true = rng.choice([0, 1, 2, 3, 4, 5, 255], (60, 70)).astype(np.uint8)
    pred = rng.integers(0, 256, (60, 70)).astype(np.uint8)
    a, b = ChartAccumulator("SOD"), ChartAccumulator("SOD")
    for _ in range(2):
        np.testing.assert_array_equal(a.add(true, pred),
                                      b.add(true.astype(np.int64), pred.astype(np.int64)))
    np.testing.assert_array_equal(a.counts, b.counts)
    assert a.score() == b.score()
    true[3, 4], true[5, 6] = 6, 9  # no SOD class 6 or 9: the same error, nothing counted
    for acc, t, q in ((a, true, pred), (b, true.astype(np.int64), pred.astype(np.int64))):
        with pytest.raises(ValueError, match="reference class 9 out of range"):
            acc.add(t, q)
    np.testing.assert_array_equal(a.counts, b.counts)
    with pytest.raises(ValueError, match="pixels"):
        a.add(true, pred[:-1])


def test_maps_in_runs_and_gated_maps_count_as_any_other():
    # chart-like maps come in runs of one class, which the kernel counts a run at a time;
    # a gate counts the prediction as 0 where the gate is 0, as the gated map itself would
    rng = np.random.default_rng(8)
    blocks = lambda k: np.repeat(rng.integers(0, k, (12, 9)), 7, axis=1).astype(np.uint8)  # noqa: E731
    true, pred, sic = blocks(6), blocks(6), blocks(3)
    true[2:4] = 255
    true[0, :5] = 255  # a masked run at the start
    for gate in (None, sic, np.zeros_like(sic), np.ones_like(sic)):
        gated = pred if gate is None else np.where(gate == 0, 0, pred).astype(np.uint8)
        a, b, c = ChartAccumulator("SOD"), ChartAccumulator("SOD"), ChartAccumulator("SOD")
        want = b.add(true.astype(np.int64), gated.astype(np.int64))
        np.testing.assert_array_equal(a.add(true, pred, gate=gate), want)
        np.testing.assert_array_equal(c.add(true.astype(np.int64), pred.astype(np.int64),
                                            gate=gate), want)
    assert ChartAccumulator("SOD").add(true[:0], pred[:0]).sum() == 0
    with pytest.raises(ValueError, match="gate"):
        ChartAccumulator("SOD").add(true, pred, gate=sic[:-1])


def test_f1_with_absent_and_spurious_classes_equals_sklearn():
    rng = np.random.default_rng(7)
    true = rng.choice([0, 4, 5], 5000).astype(np.uint8)      # SOD classes 1-3 absent in truth
    pred = rng.choice([0, 1, 4, 5, 200], 5000).astype(np.uint8)  # predicts an absent class and junk
    acc = ChartAccumulator("SOD"); acc.add(true, pred)
    assert acc.score() == pytest.approx(f1_score(true, pred, average="weighted"), abs=1e-12)


def test_r2_constant_truth_follows_sklearn_convention():
    true = np.full(100, 10, np.uint8)
    for pred in (true.copy(), np.full(100, 9, np.uint8)):
        acc = ChartAccumulator("SIC"); acc.add(true, pred)
        assert acc.score() == r2_score(true, pred)


def test_rounding_and_combined():
    out = combine({"SIC": 0.9123456, "SOD": 0.8866664, "FLOE": 0.7000049})
    assert out == {"SIC": 91.235, "SOD": 88.667, "FLOE": 70.0,
                   "combined": round((2 * 91.235 + 2 * 88.667 + 70.0) / 5, 3)}


def test_missing_chart_scores_zero():
    rng = np.random.default_rng(1)
    t, p = _random_chart(rng, "SIC", 1000)
    out = challenge_scores({"SIC": t, "SOD": t, "FLOE": t}, {"SIC": p})
    assert out["SOD"] == 0 and out["FLOE"] == 0
    assert out["combined"] == round(2 * out["SIC"] / 5, 3)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="SIC"):
        ChartAccumulator("SIC").add(np.zeros(5, np.uint8), np.zeros(6, np.uint8))


@pytest.mark.parametrize("seed", range(3))
def test_weighted_pooled_scores_equal_sklearn_sample_weight(seed):
    rng = np.random.default_rng(100 + seed)
    for chart in C.LABEL_CHARTS:
        acc = ChartAccumulator(chart)
        ts, ps, ws = [], [], []
        for _ in range(3):  # three "scenes", pooled
            n = int(rng.integers(200, 2000))
            t, p = _random_chart(rng, chart, n)
            w = rng.uniform(0.1, 5.0, n)
            w[rng.random(n) < 0.05] = 0.0
            cm = acc.add(t, p, weight=w)
            assert cm.dtype == np.float64
            assert cm.sum() == pytest.approx(w[t != C.MASK_VALUE].sum(), rel=1e-12)
            ts.append(t); ps.append(p); ws.append(w)
        t, p, w = np.concatenate(ts), np.concatenate(ps), np.concatenate(ws)
        v = t != C.MASK_VALUE
        if chart == "SIC":
            want = r2_score(t[v], p[v], sample_weight=w[v])
        else:
            want = f1_score(t[v], p[v], average="weighted", sample_weight=w[v])
        assert acc.counts.dtype == np.float64
        assert acc.score() == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_unit_weights_give_the_unweighted_score():
    rng = np.random.default_rng(3)
    t, p = _random_chart(rng, "FLOE", 3000)
    plain, weighted = ChartAccumulator("FLOE"), ChartAccumulator("FLOE")
    cm = plain.add(t, p)
    assert cm.dtype == np.int64 and plain.counts.dtype == np.int64
    weighted.add(t, p, weight=np.ones(t.size))
    np.testing.assert_array_equal(weighted.counts, plain.counts)
    assert weighted.score() == plain.score()
    # doubling every weight changes nothing
    double = ChartAccumulator("FLOE"); double.add(t, p, weight=np.full(t.size, 2.0))
    assert double.score() == pytest.approx(plain.score(), rel=1e-12)


def test_mixed_weighted_and_unweighted_adds_pool():
    rng = np.random.default_rng(4)
    (t1, p1), (t2, p2) = _random_chart(rng, "SIC", 800), _random_chart(rng, "SIC", 600)
    w2 = rng.uniform(0.5, 2.0, t2.size)
    acc = ChartAccumulator("SIC")
    acc.add(t1, p1)
    acc.add(t2, p2, weight=w2)
    t, p = np.concatenate([t1, t2]), np.concatenate([p1, p2])
    w = np.concatenate([np.ones(t1.size), w2])
    v = t != C.MASK_VALUE
    assert acc.score() == pytest.approx(r2_score(t[v], p[v], sample_weight=w[v]), rel=1e-10)


def test_bad_weights_are_an_error():
    t = np.zeros(5, np.uint8)
    with pytest.raises(ValueError, match="weight"):
        ChartAccumulator("SOD").add(t, t, weight=np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        ChartAccumulator("SOD").add(t, t, weight=np.array([1, 1, -1, 1, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        ChartAccumulator("SOD").add(t, t, weight=np.array([1, np.nan, 1, 1, 1.0]))
