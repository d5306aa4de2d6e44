"""Tests of the typed model manifest and of what load_model checks before trusting a folder."""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
from dataclasses import FrozenInstanceError, replace

import lightgbm as lgb
import numpy as np
import pytest

from models import load_model, predict_scene, save_model
from models import persistence
from models.manifest import FORMAT_VERSION, Manifest, ManifestError, ModelFile, TrainingRecord
from scenes import contract as C
from scenes.reader import list_scenes, open_scene


def _read(folder):
    return json.loads((folder / "manifest.json").read_text())


def _write(folder, man):
    (folder / "manifest.json").write_text(json.dumps(man))


def _copy(tiny_model, tmp_path, name="m"):
    out = tmp_path / name
    shutil.copytree(tiny_model[0], out)
    return out


def _rehash(folder, chart):
    """Make the manifest's size and SHA-256 of ``chart``'s file match the file again."""
    man = _read(folder)
    data = (folder / man["files"][chart]["name"]).read_bytes()
    man["files"][chart].update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    _write(folder, man)


def _as_v1(man: dict) -> dict:
    """A format-2 manifest dict as format 1 wrote it (bare file names, no newer entries)."""
    v1 = copy.deepcopy(man)
    v1["format_version"] = 1
    v1["files"] = {c: f["name"] for c, f in v1["files"].items()}
    for key in ("skipped_scenes", "distributed"):
        del v1["training"][key]
    return v1


@pytest.fixture
def parsed(monkeypatch):
    """The model texts load_model hands to LightGBM (recorded, then parsed as usual)."""
    calls, real = [], lgb.Booster

    def booster(*a, model_str=None, **kw):
        calls.append(model_str)
        return real(*a, model_str=model_str, **kw)

    monkeypatch.setattr(persistence.lgb, "Booster", booster)
    return calls


# --- the typed object ---------------------------------------------------------------------
def test_round_trip_to_dict_from_dict(tiny_model):
    out, man = tiny_model
    d = man.to_dict()
    assert d["format_version"] == FORMAT_VERSION == 2
    again = Manifest.from_dict(json.loads(json.dumps(d)))
    assert again == man and again.to_dict() == d
    assert isinstance(again.training, TrainingRecord)
    assert all(isinstance(f, ModelFile) and f.checked for f in again.files.values())
    assert again.feature_names == man.feature_names and isinstance(again.feature_names, tuple)
    assert _read(out) == d  # what save_model wrote
    with pytest.raises(FrozenInstanceError):
        man.stride = 1


def test_unsaved_manifest_is_not_a_saved_one(tiny_model):
    """The train job's manifest lacks what save_model adds; from_dict wants all of it."""
    man = tiny_model[1]
    unsaved = replace(man, versions=None, classes=None, estimators=None, files=None)
    assert not unsaved.saved and man.saved
    with pytest.raises(ManifestError, match="'versions' is null"):
        Manifest.from_dict(unsaved.to_dict())


def test_numpy_values_are_made_plain(tiny_model):
    man = tiny_model[1]
    tr = replace(man.training, seed=np.int64(3), val_fraction=np.float32(0.25),
                 rows_per_chart={c: np.int32(5) for c in C.LABEL_CHARTS},
                 estimator_params={"max_bin": np.int64(63), "clip": (0.1, 10.0)})
    m = replace(man, training=tr)
    assert type(m.training.seed) is int and m.training.estimator_params["clip"] == [0.1, 10.0]
    assert Manifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m


def _set(path, value):
    """A change of the manifest dict: set the field at ``path`` (dotted keys)."""
    def change(d):
        *parents, last = path.split(".")
        for k in parents:
            d = d[k]
        d[last] = value
    return change


def _drop(path):
    def change(d):
        *parents, last = path.split(".")
        for k in parents:
            d = d[k]
        del d[last]
    return change


