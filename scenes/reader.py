"""Open and validate AI4Arctic ready-to-train scene files.

Scenes are opened lazily with xarray (``h5netcdf`` engine, no decoding of
fills, so SAR fill pixels stay exactly 0.0 and labels keep their 255s) and
checked against the contract in :mod:`scenes.contract`. Every violation is
raised as one :class:`SceneError` line naming the file, the variable, what was
expected and how to fix it.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import socket
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5netcdf
import h5py
import numpy as np
import xarray as xr

from . import contract as C
from ._check_kernels import count_outside, value_counts

log = logging.getLogger(__name__)

KINDS = ("train", "test", "reference")
#: Rows read at a time when scanning values, to keep memory bounded.
_SCAN_ROWS = 512
#: Inputs are z-scores of the real dataset's statistics: a value further than
#: this many standard deviations out is no measurement (damaged or unscaled data).
MAX_ABS_ZSCORE = 100.0
#: A scene whose variables take at most this many bytes is read into memory
#: whole for the work on it (a real 5000 x 5200 scene takes about 0.5 GB).
MAX_LOAD_BYTES = 1_500_000_000
#: Threads that inflate a variable's HDF5 chunks at most (fewer on fewer cores), and the
#: elements of the run of chunks each takes at a time.
READ_THREADS = 4
READ_TASK_ELEMENTS = 2 ** 20


class SceneError(ValueError):
    """A scene file (or folder of scenes) does not meet the data contract."""

    def __init__(self, path, variable, problem, fix):
        self.path, self.variable = str(path), variable
        self._args = (path, variable, problem, fix)
        where = f"{path}: {variable}: " if variable else f"{path}: "
        super().__init__(f"{where}{problem}; {fix}")

    def __reduce__(self):  # rebuild from our own arguments in joblib/Dask workers
        return (type(self), self._args)


def scene_key(path) -> str:
    """Scene key: the first 19 characters of the file name."""
    return Path(path).name[: C.KEY_LENGTH]


def scene_kind(path) -> str | None:
    """``"reference"`` for ``*_prep_reference.nc``, else None (train or test by content)."""
    parsed = C.parse_scene_name(Path(path).name)
    if parsed is None:
        return None
    return "reference" if parsed[1] else None


def list_scenes(directory, *, kind: str | None = None) -> list[Path]:
    """Sorted scene files of a folder.

    Parameters
    ----------
    directory : path-like
        Folder holding ``*_prep.nc`` (train/test) or ``*_prep_reference.nc`` files.
    kind : {"train", "test", "reference"}, optional
        Which files to list; ``"reference"`` lists ``*_prep_reference.nc``,
        the others ``*_prep.nc``. Default: whatever scene files are there.

    Raises
    ------
    SceneError
        Missing folder, no scene files, or two files with the same scene key.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SceneError(directory, None, "is not a folder",
                         "pass the folder that holds the *_prep.nc scene files")
    paths, ignored = [], []
    for p in sorted(directory.iterdir()):
        # A folder or broken link named like a scene is listed too: opening it
        # says what it is, rather than the run silently having a scene fewer.
        if not p.name.endswith(".nc") or (not p.is_file() and C.parse_scene_name(p.name) is None):
            continue
        parsed = C.parse_scene_name(p.name)
        if parsed is None:
            ignored.append(p.name)
            continue
        is_ref = parsed[1]
        if kind is None or (kind == "reference") == is_ref:
            paths.append(p)
    if ignored:
        log.warning("%s: ignored %d .nc file(s) not named YYYYMMDDTHHMMSS_{dmi|cis}_prep[_reference].nc: %s",
                    directory, len(ignored), ", ".join(ignored[:5]))
    if not paths:
        wanted = "*_prep_reference.nc" if kind == "reference" else "*_prep.nc"
        raise SceneError(directory, None, f"contains no scene files ({wanted})",
                         "check the path, or create synthetic scenes with `seaice synth --out DIR`")
    seen: dict[str, Path] = {}
    for p in paths:
        k = scene_key(p)
        if k in seen:
            raise SceneError(p, None, f"has the same scene key {k} as {seen[k].name}",
                             "keep one file per scene in the folder")
        seen[k] = p
    return paths


