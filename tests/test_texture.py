"""GLCM texture (featurize.texture) against per-window skimage, and the quantiser."""
from __future__ import annotations

import numba
import numpy as np
import pytest
from naive import glcm_naive, glcm_naive_at

from featurize.quantize import DB_RANGES, fill_level, quantize_db
from featurize import texture
from featurize.texture import DEFAULT_PROPS, SUPPORTED_PROPS, glcm, glcm_at
from scenes.contract import meanstd, to_physical, to_zscore

# float32 output vs float64 skimage; atol covers values that are ~0 (entropy
# of a constant window, correlation near 0 where skimage itself cancels).
RTOL, ATOL = 1e-5, 1e-6


def _image(kind, levels, shape=(11, 13), seed=0):
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.integers(0, levels, shape).astype(np.uint8)
    if kind == "constant":
        return np.full(shape, levels - 1, dtype=np.uint8)
    # a flat block beside noise: counts must empty and refill exactly as the window slides
    img = rng.integers(0, levels, shape).astype(np.uint8)
    img[:, : shape[1] // 2] = levels // 3
    return img


@pytest.mark.parametrize("levels", [8, 32])
@pytest.mark.parametrize("window", [3, 5, 7])
@pytest.mark.parametrize("distances", [(1,), (1, 2)])
@pytest.mark.parametrize("kind", ["random", "constant", "half"])
def test_glcm_matches_skimage_per_window(levels, window, distances, kind):
    img = _image(kind, levels)
    got = glcm(img, window=window, levels=levels, distances=distances, props=SUPPORTED_PROPS)
    want = glcm_naive(img, window=window, levels=levels, distances=distances,
                      props=SUPPORTED_PROPS)
    assert got.shape == (len(SUPPORTED_PROPS),) + img.shape and got.dtype == np.float32
    for p, prop in enumerate(SUPPORTED_PROPS):
        np.testing.assert_allclose(got[p], want[p], rtol=RTOL, atol=ATOL, err_msg=prop)


def test_constant_window_edge_cases():
    # skimage: correlation 1 for zero std, entropy 0, ASM 1, homogeneity 1
    got = glcm(np.full((6, 6), 3, np.uint8), window=3, levels=8, props=SUPPORTED_PROPS)
    expect = dict(contrast=0, dissimilarity=0, homogeneity=1, ASM=1, energy=1,
                  correlation=1, mean=3, variance=0, std=0, entropy=0)
    for p, prop in enumerate(SUPPORTED_PROPS):
        np.testing.assert_allclose(got[p], expect[prop], atol=1e-6, err_msg=prop)


@pytest.mark.parametrize("window, levels, distances", [(25, 64, (1, 3)), (9, 256, (1, 2))])
def test_large_window_many_levels_at_points(window, levels, distances):
    img = _image("random", levels, shape=(40, 60), seed=3)
    img[10:30, 20:50] = img[10:30, 20:50] // 7  # some repeated pairs at 256 levels
    rows = np.array([0, 5, 20, 39, 39, 17])
    cols = np.array([0, 59, 30, 0, 59, 44])
    kw = dict(window=window, levels=levels, distances=distances, props=SUPPORTED_PROPS)
    want = glcm_naive_at(img, rows, cols, **kw)
    np.testing.assert_allclose(glcm(img, **kw)[:, rows, cols], want, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(glcm_at(img, rows, cols, **kw), want, rtol=RTOL, atol=ATOL)


def test_glcm_at_equals_glcm_at_the_points():
    img = _image("half", 32, shape=(30, 41), seed=5)
    rng = np.random.default_rng(1)
    rows = np.concatenate([[0, 29, 0, 29], rng.integers(0, 30, 50)])
    cols = np.concatenate([[0, 0, 40, 40], rng.integers(0, 41, 50)])
    for window, distances in ((5, (1,)), (11, (1, 2))):
        kw = dict(window=window, levels=32, distances=distances, props=SUPPORTED_PROPS)
        full = glcm(img, **kw)
        np.testing.assert_array_equal(glcm_at(img, rows, cols, **kw), full[:, rows, cols])
    empty = glcm_at(img, np.array([], int), np.array([], int), window=5, levels=32)
    assert empty.shape == (len(DEFAULT_PROPS), 0)


def test_glcm_same_for_any_thread_count_and_chunking(monkeypatch):
    img = _image("half", 16, shape=(37, 29), seed=2)
    ref = glcm(img, window=7, levels=16, props=SUPPORTED_PROPS)
    n = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        np.testing.assert_array_equal(glcm(img, window=7, levels=16, props=SUPPORTED_PROPS), ref)
    finally:
        numba.set_num_threads(n)
    # many small chunks, strips and blocks: each restarts its own state
    monkeypatch.setattr(texture, "CHUNK_ROWS", 3)
    monkeypatch.setattr(texture, "STRIP_COLS", 10)
    monkeypatch.setattr(texture, "BLOCK_COLS", 4)
    np.testing.assert_array_equal(glcm(img, window=7, levels=16, props=SUPPORTED_PROPS), ref)


def test_props_subset_and_order():
    img = _image("random", 8, seed=4)
    every = glcm(img, window=5, levels=8, props=SUPPORTED_PROPS)
    some = glcm(img, window=5, levels=8, props=("entropy", "contrast"))
    idx = [SUPPORTED_PROPS.index("entropy"), SUPPORTED_PROPS.index("contrast")]
    np.testing.assert_array_equal(some, every[idx])
    assert glcm(img, window=5, levels=8).shape[0] == len(DEFAULT_PROPS)


@pytest.mark.parametrize("kwargs, image, match", [
    ({}, np.zeros((9, 9), np.float32), "integer grey levels"),
    ({"window": 4}, None, "odd integer in 3..255"),
    ({"window": 257}, None, "odd integer in 3..255"),
    ({"levels": 257}, None, "levels must be an integer in 2..256"),
    ({"levels": 1}, None, "levels must be an integer in 2..256"),
    ({"window": 11}, None, "smaller than the 11x11 window"),
    ({}, np.full((9, 9), 8, np.uint8), "grey levels must lie in 0..7"),
    ({"props": ("contrast", "smoothness")}, None, "unknown GLCM prop"),
    ({"distances": (5,)}, None, "distances must be integers in 1..4"),
    ({}, np.zeros((2, 9, 9), np.uint8), "must be 2-D"),
])
def test_bad_input_raises_one_clear_error(kwargs, image, match):
    img = np.zeros((9, 9), np.uint8) if image is None else image
    kw = dict(window=5, levels=8) | kwargs
    with pytest.raises(ValueError, match=match):
        glcm(img, **kw)
    with pytest.raises(ValueError, match=match):
        glcm_at(img, np.array([0]), np.array([0]), **kw)


def test_glcm_at_bad_positions():
    img = np.zeros((9, 9), np.uint8)
    with pytest.raises(ValueError, match="rows must lie in 0..8"):
        glcm_at(img, np.array([9]), np.array([0]), window=3, levels=8)
    with pytest.raises(ValueError, match="same length"):
        glcm_at(img, np.array([1, 2]), np.array([0]), window=3, levels=8)
    with pytest.raises(ValueError, match="1-D integer"):
        glcm_at(img, np.array([1.0]), np.array([0]), window=3, levels=8)


# --- quantiser ---------------------------------------------------------------------
@pytest.mark.parametrize("band, var", [("hh", "nersc_sar_primary"), ("HV", "nersc_sar_secondary")])
def test_quantize_db_fixed_range(band, var):
    lo, hi = DB_RANGES[var]
    step = (hi - lo) / 32
    db = np.array([lo - 5, lo, lo + 0.5 * step, lo + 1.5 * step, hi - 0.5 * step, hi, hi + 7])
    np.testing.assert_array_equal(quantize_db(db, band, 32), [0, 0, 0, 1, 31, 31, 31])
    assert quantize_db(db, band, 32).dtype == np.uint8


def test_quantize_fill_pixels_get_the_mean_level():
    db = np.array([[np.nan, -14.0], [-20.0, np.nan]], np.float32)
    q = quantize_db(db, "hh", 64)
    assert q[0, 0] == q[1, 1] == fill_level("hh", 64)
    mean = meanstd()["nersc_sar_primary"]["mean"]
    assert fill_level("hh", 64) == quantize_db(np.array([mean]), "hh", 64)[0]
    # z == 0.0 (the scene files' fill) lands on the same level
    z = np.array([0.0, to_zscore("nersc_sar_secondary", -25.0)], np.float32)
    zq = quantize_db(to_physical("nersc_sar_secondary", z), "hv", 64)
    assert zq[0] == fill_level("hv", 64)
    assert zq[1] == quantize_db(np.array([-25.0]), "hv", 64)[0]


def test_quantize_bad_input():
    with pytest.raises(ValueError, match="unknown SAR band"):
        quantize_db(np.zeros(3), "vv", 32)
    with pytest.raises(ValueError, match="levels must be an integer in 2..256"):
        quantize_db(np.zeros(3), "hh", 300)
