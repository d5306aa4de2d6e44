"""Faults a run meets: a full disk, a killed run, a damaged cache entry, damaged inputs.

- A write that fails ends in one ``error:`` line naming the output, exit 1, no
  traceback, no temporary and no partial output left, the inputs untouched:
  each writer through the command line. A full disk is played by a file size
  limit (``RLIMIT_FSIZE`` in the child): CPython ignores SIGXFSZ, so a write
  past the limit fails with EFBIG as one on a full disk fails with ENOSPC.
- A killed ``train`` leaves no worker process behind for more than a few seconds.
- A cache entry whose arrays do not match its checksum is recomputed, with a
  warning naming the file, to the same output as a clean run.
- The fuzzer (``benchmarks/fuzz.py``), run small, keeps its rules.
"""
from __future__ import annotations

import hashlib
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from pipeline import train_models
from scenes.synth import write_synthetic_dataset

import tiny

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Scenes, a tiny model and a submission (made in this process: the numba cache is warm
    before any child runs under a file size limit)."""
    out = tmp_path_factory.mktemp("faults")
    write_synthetic_dataset(out, n_train=3, n_test=2, size=(100, 110), seed=31, progress=False)
    train_models(out / "train", out / "model", **tiny.TRAIN)
    assert main(["predict", "-q", "--data", str(out / "test"), "--model", str(out / "model"),
                 "--out", str(out / "sub.nc"), "--no-cache"]) == 0
    return out


def _digests(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _temporaries(folder: Path) -> list:
    return [p for p in folder.rglob(".*") if ".tmp" in p.name]


def _cli(args, limit=None, **kw):
    """``python run.py ARGS``, with writes past ``limit`` bytes failing (EFBIG)."""
    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          preexec_fn=limited if limit else None, **kw)


# --- a full disk -------------------------------------------------------------------------
#: case -> (command line, byte limit, the file the error line must name, outputs that
#: must not exist afterwards); "{d}" is the data folder, "{o}" the output folder.
WRITE_CASES = {
    "synth scene": (["synth", "-q", "--out", "{o}/synth", "--train", 1, "--test", 1,
                     "--size", "100x110"], 20_000, "{o}/synth/train/", ["{o}/synth"]),
    "train model": (["train", "-q", "--data", "{d}/train", "--out", "{o}/model", "--pixels",
                     3000, "--jobs", 1, "--no-cache"], 20_000, "model {o}/model", ["{o}/model"]),
    "train cache": (["train", "-q", "--data", "{d}/train", "--out", "{o}/model", "--pixels",
                     3000, "--jobs", 1], 20_000, "{o}/model.cache/", ["{o}/model"]),
    "predict submission": (["predict", "-q", "--data", "{d}/test", "--model", "{d}/model",
                            "--out", "{o}/sub.nc", "--no-cache"], 100_000, "{o}/sub.nc",
                           ["{o}/sub.nc"]),
    "evaluate csv": (["evaluate", "-q", "--submission", "{d}/sub.nc", "--reference",
                      "{d}/reference", "--report", "{o}/report"], 100,
                     "{o}/report/per_scene_scores.csv", ["{o}/report"]),
    # the report is all or nothing: the CSVs written before the figure go too
    "evaluate figure": (["evaluate", "-q", "--submission", "{d}/sub.nc", "--reference",
                         "{d}/reference", "--report", "{o}/report"], 5_000,
                        "{o}/report/confusion_SIC.png", ["{o}/report"]),
    # HDF5 files built in memory, then written: a full disk is one line, never a crash
    "synth raw scene": (["synth", "-q", "--raw", "--out", "{o}/raw", "--train", 1, "--test", 1,
                         "--size", "100x110"], 20_000, "{o}/raw/", ["{o}/raw"]),
    "importance csv": (["importance", "-q", "--model", "{d}/model", "--out", "{o}/imp"], 100,
                       "{o}/imp/importance.csv", ["{o}/imp"]),
    # limit: set between the largest non-figure file and the smallest figure (write_runs)
    "importance figure": (["importance", "-q", "--model", "{d}/model", "--out", "{o}/imp"],
                          None, "{o}/imp/importance_", ["{o}/imp"]),
}


@pytest.fixture(scope="module")
def write_runs(data, tmp_path_factory):
    """Every write case through the command line (two at a time), with the data's digests."""
    before = _digests(data)
    root = tmp_path_factory.mktemp("full_disk")
    imp = root / "imp"
    assert main(["importance", "-q", "--model", str(data / "model"), "--out", str(imp)]) == 0
    sizes = {p.suffix: [] for p in imp.iterdir()}
    for p in imp.iterdir():
        sizes[p.suffix].append(p.stat().st_size)
    text_max, png_min = max(sizes[".csv"] + sizes[".json"]), min(sizes[".png"])
    assert text_max < png_min
    jobs = {}
    for case, (args, limit, names, outputs) in WRITE_CASES.items():
        limit = limit or (text_max + png_min) // 2
        out = root / case.replace(" ", "_")
        out.mkdir()
        fill = lambda s: s.format(d=data, o=out) if isinstance(s, str) else s
        jobs[case] = (out, [fill(a) for a in args], limit, fill(names),
                      [Path(fill(o)) for o in outputs])
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(jobs, pool.map(lambda j: _cli(j[1], j[2]), jobs.values())))
    return before, {case: (*jobs[case], results[case]) for case in jobs}