MALFORMED = [
    ("training", _set("training", [1, 2]), "must be an object"),
    ("training.seed", _set("training.seed", "3"), "must be an integer"),
    ("training.n_rows", _set("training.n_rows", 1.5), "must be an integer"),
    ("training.rows_per_chart", _set("training.rows_per_chart", [1, 2, 3]), "must be an object"),
    ("training.rows_per_chart", _set("training.rows_per_chart", {"SIC": 1}), "exactly the charts"),
    ("training.val_fraction", _set("training.val_fraction", 1.5), "in [0, 1)"),
    ("training.train_scenes", _set("training.train_scenes", "a.nc"), "a list of strings"),
    ("training.train_scenes[1]", _set("training.train_scenes", ["a.nc", 3]), "a string"),
    ("training.skipped_scenes", _set("training.skipped_scenes", {"scene": "x"}), "a list"),
    ("training.skipped_scenes[0].reason",
     _set("training.skipped_scenes", [{"scene": "x", "reason": None}]), "a string"),
    ("training.distributed", _set("training.distributed", "no"), "true or false"),
    ("training.smoothing_grid[0]", _set("training.smoothing_grid", [7]), "smoothing spec"),
    ("training.timings_s.fit_s", _set("training.timings_s", {"fit_s": "slow"}), "a number"),
    ("training.created_utc", _drop("training.created_utc"), "is missing"),
    ("feature_names", _set("feature_names", {"hh_db": 0}), "a list of strings"),
    ("feature_names", _set("feature_names", ["a", "a"]), "distinct"),
    ("feature_config", _set("feature_config", [["sar_bands", ["hh"]]]), "must be an object"),
    ("sic_mode", _set("sic_mode", "median"), "one of"),
    ("water_rule", _set("water_rule", 1), "one of"),
    ("water_threshold", _set("water_threshold", "0.5"), "a number"),
    ("water_threshold", _set("water_threshold", 0), "a number in (0, 11)"),
    ("smoothing", _set("smoothing", ["gaussian"]), "must be an object"),
    ("smoothing.SOD", _set("smoothing.SOD", {"method": "blur"}), "not a valid smoothing spec"),
    ("stride", _set("stride", 0), "an integer >= 1"),
    ("stride", _set("stride", True), "an integer"),
    ("consistency_rule", _drop("consistency_rule"), "is missing"),
    ("validation", _set("validation", [99.0]), "must be an object"),
    ("versions", _set("versions", ["4.7.0"]), "must be an object"),
    ("versions.lightgbm", _set("versions.lightgbm", 4.7), "a string"),
    ("classes.SIC[0]", _set("classes.SIC", ["0"]), "an integer"),
    ("estimators", _set("estimators", []), "must be an object"),
    ("estimators.SOD", _set("estimators.SOD", "IceClassifier"), "must be an object"),
    ("estimators.SOD.params", _set("estimators.SOD.params", [1]), "must be an object"),
    ("estimators.SOD.best_iteration", _set("estimators.SOD.best_iteration", -1), ">= 0"),
    ("estimators.SOD.class", _drop("estimators.SOD.class"), "is missing"),
    ("files", _set("files", ["SIC.txt", "SOD.txt", "FLOE.txt"]), "must be an object"),
    ("files.SIC", _set("files.SIC", "SIC.txt"), "must be an object"),
    ("files.SIC.name", _set("files.SIC.name", "../x.txt"), "plain file name"),
    ("files.SIC.name", _set("files.SIC.name", "/abs/SIC.txt"), "plain file name"),
    ("files.SIC.size", _set("files.SIC.size", "17 kB"), "an integer"),
    ("files.SIC.sha256", _set("files.SIC.sha256", "abc"), "SHA-256"),
    ("files.SIC.sha256", _set("files.SIC.sha256", None), "is null"),
    ("files.SIC.extra", _set("files.SIC.extra", 1), "is unknown"),
    ("files", _set("files.SOD.name", "SIC.txt"), "a different file per chart"),
    ("format_version", _set("format_version", 3), "this code reads formats"),
    ("format_version", _set("format_version", "2"), "this code reads formats"),
    ("surprise", _set("surprise", 1), "is unknown"),
]


@pytest.mark.parametrize("field,change,problem", MALFORMED,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(MALFORMED)])
def test_malformed_field_is_one_line_naming_it(tiny_model, field, change, problem):
    d = tiny_model[1].to_dict()
    change(d)
    with pytest.raises(ValueError) as e:
        Manifest.from_dict(d)
    msg = str(e.value)
    assert isinstance(e.value, ManifestError) and e.value.field == field
    assert f"manifest field '{field}' " in msg and problem in msg
    assert "\n" not in msg and "retrain" in msg


