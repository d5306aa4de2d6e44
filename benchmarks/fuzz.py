"""Fuzzer: damaged inputs through the command line must never break the rules of trust.

Usage::

    python benchmarks/fuzz.py [--cases 1000] [--seed 0] [--workers 2] [--batch 25]
                              [--work DIR] [--keep] [--show 5]
    python benchmarks/fuzz.py --case SEED [--work DIR] [--keep]     # one case, to reproduce

Builds a small base once (3 training and 2 test scenes of 100 x 110 pixels with
their references, a tiny model, and a submission; under ``--work``, reused when
it is there), then runs cases. A case, fully fixed by its seed, copies what its
command reads, damages one file at random and runs one command on it:

- scene files (training, test, reference) and submissions: truncated, bytes
  flipped, emptied or replaced by garbage, a variable's dtype or shape changed,
  values made NaN or out of range, an attribute, a variable or a dimension
  deleted, a variable or the file renamed;
- ``manifest.json``: truncated, bytes flipped, a key deleted or renamed, a
  value of another type;
- a model text file: truncated, bytes flipped, lines deleted or garbled, with
  or without its size and SHA-256 updated in the manifest (so that LightGBM
  itself parses the damage);

and the command (``check``, ``train``, ``predict``, ``validate``, ``evaluate``
or ``importance``, as fits the file) must keep these rules:

1. exit code 0 or 1: never a signal, 134, 139, or an exception escaping;
2. no ``Traceback`` and no ``Exception ignored`` on stdout or stderr;
3. on exit 1, exactly one ``error:`` line on stderr (``check`` and ``validate``
   may instead report the problems they found); on exit 0, none;
4. the inputs byte-identical afterwards;
5. no temporary left (``.NAME...tmp``, ``.NAME.tmp-...``), and on exit 1 no output.

Cases run in-process (``cli.main.main`` with stdout and stderr captured at the
file-descriptor level), a batch per child process, so that a native crash kills
only its child and is reported with the case that was running (its seed).
Prints the number of cases tried and of cases that broke a rule, with the
first few of those and the command reproducing each; exits 1 if any did.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Settings of the tiny base model (seconds to train).
TINY = dict(n_estimators=12, num_leaves=7, min_child_samples=10, subsample=0.8,
            early_stopping_rounds=5)
#: Seconds a case may run before its child is killed and the case counted as hung.
CASE_TIMEOUT = 240
LABELS = ("SIC", "SOD", "FLOE")


# --- the base ---------------------------------------------------------------------
def build_base(base: Path) -> None:
    """Scenes, a tiny model and a submission under ``base`` (kept for later runs)."""
    if (base / ".complete").is_file():
        return
    from cli.main import main
    from pipeline import train_models
    from scenes.synth import write_synthetic_dataset

    shutil.rmtree(base, ignore_errors=True)
    write_synthetic_dataset(base, n_train=3, n_test=2, size=(100, 110), seed=1, progress=False)
    train_models(base / "train", base / "model", seed=0, n_pixels=3000, val_fraction=0.34,
                 n_jobs=1, stride=4, estimator_params=TINY, progress=False)
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["predict", "-q", "--data", str(base / "test"), "--model", str(base / "model"),
                   "--out", str(base / "sub.nc"), "--no-cache"])
    if rc != 0:
        raise SystemExit("fuzz: could not build the base submission")
    (base / ".complete").write_text("ok\n")


# --- damage ---------------------------------------------------------------------------
def _pick(rng, items):
    items = list(items)
    return items[int(rng.integers(len(items)))]


def truncate(path: Path, rng) -> str:
    data = path.read_bytes()
    n = int(rng.integers(0, max(len(data), 1)))
    path.write_bytes(data[:n])
    return f"truncated to {n} of {len(data)} bytes"


def flip_bytes(path: Path, rng) -> str:
    data = bytearray(path.read_bytes())
    if not data:
        return "nothing to flip"
    k = int(rng.integers(1, 65))
    span = min(len(data), 4096) if rng.random() < 0.5 else len(data)  # the header is dense
    for pos in rng.integers(0, span, size=k):
        data[pos] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(data))
    return f"{k} byte(s) flipped in the first {span}"


def empty(path: Path, rng) -> str:
    path.write_bytes(b"")
    return "emptied"


def garbage(path: Path, rng) -> str:
    n = int(rng.integers(1, 20000))
    path.write_bytes(rng.integers(0, 256, size=n, dtype=np.uint8).tobytes())
    return f"replaced by {n} random bytes"


def rename_file(path: Path, rng) -> str:
    name = path.name
    new = _pick(rng, [name.replace("_prep", "_prop"), "x" + name, name[:8] + "T999999" + name[15:],
                      name.replace(".nc", ".nc4"), name[:19].replace("T", "X") + name[19:],
                      "20000101T000000" + name[15:]])
    path.rename(path.with_name(new))
    return f"file renamed to {new}"


def _h5_objects(f):
    names = []
    f.visit(names.append)
    return names


def h5_delete_attr(path: Path, rng) -> str:
    import h5py
    with h5py.File(path, "r+") as f:
        owners = [n for n in ["/", *_h5_objects(f)] if len(f[n].attrs)]
        if not owners:
            return "no attribute to delete"
        owner = _pick(rng, owners)
        attr = _pick(rng, f[owner].attrs.keys())
        del f[owner].attrs[attr]
    return f"attribute {attr} of {owner} deleted"


def h5_delete_var(path: Path, rng) -> str:
    import h5py
    with h5py.File(path, "r+") as f:
        name = _pick(rng, [n for n in _h5_objects(f) if isinstance(f[n], h5py.Dataset)])
        del f[name]
    return f"variable {name} deleted (HDF5 level)"


def h5_rename_var(path: Path, rng) -> str:
    import h5py
    with h5py.File(path, "r+") as f:
        names = [n for n in _h5_objects(f) if isinstance(f[n], h5py.Dataset)]
        a = _pick(rng, names)
        if rng.random() < 0.5 and len(names) > 1:
            b = _pick(rng, [n for n in names if n != a])
            f.move(a, "__swap__")
            f.move(b, a)
            f.move("__swap__", b)
            return f"variables {a} and {b} swapped"
        new = _pick(rng, [a + "_x", a.upper(), a.lower() + "2", a[:-1]])
        if new in f or not new:
            new = a + "_renamed"
        f.move(a, new)
    return f"variable {a} renamed {new}"


def _rewrite(path: Path, change) -> str:
    """Open with xarray (raw values), apply ``change(ds) -> (ds, text)``, write back."""
    import xarray as xr
    with xr.open_dataset(path, engine="h5netcdf", mask_and_scale=False, decode_times=False,
                        decode_coords=False) as ds:
        ds = ds.load()
    ds, text = change(ds)
    for v in ds.variables.values():
        v.encoding = {}
    tmp = path.with_name(path.name + ".fuzz")
    ds.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)
    return text


def _data_vars(ds):
    return [v for v in ds.data_vars if ds[v].ndim]


def xr_dtype(path: Path, rng) -> str:
    def change(ds):
        var = _pick(rng, _data_vars(ds))
        dtype = _pick(rng, ["float64", "float32", "int16", "int32", "uint8", "int8", "uint16"])
        with np.errstate(all="ignore"):
            values = np.nan_to_num(ds[var].values).astype(dtype)
        return ds.assign({var: (ds[var].dims, values)}), f"{var} stored as {dtype}"
    return _rewrite(path, change)


def xr_shape(path: Path, rng) -> str:
    def change(ds):
        kind = _pick(rng, ["crop", "transpose", "new_dims", "extra_dim"])
        var = _pick(rng, _data_vars(ds))
        da = ds[var]
        if kind == "crop":
            dim = _pick(rng, da.dims)
            n = ds.sizes[dim]
            keep = int(rng.integers(0, n)) if n > 1 else 0
            return ds.isel({dim: slice(0, keep)}), f"dimension {dim} cropped to {keep} of {n}"
        if kind == "transpose" and da.ndim == 2:
            return ds.assign({var: da.transpose()}), f"{var} transposed"
        if kind == "extra_dim":
            return ds.assign({var: da.expand_dims("fuzz_extra")}), f"{var} given an extra dimension"
        dims = tuple(f"{d}_fuzz" for d in da.dims)
        values = da.values[tuple(slice(0, max(1, s - 1)) for s in da.shape)]
        return ds.assign({var: (dims, values)}), f"{var} moved to new dimensions {values.shape}"
    return _rewrite(path, change)


def xr_values(path: Path, rng) -> str:
    def change(ds):
        var = _pick(rng, _data_vars(ds))
        values = ds[var].values.copy()
        flat = values.reshape(-1)
        if not flat.size:
            return ds, f"{var} is empty"
        idx = rng.integers(0, flat.size, size=max(1, flat.size // int(rng.integers(1, 50))))
        if values.dtype.kind == "f":
            bad = _pick(rng, [np.nan, np.inf, -np.inf, 1e30, 0.0])
        else:
            info = np.iinfo(values.dtype)
            bad = _pick(rng, [info.max, info.min, 200 % (info.max + 1), 0])
        flat[idx] = bad
        return ds.assign({var: (ds[var].dims, values)}), f"{var}: {idx.size} value(s) set to {bad}"
    return _rewrite(path, change)


def xr_drop(path: Path, rng) -> str:
    def change(ds):
        var = _pick(rng, list(ds.data_vars))
        return ds.drop_vars(var), f"variable {var} dropped"
    return _rewrite(path, change)


def _walk(obj, path=()):
    """(path, value) of every node of a JSON object."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, path + (i,))


