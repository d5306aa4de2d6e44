"""Scene reader: roundtrip, and one test per contract violation."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from scenes import contract as C
from scenes.reader import SceneError, list_scenes, open_scene, scene_key

KEY = "20200424T101936_cis"
ROOT = Path(__file__).resolve().parents[1]


def _write(ds, folder, name=f"{KEY}_prep.nc"):
    path = Path(folder) / name
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def test_roundtrip_identical(train_ds, tmp_path):
    path = _write(train_ds, tmp_path)
    ds = open_scene(path)
    assert ds.attrs["scene_key"] == KEY and ds.attrs["scene_kind"] == "train"
    for var in C.TRAIN_VARS:
        xr.testing.assert_identical(ds[var].load(), train_ds[var])
    assert {k: ds.attrs[k] for k in train_ds.attrs} == train_ds.attrs


def test_kinds_from_name_and_content(train_ds, tmp_path):
    test_ds = train_ds.drop_vars(list(C.LABEL_CHARTS))
    assert open_scene(_write(test_ds, tmp_path)).attrs["scene_kind"] == "test"
    ref = train_ds[list(C.LABEL_CHARTS)]
    p = _write(ref, tmp_path, f"{KEY}_prep_reference.nc")
    assert open_scene(p).attrs["scene_kind"] == "reference"
    assert scene_key(p) == KEY


def test_list_scenes_sorted_and_filtered(synth_dir):
    train = list_scenes(synth_dir / "train")
    assert train == sorted(train) and len(train) == 3
    refs = list_scenes(synth_dir / "reference", kind="reference")
    assert [scene_key(p) for p in refs] == [scene_key(p) for p in list_scenes(synth_dir / "test")]


@pytest.mark.parametrize("mutate, variable, message", [
    (lambda ds: ds.drop_vars("nersc_sar_secondary"), "nersc_sar_secondary", "missing"),
    (lambda ds: ds.assign(sar_incidenceangle=ds.sar_incidenceangle.transpose()), "sar_incidenceangle", "dims"),
    (lambda ds: ds.assign(nersc_sar_primary=ds.nersc_sar_primary.astype("float64")), "nersc_sar_primary", "dtype"),
    (lambda ds: ds.assign(SIC=ds.SIC.astype("int16")), "SIC", "dtype"),
    (lambda ds: ds.isel({"2km_grid_lines": slice(0, -1)}), "2km grid", "floor"),
    (lambda ds: ds.assign(SOD=ds.SOD.where(ds.SOD != 0, 9)), "SOD", "class 9"),
    (lambda ds: ds.assign(nersc_sar_primary=ds.nersc_sar_primary.where(ds.nersc_sar_primary != 0, np.nan)),
     "nersc_sar_primary", "NaN"),
    (lambda ds: ds.assign(nersc_sar_primary=ds.nersc_sar_primary * 0), "nersc_sar_primary", "no valid pixel"),
    (lambda ds: ds.assign(btemp_36_5h=ds.btemp_36_5h.where(ds.btemp_36_5h > 1e9)), "btemp_36_5h", "NaN"),
])
def test_each_violation_has_its_message(train_ds, tmp_path, mutate, variable, message):
    path = _write(mutate(train_ds), tmp_path)
    with pytest.raises(SceneError) as err:
        open_scene(path)
    text = str(err.value)
    assert str(path) in text and variable in text and message in text
    assert "\n" not in text and ";" in text  # one line, with a fix after the problem


def test_missing_file_not_netcdf_and_truncated(train_ds, tmp_path):
    with pytest.raises(SceneError, match="no such file"):
        open_scene(tmp_path / f"{KEY}_prep.nc")
    junk = tmp_path / "junk" ; junk.mkdir()
    (junk / f"{KEY}_prep.nc").write_text("not a netcdf file\n")
    with pytest.raises(SceneError, match="cannot be read as NetCDF4"):
        open_scene(junk / f"{KEY}_prep.nc")
    good = _write(train_ds, tmp_path)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(SceneError, match="truncated"):
        open_scene(good)


def test_folder_errors(train_ds, tmp_path):
    with pytest.raises(SceneError, match="contains no scene files"):
        list_scenes(tmp_path)
    with pytest.raises(SceneError, match="is not a folder"):
        list_scenes(tmp_path / "nope")
    _write(train_ds, tmp_path)
    _write(train_ds[list(C.LABEL_CHARTS)], tmp_path, f"{KEY}_prep_reference.nc")
    with pytest.raises(SceneError, match="same scene key"):
        list_scenes(tmp_path)


def _cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("case", ["corrupt", "empty", "no_hv"])
def test_cli_bad_input_one_line_no_traceback(train_ds, tmp_path, case):
    folder = tmp_path / case
    folder.mkdir()
    if case == "corrupt":
        (folder / f"{KEY}_prep.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    elif case == "no_hv":
        _write(train_ds.drop_vars("nersc_sar_secondary"), folder)
    r = _cli("check", folder)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    if case == "empty":  # nothing to audit: one error line
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and str(folder) in lines[0]
    else:  # one BAD line naming the file and the problem, then the summary
        bad = [ln for ln in r.stdout.splitlines() if ": BAD: " in ln]
        assert len(bad) == 1 and str(folder) in bad[0]
        assert ("NetCDF4/HDF5" if case == "corrupt" else "nersc_sar_secondary") in bad[0]
        assert r.stdout.strip().endswith("1 file(s): 0 ok, 1 bad, 0 ignored (not named like scenes)")


def test_cli_check_ok(synth_dir):
    r = _cli("check", synth_dir / "train")
    assert r.returncode == 0, r.stderr
    assert "3 file(s): 3 ok, 0 bad, 0 ignored" in r.stdout


def test_load_scene_reads_once_and_checks_values_there(train_ds, tmp_path, monkeypatch):
    """Values are checked on the arrays the work uses: the file is decompressed once."""
    from scenes import reader

    path = _write(train_ds, tmp_path)
    ds = reader.load_scene(path)
    for var in C.TRAIN_VARS:  # in memory, equal to the file
        assert isinstance(ds[var].variable._data, np.ndarray)
        xr.testing.assert_identical(ds[var], train_ds[var])
    # the value checks run on the in-memory arrays, not on the file again
    calls = []
    check = reader._check_values
    monkeypatch.setattr(reader, "_check_values", lambda d, p, k: (
        calls.append(all(isinstance(d[v].variable._data, np.ndarray) for v in C.TRAIN_VARS)),
        check(d, p, k)))
    reader.load_scene(path).close()
    assert calls == [True]
    bad = train_ds.copy(deep=True)
    bad[C.SAR_VARS[1]].values[2, 3] = np.nan
    with pytest.raises(SceneError, match=f"{C.SAR_VARS[1]}.*NaN"):
        reader.load_scene(_write(bad, tmp_path, f"{KEY[:-3]}dmi_prep.nc"))


@pytest.mark.parametrize("layout, threaded", [
    (dict(chunks=(300, 290), compression="gzip", shuffle=True), True),   # edge chunks too
    (dict(chunks=(300, 290), compression="gzip"), True),
    (dict(chunks=(300, 290), compression="gzip", fletcher32=True), False),  # checksums: HDF5
    (dict(chunks=(300, 290), compression="lzf"), False),
    (dict(chunks=(300, 290)), False),                                    # no filter
    (dict(chunks=(1, 650), compression="gzip"), True),                   # a row per chunk
    (dict(), False),                                                     # contiguous
])
def test_threaded_chunk_reads_equal_hdf5(tmp_path, layout, threaded):
    import h5py

    from scenes.reader import read_chunks_threaded

    x = np.random.default_rng(0).normal(size=(700, 650)).astype(np.float32)
    x[::7] = 0.0
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("x", data=x, **layout)
        f.create_dataset("big_endian", data=x.astype(">f4"), chunks=(300, 290),
                         compression="gzip")
    with h5py.File(tmp_path / "a.h5", "r") as f:
        got = read_chunks_threaded(f["x"], 2)
        assert (got is not None) == threaded
        if threaded:
            assert got.dtype == x.dtype and got.tobytes() == x.tobytes()
        assert read_chunks_threaded(f["x"], 1) is None
        assert read_chunks_threaded(f["big_endian"], 2) is None


def test_load_scene_threaded_read_equals_the_file_and_damage_still_says_where(
        train_ds, tmp_path, monkeypatch):
    from scenes import reader

    monkeypatch.setattr(reader, "READ_TASK_ELEMENTS", 4000)  # several tasks of chunks
    monkeypatch.setattr(reader, "_threads", lambda: 2)
    used = []
    threaded = reader.read_chunks_threaded
    monkeypatch.setattr(reader, "read_chunks_threaded",
                        lambda d, n: used.append(threaded(d, n) is not None) or threaded(d, n))
    enc = {v: {"chunksizes": (40, 50), "zlib": True, "complevel": 4, "shuffle": True}
           for v in C.SAR_GRID_VARS}
    path = tmp_path / f"{KEY}_prep.nc"
    train_ds.to_netcdf(path, engine="h5netcdf", encoding=enc)
    ds = reader.load_scene(path)
    assert used.count(True) == len(C.SAR_GRID_VARS)  # the chunked ones; labels contiguous
    for var in C.SAR_GRID_VARS:
        assert ds[var].values.tobytes() == train_ds[var].values.tobytes()
    ds.close()
    # a damaged chunk: the threaded read gives up, the usual read names the file
    import h5py
    with h5py.File(path, "r") as f:
        info = f[C.SAR_VARS[0]].id.get_chunk_info(0)
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset + 2: info.byte_offset + 40] = b"\xff" * 38
    path.write_bytes(bytes(raw))
    with pytest.raises((SceneError, OSError)):
        reader.load_scene(path)


def test_value_check_kernels_equal_numpy():
    """The one-pass kernels of the value checks count as NumPy does."""
    from scenes._check_kernels import count_outside, value_counts
    from scenes.reader import MAX_ABS_ZSCORE

    rng = np.random.default_rng(5)
    a = rng.normal(scale=40.0, size=(37, 53)).astype(np.float32)
    a[::5, ::3] = C.SAR_FILL
    a[1, 2], a[3, 4], a[6, 7], a[8, 9] = np.nan, np.inf, -np.inf, -250.0
    for block in (a, a[:0], a[5:6], np.abs(a[:, :1]), a[10:]):
        with np.errstate(invalid="ignore"):
            want = (int((~np.isfinite(block)).sum()), int((np.abs(block) > MAX_ABS_ZSCORE).sum()),
                    int((block != C.SAR_FILL).sum()))
        assert tuple(int(n) for n in value_counts(block, MAX_ABS_ZSCORE, C.SAR_FILL)) == want
    labels = rng.integers(0, 256, size=(41, 29)).astype(np.uint8)
    for block in (labels, labels[:0], labels[:, 3:4], np.minimum(labels, 6), labels | 1):
        for n in (1, 6, 11):
            want = int(((block >= n) & (block != C.MASK_VALUE)).sum())
            assert int(count_outside(block, n, C.MASK_VALUE)) == want