def test_not_an_object_at_all():
    with pytest.raises(ValueError, match=r"^manifest must be a JSON object, got \[\] \(a list\)"):
        Manifest.from_dict([])


def test_save_model_takes_the_typed_manifest(tiny_model, tmp_path):
    bundle = load_model(tiny_model[0])
    with pytest.raises(TypeError, match="Manifest"):
        save_model(tmp_path / "m", models=bundle.models, manifest=tiny_model[1].to_dict())
    assert not (tmp_path / "m").exists()
    again = save_model(tmp_path / "m", models=bundle.models, manifest=bundle.manifest)
    assert isinstance(again, Manifest) and again.files == tiny_model[1].files
    assert Manifest.from_dict(_read(tmp_path / "m")) == again


# --- what load_model checks -----------------------------------------------------------------
def test_load_model_reports_a_malformed_manifest_as_one_line(tiny_model, tmp_path):
    out = _copy(tiny_model, tmp_path)
    man = _read(out)
    man["training"]["rows_per_chart"] = [1, 2, 3]
    _write(out, man)
    with pytest.raises(ValueError) as e:
        load_model(out)
    msg = str(e.value)
    assert msg.startswith(f"model {out}: manifest field 'training.rows_per_chart' must be an "
                          "object") and "\n" not in msg


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_model_file_is_refused_before_lightgbm_parses_it(tiny_model, tmp_path, damage,
                                                                 parsed):
    out = _copy(tiny_model, tmp_path)
    path = out / "SOD.txt"
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
        problem = "bytes, the manifest says"
    else:
        i = data.index(b"leaf_value=") + len(b"leaf_value=") + 1  # a digit of a leaf value
        data[i] = ord("7") if data[i] != ord("7") else ord("3")
        problem = "SHA-256 differs"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"SOD.txt .*{problem}") as e:
        load_model(out)
    assert "\n" not in str(e.value) and "retrain" in str(e.value)
    # SIC.txt was parsed, the damaged SOD.txt refused before LightGBM saw it
    assert parsed == [(out / "SIC.txt").read_text()]


def test_a_flipped_byte_would_otherwise_load_silently(tiny_model, tmp_path):
    """Why the checksum matters: LightGBM parses a changed leaf value without complaint."""
    data = bytearray((tiny_model[0] / "SOD.txt").read_bytes())
    i = data.index(b"leaf_value=") + len(b"leaf_value=") + 1
    data[i] = ord("7") if data[i] != ord("7") else ord("3")
    booster = lgb.Booster(model_str=data.decode())
    assert booster.num_trees() > 0


@pytest.mark.parametrize("name", ["../x.txt", "/abs/SIC.txt", "sub/SIC.txt", ".."])
def test_file_names_outside_the_folder_are_refused(tiny_model, tmp_path, name, parsed):
    out = _copy(tiny_model, tmp_path / "inner")
    shutil.copy(out / "SIC.txt", tmp_path / "inner" / "x.txt")  # a valid model at ../x.txt
    man = _read(out)
    man["files"]["SIC"]["name"] = name
    _write(out, man)
    with pytest.raises(ValueError, match=r"'files\.SIC\.name' must be a plain file name") as e:
        load_model(out)
    assert str(e.value).startswith(f"model {out}: ") and "\n" not in str(e.value)
    assert parsed == []


def test_symlink_out_of_the_folder_is_refused(tiny_model, tmp_path, parsed):
    out = _copy(tiny_model, tmp_path)
    outside = tmp_path / "elsewhere.txt"
    shutil.move(out / "SIC.txt", outside)  # same bytes: the checksum alone would pass
    os.symlink(outside, out / "SIC.txt")
    with pytest.raises(ValueError, match="SIC.txt is a link to .*outside the model folder"):
        load_model(out)
    assert parsed == []


def test_symlink_inside_the_folder_loads(tiny_model, tmp_path):
    out = _copy(tiny_model, tmp_path)
    os.rename(out / "SIC.txt", out / "SIC.real")
    os.symlink("SIC.real", out / "SIC.txt")
    assert load_model(out).models["SIC"].n_features_in_ == len(tiny_model[1].feature_names)