def _json_change(path: Path, rng, change) -> str:
    doc = json.loads(path.read_text())
    nodes = [(p, v) for p, v in _walk(doc) if p]
    where, value = _pick(rng, nodes)
    parent = doc
    for k in where[:-1]:
        parent = parent[k]
    text = change(parent, where[-1], value)
    path.write_text(json.dumps(doc, indent=2))
    return f"manifest {'/'.join(map(str, where))}: {text}"


def js_delete(path: Path, rng) -> str:
    def change(parent, key, value):
        del parent[key]
        return "deleted"
    return _json_change(path, rng, change)


def js_retype(path: Path, rng) -> str:
    def change(parent, key, value):
        new = _pick(rng, [None, "x", -1, 0, 1e308, 3.5, [], {}, True, [1, 2], {"a": 1}, "",
                          "../../etc/passwd", 2 ** 70])
        parent[key] = new
        return f"{type(value).__name__} {json.dumps(value)[:30]} -> {json.dumps(new)}"
    return _json_change(path, rng, change)


def js_rename(path: Path, rng) -> str:
    def change(parent, key, value):
        if not isinstance(parent, dict):
            parent[key] = value if not isinstance(value, str) else value + "_x"
            return "list item changed"
        parent[str(key) + "_x"] = parent.pop(key)
        return "key renamed"
    return _json_change(path, rng, change)


