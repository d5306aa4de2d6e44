"""The raw AI4Arctic dataset: code tables, the conversion rules, the reader's variants,
synthetic raw scenes, ``convert-raw`` and raw folders through ``train``/``predict``.

The code tables below are written from FORMAT.md ("The raw dataset") by hand,
independently of ``scenes/sigrid.py``; every code is run through the
converter. Every branch of the rules has a hand-built polygon.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from cli.convert_raw import synth_converted
from cli.main import main
from evaluation.submission import validate_submission
from scenes import contract as C
from scenes import sigrid as S
from scenes.icechart import PolygonLookup, parse_polygon_codes, polygon_classes
from scenes.raw import describe_raw, open_raw, raw_scene_key, rtt_name
from scenes.rawconvert import convert_scene
from scenes.reader import SceneError, open_scene
from scenes.synth import make_scene
from scenes.synth_raw import format_entry, polygon_code, write_raw_dataset, write_raw_scene

ROOT = Path(__file__).resolve().parents[1]
HEADER = "id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE"
#: 40 m size of the test scenes: odd, so the dropped last row and column are exercised.
RAW_SIZE = (121, 132)
#: Dataset seed whose scenes take every way of writing codes (see test_synthetic_codes_*).
RAW_SEED = 4

# --- FORMAT.md's tables, by hand ----------------------------------------------------------
FORMAT_SIC = {0: 0, 1: 0, 2: 0, 55: 0, 10: 1, 20: 2, 30: 3, 40: 4, 50: 5, 60: 6, 70: 7, 80: 8,
              90: 9, 91: 10, 92: 10}
FORMAT_SOD = {0: 0, 80: 0, 81: 1, 82: 1, 83: 2, 84: 2, 85: 2, 87: 3, 88: 3, 89: 3, 86: 4, 91: 4,
              93: 4, 95: 5, 96: 5, 97: 5, 98: 255, 99: 255}
FORMAT_FLOE = {0: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 5, 9: 6, 10: 6, 1: 255, 21: 255, 22: 255,
               8: 255}
ALL_CODES = list(range(-9, 101))


def entry(pid, ct, ca=-9, sa=-9, fa=-9, cb=-9, sb=-9, fb=-9, cc=-9, sc=-9, fc=-9, kind="I"):
    return ";".join(map(str, (pid, ct, ca, sa, fa, cb, sb, fb, cc, sc, fc, -9, -9, -9, kind)))


def classes(*entries):
    """(SIC, SOD, FLOE) of each entry."""
    cl = polygon_classes(parse_polygon_codes([HEADER, *entries]))
    return [tuple(int(cl[c][k]) for c in C.LABEL_CHARTS) for k in range(len(entries))]


def test_sigrid_tables_are_formats():
    assert S.SIC_OF_CODE == FORMAT_SIC
    assert S.SOD_OF_CODE == FORMAT_SOD
    assert {**S.FLOE_OF_CODE, S.FAST_ICE: 255} == FORMAT_FLOE and S.DOMINANCE == 0.65


def test_every_ct_code():
    got = classes(*(entry(k, code, sa=93, fa=5) for k, code in enumerate(ALL_CODES)))
    for code, (sic, sod, floe) in zip(ALL_CODES, got):
        want = FORMAT_SIC.get(code, 255)
        # an ice polygon of one layer takes its stage and form; SIC 0 -> 0; unknown CT -> 255
        other = {0: 0, 255: 255}.get(want)
        assert (sic, sod, floe) == (want, 4 if other is None else other,
                                    4 if other is None else other), code


def test_every_partial_concentration_code():
    got = classes(*(entry(k, 92, ca=code, sa=93, fa=5) for k, code in enumerate(ALL_CODES)))
    for code, (sic, sod, floe) in zip(ALL_CODES, got):
        tenths = FORMAT_SIC.get(code)
        if code == -9:
            want = 4  # CA empty: it takes CT
        elif tenths is None:
            want = 255  # a concentration that is no code: the 65 % rule cannot be applied
        else:
            want = 4 if 20 * tenths >= 13 * 10 else 255
        assert (sic, sod, floe) == (10, want, {4: 4, 255: 255}[want]), code


def test_every_stage_code():
    got = classes(*(entry(k, 90, sa=code, fa=5) for k, code in enumerate(ALL_CODES)))
    for code, (sic, sod, floe) in zip(ALL_CODES, got):
        assert (sic, sod, floe) == (9, FORMAT_SOD.get(code, 255), 4), code


def test_every_form_code():
    got = classes(*(entry(k, 90, sa=93, fa=code) for k, code in enumerate(ALL_CODES)))
    for code, (sic, sod, floe) in zip(ALL_CODES, got):
        assert (sic, sod, floe) == (9, 4, FORMAT_FLOE.get(code, 255)), code


RULES = [  # (what, entry fields, (SIC, SOD, FLOE))
    ("CA empty takes CT", dict(ct=80, sa=87, fa=4), (8, 3, 3)),
    ("one layer below 65 %", dict(ct=80, ca=40, sa=87, fa=4), (8, 255, 255)),
    ("one layer at 70 %", dict(ct=92, ca=70, sa=87, fa=4), (10, 3, 3)),
    ("two layers of one class add up", dict(ct=90, ca=50, sa=83, fa=4, cb=40, sb=85, fb=5),
     (9, 2, 255)),
    ("two classes at 50 % each", dict(ct=80, ca=40, sa=81, fa=2, cb=40, sb=93, fb=3),
     (8, 255, 255)),
    ("a pair beside a third layer", dict(ct=90, ca=30, sa=93, fa=5, cb=30, sb=86, fb=6,
                                         cc=30, sc=95, fc=7), (9, 4, 5)),
    ("two of three layers lead", dict(ct=92, ca=40, sa=81, fa=2, cb=30, sb=82, fb=3, cc=30,
                                      sc=83, fc=4), (10, 1, 255)),
    ("three layers of one class", dict(ct=90, ca=30, sa=95, fa=4, cb=30, sb=96, fb=4, cc=30,
                                       sc=97, fc=4), (9, 5, 3)),
    ("largest class below 65 %", dict(ct=92, ca=60, sa=93, fa=5, cb=40, sb=81, fb=5),
     (10, 255, 4)),
    ("fast ice in layer C", dict(ct=92, ca=80, sa=93, fa=5, cb=10, sb=93, fb=5, cc=10, sc=93,
                                 fc=8), (10, 4, 255)),
    ("fast ice in an empty layer", dict(ct=92, sa=93, fa=5, fb=8), (10, 4, 255)),
    ("fast ice alone", dict(ct=92, sa=91, fa=8), (10, 4, 255)),
    ("a layer of 0 tenths", dict(ct=50, ca=50, sa=95, fa=6, cb=1, sb=81, fb=2), (5, 5, 5)),
    ("SIC 0 from CT 1 overrides stages", dict(ct=1, sa=87, fa=4), (0, 0, 0)),
    ("SIC 0 from CT 2", dict(ct=2, ca=10, sa=93, fa=5), (0, 0, 0)),
    ("SIC 0 from CT 55", dict(ct=55), (0, 0, 0)),
    ("CT 0", dict(ct=0, ca=0, sa=0, fa=0), (0, 0, 0)),
    ("unknown CT", dict(ct=99, sa=93, fa=5), (255, 255, 255)),
    ("CT not filled", dict(ct=-9, ca=90, sa=93, fa=5), (255, 255, 255)),
    ("glacier ice and bergs", dict(ct=90, sa=98, fa=10), (9, 255, 6)),
    ("stage not filled", dict(ct=30, fa=3), (3, 255, 2)),
    ("CT 91 is 100 %", dict(ct=91, sa=95, fa=7), (10, 5, 5)),
    ("10 % polygon", dict(ct=10, sa=81, fa=2), (1, 1, 1)),
]


@pytest.mark.parametrize("what, fields, want", RULES, ids=[r[0] for r in RULES])
def test_rule_branch(what, fields, want):
    assert classes(entry(1, **fields)) == [want]


@pytest.mark.parametrize("kind", ["W", "w", " W "])
def test_water_polygon_is_sic_0_whatever_its_codes(kind):
    assert classes(entry(1, 92, sa=93, fa=5, kind=kind), entry(2, -9, kind=kind)) == [(0, 0, 0)] * 2


def test_parsing_variants_give_the_same_classes():
    want = classes(entry(1, 90, ca=50, sa=83, fa=4, cb=40, sb=85, fb=5), entry(2, 92, sa=93, fa=8))
    plain = [entry(1, 90, ca=50, sa=83, fa=4, cb=40, sb=85, fb=5), entry(2, 92, sa=93, fa=8)]
    no_header = polygon_classes(parse_polygon_codes(plain))
    assert [tuple(int(no_header[c][k]) for c in C.LABEL_CHARTS) for k in range(2)] == want
    fields = HEADER.split(";")
    order = [0, 14, 3, 1, 2, 4, 7, 6, 5, 10, 9, 8, 11, 12, 13]  # any column order, by header
    shuffled = [";".join(fields[i] for i in order)] + [
        ";".join(e.split(";")[i] for i in order) for e in plain]
    got = polygon_classes(parse_polygon_codes(shuffled))
    assert [tuple(int(got[c][k]) for c in C.LABEL_CHARTS) for k in range(2)] == want
    padded = [HEADER.encode(), b" 1; 90 ;50;83; 4;40;85; 5;;;;;;;I;", b"2;92.0;-9;93; 8;;;;;;;;;;I"]
    got = polygon_classes(parse_polygon_codes(np.array(padded)))
    assert [tuple(int(got[c][k]) for c in C.LABEL_CHARTS) for k in range(2)] == want


@pytest.mark.parametrize("entries, says", [
    ([HEADER, "1;92;-9;93;5;-9;-9"], "has 7 fields, expected 15"),
    ([HEADER, entry(1, 92, sa="x")], "SA = 'x', not an integer code"),
    ([HEADER, entry("a", 92)], "polygon id 'a'"),
    ([HEADER, entry(3, 92), entry(3, 90)], "polygon id 3 appears 2 times"),
    ([HEADER.replace(";SB", "")], "lacks the field(s) SB"),
    ([HEADER], "holds only the header"),
    ([], "holds no entries"),
])
def test_malformed_codes_are_one_line(entries, says):
    with pytest.raises(SceneError) as e:
        parse_polygon_codes(entries, "f.nc")
    assert says in str(e.value) and str(e.value).startswith("f.nc: polygon_codes: ")
    assert "\n" not in str(e.value)


def test_pixel_lookup_ids_fill_and_absent():
    table = parse_polygon_codes([HEADER, entry(7, 92, sa=93, fa=5), entry(300, 30, sa=81, fa=2)])
    lut = PolygonLookup(table, "f.nc")
    ids = np.array([[7, 300], [65535, 7]], np.uint16)
    out = lut.charts(ids, ids == 65535)
    assert out["SIC"].tolist() == [[10, 3], [255, 10]] and out["FLOE"].tolist() == [[4, 1], [255, 4]]
    with pytest.raises(SceneError, match="polygon id\\(s\\) 8, 65535 that polygon_codes"):
        lut.charts(np.array([8, 7, 65535]))
    wide = PolygonLookup(parse_polygon_codes([HEADER, entry(-5, 92, sa=93, fa=5),
                                              entry(2**40, 30, sa=81, fa=2)]))
    assert wide.charts(np.array([2**40, -5]))["SOD"].tolist() == [1, 4]


# --- synthetic raw scenes ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def raw_ds(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw")
    written = write_raw_dataset(out, n_train=3, n_test=2, size=RAW_SIZE, seed=RAW_SEED,
                                progress=False)
    return out, written


def _generator_scene(raw_path):
    """The 80 m scene the synthetic raw file was made from."""
    from scenes.synth import dataset_plan
    key = raw_scene_key(raw_path.name)
    plan = dataset_plan(n_train=3, n_test=2, size=(RAW_SIZE[0] // 2, RAW_SIZE[1] // 2),
                        seed=RAW_SEED)
    (_, s, _, shape), = [p for p in plan if p[2] == key]
    return make_scene(shape, seed=s, kind="train")


def test_synthetic_codes_take_every_way(raw_ds):
    _, written = raw_ds
    ways = written["ways"]
    for way in ("water-W", "water-ct", "water-ct-stages", "ct-unknown"):
        assert ways[way], way
    structures = {w.split(":")[0] for w in ways}
    assigned = {a for w in ways if ":" in w for a in w.split(":")[1].split("/")}
    assert {"single", "halves", "dominant"} <= structures
    assert {"all", "pair", "mixed", "unknown", "fast"} <= assigned


def test_converted_synthetic_scene_is_the_generators(raw_ds, tmp_path):
    out, written = raw_ds
    raw = written["train"][0]
    ds80 = _generator_scene(raw)
    r = convert_scene(raw, tmp_path / rtt_name(raw.name))
    assert r["kind"] == "train" and r["shape"] == tuple(ds80["SIC"].shape)
    got = open_scene(r["out"])  # the full contract check, values included
    for c in C.LABEL_CHARTS:
        np.testing.assert_array_equal(got[c].values, ds80[c].values, err_msg=c)
    for v in C.SAR_VARS + ("distance_map",):
        np.testing.assert_allclose(got[v].values, ds80[v].values, atol=2e-6, err_msg=v)
    valid = ds80[C.SAR_VARS[0]].values != 0
    np.testing.assert_array_equal(got[C.SAR_VARS[0]].values != 0, valid)
    ia = C.to_physical("sar_incidenceangle", got["sar_incidenceangle"].values)[valid]
    ia0 = C.to_physical("sar_incidenceangle", ds80["sar_incidenceangle"].values)[valid]
    assert np.abs(ia - ia0).max() < 0.05  # bilinear between tie points of a smooth field
    for v in C.GRID2KM_VARS:
        np.testing.assert_allclose(got[v].values, ds80[v].values, atol=1e-5, err_msg=v)
    for v in C.TIEPOINT_VARS:
        np.testing.assert_allclose(got[v].values, ds80[v].values, atol=1e-3, err_msg=v)
    assert got.attrs["original_id"] == raw.name and got.attrs["ice_service"] == raw.name.split("_")[10]
    got.close()


def test_synthetic_raw_and_conversion_are_deterministic(tmp_path):
    ds = make_scene((30, 33), seed=2)
    paths = []
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        paths.append(write_raw_scene(tmp_path / sub / ds.attrs["original_id"], ds, seed=2)["path"])
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert digest[0] == digest[1]
    outs = [convert_scene(paths[0], tmp_path / f"{k}_prep.nc")["out"] for k in "cd"]
    assert outs[0].read_bytes() == outs[1].read_bytes()


def _rewrite(src: Path, dst: Path, change, engine="h5netcdf") -> Path:
    """A copy of raw file ``src`` with ``change(ds)`` applied, written with ``engine``."""
    with xr.open_dataset(src, engine="h5netcdf", mask_and_scale=False) as ds:
        ds = change(ds.load())
    enc = {}
    for v in ds.variables:
        if "_FillValue" in ds[v].attrs:
            enc[v] = {"_FillValue": ds[v].attrs.pop("_FillValue")}
        else:
            enc[v] = {"_FillValue": None}
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(dst, engine=engine, encoding=enc)
    return dst


def _float_ids_char_codes_zero_sar(ds):
    pid = ds.polygon_icechart
    ds["polygon_icechart"] = pid.where(pid != 65535).astype("float64")
    ds.polygon_icechart.attrs = {}
    codes = ds.polygon_codes.values.astype("S")
    chars = codes.view("S1").reshape(codes.size, -1)
    ds = ds.drop_vars("polygon_codes").assign(polygon_codes=(("n", "strlen"), chars))
    for v in C.SAR_VARS:
        ds[v] = ds[v].fillna(0.0)
    return ds


def _netcdf3_int_ids_bytes_codes(ds):
    pid = ds.polygon_icechart
    ds["polygon_icechart"] = pid.astype("int32").where(pid != 65535, -1)
    ds.polygon_icechart.attrs = {"_FillValue": np.int32(-1)}
    ds["polygon_codes"] = ds.polygon_codes.astype("S")
    ds["distance_map"] = ds.distance_map.astype("float32")
    return ds.drop_vars(["amsr2_swath_map", "swath_segmentation"])


def _uint16_without_fill_attr(ds):
    ds.polygon_icechart.attrs = {}  # netCDF's default fill of uint16 is 65535
    return ds


@pytest.mark.parametrize("change, engine", [
    (_float_ids_char_codes_zero_sar, "h5netcdf"),
    (_netcdf3_int_ids_bytes_codes, "scipy"),
    (_uint16_without_fill_attr, "h5netcdf"),
], ids=["float-ids-NaN-char-codes-SAR-zero", "netcdf3-int32-ids-bytes-codes",
        "uint16-default-fill"])
def test_layout_variants_convert_alike(raw_ds, tmp_path, change, engine):
    _, written = raw_ds
    raw = written["train"][1]
    want = convert_scene(raw, tmp_path / "want_prep.nc")["out"]
    variant = _rewrite(raw, tmp_path / "v" / raw.name, change, engine)
    got = convert_scene(variant, tmp_path / "got_prep.nc")["out"]
    with xr.open_dataset(want, engine="h5netcdf") as a, xr.open_dataset(got, engine="h5netcdf") as b:
        for v in C.TRAIN_VARS:
            np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)


def _scattered_ties(ds):
    keep = np.arange(ds.sizes["sar_grid_points"]) != 220  # no longer a line x sample grid
    return ds.isel(sar_grid_points=keep)


def test_scattered_tie_points_interpolate_alike(raw_ds, tmp_path):
    raw = raw_ds[1]["train"][2]
    want = convert_scene(raw, tmp_path / "want_prep.nc")["out"]
    variant = _rewrite(raw, tmp_path / "v" / raw.name, _scattered_ties)
    got = convert_scene(variant, tmp_path / "got_prep.nc")["out"]
    with xr.open_dataset(want, engine="h5netcdf") as a, xr.open_dataset(got, engine="h5netcdf") as b:
        for v in C.TIEPOINT_VARS:
            np.testing.assert_allclose(a[v].values, b[v].values, atol=1e-3, err_msg=v)
        ia = [C.to_physical("sar_incidenceangle", d["sar_incidenceangle"].values) for d in (a, b)]
        assert np.abs(ia[0] - ia[1]).max() < 0.1
        np.testing.assert_array_equal(a["SIC"].values, b["SIC"].values)


def test_synthetic_codes_convert_to_every_wanted_triple():
    """The generator's way of writing codes and the converter agree on every class triple."""
    rng, used = np.random.default_rng(0), Counter()
    triples = [(0, 0, 0), (255, 255, 255)] + [(c, s, f) for c in range(1, 11)
                                               for s in [*range(6), 255] for f in [*range(7), 255]]
    entries, want = [HEADER], []
    for k, t in enumerate(triples * 3):
        fields, _ = polygon_code(*t, rng, used)
        entries.append(format_entry(k, fields, rng))
        want.append(t)
    assert classes(*entries[1:]) == want
    assert len(used) == 50  # every way was taken
    with pytest.raises(ValueError, match="no polygon code gives SIC 0 with SOD 1"):
        polygon_code(0, 1, 0, rng)


