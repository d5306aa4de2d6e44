"""What a user hands the CLI is never destroyed, and bad inputs and options fail first,
in one line naming the file or option (issue: trust).

Each test runs the CLI in-process (``cli.main.main``) and checks the exit code, the
error line, that no traceback escaped, and that the inputs are byte-identical.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import h5netcdf
import numpy as np
import pytest

from cli.main import main
from scenes.reader import list_scenes
from scenes.synth import write_synthetic_dataset


def cli(capsys, *argv):
    """Exit code, stdout and stderr of one CLI call."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def work(synth_dir, tiny_model, tmp_path):
    """A private copy of the tiny dataset and model, and their digests."""
    data, model = tmp_path / "data", tmp_path / "model"
    shutil.copytree(synth_dir, data)
    shutil.copytree(tiny_model[0], model)
    return data, model, digest(tmp_path)


# --- 1. outputs never alias inputs ----------------------------------------------------
def _predict(capsys, data, model, out, *extra):
    return cli(capsys, "predict", "-q", "--data", data / "test", "--model", model, "--out", out,
               "--no-cache", *extra)


def test_predict_out_onto_an_input_scene_is_refused(work, capsys, tmp_path):
    data, model, before = work
    scene = list_scenes(data / "test")[0]
    code, _, err = _predict(capsys, data, model, scene)
    assert code == 1 and "is " in one_error(err) and "--data" in err
    assert digest(tmp_path) == before


def test_predict_out_onto_the_manifest_is_refused(work, capsys, tmp_path):
    data, model, before = work
    code, _, err = _predict(capsys, data, model, model / "manifest.json")
    assert code == 1 and "--model" in one_error(err)
    assert digest(tmp_path) == before


@pytest.mark.parametrize("link", ["symlink", "hardlink", "dotdot"])
def test_predict_out_resolving_to_an_input_is_refused(work, capsys, tmp_path, link):
    data, model, before = work
    scene = list_scenes(data / "test")[0]
    out = tmp_path / "sub.nc"
    if link == "symlink":
        out.symlink_to(scene)
    elif link == "hardlink":
        os.link(scene, out)
    else:
        out = data / "test" / ".." / "test" / scene.name
    before = digest(data)
    code, _, err = _predict(capsys, data, model, out)
    assert code == 1, err
    one_error(err)
    assert digest(data) == before


def test_predict_out_that_is_a_folder_is_refused_before_work(work, capsys, tmp_path):
    data, model, before = work
    (tmp_path / "outdir").mkdir()
    code, _, err = _predict(capsys, data, model, tmp_path / "outdir")
    assert code == 1 and "existing folder" in one_error(err)
    assert list((tmp_path / "outdir").iterdir()) == []


def test_train_out_onto_its_data_is_refused(work, capsys, tmp_path):
    data, model, before = work
    for out in (data / "train", data):
        code, _, err = cli(capsys, "train", "-q", "--data", data / "train", "--out", out,
                           "--overwrite", "--pixels", 3000, "--no-cache")
        assert code == 1 and "--data" in one_error(err)
    assert digest(tmp_path) == before


def test_evaluate_report_onto_the_reference_is_refused(work, capsys, tmp_path):
    data, model, before = work
    sub = tmp_path / "sub.nc"
    assert _predict(capsys, data, model, sub)[0] == 0
    before = digest(data)
    code, _, err = cli(capsys, "evaluate", "--submission", sub, "--reference", data / "reference",
                       "--report", data)
    assert code == 1 and "--reference" in one_error(err)
    assert digest(data) == before


def test_synth_into_a_folder_with_scenes_is_refused(work, capsys, tmp_path):
    data, model, before = work
    code, _, err = cli(capsys, "synth", "-q", "--out", data, "--train", 1, "--test", 0)
    assert code == 1 and "already holds scene files" in one_error(err)
    assert digest(tmp_path) == before


# --- 6. every scene checked before work; entries named like scenes are not dropped --------
def test_a_folder_named_like_a_scene_is_refused_or_skipped_loudly(work, capsys, tmp_path):
    data, model, before = work
    bogus = data / "test" / "20200101T000000_dmi_prep.nc"
    bogus.mkdir()
    code, _, err = _predict(capsys, data, model, tmp_path / "s.nc")
    assert code == 1 and "folder named like a scene" in one_error(err)
    assert not (tmp_path / "s.nc").exists()
    code, out, err = _predict(capsys, data, model, tmp_path / "s.nc", "--skip-bad")
    assert code == 0 and "LACKS 1 scene" in err and "folder named like a scene" in err


def test_a_broken_link_named_like_a_scene_is_refused(work, capsys, tmp_path):
    data, model, _ = work
    (data / "test" / "20200101T000000_dmi_prep.nc").symlink_to(tmp_path / "gone.nc")
    code, _, err = _predict(capsys, data, model, tmp_path / "s.nc")
    assert code == 1 and "broken link" in one_error(err)


