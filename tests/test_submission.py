"""Submission file: write, validate, reject broken files, score against references."""
import json
import subprocess
import sys
from pathlib import Path

import h5netcdf
import numpy as np
import pytest

from evaluation.scoring import score_submission
from evaluation.submission import SubmissionWriter, validate_submission
from scenes import contract as C
from scenes.reader import iter_scenes, scene_key

ROOT = Path(__file__).resolve().parents[1]


def write_submission(path, maps_by_key):
    with SubmissionWriter(path) as sub:
        for key, maps in maps_by_key.items():
            sub.add(key, maps)
    return path


def _reference_maps(synth_dir):
    """The reference labels as a 'perfect' submission (255 -> 0 so values stay in range)."""
    maps = {}
    for path, ds in iter_scenes(synth_dir / "reference", kind="reference"):
        maps[scene_key(path)] = {c: np.where(ds[c].values == 255, 0, ds[c].values).astype(np.uint8)
                                 for c in C.LABEL_CHARTS}
    return maps


def test_written_submission_is_valid_and_scores_perfectly(synth_dir, tmp_path):
    maps = _reference_maps(synth_dir)
    out = write_submission(tmp_path / "upload_package.nc", maps)
    assert validate_submission(out, synth_dir / "test") == []
    with h5netcdf.File(out, "r") as f:
        for key, charts in maps.items():
            for chart, arr in charts.items():
                var = f.variables[f"{key}_{chart}"]
                assert var.dtype == np.uint8
                assert var.dimensions == (f"{key}_{chart}_dim0", f"{key}_{chart}_dim1")
                assert var.compression == "gzip" and var.compression_opts == 1
                np.testing.assert_array_equal(var[...], arr)
    result = score_submission(out, synth_dir / "reference", report_dir=tmp_path / "report")
    assert result["scores"] == {"SIC": 100.0, "SOD": 100.0, "FLOE": 100.0, "combined": 100.0}
    assert (tmp_path / "report" / "per_scene_scores.csv").read_text().count("\n") == 1 + len(maps)
    assert (tmp_path / "report" / "confusion_SOD.csv").exists()


def _write_raw(path, arrays):
    """A submission-like file written by hand, so it can break the rules."""
    with h5netcdf.File(path, "w") as f:
        for name, arr in arrays.items():
            dims = (f"{name}_dim0", f"{name}_dim1")
            f.dimensions.update(dict(zip(dims, arr.shape)))
            f.create_variable(name, dims, arr.dtype, data=arr)
    return path


def test_broken_submission_rejected_with_right_messages(synth_dir, tmp_path):
    maps = _reference_maps(synth_dir)
    k0, k1 = sorted(maps)[:2]
    arrays = {f"{k}_{c}": a for k, charts in maps.items() for c, a in charts.items()}
    arrays[f"{k0}_SIC"] = arrays[f"{k0}_SIC"][:-1]                       # wrong shape
    arrays[f"{k1}_SOD"] = np.full_like(arrays[f"{k1}_SOD"], 9)           # class out of range
    arrays[f"{k1}_FLOE"] = arrays[f"{k1}_FLOE"].astype(np.int16)         # wrong dtype
    del arrays[f"{k0}_SOD"]                                              # missing variable
    arrays["20990101T000000_dmi_SIC"] = arrays[f"{k1}_SIC"]              # unknown scene
    out = _write_raw(tmp_path / "bad.nc", arrays)
    problems = validate_submission(out, synth_dir / "test")
    text = "\n".join(problems)
    assert f"{k0}_SIC: shape" in text
    assert f"{k1}_SOD: value 9 is not a class 0..5" in text
    assert f"{k1}_FLOE: dtype int16" in text
    assert f"{k0}_SOD: missing" in text
    assert "20990101T000000_dmi_SIC: unknown scene" in text
    assert len(problems) == 5
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "validate", "--submission", out,
                        "--scenes", synth_dir / "test"], capture_output=True, text=True)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == len(problems)


def test_scene_read_only_for_values_out_of_range(synth_dir, tmp_path, monkeypatch):
    """Maps in range everywhere need no scene mask; out of range only counts at valid pixels."""
    import evaluation.submission as S

    maps = _reference_maps(synth_dir)
    good = write_submission(tmp_path / "good.nc", maps)
    reads = []
    monkeypatch.setattr(S, "valid_mask", lambda ds: reads.append(1) or C.sar_valid(
        ds[C.SAR_VARS[0]].values))
    assert validate_submission(good, synth_dir / "test") == [] and reads == []
    k0 = sorted(maps)[0]
    test_scene = next((synth_dir / "test").glob(f"{k0}*"))
    valid = next(iter_scenes(test_scene))[1]
    valid = C.sar_valid(valid[C.SAR_VARS[0]].values)
    assert (~valid).any()
    arrays = {f"{k}_{c}": a.copy() for k, charts in maps.items() for c, a in charts.items()}
    arrays[f"{k0}_SOD"][~valid] = 200  # out of range, but only where the scene has no data
    arrays[f"{k0}_FLOE"][np.argwhere(valid)[0][0], np.argwhere(valid)[0][1]] = 200
    out = _write_raw(tmp_path / "mixed.nc", arrays)
    assert validate_submission(out, synth_dir / "test") == [
        f"{out}: {k0}_FLOE: value 200 is not a class 0..6 at 1 scored pixel(s)"]
    assert reads == [1]  # one read of the scene for its two maps


def test_not_netcdf_and_failed_write_leave_nothing(synth_dir, tmp_path):
    bad = tmp_path / "x.nc"
    bad.write_text("hello")
    [problem] = validate_submission(bad, synth_dir / "test")
    assert "cannot be read as NetCDF4" in problem
    target = tmp_path / "partial.nc"
    with pytest.raises(KeyError):
        with SubmissionWriter(target) as sub:
            sub.add("20200101T000000_dmi", {"SIC": np.zeros((4, 4), np.uint8)})  # no SOD -> error
    assert list(tmp_path.iterdir()) == [bad]


def test_evaluate_cli_json_and_missing_chart(synth_dir, tmp_path):
    maps = _reference_maps(synth_dir)
    arrays = {f"{k}_{c}": a for k, charts in maps.items() for c, a in charts.items() if c != "FLOE"}
    sub = _write_raw(tmp_path / "s.nc", arrays)
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "evaluate", "--submission", sub,
                        "--reference", synth_dir / "reference", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"SIC": 100.0, "SOD": 100.0, "FLOE": 0.0, "combined": 80.0}