def test_describe_raw_shows_layout_and_codes(raw_ds):
    _, written = raw_ds
    text = "\n".join(describe_raw(written["train"][0]))
    assert "polygon_icechart: uint16 ('sar_lines', 'sar_samples') (121, 132) _FillValue=65535" in text
    assert f"'{HEADER}'" in text and "first 5 of" in text
    assert "sar_grid_line: 441 values, 0..120" in text


def test_raw_names():
    name = ("S1A_EW_GRDM_1SDH_20180124T194759_20180124T194859_020301_022AA4_1F75_icechart_dmi_"
            "201801241950_SouthEast_RIC.nc")
    assert rtt_name(name) == "20180124T194759_dmi_prep.nc"
    assert raw_scene_key("20180124T194759_dmi_prep.nc") is None
    shared = ROOT.parent / "shared" / "ai4arctic"
    for listing in ("trainset_raw_names.json", "testset_raw_names.json"):
        if (shared / listing).is_file():  # the real names, where the checkout has them
            names = json.loads((shared / listing).read_text())
            assert len({raw_scene_key(n) for n in names} - {None}) == len(names)


# --- through the command line -----------------------------------------------------------------
def _main(*args):
    return main(["-q", *map(str, args)])


def test_convert_check_train_predict(raw_ds, tmp_path, capsys):
    out, written = raw_ds
    rtt = tmp_path / "rtt"
    assert _main("convert-raw", "--data", out / "train", "--out", rtt / "train", "--jobs", 1) == 0
    assert _main("convert-raw", "--data", out / "test", "--out", rtt / "test", "--jobs", 1) == 0
    assert "converted 2 scene(s)" in capsys.readouterr().out
    assert _main("check", rtt, out / "reference") == 0
    assert "7 file(s): 7 ok, 0 bad" in capsys.readouterr().out
    test_scene = open_scene(sorted((rtt / "test").iterdir())[0])
    assert test_scene.attrs["scene_kind"] == "test"
    test_scene.close()
    # a raw folder straight into train; converted and raw test folders into predict
    model = tmp_path / "model"
    assert _main("train", "--data", out / "train", "--out", model, "--pixels", 4000,
                 "--jobs", 1) == 0
    converted = sorted((tmp_path / "model.cache.scenes").glob("*/*_prep.nc"))
    assert [p.name for p in converted] == sorted(p.name for p in (rtt / "train").iterdir())
    subs = [tmp_path / "a.nc", tmp_path / "b.nc"]
    assert _main("predict", "--data", rtt / "test", "--model", model, "--out", subs[0]) == 0
    assert _main("predict", "--data", out / "test", "--model", model, "--out", subs[1],
                 "--no-cache") == 0
    assert not list(tmp_path.glob(".seaice-raw-*"))  # the temporary conversion is gone
    for sub in subs:
        assert validate_submission(sub, rtt / "test") == []
    with xr.open_dataset(subs[0]) as a, xr.open_dataset(subs[1]) as b:
        assert sorted(a.variables) == sorted(b.variables)
        for v in a.variables:
            np.testing.assert_array_equal(a[v].values, b[v].values)
    assert _main("evaluate", "--submission", subs[0], "--reference", out / "reference") == 0