def test_impossible_values_are_refused_naming_variable_and_count(work, capsys, tmp_path):
    data, model, _ = work
    scene = list_scenes(data / "test")[-1]
    with h5netcdf.File(scene, "a") as f:
        v = f.variables["nersc_sar_secondary"]
        block = v[:3, :4]
        block[...] = 1e30
        v[:3, :4] = block
        w = f.variables["btemp_36_5h"]
        w[0, 0] = 5e6
    code, _, err = _predict(capsys, data, model, tmp_path / "s.nc")
    line = one_error(err)
    assert code == 1 and "nersc_sar_secondary" in line and "holds 12 value(s)" in line
    assert not (tmp_path / "s.nc").exists()


# --- 7. options checked up front, naming the option ------------------------------------
@pytest.mark.parametrize("argv, option", [
    (["train", "--data", "d", "--out", "m", "--seed", "-1"], "--seed"),
    (["train", "--data", "d", "--out", "m", "--jobs", "0"], "--jobs"),
    (["synth", "--out", "d", "--train", "-2"], "--train"),
    (["importance", "--model", "m", "--out", "o", "--repeats", "0"], "--repeats"),
])
def test_bad_option_values_fail_at_once_naming_the_option(capsys, argv, option):
    code, _, err = cli(capsys, *argv)
    assert code == 2 and f"argument {option}:" in one_error(err)


def test_a_stride_that_leaves_one_lattice_point_is_refused(work, capsys, tmp_path):
    data, model, _ = work
    code, _, err = _predict(capsys, data, model, tmp_path / "s.nc", "--stride", 10000)
    assert code == 1 and "--stride 10000" in one_error(err) and "at most" in err
    assert not (tmp_path / "s.nc").exists()


# --- 8. validate and evaluate share one check of the maps --------------------------------
def test_validate_against_reference_scenes_is_one_line(work, capsys, tmp_path):
    data, model, _ = work
    sub = tmp_path / "sub.nc"
    assert _predict(capsys, data, model, sub)[0] == 0
    code, _, err = cli(capsys, "validate", "--submission", sub, "--scenes", data / "reference")
    assert code == 1 and "no scene files" in one_error(err)


def test_evaluate_refuses_maps_that_validate_rejects(work, capsys, tmp_path):
    data, model, _ = work
    sub = tmp_path / "sub.nc"
    assert _predict(capsys, data, model, sub)[0] == 0
    with h5netcdf.File(sub, "a") as f:
        name = next(n for n in f.variables if n.endswith("_SOD"))
        v = f.variables[name]
        bad = np.asarray(v[...]).copy()
        bad[...] = 9  # SOD has classes 0..5
        v[...] = bad
    code, _, err = cli(capsys, "validate", "--submission", sub, "--scenes", data / "test")
    assert code == 1 and "not a class" in err
    code, _, err = cli(capsys, "evaluate", "--submission", sub, "--reference", data / "reference")
    assert code == 1 and "not a class 0..5" in one_error(err)


def test_evaluate_against_test_scenes_says_they_have_no_labels(work, capsys, tmp_path):
    data, model, _ = work
    sub = tmp_path / "sub.nc"
    assert _predict(capsys, data, model, sub)[0] == 0
    code, _, err = cli(capsys, "evaluate", "--submission", sub, "--reference", data / "test")
    assert code == 1 and "have no labels" in one_error(err)


# --- 12. check audits a whole dataset ----------------------------------------------------
def test_check_reports_every_file_and_a_summary(work, capsys):
    data, _, _ = work
    first = list_scenes(data / "train")[0]
    first.write_bytes(first.read_bytes()[:1000])  # truncated
    (data / "train" / "notes.nc").write_bytes(b"x")
    (data / "test" / "20200101T000000_dmi_prep.nc").mkdir()
    code, out, _ = cli(capsys, "check", data)
    assert code == 1
    n_files = 3 + 2 + 2 + 2  # train, test, reference, plus the two planted entries
    assert f"{n_files} file(s): {n_files - 3} ok, 2 bad, 1 ignored" in out
    assert "notes.nc: IGNORED" in out and f"{first.name}: BAD" in out


# --- 13. what users see -------------------------------------------------------------------
def test_verbosity_before_the_command_and_one_final_line(tmp_path, capsys):
    code, out, err = cli(capsys, "-q", "synth", "--out", tmp_path / "d", "--train", 1,
                         "--test", 0, "--size", "60x70")
    assert code == 0 and out.count("wrote 1 training") == 1 and err == ""


def test_options_have_help_text(capsys):
    for command in ("evaluate", "validate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out, _ = capsys.readouterr()
        section = out.split("--submission FILE.nc", 2)[-1].split("\n  --", 1)[0]
        assert "submission file" in section, out