def _not_a_file(path: Path) -> tuple[str, str]:
    """``(problem, fix)`` for a scene path that is not a readable file."""
    if path.is_symlink() and not path.exists():
        return (f"is a broken link (to {os.readlink(path)})",
                "point it at the scene file or remove it from the folder")
    if path.is_dir():
        return "is a folder named like a scene file", "rename or move it out of the scene folder"
    if path.exists():
        return "is not a regular file", "replace it with the scene file"
    return "no such file", "check the path"


def open_scene(path, *, kind: str | None = None, validate: bool = True,
               check_values: bool = True) -> xr.Dataset:
    """Open one scene lazily and check it against the contract.

    Parameters
    ----------
    path : path-like
        A ``*_prep.nc`` or ``*_prep_reference.nc`` file.
    kind : {"train", "test", "reference"}, optional
        Expected kind. Default: ``"reference"`` by file name, else ``"train"``
        when the labels are present, else ``"test"``.
    validate : bool
        Check variables, dims, dtypes and the 2 km grid (cheap, metadata only).
    check_values : bool
        Also scan label classes and SAR fills (reads the SAR-grid variables
        in row blocks).

    Returns
    -------
    xarray.Dataset
        Raw stored values (z-scored inputs, uint8 labels), with
        ``ds.attrs["scene_key"]``, ``ds.attrs["scene_kind"]`` and
        ``ds.encoding["source"]`` set.
    """
    path = Path(path)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not path.is_file():
        raise SceneError(path, None, *_not_a_file(path))
    try:
        walk_hdf5(path)
        ds = xr.open_dataset(path, engine="h5netcdf", mask_and_scale=False,
                             decode_times=False, decode_coords=False)
    except Exception as exc:  # h5py/xarray raise many types for a bad file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SceneError(path, None, f"cannot be read as NetCDF4/HDF5 ({reason})",
                         "the file is truncated or not a scene: download or write it again") from None
    if kind is None:
        kind = scene_kind(path) or ("train" if all(c in ds for c in C.LABEL_CHARTS) else "test")
    ds.attrs["scene_key"] = scene_key(path)
    ds.attrs["scene_kind"] = kind
    ds.encoding["source"] = str(path)
    if validate:
        try:
            validate_scene(ds, path, kind, check_values=check_values)
        except Exception:
            ds.close()
            raise
    return ds


def walk_hdf5(path) -> None:
    """Read every object header and attribute of an HDF5 file; raise if one is damaged.

    Done before h5netcdf opens a file: on damaged metadata h5netcdf fails with
    its ``File`` half built, and that object's ``__del__`` later prints
    "Exception ignored ... no attribute '_writable'" with a traceback; h5py
    raises cleanly instead.
    """
    with h5py.File(path, "r") as f:
        list(f.attrs.items())
        f.visititems(lambda name, obj: list(obj.attrs.items()) and None)


def required_vars(kind: str) -> tuple[str, ...]:
    """Variables a scene of this kind must hold."""
    return {"train": C.TRAIN_VARS, "test": C.TEST_VARS, "reference": C.LABEL_CHARTS}[kind]


def validate_scene(ds: xr.Dataset, path, kind: str, *, check_values: bool = True) -> None:
    """Raise :class:`SceneError` on the first contract violation of a scene."""
    for var in required_vars(kind):
        if var not in ds.variables:
            raise SceneError(path, var, f"missing (a {kind} scene needs all of "
                             f"{len(required_vars(kind))} contract variables)",
                             "use an unmodified AI4Arctic ready-to-train file or regenerate it")
    for var in required_vars(kind):
        da = ds[var]
        if da.dims != C.VAR_DIMS[var]:
            raise SceneError(path, var, f"has dims {da.dims}, expected {C.VAR_DIMS[var]}",
                             "the file does not follow the ready-to-train layout")
        if da.dtype != C.VAR_DTYPES[var]:
            raise SceneError(path, var, f"has dtype {da.dtype}, expected {C.VAR_DTYPES[var]}",
                             "store it with the contract dtype")
    sar_shape = tuple(ds.sizes[d] for d in C.SAR_DIMS)
    if kind != "reference":
        expected = C.grid2km_shape(sar_shape)
        got = tuple(ds.sizes[d] for d in C.GRID2KM_DIMS)
        if got != expected:
            raise SceneError(path, "2km grid", f"is {got[0]} x {got[1]} for a {sar_shape[0]} x "
                             f"{sar_shape[1]} SAR grid, expected floor(n/25) = {expected[0]} x {expected[1]}",
                             "the 2 km variables must cover the SAR grid in 25 x 25 cells")
    if min(sar_shape) < C.GRID2KM_FACTOR:
        raise SceneError(path, "nersc_sar_primary", f"SAR grid {sar_shape} is smaller than one 2 km cell",
                         "use scenes of at least 25 x 25 pixels")
    if check_values:
        _check_values(ds, path, kind)


