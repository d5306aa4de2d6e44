"""The README's main job, as a user runs it: demo, then train/predict/evaluate by hand."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.submission import validate_submission

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), args[0], "-q", *map(str, args[1:])],
                       capture_output=True, text=True, cwd=ROOT)
    return r


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    r = _run("demo", "--out", out, "--train", 4, "--test", 2, "--size", "120x128", "--pixels", 30000)
    assert r.returncode == 0, r.stderr
    return out, r


def test_demo_ends_with_valid_submission_scores_and_figures(demo):
    out, r = demo
    assert validate_submission(out / "upload_package.nc", out / "data" / "test") == []
    scores = json.loads((out / "scores.json").read_text())["scores"]
    assert set(scores) == {"SIC", "SOD", "FLOE", "combined"}
    assert "combined" in r.stdout
    pngs = sorted((out / "report").glob("*.png"))
    assert len(pngs) == 3 + 2  # three confusion matrices, one map figure per test scene
    assert all(p.stat().st_size > 10_000 for p in pngs)


def test_predict_twice_is_identical_and_evaluate_matches_demo(demo, tmp_path):
    out, _ = demo
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    for f in (a, b):
        r = _run("predict", "--data", out / "data" / "test", "--model", out / "model", "--out", f)
        assert r.returncode == 0, r.stderr
    import h5netcdf
    with h5netcdf.File(a, "r") as fa, h5netcdf.File(b, "r") as fb:
        assert sorted(fa.variables) == sorted(fb.variables)
        for name in fa.variables:
            assert (fa.variables[name][...] == fb.variables[name][...]).all(), name
    r = _run("evaluate", "--submission", a, "--reference", out / "data" / "reference", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads((out / "scores.json").read_text())["scores"]


def test_gpu_request_without_gpu_is_one_line(demo, tmp_path):
    out, _ = demo
    r = _run("train", "--data", out / "data" / "train", "--out", tmp_path / "m", "--device", "gpu",
             "--pixels", 5000)
    if r.returncode == 0:  # a machine with a working GPU build: nothing to check here
        assert (tmp_path / "m" / "manifest.json").exists()
        return
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "gpu" in r.stderr.lower()
    assert not (tmp_path / "m").exists()


def test_predict_refuses_missing_model(tmp_path, demo):
    out, _ = demo
    r = _run("predict", "--data", out / "data" / "test", "--model", tmp_path / "nope", "--out", tmp_path / "s.nc")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "s.nc").exists()


def test_train_features_option_is_recorded_and_checked(demo, tmp_path, capsys):
    out, _ = demo
    r = _run("train", "--data", out / "data" / "train", "--out", tmp_path / "m", "--pixels", 4000,
             "--features", '{"texture_windows": [], "context_scales": [5], "scene": true}')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()  # a short summary; the whole grid is in the manifest
    assert lines[0] == f"model written to {tmp_path / 'm'}" and len(lines) == 4, r.stdout
    assert lines[3].startswith(f"cache: {tmp_path / 'm.cache'} (")  # where, and how big
    assert lines[1].startswith("validation (1 scene(s)): combined ") and "without smoothing" in lines[1]
    assert lines[2].startswith("chosen: SIC mode ") and ", smoothing SIC " in lines[2]
    assert lines[2].endswith(f"every setting tried is in {tmp_path / 'm' / 'manifest.json'}")
    man = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert man["feature_config"]["texture_windows"] == [] and man["feature_config"]["scene"]
    assert man["feature_names"][-1] == "scene_service_dmi"
    assert not any("glcm" in n for n in man["feature_names"])
    assert man["training"]["estimator_params"]["min_child_samples"] == 4000 // 25  # small sample
    from cli.main import main

    capsys.readouterr()
    # refused before any work: in this process (a child each cost 4 s of imports)
    for bad, says in (('{"texture_windows": [11', "not valid JSON"), ('[11]', "JSON object"),
                      ('{"colour": 1}', "unknown FeatureConfig keys ['colour']"),
                      ('{"amsr2": "no"}', "amsr2 must be true or false"),
                      ('{"texture_windows": "abc"}', "texture_windows must be whole numbers")):
        code = main(["train", "--data", str(out / "data" / "train"), "--out",
                     str(tmp_path / "bad"), "--features", bad])
        err = capsys.readouterr().err
        assert code == 1 and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1 and says in err, err
        assert not (tmp_path / "bad").exists()