def text_lines(path: Path, rng) -> str:
    lines = path.read_text(errors="replace").splitlines(keepends=True)
    if not lines:
        return "no lines"
    how = _pick(rng, ["delete", "garble", "swap", "duplicate"])
    i = int(rng.integers(len(lines)))
    if how == "delete":
        del lines[i]
    elif how == "garble":
        line = lines[i]
        key, sep, _ = line.partition("=")
        lines[i] = key + sep + _pick(rng, ["", "nan", "-1", "1e999", "x y z", "0 0 0 0 0 0 0 0",
                                           "99999999999", "[-1:1]"]) + "\n"
    elif how == "swap":
        j = int(rng.integers(len(lines)))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines.insert(i, lines[i])
    path.write_text("".join(lines))
    return f"line {i + 1} {how}{'ped' if how == 'swap' else 'd'}"


def _with_manifest_updated(damage):
    """``damage`` of a model text, then its size and SHA-256 written into the manifest."""
    def apply(path: Path, rng) -> str:
        text = damage(path, rng)
        manifest = path.parent / "manifest.json"
        doc = json.loads(manifest.read_text())
        for entry in doc.get("files", {}).values():
            if isinstance(entry, dict) and entry.get("name") == path.name:
                data = path.read_bytes()
                entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
        manifest.write_text(json.dumps(doc, indent=2))
        return text + ", manifest updated to match"
    apply.__name__ = damage.__name__ + "+manifest"
    return apply


NETCDF_DAMAGE = (truncate, flip_bytes, empty, garbage, h5_delete_attr, h5_delete_var,
                 h5_rename_var, xr_dtype, xr_shape, xr_values, xr_drop)
SCENE_DAMAGE = NETCDF_DAMAGE + (rename_file,)
MANIFEST_DAMAGE = (truncate, flip_bytes, empty, js_delete, js_retype, js_retype, js_rename)
MODEL_DAMAGE = (truncate, flip_bytes, empty, text_lines, _with_manifest_updated(truncate),
                _with_manifest_updated(flip_bytes), _with_manifest_updated(text_lines),
                _with_manifest_updated(text_lines))