def _refuse_far(path, var, n: int) -> None:
    raise SceneError(path, var, f"holds {n} value(s) more than {MAX_ABS_ZSCORE:g} standard "
                     "deviations from the global mean: not a physical measurement",
                     "the file is damaged or not z-scored with global_meanstd.json; "
                     "write it again")


def _check_physical(path, var, values) -> None:
    n = int(np.count_nonzero(np.abs(values) > MAX_ABS_ZSCORE))
    if n:
        _refuse_far(path, var, n)


def _row_blocks(n_rows: int, var=None):
    """Row slices of about ``_SCAN_ROWS`` rows, aligned to the variable's HDF5 chunks.

    A band that starts and ends on chunk edges decompresses each chunk once,
    whatever the file's chunking (real files may hold a third of a scene per chunk).
    """
    chunk = (var.encoding.get("chunksizes") or (1,))[0] if var is not None else 1
    step = max(1, -(-_SCAN_ROWS // chunk)) * chunk
    for r0 in range(0, n_rows, step):
        yield slice(r0, min(r0 + step, n_rows))


def read_chunks_threaded(dset, threads: int):
    """An HDF5 dataset's values, its chunks decompressed on ``threads`` threads; or None.

    HDF5 inflates a dataset's chunks one after the other; :mod:`zlib` lets go of
    the GIL, so threads inflate several at once. Handles chunked datasets whose
    filters are deflate and/or shuffle, in native byte order, with every chunk
    stored and filtered; for anything else returns None (read it as usual).
    The same bytes as ``dset[...]``: each chunk is inflated, unshuffled and
    placed, nothing else. Each thread takes a run of chunks (a file with a row
    per chunk has thousands) and reads their stored bytes with ``os.pread``
    at the addresses the chunk index gives, checked against HDF5's own read of
    the first chunk.
    """
    plist = dset.id.get_create_plist()
    if dset.chunks is None or threads < 2 or not dset.dtype.isnative:
        return None
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if not filters or not set(filters) <= {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE}:
        return None
    chunks, shape = dset.chunks, dset.shape
    infos = []
    dset.id.chunk_iter(infos.append)  # one walk of the chunk index
    if len(infos) != int(np.prod([-(-s // c) for s, c in zip(shape, chunks)])):
        return None  # unwritten chunks (fill values): not worth the special case
    if any(info.filter_mask for info in infos) or dset.file.userblock_size:
        return None  # a filter skipped for a chunk; addresses not from the file's start
    itemsize = dset.dtype.itemsize
    out = np.empty(shape, dset.dtype)
    # HDF5 applies the filters in pipeline order on write; undo them in reverse
    undo = filters[::-1]
    per_task = max(1, READ_TASK_ELEMENTS // int(np.prod(chunks)))
    tasks = [infos[i:i + per_task] for i in range(0, len(infos), per_task)]
    fd = os.open(dset.file.filename, os.O_RDONLY)
    try:
        first = infos[0]
        if os.pread(fd, first.size, first.byte_offset) != \
                dset.id.read_direct_chunk(first.chunk_offset)[1]:
            return None

        def run(task):
            for info in task:
                data = os.pread(fd, info.size, info.byte_offset)
                for f in undo:
                    if f == h5py.h5z.FILTER_DEFLATE:
                        data = zlib.decompress(data)
                    else:
                        data = np.frombuffer(data, np.uint8).reshape(itemsize, -1).T.tobytes()
                block = np.frombuffer(data, dset.dtype).reshape(chunks)
                where = tuple(slice(o, min(o + c, n))
                              for o, c, n in zip(info.chunk_offset, chunks, shape))
                out[where] = block[tuple(slice(0, w.stop - w.start) for w in where)]

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, tasks))
    finally:
        os.close(fd)
    return out


def _threads() -> int:
    return min(READ_THREADS, len(os.sched_getaffinity(0)))


def in_memory(ds: xr.Dataset, budget_bytes: int = MAX_LOAD_BYTES) -> xr.Dataset:
    """``ds`` with its variables read into memory, each decompressed once, if they fit.

    Features read rows with halos many times over; from a lazily opened file
    each of those reads decompresses whole HDF5 chunks again (a file with
    large chunks took 25 of 39 s reading). The chunks of the variables on the SAR
    grid are inflated on several threads (:func:`read_chunks_threaded`). A scene over
    ``budget_bytes`` stays lazy.
    """
    if ds.nbytes <= budget_bytes:
        source = ds.encoding.get("source")
        threads = _threads()
        if source and threads > 1:
            with h5py.File(source, "r") as f:
                for var in ds.data_vars:  # the SAR grid's: the large ones
                    if var in f and ds[var].dims == C.SAR_DIMS:
                        try:
                            values = read_chunks_threaded(f[var], threads)
                        except Exception:  # damaged: the usual read below says how
                            values = None
                        if values is not None:
                            ds[var].variable.data = values
        ds.load()
    else:
        log.info("%s: %.1f GB, more than the %.1f GB read into memory at once; reading it "
                 "in row blocks", ds.encoding.get("source", "scene"), ds.nbytes / 1e9,
                 budget_bytes / 1e9)
    return ds


def load_scene(path, *, kind: str | None = None, check_values: bool = True) -> xr.Dataset:
    """Open a scene, read it into memory and check its values there: one read per scene.

    The metadata is checked as :func:`open_scene` does; then every variable is
    decompressed once (:func:`in_memory`), whatever the file's chunking, and
    the value checks (label classes, NaN, impossible z-scores, no valid
    pixel) run on those arrays, which the caller then works from. A scene
    over the memory budget stays lazy and is scanned in chunk-aligned bands.

    Raises
    ------
    SceneError
        As :func:`open_scene` with ``check_values=True``.
    """
    ds = in_memory(open_scene(path, kind=kind, check_values=False))
    if check_values:
        try:
            _check_values(ds, Path(path), ds.attrs["scene_kind"])
        except Exception:
            ds.close()
            raise
    return ds


def _check_values(ds: xr.Dataset, path, kind: str) -> None:
    n_rows = ds.sizes[C.SAR_DIMS[0]]
    if kind in ("train", "reference"):
        for chart in C.LABEL_CHARTS:
            for rows in _row_blocks(n_rows, ds[chart]):
                block = np.asarray(ds[chart][rows].values)
                if count_outside(block, C.N_CLASSES[chart], C.MASK_VALUE) == 0:
                    continue
                counts = np.bincount(block.ravel(), minlength=256)
                bad = [c for c in np.flatnonzero(counts)
                       if c >= C.N_CLASSES[chart] and c != C.MASK_VALUE]
                raise SceneError(path, chart, f"holds class {bad[0]} outside 0..{C.N_CLASSES[chart] - 1} "
                                 f"or {C.MASK_VALUE}", "labels must be class indices or 255 for masked")
    if kind in ("train", "test"):
        n_valid, n_far = 0, {}
        for var in C.SAR_GRID_VARS:
            for rows in _row_blocks(n_rows, ds[var]):
                bad, far, kept = value_counts(np.asarray(ds[var][rows].values), MAX_ABS_ZSCORE,
                                              C.SAR_FILL)
                if bad:
                    raise SceneError(path, var, "holds NaN or infinite values",
                                     "invalid SAR-grid pixels must be exactly 0.0 (the contract's fill)")
                n_far[var] = n_far.get(var, 0) + int(far)
                if var == C.SAR_VARS[0]:
                    n_valid += int(kept)  # not the fill: contract.sar_valid
            if n_far.get(var):
                _refuse_far(path, var, n_far[var])
        for var in C.GRID2KM_VARS:
            values = ds[var].values
            if not np.isfinite(values).all():
                raise SceneError(path, var, "holds NaN or infinite values",
                                 "2 km variables are never masked in the contract")
            _check_physical(path, var, values)
        if n_valid == 0:
            raise SceneError(path, C.SAR_VARS[0], "has no valid pixel (all 0.0 = no data)",
                             "remove this scene from the folder")


def valid_mask(ds: xr.Dataset, rows: slice | None = None) -> np.ndarray:
    """Valid SAR pixels of a scene (:func:`scenes.contract.sar_valid`); ``rows`` an optional slice."""
    hh = ds[C.SAR_VARS[0]]
    if rows is not None:
        hh = hh.isel({C.SAR_DIMS[0]: rows})
    return C.sar_valid(hh.values)


def iter_scenes(path, *, kind: str | None = None, **kwargs):
    """Yield ``(path, dataset)`` for one scene file or every scene of a folder.

    Each dataset is closed once the consumer moves on.
    """
    path = Path(path)
    paths = list_scenes(path, kind=kind) if path.is_dir() else [path]
    for p in paths:
        ds = open_scene(p, kind=kind, **kwargs)
        try:
            yield p, ds
        finally:
            ds.close()


def _host() -> str:
    """This machine's name without dots, so temporary names parse back."""
    return socket.gethostname().replace(".", "-") or "localhost"


_TMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<host>[^.]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")


def atomic_path(final) -> Path:
    """A temporary sibling of ``final`` to write to before ``os.replace``.

    Unique per call (host, process id and a random token), so concurrent
    writers of one file, even on a shared file system, never share a
    temporary, and :func:`remove_stale_tmp` can tell whose it is.
    """
    final = Path(final)
    return final.with_name(f".{final.name}.{_host()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def atomic_owner(path) -> tuple[str, str, int] | None:
    """``(final name, host, pid)`` of a temporary made by :func:`atomic_path`, else None."""
    m = _TMP_NAME.fullmatch(Path(path).name)
    return (m["name"], m["host"], int(m["pid"])) if m else None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_tmp(folder, final=None) -> list[Path]:
    """Remove temporaries in ``folder`` (of ``final`` only, if given) left by killed processes.

    Only this machine's temporaries are judged: another host's process
    cannot be asked whether it still runs.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    host = _host()
    for p in folder.iterdir():
        owner = atomic_owner(p)
        if owner is None or (final is not None and owner[0] != Path(final).name):
            continue
        if owner[1] == host and not pid_alive(owner[2]):
            log.info("removing %s, left by a killed run", p)
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def atomic_write_bytes(path, data) -> None:
    """Write ``data`` (bytes or a buffer) to ``path`` through a temporary sibling, then rename.

    Raises
    ------
    OSError
        One line naming ``path`` and the cause (a full disk, say); the
        original error is its ``__cause__``. No temporary is left.
    """
    tmp = atomic_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(f"{path}: cannot be written ({exc.strerror or exc}); free disk space "
                      "or write elsewhere") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` (UTF-8)."""
    atomic_write_bytes(path, text.encode())


@contextlib.contextmanager
def all_or_nothing(folders, written: dict):
    """Undo a multi-file write if it fails.

    ``folders`` are made on entry; ``written`` is the caller's ``{kind: [path]}``
    of files written so far. On any error those files are removed, then the
    folders that did not exist before the block if they are left empty
    (innermost last in ``folders``); the error propagates. No half-written
    dataset is left.
    """
    folders = [Path(d) for d in folders]
    created = [d for d in folders if not d.exists()]
    try:
        for d in folders:
            d.mkdir(parents=True, exist_ok=True)
        yield
    except BaseException:
        for path in (p for paths in written.values() for p in paths):
            Path(path).unlink(missing_ok=True)
        for d in reversed(created):
            try:
                d.rmdir()
            except OSError:  # not empty: someone else's files, or it was never made
                pass
        raise


@contextlib.contextmanager
def hdf5_in_memory(path):
    """An ``h5netcdf.File`` built in memory, written to ``path`` when the block ends.

    HDF5 cannot recover from a failed write to disk (a full disk crashes the
    process when it exits); a failed write of the finished bytes is one
    ``OSError`` line naming ``path`` (:func:`atomic_write_bytes`). If the
    block raises, nothing is written. Memory: the compressed file.
    """
    buf = io.BytesIO()
    with h5netcdf.File(buf, "w") as f:
        yield f
    atomic_write_bytes(path, buf.getbuffer())