def test_convert_raw_resumes(raw_ds, tmp_path, capsys):
    out, written = raw_ds
    dst = tmp_path / "rtt"
    assert _main("convert-raw", "--data", out / "test", "--out", dst, "--jobs", 1) == 0
    first = {p.name: p.stat().st_mtime_ns for p in dst.iterdir()}
    capsys.readouterr()
    assert _main("convert-raw", "--data", out / "test", "--out", dst, "--jobs", 1) == 0
    assert "converted 0 scene(s) into" in capsys.readouterr().out.replace(
        f"{dst}, 2 already converted", "")
    assert {p.name: p.stat().st_mtime_ns for p in dst.iterdir()} == first
    src = written["test"][0]
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))  # raw file changed
    assert _main("convert-raw", "--data", out / "test", "--out", dst, "--jobs", 1) == 0
    assert "converted 1 scene(s)" in capsys.readouterr().out
    assert _main("convert-raw", "--data", out / "test", "--out", dst, "--jobs", 1, "--fresh") == 0
    assert "converted 2 scene(s)" in capsys.readouterr().out


def test_check_raw_prints_layout(raw_ds, capsys):
    _, written = raw_ds
    assert _main("check", "--raw", written["train"][0], written["test"][0]) == 0
    text = capsys.readouterr().out
    assert "polygon_codes" in text and HEADER in text
    assert "converts to" in text and "(train scene, 60 x 66 at 80 m" in text
    assert "(test scene, 60 x 66 at 80 m" in text and "2 raw file(s): 2 ok, 0 bad" in text


