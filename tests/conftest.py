"""Shared fixtures: tiny seeded synthetic scenes and a tiny model (made once per session)."""
from __future__ import annotations

import pytest

import tiny
from pipeline import train_models
from scenes.synth import make_scene, write_synthetic_dataset

TINY = (100, 110)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A tiny synthetic dataset: 3 train, 2 test (+ references), fixed seed."""
    out = tmp_path_factory.mktemp("synth")
    write_synthetic_dataset(out, n_train=3, n_test=2, size=TINY, seed=1234, progress=False)
    return out


@pytest.fixture
def train_ds():
    """One tiny in-memory training scene."""
    return make_scene(TINY, seed=7, kind="train")


@pytest.fixture(scope="session")
def tiny_model(synth_dir, tmp_path_factory):
    """A tiny model folder trained on ``synth_dir`` with validation scores, and its manifest.

    Shared: tests copy the folder before changing anything in it.
    """
    out = tmp_path_factory.mktemp("tiny_model") / "model"
    return out, train_models(synth_dir / "train", out, **tiny.TRAIN)

