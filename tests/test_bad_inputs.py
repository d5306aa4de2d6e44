"""Bad inputs through the command line, as a user meets them.

Each case: exit code 1, one ``error:`` line on stderr naming the file and the
fix, no traceback, and nothing written where the output was to go. Where a
run can sensibly go on without a bad scene, ``--skip-bad`` does and says so.
The contract checks themselves are tested in test_reader.py; here they are
seen through ``train``, ``predict`` and ``evaluate``.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5netcdf
import numpy as np
import pytest

from featurize import FeatureConfig
from models.manifest import Manifest
from pipeline import train_models
from scenes.reader import SceneError, list_scenes
from scenes.synth import make_scene, write_synthetic_dataset

import tiny

ROOT = Path(__file__).resolve().parents[1]
SIZE = (100, 110)
#: Sorts before the synthetic scenes' keys (2019-2021), so it is met first.
BAD_KEY = "20000101T000000_cis"
#: The fixture model's config: a 31-pixel texture window (the default's 25 is
#: also the reader's smallest scene, so no readable scene is too small for it).
CONFIG = FeatureConfig(texture_windows=(11, 31))
TINY = tiny.PARAMS


def _write(ds, path):
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def bad_scene(case: str, folder: Path, kind: str) -> Path:
    """Write the scene of ``case`` into ``folder``; return its path."""
    path = folder / f"{BAD_KEY}_prep.nc"
    if case == "not_netcdf":
        path.write_text("this is not a NetCDF file\n")
        return path
    ds = make_scene((28, 60) if case == "too_small" else SIZE, seed=3, kind=kind)
    hh = ds.nersc_sar_primary
    mutate = {
        "truncated": lambda d: d,
        "too_small": lambda d: d,
        "missing_variable": lambda d: d.drop_vars("nersc_sar_secondary"),
        "wrong_dims": lambda d: d.assign(sar_incidenceangle=d.sar_incidenceangle.transpose()),
        "wrong_dtype": lambda d: d.assign(nersc_sar_primary=hh.astype("float64")),
        "nan_fill": lambda d: d.assign(nersc_sar_primary=hh.where(hh != 0, np.nan)),
        "no_valid_pixel": lambda d: d.assign(nersc_sar_primary=hh * 0),
        "grid_2km": lambda d: d.isel({"2km_grid_lines": slice(0, -1)}),
    }[case]
    _write(mutate(ds), path)
    if case == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path


#: case -> words the error line must hold (besides the file name).
SCENE_CASES = {
    "truncated": "truncated",
    "not_netcdf": "cannot be read as NetCDF4",
    "missing_variable": "nersc_sar_secondary: missing",
    "wrong_dims": "sar_incidenceangle: has dims",
    "wrong_dtype": "nersc_sar_primary: has dtype float64",
    "nan_fill": "NaN",
    "no_valid_pixel": "no valid pixel",
    "grid_2km": "floor(n/25)",
    "too_small": "smaller than the 31 x 31 texture window",
}
#: A training run meets the same checks; these cover the reader (metadata and values).
TRAIN_CASES = ("truncated", "missing_variable", "nan_fill", "no_valid_pixel")


def _cli(command, *args):
    """``python run.py COMMAND -q ARGS`` (-q: no progress bars on stderr)."""
    return subprocess.run([sys.executable, str(ROOT / "run.py"), command, "-q", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad")
    write_synthetic_dataset(out, n_train=3, n_test=2, size=SIZE, seed=21, progress=False)
    train_models(out / "train", out / "model", config=CONFIG, seed=0, n_pixels=3000,
                 val_fraction=0, n_jobs=1, estimator_params=TINY, progress=False)
    return out


@pytest.fixture(scope="module")
def scene_runs(data, tmp_path_factory):
    """Every scene case through predict (and some through train), run concurrently."""
    root = tmp_path_factory.mktemp("scene_cases")
    jobs = {}
    for case in SCENE_CASES:
        for command in ("predict", "train") if case in TRAIN_CASES else ("predict",):
            d = root / f"{command}_{case}"
            scenes, out = d / "scenes", d / "out"
            scenes.mkdir(parents=True)
            out.mkdir()
            kind = "test" if command == "predict" else "train"
            for p in list_scenes(data / kind):
                shutil.copy(p, scenes)
            bad = bad_scene(case, scenes, kind)
            if command == "predict":
                args = ["predict", "--data", scenes, "--model", data / "model", "--out",
                        out / "sub.nc"]
            else:
                args = ["train", "--data", scenes, "--out", out / "model", "--val-fraction", 0,
                        "--pixels", 3000, "--jobs", 1]
            jobs[(command, case)] = (bad, out, args)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(jobs, pool.map(lambda j: _cli(*j[2]), jobs.values())))
    return {k: (jobs[k][0], jobs[k][1], results[k]) for k in jobs}


def _one_error_line(r) -> str:
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "; " in lines[0]  # the problem, then the fix
    return lines[0]


@pytest.mark.parametrize("command, case", [("predict", c) for c in SCENE_CASES]
                         + [("train", c) for c in TRAIN_CASES])
def test_bad_scene_one_line_and_nothing_written(scene_runs, command, case):
    bad, out, r = scene_runs[(command, case)]
    line = _one_error_line(r)
    assert str(bad) in line and SCENE_CASES[case] in line
    assert list(out.iterdir()) == []  # no output, no temporary file, no cache


def test_too_small_for_the_texture_window_when_training(data, tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(data / "train", folder)
    small = bad_scene("too_small", folder, "train")
    with pytest.raises(SceneError, match="texture window") as err:
        train_models(folder, tmp_path / "m", config=CONFIG, n_pixels=3000, val_fraction=0,
                     n_jobs=1, progress=False)
    assert str(small) in str(err.value) and "--skip-bad" in str(err.value)
    assert not (tmp_path / "m").exists()


def test_two_files_with_one_scene_key(data, tmp_path):
    folder = tmp_path / "test"
    shutil.copytree(data / "test", folder)
    first = list_scenes(folder)[0]
    shutil.copy(data / "reference" / f"{first.name[:19]}_prep_reference.nc", folder)
    r = _cli("predict", "--data", folder, "--model", data / "model", "--out", tmp_path / "s.nc")
    line = _one_error_line(r)
    assert "same scene key" in line and first.name[:19] in line and "keep one file" in line
    assert not (tmp_path / "s.nc").exists()


def test_reference_without_its_test_scene(data, tmp_path):
    one = tmp_path / "one_test_scene"
    one.mkdir()
    kept, lost = list_scenes(data / "test")
    shutil.copy(kept, one)
    sub = tmp_path / "sub.nc"
    assert _cli("predict", "--data", one, "--model", data / "model", "--out", sub).returncode == 0
    report = tmp_path / "report"
    r = _cli("evaluate", "--submission", sub, "--reference", data / "reference", "--report", report)
    line = _one_error_line(r)
    ref = data / "reference" / f"{lost.name[:19]}_prep_reference.nc"
    assert str(ref) in line and "has no maps" in line and "--allow-missing" in line
    assert not report.exists()
    r = _cli("evaluate", "--submission", sub, "--reference", data / "reference", "--json",
             "--allow-missing")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["combined"] < 100


def test_output_folder_cannot_be_written(data, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    r = _cli("predict", "--data", data / "test", "--model", data / "model", "--out",
             blocker / "sub.nc")
    line = _one_error_line(r)
    assert str(blocker / "sub.nc") in line and "not a folder" in line and "--out" in line
    r = _cli("train", "--data", data / "train", "--out", blocker / "model", "--pixels", 3000)
    line = _one_error_line(r)
    assert str(blocker / "model") in line and "not a folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_model_from_another_feature_config(data, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(data / "model", model)
    man = json.loads((model / "manifest.json").read_text())
    man["feature_config"]["texture_windows"] = [11, 21]  # names still say glcm31
    (model / "manifest.json").write_text(json.dumps(man))
    r = _cli("predict", "--data", data / "test", "--model", model, "--out", tmp_path / "s.nc")
    line = _one_error_line(r)
    assert str(model) in line and "do not match" in line and "retrain" in line
    assert not (tmp_path / "s.nc").exists() and not (tmp_path / "s.nc.cache").exists()


def test_skip_bad_predict_says_loudly_what_the_submission_lacks(data, tmp_path):
    folder = tmp_path / "test"
    shutil.copytree(data / "test", folder)
    bad = bad_scene("nan_fill", folder, "test")
    sub = tmp_path / "sub.nc"
    r = _cli("predict", "--data", folder, "--model", data / "model", "--out", sub,
             "--skip-bad")
    assert r.returncode == 0, r.stderr
    assert "LACKS 1 scene" in r.stderr and str(bad) in r.stderr and "score 0" in r.stderr
    assert "1 MISSING" in r.stdout
    with h5netcdf.File(sub, "r") as f:
        keys = {name.rsplit("_", 1)[0] for name in f.variables}
    assert keys == {p.name[:19] for p in list_scenes(data / "test")}


def test_skip_bad_train_lists_the_skipped_scene(data, tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(data / "train", folder)
    bad = bad_scene("no_valid_pixel", folder, "train")
    r = _cli("train", "--data", folder, "--out", tmp_path / "m", "--val-fraction", 0,
             "--pixels", 3000, "--skip-bad")
    assert r.returncode == 0, r.stderr
    assert "skipped 1 bad scene" in r.stderr and str(bad) in r.stderr
    man = Manifest.from_dict(json.loads((tmp_path / "m" / "manifest.json").read_text()))
    assert [s.scene for s in man.training.skipped_scenes] == [bad.name]
    assert bad.name in man.training.skipped_scenes[0].reason
    assert bad.name not in man.training.train_scenes
    assert len(man.training.train_scenes) == 3