def _drop_codes(ds):
    return ds.drop_vars("polygon_codes")


def _absent_ids(ds):
    pid = ds.polygon_icechart.values.copy()
    pid[-3:, -5:] = 4321 if 4321 not in pid else 4322
    ds["polygon_icechart"] = (ds.polygon_icechart.dims, pid, ds.polygon_icechart.attrs)
    return ds


def _malformed_codes(ds):
    codes = ds.polygon_codes.values.copy()
    codes[2] = codes[2].replace(";", ";x;", 1)
    return ds.assign(polygon_codes=(ds.polygon_codes.dims, codes))


def _wrong_shape(ds):
    return ds.assign(nersc_sar_secondary=(("hv_lines", "hv_samples"),
                                          ds.nersc_sar_secondary.values[:, :-4]))


def _not_db(ds):
    return ds.assign(nersc_sar_primary=10 ** (ds.nersc_sar_primary / 10) * 1e4)  # not dB


BAD = {"missing-codes": (_drop_codes, "polygon_codes: missing while polygon_icechart is there"),
       "absent-ids": (_absent_ids, "polygon_icechart: holds polygon id(s) 432"),
       "malformed-codes": (_malformed_codes, "polygon_codes: entry 2"),
       "wrong-shape": (_wrong_shape, "nersc_sar_secondary: has shape (121, 128), expected (121, 132)"),
       "not-db": (_not_db, "nersc_sar_primary: holds ")}


