"""What training and evaluation report can be trusted (issue 14, items 9, 10, 11 and 14).

- A validation split that cannot rank models (one class, or none) is avoided
  where the scenes allow it, else it decides nothing silently: no early
  stopping, default choices, one warning line, recorded in the manifest.
- ``--pixels auto`` (the default) follows the labelled pixels; fits show
  their rounds; the run says where its cache is and how big.
- A per-scene score of one reference scene that means nothing is n/a, with why.
- The numba kernels are cached, even from a read-only install.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import tiny
from cli.main import main
from evaluation.scoring import format_scene_row, scene_score_problem, score_submission
from evaluation.submission import SubmissionWriter
from models import IceClassifier, estimator
from models.manifest import Manifest
from models.split import scene_label_counts
from pipeline.train import AUTO_PIXEL_SHARE, FALLBACK_SMOOTHING, MAX_AUTO_PIXELS, auto_pixels
from scenes import contract as C
from scenes.reader import list_scenes, scene_key

ROOT = Path(__file__).resolve().parents[1]


def _relabel(src: Path, dst: Path, value) -> Path:
    """Copy a training scene with every labelled pixel of its charts set to ``value``."""
    with xr.open_dataset(src, engine="h5netcdf") as ds:
        ds = ds.load()
    for chart in C.LABEL_CHARTS:
        lab = ds[chart].values
        ds[chart].values = np.where(lab != C.MASK_VALUE, np.uint8(value), lab).astype(np.uint8)
    ds.to_netcdf(dst, engine="h5netcdf")
    return dst


def _mixed_scene(folder: Path) -> Path:
    """The synthetic training scene with the most classes."""
    paths = list_scenes(folder, kind="train")
    return max(paths, key=lambda p: sum(np.count_nonzero(c) for c in
                                        scene_label_counts(p, step=1).values()))


@pytest.fixture(scope="module")
def water_split(synth_dir, tmp_path_factory):
    """A mixed scene and an all-water copy of another: the only split keeping every
    training class holds out the all-water scene."""
    folder = tmp_path_factory.mktemp("water_split")
    mixed = _mixed_scene(synth_dir / "train")
    shutil.copy(mixed, folder)
    other = next(p for p in list_scenes(synth_dir / "train", kind="train") if p != mixed)
    _relabel(other, folder / other.name, 0)
    return folder


# --- item 9: degenerate validation ----------------------------------------------------------
def test_single_class_validation_decides_nothing_silently(water_split, tmp_path, capsys, caplog):
    out = tmp_path / "model"
    with caplog.at_level(logging.WARNING):
        assert main(["train", "--data", str(water_split), "--out", str(out), "--val-fraction",
                     "0.5", "--seed", "1", "--jobs", "1"]) == 0
    man = Manifest.from_dict(json.loads((out / "manifest.json").read_text()))
    t = man.training
    # the all-water scene was held out: none of its charts can rank models
    assert set(t.validation_fallbacks) == set(C.LABEL_CHARTS)
    assert t.validation_fallbacks["SIC"] == "only SIC class 0 in the validation scenes"
    assert t.early_stopping_points == {c: 0 for c in C.LABEL_CHARTS}
    n_rounds = t.estimator_params["n_estimators"]
    assert t.best_iterations == {"SIC_regression": n_rounds, "SOD": n_rounds, "FLOE": n_rounds}
    assert (man.sic_mode, man.water_rule, man.water_threshold) == ("regression", "sic", 0.5)
    assert all(man.smoothing[c] == FALLBACK_SMOOTHING for c in C.LABEL_CHARTS)
    # said in one line
    said = [r.getMessage() for r in caplog.records if "cannot rank models" in r.getMessage()]
    assert len(said) == 1 and "\n" not in said[0] and "without early stopping" in said[0]
    captured = capsys.readouterr()
    summary = next(line for line in captured.out.splitlines() if line.startswith("validation"))
    assert summary.startswith("validation (1 scene(s)): combined n/a (SIC n/a, SOD n/a, FLOE n/a)")

    # item 10 on the same run: --pixels auto (the default) follows the labelled pixels,
    train_counts = [scene_label_counts(water_split / name) for name in t.train_scenes]
    assert t.n_pixels == auto_pixels(train_counts) < MAX_AUTO_PIXELS
    labelled = sum(np.count_nonzero(xr.open_dataset(water_split / name, engine="h5netcdf")["SIC"]
                                    .values != C.MASK_VALUE) for name in t.train_scenes)
    assert abs(t.n_pixels - AUTO_PIXEL_SHARE * labelled) <= 0.1 * AUTO_PIXEL_SHARE * labelled
    # the fits showed their rounds, and the run said where its cache is and how big
    assert "fitting SOD" in captured.err and "round" in captured.err
    cache = Path(f"{out}.cache")
    size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    assert captured.out.strip().splitlines()[-1] == (
        f"cache: {cache} ({size / 1e6:.1f} MB; a rerun with the same arguments reuses it; "
        "delete it once done, or pass --no-cache)")


def test_all_masked_validation_scene_and_no_progress_bars_with_q(synth_dir, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    mixed = _mixed_scene(synth_dir / "train")
    shutil.copy(mixed, folder)
    other = next(p for p in list_scenes(synth_dir / "train", kind="train") if p != mixed)
    _relabel(other, folder / other.name, C.MASK_VALUE)
    out = tmp_path / "model"
    assert main(["train", "-q", "--data", str(folder), "--out", str(out), "--val-fraction", "0.5",
                 "--pixels", "3000", "--no-cache", "--jobs", "1"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["training"]["validation_fallbacks"] == {
        c: f"no labelled {c} pixels in the validation scenes" for c in C.LABEL_CHARTS}
    assert man["training"]["n_pixels"] == 3000
    captured = capsys.readouterr()
    assert "fitting SOD" not in captured.err  # -q: no progress bars
    assert not any(line.startswith("cache:") for line in captured.out.splitlines())  # --no-cache


def test_old_format_2_manifest_without_the_field_still_loads(tiny_model):
    d = json.loads((tiny_model[0] / "manifest.json").read_text())
    del d["training"]["validation_fallbacks"]
    assert Manifest.from_dict(d).training.validation_fallbacks == {}
    d["training"]["validation_fallbacks"] = {"ICE": "x"}
    with pytest.raises(ValueError, match=r"training\.validation_fallbacks\.ICE.*not a chart"):
        Manifest.from_dict(d)


# --- item 10: sample size and progress ---------------------------------------------------------
def test_auto_pixels_is_a_share_of_the_labelled_pixels_capped():
    def counts(n):
        return {c: np.array([n] + [0] * (C.N_CLASSES[c] - 1)) for c in C.LABEL_CHARTS}
    # counts are taken on every 4th row and column: each stands for 16 pixels
    assert auto_pixels([counts(1000), counts(500)]) == round(AUTO_PIXEL_SHARE * 1500 * 16)
    assert auto_pixels([counts(10 ** 9)]) == MAX_AUTO_PIXELS
    assert auto_pixels([counts(0)]) == 1


@pytest.mark.parametrize("bad", ["0", "-5", "many", "1.5"])
def test_pixels_option_is_checked_in_one_line(bad, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "m"), "--pixels", bad])
    err = capsys.readouterr().err
    assert "--pixels" in err and "whole number >= 1 or auto" in err


def test_fit_progress_bar_counts_rounds_and_changes_nothing(capsys, monkeypatch):
    bars = []

    class Bar(estimator.tqdm):
        def close(self):
            bars.append((self.desc, self.n, self.total))
            super().close()

    monkeypatch.setattr(estimator, "tqdm", Bar)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    quiet = IceClassifier(2, **tiny.PARAMS, n_jobs=1).fit(X, y)
    assert capsys.readouterr().err == "" and bars == []
    shown = IceClassifier(2, **tiny.PARAMS, n_jobs=1).fit(X, y, progress="fitting toy")
    n = tiny.PARAMS["n_estimators"]
    assert set(bars) == {("fitting toy", n, n)} and "fitting toy" in capsys.readouterr().err
    assert shown.booster_.model_to_string() == quiet.booster_.model_to_string()


# --- item 11: per-scene scores -------------------------------------------------------------
def test_per_scene_score_of_one_reference_class_is_na_with_the_reason(synth_dir, tmp_path,
                                                                       capsys):
    ref = tmp_path / "reference"
    ref.mkdir()
    water = _relabel(_mixed_scene(synth_dir / "train"),
                     ref / _mixed_scene(synth_dir / "train").name, 0)
    with xr.open_dataset(water, engine="h5netcdf") as ds:
        true = {c: ds[c].values for c in C.LABEL_CHARTS}
    pred = {c: np.where(true[c] == C.MASK_VALUE, 0, true[c]).astype(np.uint8)
            for c in C.LABEL_CHARTS}
    pred["SIC"][0, 0] = 3  # one wrong pixel: R2 of a one-class reference is 0, or 100 without
    sub = tmp_path / "sub.nc"
    with SubmissionWriter(sub) as w:
        w.add(scene_key(water), pred, scene=water)
    result = score_submission(sub, ref, report_dir=tmp_path / "report")
    (row,) = result["per_scene"]
    why = "one SIC class (0) in the reference, R2 undefined"
    assert row["SIC"] is None and row["not_scored"] == {"SIC": why}
    assert row["SOD"] == 100.0  # F1 of one class still means something
    assert format_scene_row(row) == f"{row['scene']}: SIC n/a ({why})  SOD 100.000  FLOE 100.000"
    with open(tmp_path / "report" / "per_scene_scores.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["scene", "SIC", "SOD", "FLOE", "note"]
    assert rows[1] == [row["scene"], "n/a", "100.0", "100.0", f"SIC n/a: {why}"]

    assert main(["evaluate", "--submission", str(sub), "--reference", str(ref)]) == 0
    assert f"  {row['scene']}: SIC n/a ({why})" in capsys.readouterr().out


def test_scene_score_problem():
    cm = np.zeros((C.N_CLASSES["SIC"], 256), np.int64)
    assert scene_score_problem("SIC", cm) == "no labelled SIC pixels in the reference"
    cm[4, 4] = 10
    assert "one SIC class (4)" in scene_score_problem("SIC", cm)
    cm[5, 4] = 1
    assert scene_score_problem("SIC", cm) is None
    sod = np.zeros((C.N_CLASSES["SOD"], 256), np.int64)
    sod[0, 0] = 5
    assert scene_score_problem("SOD", sod) is None


# --- item 14: numba's compiled kernels are cached, even from a read-only install ---------------
def test_kernels_are_cached_and_import_from_a_read_only_install(tmp_path):
    from featurize import _texture_kernels, context, radiometer
    from models import _kernels
    from scenes import _synth_kernels

    dispatchers = [f for m in (_texture_kernels, context, radiometer, _kernels, _synth_kernels)
                   for f in vars(m).values() if type(f).__name__ == "CPUDispatcher"]
    assert len(dispatchers) > 20
    assert all(type(f._cache).__name__ == "FunctionCache" for f in dispatchers)

    # A copy whose __pycache__ folders and home cannot be written (plain files stand in the
    # way, so this holds for root too): numba used to refuse to define cached kernels there.
    site = tmp_path / "site"
    for pkg in ("scenes", "featurize", "models"):
        shutil.copytree(ROOT / pkg, site / pkg, ignore=shutil.ignore_patterns("__pycache__"))
        for folder in [site / pkg, *(p for p in (site / pkg).rglob("*") if p.is_dir())]:
            (folder / "__pycache__").write_text("not a folder\n")
    (tmp_path / "blocked").write_text("not a folder\n")
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(site), HOME=str(tmp_path / "blocked" / "home"),
               XDG_CACHE_HOME=str(tmp_path / "blocked" / "cache"), TMPDIR=str(tmp_path / "tmp"),
               PYTHONDONTWRITEBYTECODE="1")
    code = ("import featurize.context, models._kernels, numba; "
            "print(featurize.context.__file__); print(numba.config.CACHE_DIR)")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr[-1500:]
    where, cache = r.stdout.split()
    assert where == str(site / "featurize" / "context.py")
    assert Path(cache).parent == tmp_path / "tmp"


def test_train_help_shows_the_pixels_default(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "default auto: 10% of the training scenes' labelled pixels, at most 2000000" in out
    assert "--register NAME" in out