#: target: (weight, folders the case copies, damage functions, commands with weights)
TARGETS = {
    "train scene": (20, ("train",), SCENE_DAMAGE, {"check": 3, "train": 5}),
    "test scene": (25, ("test", "model", "sub.nc"), SCENE_DAMAGE,
                   {"check": 2, "predict": 5, "validate": 3}),
    "reference": (10, ("reference", "sub.nc"), SCENE_DAMAGE, {"evaluate": 4, "check": 1}),
    "manifest": (15, ("test", "model"), MANIFEST_DAMAGE, {"predict": 3, "importance": 1}),
    "model text": (10, ("test", "model"), MODEL_DAMAGE, {"predict": 3, "importance": 1}),
    "submission": (20, ("test", "reference", "sub.nc"), NETCDF_DAMAGE,
                   {"validate": 1, "evaluate": 1}),
}


# --- one case --------------------------------------------------------------------------
class Case:
    """What a seed fixes: the damaged file, the damage and the command."""

    def __init__(self, seed: int, only=()):
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, 20240611])
        names = [t for t in TARGETS if not only or t in only]
        weights = np.array([TARGETS[t][0] for t in names], float)
        self.target = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        _, self.copies, damages, commands = TARGETS[self.target]
        self.damage = _pick(rng, damages)
        cmds = list(commands)
        cw = np.array([commands[c] for c in cmds], float)
        self.command = cmds[int(rng.choice(len(cmds), p=cw / cw.sum()))]
        self.options = rng.random(3)  # --skip-bad, the cache, --report
        self.rng = rng

    def describe(self) -> str:
        return f"{self.command} on a damaged {self.target} ({self.damage.__name__})"

    def victim(self, case_dir: Path) -> Path:
        folder = {"train scene": "train", "test scene": "test", "reference": "reference"}
        if self.target in folder:
            files = sorted(p for p in (case_dir / folder[self.target]).iterdir() if p.is_file())
            return _pick(self.rng, files)
        if self.target == "manifest":
            return case_dir / "model" / "manifest.json"
        if self.target == "model text":
            return case_dir / "model" / f"{_pick(self.rng, LABELS)}.txt"
        return case_dir / "sub.nc"

    def argv(self, case_dir: Path, out: Path) -> tuple[list, list]:
        """The command line, and the outputs that must not exist after an error."""
        skip = ["--skip-bad"] if self.options[0] < 0.3 else []
        cache = [] if self.options[1] < 0.5 else ["--no-cache"]
        if self.command == "check":
            folder = {"train scene": "train", "test scene": "test"}.get(self.target, "reference")
            return ["check", "-q", case_dir / folder], []
        if self.command == "train":
            return (["train", "-q", "--data", case_dir / "train", "--out", out / "model",
                     "--pixels", "3000", "--jobs", "1", *cache, *skip], [out / "model"])
        if self.command == "predict":
            return (["predict", "-q", "--data", case_dir / "test", "--model", case_dir / "model",
                     "--out", out / "sub.nc", *cache, *skip], [out / "sub.nc"])
        if self.command == "validate":
            return ["validate", "-q", "--submission", case_dir / "sub.nc", "--scenes",
                    case_dir / "test"], []
        if self.command == "evaluate":
            report = ["--report", out / "report"] if self.options[2] < 0.3 else []
            return (["evaluate", "-q", "--submission", case_dir / "sub.nc", "--reference",
                     case_dir / "reference", *report], [out / "report"] if report else [])
        return (["importance", "-q", "--model", case_dir / "model", "--out", out / "imp"],
                [out / "imp"])


def _digests(folder: Path, skip: Path) -> dict:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and skip not in p.parents:
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _temporaries(folder: Path) -> list:
    return [str(p.relative_to(folder)) for p in folder.rglob(".*")
            if ".tmp" in p.name or p.name.startswith(".write-probe")]


def _captured(argv) -> tuple:
    """``(exit code, stdout, stderr, escaped exception or None)`` of ``cli.main.main(argv)``."""
    from cli.main import main
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        os.dup2(fo.fileno(), 1)
        os.dup2(fe.fileno(), 2)
        escaped = None
        try:
            try:
                rc = main([str(a) for a in argv])
            except SystemExit as e:  # argparse
                rc = e.code if isinstance(e.code, int) else 1
            except BaseException as e:  # would be a traceback in a real run
                rc, escaped = "exception", "".join(traceback.format_exception_only(type(e), e))
            gc.collect()  # errors of objects freed late ("Exception ignored") land here too
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        fo.seek(0)
        fe.seek(0)
        return rc, fo.read().decode(errors="replace"), fe.read().decode(errors="replace"), escaped