def test_booster_with_other_feature_names_is_refused(tiny_model, tmp_path):
    out = _copy(tiny_model, tmp_path)
    path = out / "FLOE.txt"
    text = path.read_text()
    first = tiny_model[1].feature_names[0]
    assert f"feature_names={first} " in text
    path.write_text(text.replace(f"feature_names={first} ", "feature_names=not_it ", 1))
    _rehash(out, "FLOE")  # the file is intact as far as the manifest knows
    with pytest.raises(ValueError, match=r"FLOE.txt does not fit the manifest: its feature names "
                                         r"differ \(feature 0 is 'not_it' in the file but "
                                         f"'{first}' in the manifest\\)"):
        load_model(out)


def test_v1_manifest_loads_with_one_warning(tiny_model, tmp_path, synth_dir, caplog):
    out = _copy(tiny_model, tmp_path)
    _write(out, _as_v1(_read(out)))
    with caplog.at_level(logging.WARNING):
        bundle = load_model(out)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert str(out) in warnings[0] and "no checksums" in warnings[0] and "retrain" in warnings[0]
    man = bundle.manifest
    assert not man.checksummed and man.files["SIC"] == ModelFile("SIC.txt")
    assert man.training.skipped_scenes == () and man.training.distributed is False
    assert replace(man, files=tiny_model[1].files) == tiny_model[1]  # nothing else changed
    ds = open_scene(list_scenes(synth_dir / "test", kind="test")[0])
    a = predict_scene(ds, bundle)
    b = predict_scene(ds, load_model(tiny_model[0]))
    for chart in C.LABEL_CHARTS:
        np.testing.assert_array_equal(a[chart], b[chart])


def test_v1_is_the_only_format_without_checksums(tiny_model, tmp_path):
    """The upgrade is keyed on the version: format-2 bare names are an error, not a v1 model."""
    out = _copy(tiny_model, tmp_path)
    man = _read(out)
    man["files"] = {c: f["name"] for c, f in man["files"].items()}  # format-1 files
    _write(out, man)
    with pytest.raises(ValueError, match="'files.SIC' must be an object"):
        load_model(out)
    man = _as_v1(_read(tiny_model[0]))
    man["format_version"] = 2  # a format-1 manifest claiming format 2
    _write(out, man)
    with pytest.raises(ValueError, match="'training.skipped_scenes' is missing"):
        load_model(out)


def test_other_lightgbm_version_warns(tiny_model, tmp_path, caplog):
    out = _copy(tiny_model, tmp_path)
    man = _read(out)
    man["versions"]["lightgbm"] = "3.3.5"
    _write(out, man)
    with caplog.at_level(logging.WARNING):
        load_model(out)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "LightGBM 3.3.5" in warnings[0]
    assert lgb.__version__ in warnings[0] and "\n" not in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_model(tiny_model[0])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("cut", ["inside a parameter line", "before 'end of parameters'"])
def test_a_cut_parameters_section_is_named(tiny_model, cut):
    """LightGBM reads the parameters section unchecked (a cut one crashed it, signal 11)."""
    from models.lgbm_text import text_problem

    folder = tiny_model[0]
    text = (folder / "SOD.txt").read_text()
    n = len(_read(folder)["feature_names"])
    assert text_problem(text, n) is None
    start = text.index("\nparameters:\n")
    end = text.index("\nend of parameters")
    cut_at = text.index(": ", start + 14) if cut.startswith("inside") else end
    problem = text_problem(text[:cut_at], n)
    assert problem is not None and "parameters" in problem, problem


def test_a_blank_line_between_trees_is_named_before_lightgbm_parses(tiny_model):
    """LightGBM cuts trees at the tree_sizes offsets: one extra blank line before a tree
    aborted its parser (signal 6, found by benchmarks/fuzz.py case 12000313)."""
    from models.lgbm_text import text_problem

    folder = tiny_model[0]
    text = (folder / "SOD.txt").read_text()
    n = len(_read(folder)["feature_names"])
    at = text.index("\nTree=2\n")
    problem = text_problem(text[:at] + "\n" + text[at:], n)
    assert problem is not None and "tree 2 does not start" in problem, problem