@pytest.mark.parametrize("case", list(WRITE_CASES))
def test_a_failed_write_is_one_line_and_leaves_nothing(data, write_runs, case):
    before, runs = write_runs
    out, args, limit, names, outputs, r = runs[case]
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, r.stderr[-3000:]
    assert names in errors[0] and "free disk space" in errors[0], errors[0]
    assert not _temporaries(out), _temporaries(out)
    assert not [o for o in outputs if o.exists()]
    assert _digests(data) == before  # the inputs are byte-identical


def test_a_failed_submission_write_never_crashes_hdf5(data, tmp_path):
    """Limits across the whole size of the file: each ends in exit 0 or the one line."""
    sub = tmp_path / "sub.nc"
    codes = []
    for limit in (2_000, 450_000, 600_000):
        r = _cli(["predict", "-q", "--data", data / "test", "--model", data / "model", "--out",
                  sub, "--no-cache"], limit)
        codes.append(r.returncode)
        assert r.returncode in (0, 1) and "Exception ignored" not in r.stderr, r.stderr[-3000:]
        assert not _temporaries(tmp_path)
        if r.returncode == 0:
            assert sub.read_bytes() == (data / "sub.nc").read_bytes()
            sub.unlink()
    assert codes[0] == 1 and codes[-1] == 0, codes


#: The products' NetCDF is smaller than the submission's reserved size, so a file size
#: limit through ``predict`` would stop the submission first: write the products alone.
_PRODUCTS_CHILD = """
import sys
from evaluation.products import ProductWriter
from evaluation.submission import open_submission, read_map
from scenes.reader import list_scenes, scene_key
data, out = sys.argv[1:3]
try:
    with open_submission(data + "/sub.nc") as sub, ProductWriter(out, formats=("netcdf",)) as w:
        for p in list_scenes(data + "/test"):
            k = scene_key(p)
            w.add(k, {c: read_map(sub, k, c) for c in ("SIC", "SOD", "FLOE")}, scene=p)
except OSError as e:
    sys.exit("error: " + str(e))
"""