def run_case(base: Path, cases_dir: Path, seed: int, keep: bool = False, announce=None,
             only=()) -> dict:
    """Run case ``seed``; return what happened and the rules it broke.

    ``announce(result)`` is called with the damage and the command line just
    before the command runs (so that a crash can be reported with them).
    """
    case = Case(seed, only)
    case_dir = cases_dir / str(seed)
    shutil.rmtree(case_dir, ignore_errors=True)
    case_dir.mkdir(parents=True)
    result = {"seed": seed, "case": case.describe(), "broken": []}
    try:
        for name in case.copies:
            src = base / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, case_dir / name)
        victim = case.victim(case_dir)
        try:
            result["damage"] = f"{victim.relative_to(case_dir)}: {case.damage(victim, case.rng)}"
        except Exception as e:  # the damage itself failed (h5py refusing, say): still run
            result["damage"] = f"{victim.relative_to(case_dir)}: damage failed ({type(e).__name__})"
        out = case_dir / "out"
        out.mkdir()
        argv, outputs = case.argv(case_dir, out)
        result["argv"] = " ".join(str(a) for a in argv)
        before = _digests(case_dir, out)
        if announce is not None:
            announce(result)
        rc, stdout, stderr, escaped = _captured(argv)
        result["rc"] = rc
        result["stderr"] = stderr[-2000:]
        broken = result["broken"]
        if rc not in (0, 1):
            broken.append(f"exit code {rc}" + (f": {escaped.strip()}" if escaped else ""))
        for word in ("Traceback", "Exception ignored"):
            if word in stderr or word in stdout:
                broken.append(f"'{word}' in the output")
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        # check and validate exit 1 with a report of the problems they found
        reported = (case.command in ("check", "validate") and not errors
                    and (stdout.strip() or stderr.strip()))
        if rc == 1 and len(errors) != 1 and not reported:
            broken.append(f"exit 1 with {len(errors)} 'error:' lines")
        if rc == 0 and errors:
            broken.append(f"exit 0 with {len(errors)} 'error:' line(s)")
        if _digests(case_dir, out) != before:
            broken.append("an input changed")
        left = _temporaries(case_dir)
        if left:
            broken.append(f"temporaries left: {left[:3]}")
        if rc != 0:
            there = [str(p.relative_to(case_dir)) for p in outputs if p.exists()]
            if there:
                broken.append(f"output left after an error: {there}")
    finally:
        if not keep and not result["broken"]:
            shutil.rmtree(case_dir, ignore_errors=True)
    return result


# --- workers and the driver -------------------------------------------------------------
def worker(work: Path, seeds: list, log: Path, keep: bool = False, only=()) -> None:
    """Run cases one after the other, logging ``start SEED`` and ``done JSON`` lines."""
    base, cases = work / "base", work / "cases"
    with open(log, "a", buffering=1) as fh:
        def announce(r):
            fh.write("run " + json.dumps(r) + "\n")
            fh.flush()

        for seed in seeds:
            fh.write(f"start {seed}\n")
            fh.flush()
            result = run_case(base, cases, seed, keep=keep, only=only, announce=announce)
            fh.write("done " + json.dumps(result) + "\n")
            fh.flush()


def _read_log(log: Path):
    """``(results by seed, seed of the case under way or None, its announced details)``."""
    done, started, details = {}, None, {}
    if log.is_file():
        for line in log.read_text().splitlines():
            if line.startswith("start "):
                started, details = int(line.split()[1]), {}
            elif line.startswith("run "):
                try:
                    details = json.loads(line[4:])
                except json.JSONDecodeError:
                    pass
            elif line.startswith("done "):
                try:
                    r = json.loads(line[5:])
                except json.JSONDecodeError:
                    continue
                done[r["seed"]] = r
                started = None
    return done, started, details


