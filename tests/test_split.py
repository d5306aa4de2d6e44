"""Validation scenes: a seeded split whose labels are like the training labels."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from models.split import (MAX_VAL_SCENES, MIN_TRAIN_SHARE, scene_label_counts, split_scenes,
                          validation_problem)
from scenes import contract as C
from scenes.reader import list_scenes


def _counts(sic, sod=None, floe=None):
    """Label counts of one made-up scene from ``{class: pixels}`` per chart."""
    out = {}
    for chart, d in (("SIC", sic), ("SOD", sod or sic), ("FLOE", floe or sic)):
        c = np.zeros(C.N_CLASSES[chart], np.int64)
        for k, n in d.items():
            c[k] = n
        out[chart] = c
    return out


WATER = _counts({0: 1000})
MIXED = _counts({0: 500, 10: 500}, {0: 500, 4: 500}, {0: 500, 5: 500})
OLD = _counts({0: 200, 10: 800}, {0: 200, 5: 800}, {0: 200, 4: 800})


def _paths(n):
    return [Path(f"2020010{i}T000000_dmi_prep.nc") for i in range(n)]


def test_without_counts_a_seeded_random_split():
    paths = _paths(10)
    train, val = split_scenes(paths, 0.2, seed=3)
    assert len(val) == 2 and len(train) == 8 and not set(train) & set(val)
    assert sorted(train + val) == sorted(paths)
    assert split_scenes(paths, 0.2, seed=3) == (train, val)
    # the first of the seeded draws that label counts choose among
    order = np.random.default_rng(3).permutation(10)
    assert val == sorted(paths[i] for i in order[:2])
    assert split_scenes(paths, 0, seed=3) == (paths, [])


def test_validation_scenes_are_capped_and_the_rest_train():
    paths = [Path(f"2020{i // 28 + 1:02d}{i % 28 + 1:02d}T000000_dmi_prep.nc") for i in range(300)]
    train, val = split_scenes(paths, 0.2, seed=1, counts=[MIXED] * 300)
    assert len(val) == MAX_VAL_SCENES and len(train) == 300 - MAX_VAL_SCENES
    assert sorted(train + val) == sorted(paths)
    assert len(split_scenes(paths, 0.2, seed=1, max_val=5)[1]) == 5
    # below the cap the share decides, as before
    assert len(split_scenes(paths[:50], 0.2, seed=1)[1]) == 10


@pytest.mark.parametrize("seed", range(5))
def test_validation_scenes_are_not_all_water_when_ice_is_there(seed):
    # 6 all-water scenes of 10: a plain draw of 2 is all water one time in three
    paths = _paths(10)
    counts = [WATER] * 6 + [MIXED] * 4
    train, val = split_scenes(paths, 0.2, seed=seed, counts=counts)
    by_path = dict(zip(paths, counts))
    val_ice = sum(by_path[p]["SIC"][1:].sum() for p in val)
    train_ice = sum(by_path[p]["SIC"][1:].sum() for p in train)
    assert val_ice > 0 and train_ice > 0
    assert split_scenes(paths, 0.2, seed=seed, counts=counts) == (train, val)


def test_a_class_held_by_one_scene_stays_in_training():
    paths = _paths(6)
    counts = [WATER, WATER, MIXED, MIXED, MIXED, OLD]  # only OLD has SOD 5 (old ice)
    for seed in range(10):
        train, val = split_scenes(paths, 0.34, seed=seed, counts=counts)
        assert paths[5] in train
        kept = sum(counts[paths.index(p)]["SOD"][5] for p in train)
        assert kept >= MIN_TRAIN_SHARE * OLD["SOD"][5]


def test_bad_arguments():
    with pytest.raises(ValueError, match="val_fraction must be in"):
        split_scenes(_paths(3), 1.0, seed=0)
    with pytest.raises(ValueError, match="at least 2 scenes"):
        split_scenes(_paths(1), 0.2, seed=0)
    with pytest.raises(ValueError, match="2 label counts for 3 scenes"):
        split_scenes(_paths(3), 0.2, seed=0, counts=[WATER, WATER])


def test_scene_label_counts_match_the_charts(synth_dir):
    path = list_scenes(synth_dir / "train", kind="train")[0]
    counts = scene_label_counts(path, step=1)
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        for chart in C.LABEL_CHARTS:
            lab = ds[chart].values.ravel()
            want = np.bincount(lab[lab != C.MASK_VALUE], minlength=C.N_CLASSES[chart])
            np.testing.assert_array_equal(counts[chart], want)
            assert counts[chart].sum() == np.count_nonzero(lab != C.MASK_VALUE)


def test_validation_scenes_hold_two_classes_of_every_chart_where_the_split_allows():
    # holding out a water or a mixed scene is equally representative here (a tie the
    # first draw used to break); one water scene cannot rank models, so it is not held out
    paths = _paths(4)
    counts = [WATER, WATER, MIXED, MIXED]
    for seed in range(10):
        train, val = split_scenes(paths, 0.25, seed=seed, counts=counts)
        assert val in ([paths[2]], [paths[3]])
    # training keeps its classes first: OLD alone holds old ice, so it stays in training
    # even though every other validation choice is a single-class scene
    train, val = split_scenes(_paths(3), 0.34, seed=0, counts=[WATER, WATER, OLD])
    assert _paths(3)[2] in train


def test_validation_problem():
    assert validation_problem("SIC", np.array([255, 255], np.uint8)) == \
        "no labelled SIC pixels in the validation scenes"
    assert validation_problem("SOD", np.array([3, 3, 255], np.uint8)) == \
        "only SOD class 3 in the validation scenes"
    assert validation_problem("FLOE", np.array([0, 2, 255], np.uint8)) is None
