"""Region hierarchy, region statistics and the true-polygon oracle against slow references."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation.oracle import polygon_vote, reference_polygons
from models import regions as R
from naive_regions import ward_merge_naive
from scenes import contract as C


def _lattice(seed, shape=(9, 11), d=3, holes=True):
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(d,) + shape)
    F[0, :, shape[1] // 2:] += 2.0  # two areas with a real boundary
    valid = np.ones(shape, bool)
    if holes:
        valid[rng.random(shape) < 0.15] = False
        valid[:2, :3] = False
    return F, valid


@pytest.mark.parametrize("seed", range(6))
def test_merge_levels_matches_the_slow_greedy_merge(seed):
    F, valid = _lattice(seed, holes=seed % 2 == 0)
    thresholds = [0.3, 1.5, 6.0, 40.0]
    got = R.merge_levels(F, valid, thresholds)
    want = ward_merge_naive(F, valid, thresholds)
    np.testing.assert_array_equal(got, want)


def test_levels_are_nested_and_respect_invalid_cells():
    F, valid = _lattice(7, shape=(30, 40))
    levels = R.merge_levels(F, valid, [0.5, 2.0, 8.0, 1e9])
    assert (levels[:, ~valid] == 0).all() and (levels[:, valid] > 0).all()
    for fine, coarse in zip(levels[:-1], levels[1:]):
        # every fine region lies inside one coarse region
        pairs = np.unique(np.stack([fine[valid], coarse[valid]]), axis=1)
        assert np.unique(pairs[0]).size == pairs.shape[1]
    # with no limit, each 4-connected area of valid cells becomes one region
    from scipy import ndimage
    comps, n = ndimage.label(valid)
    assert levels[-1].max() == n


def test_merge_levels_is_deterministic_and_numbered_by_first_cell():
    F, valid = _lattice(3, shape=(25, 31))
    a = R.merge_levels(F, valid, [1.0, 5.0])
    b = R.merge_levels(F.copy(), valid.copy(), [1.0, 5.0])
    np.testing.assert_array_equal(a, b)
    for lab in a:
        firsts = [np.flatnonzero(lab.ravel() == k)[0] for k in range(1, lab.max() + 1)]
        assert firsts == sorted(firsts)


def test_merge_levels_checks_its_inputs():
    F, valid = _lattice(0)
    with pytest.raises(ValueError, match="increasing"):
        R.merge_levels(F, valid, [2.0, 1.0])
    with pytest.raises(ValueError, match="lattice"):
        R.merge_levels(F[:, :-1], valid, [1.0])
    assert (R.merge_levels(F, np.zeros_like(valid), [1.0]) == 0).all()


def test_region_stats_and_means_match_loops():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, size=(8, 9))
    V = rng.normal(size=(2, 8, 9))
    cnt, mean, sd = R.region_stats(labels, V, std=True)
    means = R.region_means(labels, V)
    for k in range(1, 5):
        m = labels == k
        assert cnt[k] == m.sum()
        np.testing.assert_allclose(mean[:, k], V[:, m].mean(axis=1))
        np.testing.assert_allclose(sd[:, k], V[:, m].std(axis=1), atol=1e-12)
        np.testing.assert_allclose(means[:, m], np.repeat(V[:, m].mean(axis=1)[:, None],
                                                          m.sum(), axis=1), rtol=1e-6)
    np.testing.assert_array_equal(means[:, labels == 0], V[:, labels == 0].astype(np.float32))


def test_boundary_distance_matches_brute_force():
    labels = np.ones((12, 14), np.int32)
    labels[:, 8:] = 2
    labels[0, 0] = 0
    d = R.boundary_distance(labels)
    H, W = labels.shape
    for i in range(H):
        for j in range(W):
            if labels[i, j] == 0:
                assert d[i, j] == 0
                continue
            # cells with a 4-neighbour of another label (or 0) are at distance 1
            other = [(a, b) for a in range(H) for b in range(W) if labels[a, b] != labels[i, j]]
            near = min(np.hypot(i - a, j - b) for a, b in other)
            border = [(a, b) for a in range(H) for b in range(W) if labels[a, b] == labels[i, j]
                      and any(0 <= a + u < H and 0 <= b + v < W and
                              labels[a + u, b + v] != labels[a, b]
                              for u, v in ((0, 1), (1, 0), (0, -1), (-1, 0)))]
            want = 1 + min(np.hypot(i - a, j - b) for a, b in border)
            assert near >= 1
            assert d[i, j] == pytest.approx(want)


def test_polygon_vote_matches_a_loop_over_true_polygons():
    rng = np.random.default_rng(4)
    H, W = 20, 24
    ref = {"SIC": np.full((H, W), 10, np.uint8), "SOD": np.full((H, W), 4, np.uint8),
           "FLOE": np.full((H, W), 5, np.uint8)}
    ref["SIC"][:, 12:] = 3
    ref["SOD"][:, 12:] = 2
    ref["SIC"][10:, :6] = 10  # same code as its neighbour: one polygon
    ref["FLOE"][15:, 16:] = C.MASK_VALUE
    for c in C.LABEL_CHARTS:
        ref[c][:3, :3] = C.MASK_VALUE
    maps = {c: rng.integers(0, C.N_CLASSES[c], size=(H, W)).astype(np.uint8)
            for c in C.LABEL_CHARTS}
    poly = reference_polygons(ref)
    assert poly[:3, :3].max() == 0 and poly.max() == 3
    out = polygon_vote(poly, maps)
    for k in range(1, poly.max() + 1):
        m = poly == k
        assert (out["SIC"][m] == np.floor(maps["SIC"][m].mean() + 0.5)).all()
        for c in ("SOD", "FLOE"):
            assert (out[c][m] == np.bincount(maps[c][m], minlength=C.N_CLASSES[c]).argmax()).all()
    for c in C.LABEL_CHARTS:
        np.testing.assert_array_equal(out[c][poly == 0], maps[c][poly == 0])