@pytest.mark.parametrize("limit", [2_000, 30_000])
def test_a_failed_products_netcdf_write_is_one_line(data, tmp_path, limit):
    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    r = subprocess.run([sys.executable, "-c", _PRODUCTS_CHILD, str(data), str(tmp_path / "p")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300, preexec_fn=limited)
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    assert "Exception ignored" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.stderr.startswith(f"error: {tmp_path / 'p'}/") and "free disk space" in r.stderr
    assert not _temporaries(tmp_path) and not list((tmp_path / "p").glob("*.nc"))


def test_a_failed_raw_conversion_is_one_line(data, tmp_path):
    raw = tmp_path / "raw"
    assert main(["synth", "-q", "--raw", "--out", str(raw), "--train", "1", "--test", "0",
                 "--size", "100x110"]) == 0
    r = _cli(["convert-raw", "-q", "--data", raw / "train", "--out", tmp_path / "rtt"], 20_000)
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    assert "Exception ignored" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"{tmp_path / 'rtt'}/" in errors[0], r.stderr[-3000:]
    assert "free disk space" in errors[0]
    assert not _temporaries(tmp_path) and not list((tmp_path / "rtt").glob("*.nc"))


# --- a killed run --------------------------------------------------------------------
def _stat(pid: int):
    """``(parent pid, state, cpu seconds)`` of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12])
    return int(fields[1]), fields[0], ticks / os.sysconf("SC_CLK_TCK")


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[1] not in ("Z", "X")


def _children(pid: int) -> set:
    return {int(d) for d in os.listdir("/proc")
            if d.isdigit() and (_stat(int(d)) or (0,))[0] == pid}


def _opens(pid: int, folder: Path) -> bool:
    """Whether process ``pid`` has a file under ``folder`` open."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(folder)):
                return True
        except OSError:
            pass
    return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_killed_train_leaves_no_worker_behind(tmp_path):
    write_synthetic_dataset(tmp_path, n_train=4, n_test=0, size=(400, 420), seed=8,
                            progress=False)
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "train", "-q", "--data",
                             str(tmp_path / "train"), "--out", str(tmp_path / "model"),
                             "--pixels", "400000", "--jobs", "2", "--no-cache"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids = set()
    try:
        deadline, busy = time.time() + 180, set()
        while True:  # until both joblib workers were seen working on a scene
            kids |= _children(proc.pid)
            workers = [k for k in kids if "loky" in _cmdline(k) and _alive(k)]
            busy |= {k for k in workers if _opens(k, tmp_path / "train")}
            if len(busy) >= 2:
                break
            assert proc.poll() is None, "train ended before its workers were seen at work"
            assert time.time() < deadline, "no two busy joblib workers within 180 s"
            time.sleep(0.05)
        kids |= _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        t0 = time.time()
        while any(_alive(k) for k in kids) and time.time() - t0 < 5:
            time.sleep(0.1)
        left = {k: _cmdline(k)[:100] for k in kids if _alive(k)}
        assert not left, f"alive 5 s after the kill: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for k in kids:
            if _alive(k):
                os.kill(k, signal.SIGKILL)


# --- a damaged cache entry ------------------------------------------------------------
def _damage_entry(entry: Path) -> None:
    """Change one array of a cache entry, keeping its JSON member (and so its checksum)."""
    with np.load(entry, allow_pickle=False) as npz:
        members = {k: npz[k] for k in npz.files}
    name = max((k for k in members if k != "__meta__"), key=lambda k: members[k].size)
    a = members[name]
    members[name] = (a[::-1].copy() if a.ndim and a.shape[0] > 1 else a + 1).astype(a.dtype)
    if np.array_equal(members[name], a):
        members[name] = np.zeros_like(a) + 1
    with open(entry, "wb") as fh:
        np.savez(fh, **members)


def _damaged_warnings(caplog, entry):
    return [r for r in caplog.records if r.levelno == logging.WARNING
            and str(entry) in r.getMessage() and "damaged" in r.getMessage()]


def test_damaged_predict_cache_entry_is_recomputed(data, tmp_path, caplog):
    cache = tmp_path / "cache"
    argv = ["predict", "-q", "--data", str(data / "test"), "--model", str(data / "model"),
            "--cache", str(cache)]
    assert main([*argv, "--out", str(tmp_path / "a.nc")]) == 0
    entry = sorted(cache.rglob("*.npz"))[0]
    _damage_entry(entry)
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--out", str(tmp_path / "b.nc")]) == 0
    assert _damaged_warnings(caplog, entry)
    assert (tmp_path / "b.nc").read_bytes() == (tmp_path / "a.nc").read_bytes()
    caplog.clear()  # the entry was written again, whole
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--out", str(tmp_path / "c.nc")]) == 0
    assert not _damaged_warnings(caplog, entry)


def test_damaged_train_cache_entry_is_recomputed(data, tmp_path, caplog):
    cache = tmp_path / "cache"
    argv = ["train", "-q", "--data", str(data / "train"), "--pixels", "3000", "--jobs", "1",
            "--seed", "5", "--cache", str(cache)]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    entry = sorted((p for p in cache.rglob("*.npz") if p.parent.name.startswith("sample")),
                   key=lambda p: p.name)[0]
    _damage_entry(entry)
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert _damaged_warnings(caplog, entry)
    for chart in ("SIC", "SOD", "FLOE"):
        assert (tmp_path / "b" / f"{chart}.txt").read_bytes() == \
            (tmp_path / "a" / f"{chart}.txt").read_bytes()


# --- damaged inputs ------------------------------------------------------------------
def test_fuzzer_small_run_keeps_the_rules(tmp_path):
    """30 seeded cases of benchmarks/fuzz.py (the full run takes 1000+)."""
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--cases", "30",
                        "--seed", "7", "--workers", "2", "--batch", "15", "--quiet",
                        "--work", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                       timeout=900)
    assert "30 cases tried, 0 broke a rule" in r.stdout, r.stdout[-5000:] + r.stderr[-3000:]
    assert r.returncode == 0


_NUMBA_CHILD = """
import resource, sys
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "guarded":
    import scenes._jit  # noqa: F401
resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))  # numba's cache files do not fit
import kernel
print(kernel.plus_one(41))
"""


def test_a_kernel_runs_when_numba_cannot_save_its_cache(tmp_path):
    """A full disk while numba caches a fresh kernel costs the caching, not the job."""
    (tmp_path / "kernel.py").write_text("from numba import njit\n\n\n@njit(cache=True)\n"
                                        "def plus_one(x):\n    return x + 1\n")
    runs = {how: subprocess.run([sys.executable, "-c", _NUMBA_CHILD, str(tmp_path), how],
                                capture_output=True, text=True, cwd=ROOT, timeout=300)
            for how in ("plain", "guarded")}
    assert runs["plain"].returncode != 0 and "File too large" in runs["plain"].stderr
    assert runs["guarded"].returncode == 0, runs["guarded"].stderr[-2000:]
    assert runs["guarded"].stdout.strip() == "42" and not runs["guarded"].stderr
    assert not [p for p in tmp_path.rglob("*") if ".tmp." in p.name]