def _bad_case(raw, tmp_path, name):
    change, says = BAD[name]
    src = _rewrite(raw, tmp_path / name / "raw" / raw.name, change)
    return src.parent, tmp_path / name / "out", says


def _nothing_written(src, dst, raw):
    left = list(dst.rglob("*")) if dst.exists() else []
    assert left == [], left
    assert [p.name for p in src.iterdir()] == [raw.name]  # the input untouched, no temporaries


@pytest.mark.parametrize("name", [n for n in BAD if n != "absent-ids"])
def test_bad_raw_input_is_one_line_and_writes_nothing(raw_ds, tmp_path, capsys, name):
    raw = raw_ds[1]["train"][0]
    src, dst, says = _bad_case(raw, tmp_path, name)
    assert _main("convert-raw", "--data", src, "--out", dst, "--jobs", 1) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines
    assert raw.name in lines[0]
    _nothing_written(src, dst, raw)


def test_bad_pixels_found_mid_conversion_leave_nothing(raw_ds, tmp_path):
    """Ids absent from the table show only while converting: the temporary goes too.
    Run as a user runs it (its own process): exit 1, one line, no traceback."""
    raw = raw_ds[1]["train"][0]
    src, dst, says = _bad_case(raw, tmp_path, "absent-ids")
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "convert-raw", "-q", "--data",
                        str(src), "--out", str(dst), "--jobs", "1"],
                       capture_output=True, text=True, cwd=ROOT)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines
    assert raw.name in lines[0]
    _nothing_written(src, dst, raw)


def test_train_refuses_raw_test_scenes(raw_ds, tmp_path):
    out, _ = raw_ds
    with pytest.raises(SceneError, match="polygon_icechart: missing: a training scene needs"):
        open_raw(sorted((out / "test").iterdir())[0], labels="require")


def test_demo_raw_data_is_a_converted_dataset(tmp_path):
    synth_converted(tmp_path / "raw", tmp_path / "data", n_train=1, n_test=1, size=(30, 33),
                    seed=5, progress=False)
    kinds = {sub: [open_scene(p).attrs["scene_kind"]
                  for p in sorted((tmp_path / "data" / sub).iterdir())]
             for sub in ("train", "test", "reference")}
    assert kinds == {"train": ["train"], "test": ["test"], "reference": ["reference"]}
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["test", "train"]