def drive(work: Path, seeds: list, n_workers: int, batch: int, progress: bool = True,
          keep: bool = False, only=()) -> list:
    """Run ``seeds`` in child processes; return every case's result, in seed order."""
    logs = work / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    pending = collections.deque(seeds[i:i + batch] for i in range(0, len(seeds), batch))
    running, results, n_started = [], {}, 0
    t0 = time.time()
    while pending or running:
        while pending and len(running) < n_workers:
            seeds_b = pending.popleft()
            n_started += 1
            log = logs / f"w{n_started}.log"
            err = open(logs / f"w{n_started}.err", "wb")
            proc = subprocess.Popen([sys.executable, __file__, "--worker", str(log), "--work",
                                     str(work), "--seeds", ",".join(map(str, seeds_b)),
                                     *(["--keep"] if keep else []),
                                     *(a for t in only for a in ("--only", t))],
                                    stdout=err, stderr=err, stdin=subprocess.DEVNULL)
            running.append([proc, seeds_b, log, err, time.time(), None])
        time.sleep(0.2)
        for item in list(running):
            proc, seeds_b, log, err, _, last = item
            done, started, details = _read_log(log)
            if started != last:
                item[4], item[5] = time.time(), started
            hung = started is not None and time.time() - item[4] > CASE_TIMEOUT
            if hung:
                proc.kill()
            if proc.poll() is None:
                continue
            err.close()
            running.remove(item)
            results.update(done)
            if started is not None:  # died inside a case: a native crash (or hung)
                rc = proc.returncode
                why = (f"hung for over {CASE_TIMEOUT} s" if hung else
                       f"the process died with signal {-rc}" if rc < 0 else
                       f"the process exited with {rc} inside the case")
                results[started] = {"seed": started, "case": Case(started, only).describe(),
                                    "argv": "", "damage": "", **details, "rc": rc,
                                    "broken": [why],
                                    "stderr": Path(err.name).read_text(errors="replace")[-2000:]}
            rest = [s for s in seeds_b if s not in results]
            if rest:
                if started is None and proc.returncode != 0:
                    tail = Path(err.name).read_text(errors="replace")[-1500:]
                    raise SystemExit(f"fuzz: a worker failed outside any case (exit "
                                     f"{proc.returncode}):\n{tail}")
                pending.appendleft(rest)
        if progress:
            n = len(results)
            bad = sum(1 for r in results.values() if r["broken"])
            print(f"\rfuzz: {n}/{len(seeds)} cases, {bad} broke a rule, "
                  f"{time.time() - t0:.0f} s", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return [results[s] for s in seeds]


def _report(results: list, show: int, only=()) -> str:
    broken = [r for r in results if r["broken"]]
    lines = [f"fuzz: {len(results)} cases tried, {len(broken)} broke a rule"]
    counts = collections.Counter(r["case"].split(" (")[0] for r in results)
    lines.append("  cases: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    exits = collections.Counter(str(r.get("rc")) for r in results)
    lines.append("  exit codes: " + ", ".join(f"{k}: {v}" for k, v in sorted(exits.items())))
    for r in broken[:show]:
        lines.append(f"- case {r['seed']}: {r['case']}: {'; '.join(r['broken'])}")
        if r.get("damage"):
            lines.append(f"    damage: {r['damage']}")
        if r.get("argv"):
            lines.append(f"    ran: seaice {r['argv']}")
        tail = [l for l in r.get("stderr", "").splitlines() if l.strip()][-3:]
        for l in tail:
            lines.append(f"    | {l[:200]}")
        again = "".join(f" --only '{t}'" for t in only)
        lines.append(f"    reproduce: python benchmarks/fuzz.py --case {r['seed']}{again} --keep")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=1000, help="cases to run (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="run seed: case seeds are SEED*1000000+i")
    p.add_argument("--workers", type=int, default=2, help="child processes at once (default 2)")
    p.add_argument("--batch", type=int, default=25, help="cases per child process (default 25)")
    p.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the work folder and case folders")
    p.add_argument("--show", type=int, default=5, help="broken cases to print (default 5)")
    p.add_argument("--case", type=int, action="append", help="run this case seed only (repeatable)")
    p.add_argument("--only", action="append", choices=list(TARGETS), default=[],
                   help="damage only this kind of file (repeatable; pass it again to reproduce)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--seeds", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.work, [int(s) for s in args.seeds.split(",") if s], args.worker, args.keep,
               args.only)
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="seaice-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        build_base(work / "base")
        if args.case:  # in a child too: a native crash is reported, not suffered
            results = drive(work, args.case, 1, len(args.case), progress=False, keep=args.keep,
                            only=args.only)
            for r in results:
                print(json.dumps(r, indent=2))
        else:
            seeds = [args.seed * 1_000_000 + i for i in range(args.cases)]
            results = drive(work, seeds, args.workers, args.batch, progress=not args.quiet,
                            only=args.only)
        print(_report(results, args.show, args.only))
        return 1 if any(r["broken"] for r in results) else 0
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
