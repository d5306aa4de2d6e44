"""Resumable runs: the per-scene cache, and killed runs that resume to the same output."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import pipeline.predict
import pipeline.train
from cli.main import main
from pipeline import train_models
from pipeline import SceneRunner
from pipeline.cache import SceneCache, default_cache_dir, source_identity
from models.manifest import Manifest
from models.predict import make_lattice
from scenes.reader import list_scenes, scene_key
from scenes.synth import write_synthetic_dataset

import tiny

ROOT = Path(__file__).resolve().parents[1]
TINY = tiny.PARAMS


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume")
    write_synthetic_dataset(out, n_train=4, n_test=3, size=(100, 110), seed=5, progress=False)
    model = out / "model"
    train_models(out / "train", model, seed=1, n_pixels=4000, val_fraction=0.25, n_jobs=1,
                 estimator_params=TINY, progress=False)
    return out


class _Kill:
    """Wraps a per-scene function: counts calls, raises at call ``at`` (a simulated kill)."""

    def __init__(self, func, at=None):
        self.func, self.at, self.calls = func, at, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise RuntimeError("simulated kill")
        return self.func(*args, **kwargs)


def _predict(data, out, *extra):
    return main(["predict", "-q", "--data", str(data / "test"), "--model", str(data / "model"),
                 "--out", str(out), *map(str, extra)])


# --- the cache itself ---------------------------------------------------------------
def test_cache_roundtrip_keys_and_staleness(tmp_path):
    scene = tmp_path / "20200101T000000_dmi_prep.nc"
    scene.write_bytes(b"x" * 10)
    src = source_identity(scene)
    result = {"X": np.arange(12, dtype=np.float32).reshape(3, 4), "y": {"SIC": np.arange(3)},
              "lattice": make_lattice((30, 40), 12), "shape": (3, 4), "n": 7, "none": None}
    cache = SceneCache(tmp_path / "c", "sample", {"seed": 1})
    assert cache.load("20200101T000000_dmi", src) is None and not cache.dir.exists()
    cache.save("20200101T000000_dmi", src, result)
    back = cache.load("20200101T000000_dmi", src)
    np.testing.assert_array_equal(back["X"], result["X"])
    assert back["X"].dtype == np.float32 and back["y"]["SIC"].tolist() == [0, 1, 2]
    assert back["lattice"].shape == (30, 40) and back["lattice"].stride == 12
    np.testing.assert_array_equal(back["lattice"].rows, result["lattice"].rows)
    assert back["shape"] == (3, 4) and back["n"] == 7 and back["none"] is None
    assert sorted(p.name for p in cache.dir.iterdir()) == ["20200101T000000_dmi.npz", "config.json"]
    # another configuration is another folder; a changed scene file is a miss
    assert SceneCache(tmp_path / "c", "sample", {"seed": 2}).dir != cache.dir
    assert SceneCache(tmp_path / "c", "sample", {"seed": 1}).dir == cache.dir
    scene.write_bytes(b"y" * 11)
    assert cache.load("20200101T000000_dmi", source_identity(scene)) is None
    # a damaged entry is a miss, not an error
    cache.path("20200101T000000_dmi").write_bytes(b"PK\x03\x04 broken")
    assert cache.load("20200101T000000_dmi", src) is None


# --- predict ------------------------------------------------------------------------
def test_predict_killed_in_second_scene_resumes_to_identical_file(data, tmp_path, monkeypatch):
    ref = tmp_path / "ref" / "sub.nc"
    ref.parent.mkdir()
    assert _predict(data, ref) == 0
    out = tmp_path / "run" / "sub.nc"
    out.parent.mkdir()
    cache_dir = default_cache_dir(out)
    kill = _Kill(pipeline.predict.predict_scene, at=2)
    monkeypatch.setattr(pipeline.predict, "predict_scene", kill)
    assert _predict(data, out) == 1
    assert sorted(p.name for p in out.parent.iterdir()) == [cache_dir.name]  # no partial file
    entries = list(cache_dir.glob("predict-*/*.npz"))
    assert len(entries) == 1
    resumed = _Kill(pipeline.predict.predict_scene.func)
    monkeypatch.setattr(pipeline.predict, "predict_scene", resumed)
    assert _predict(data, out) == 0
    assert resumed.calls == 2  # the finished scene came from the cache
    assert out.read_bytes() == ref.read_bytes()
    # --fresh recomputes every scene, same bytes; --no-cache writes no cache
    resumed.calls = 0
    assert _predict(data, out, "--fresh") == 0
    assert resumed.calls == 3 and out.read_bytes() == ref.read_bytes()
    other = tmp_path / "run" / "nocache.nc"
    assert _predict(data, other, "--no-cache") == 0
    assert not default_cache_dir(other).exists() and other.read_bytes() == ref.read_bytes()
    # another stride is another configuration: nothing reused
    resumed.calls = 0
    assert _predict(data, tmp_path / "run" / "s6.nc", "--cache", cache_dir, "--stride", 6) == 0
    assert resumed.calls == 3


def test_predict_sigkill_then_rerun(data, tmp_path):
    """A real kill (SIGKILL) while the 2nd scene runs; the rerun ends with the same file."""
    ref = tmp_path / "ref.nc"
    assert _predict(data, ref, "--no-cache") == 0
    out = tmp_path / "run" / "sub.nc"
    out.parent.mkdir()
    slow_second = (
        "import sys, time, pipeline.predict as b\n"
        "f = b.predict_scene; n = [0]\n"
        "def slow(*a, **k):\n"
        "    n[0] += 1\n"
        "    if n[0] == 2: time.sleep(60)\n"
        "    return f(*a, **k)\n"
        "b.predict_scene = slow\n"
        "from cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    args = ["predict", "-q", "--data", data / "test", "--model", data / "model", "--out", out]
    proc = subprocess.Popen([sys.executable, "-c", slow_second, *map(str, args)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not list(default_cache_dir(out).glob("predict-*/*.npz")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)  # into the sleeping 2nd scene
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not out.exists()
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "1 from the cache" in r.stdout
    assert out.read_bytes() == ref.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["sub.nc", "sub.nc.cache"]  # no .tmp


# --- train --------------------------------------------------------------------------
def _model_files(folder):
    man = Manifest.from_dict(json.loads((folder / "manifest.json").read_text()))
    man = replace(man, training=replace(man.training, timings_s={}, created_utc="-"))
    return man, {c: (folder / f"{c}.txt").read_bytes() for c in ("SIC", "SOD", "FLOE")}


def test_train_killed_in_second_scene_resumes_to_identical_model(data, tmp_path, monkeypatch):
    kw = dict(seed=2, n_pixels=4000, val_fraction=0.25, n_jobs=1, estimator_params=TINY,
              progress=False)
    train_models(data / "train", tmp_path / "ref", **kw)
    cache = tmp_path / "cache"
    kill = _Kill(pipeline.train.sample_scene, at=2)
    monkeypatch.setattr(pipeline.train, "sample_scene", kill)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_models(data / "train", tmp_path / "m", runner=SceneRunner(cache_dir=cache), **kw)
    assert not (tmp_path / "m").exists()
    assert len(list(cache.glob("sample-*/*.npz"))) == 1
    resumed = _Kill(kill.func)
    monkeypatch.setattr(pipeline.train, "sample_scene", resumed)
    runner = SceneRunner(cache_dir=cache)
    train_models(data / "train", tmp_path / "m", runner=runner, **kw)
    assert resumed.calls == 2  # 3 training scenes, the first from the cache
    assert _model_files(tmp_path / "m") == _model_files(tmp_path / "ref")
    # a full rerun reuses every scene's label counts, its sample or validation features
    # and a training scene's stage-2 lattice features (a validation scene's stage-2 part
    # comes from its validation features)
    runner = SceneRunner(cache_dir=cache)
    man = train_models(data / "train", tmp_path / "m2", runner=runner, **kw)
    val = set(man.training.val_scenes)
    keys = [scene_key(p) for p in list_scenes(data / "train")
            for _ in range(2 if p.name in val else 3)]
    assert val and resumed.calls == 2 and sorted(runner.reused) == sorted(keys)
    assert _model_files(tmp_path / "m2") == _model_files(tmp_path / "ref")
