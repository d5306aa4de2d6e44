"""The challenge submission file: write it, validate it, read it back.

One NetCDF4 file with, per test scene key ``K`` and chart ``C``, a uint8
variable ``f"{K}_{C}"`` with dims ``(f"{K}_{C}_dim0", f"{K}_{C}_dim1")`` at
the full 80 m shape of the scene, zlib level 1 (the challenge's
``upload_package.nc``).
"""
from __future__ import annotations

import errno
import functools
import os
import shutil
from pathlib import Path

import h5netcdf
import numpy as np

from scenes import contract as C
from scenes.reader import (SceneError, atomic_path, list_scenes, open_scene, scene_key,
                           valid_mask, walk_hdf5)


def variable_name(key: str, chart: str) -> str:
    """Submission variable of one scene and chart."""
    return f"{key}_{chart}"


class SubmissionWriter:
    """Write a submission scene by scene, atomically, checked before it is put in place.

    Data go to a temporary file beside ``path``. When the ``with`` block ends
    without error, the file is closed, checked with :func:`validate_submission`
    against the scene files given to :meth:`add` (when every scene came with
    its file), and only then replaces ``path``; on any error nothing is left.
    The predict job (:func:`pipeline.predict.predict_folder`) writes through it.

    A full disk (or a file size limit) ends in one ``OSError`` line naming
    ``path``. HDF5 cannot recover from a failed write: the file can no longer
    be closed and the process crashes when it exits. So HDF5 is never let
    meet one: the disk space it may need next (the scene's maps uncompressed,
    plus room for metadata) is claimed (``posix_fallocate``) before each
    scene is handed to it, and a claim that fails stops the writing while
    everything written so far still fits in the space already claimed.

    Examples
    --------
    >>> with SubmissionWriter("upload_package.nc") as sub:      # doctest: +SKIP
    ...     sub.add("20200424T101936_cis", {"SIC": sic, "SOD": sod, "FLOE": floe})
    """

    #: Space claimed beyond what the maps need: the superblock, groups, attributes.
    _RESERVE = 1 << 18
    #: Metadata room claimed per variable (chunk index, object header, dimension scales).
    _PER_VARIABLE = 1 << 16

    def __init__(self, path):
        self.path = Path(path)
        self._tmp = atomic_path(self.path)
        self._file = None
        self._fd = None  # our own handle on the temporary, to claim space through
        self._claimed = 0
        self.keys: list[str] = []
        self.scenes: list[Path | None] = []

    def __enter__(self):
        if not self.path.parent.is_dir():
            raise SceneError(self.path, None, "its folder does not exist",
                             "create the output folder first or choose another --out")
        try:
            self._fd = os.open(self._tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise SceneError(self.path, None, f"cannot be written ({exc.strerror or exc})",
                             "choose a writable output location") from None
        try:
            # Claimed before HDF5 holds the file, and again after it has truncated it on
            # opening: from here on HDF5 always writes into claimed space.
            self._claim(self._RESERVE)
            self._file = h5netcdf.File(self._tmp, "w")
            self._claimed = 0
            self._claim(self._RESERVE)
        except BaseException:
            self._discard()
            raise
        return self

    def _write_error(self, reason) -> OSError:
        return OSError(f"{self.path}: cannot be written ({reason}); free disk space or "
                       "choose another --out")

    def _claim(self, total: int) -> None:
        """Make sure the temporary file can grow to ``total`` bytes, or raise one line."""
        if total <= self._claimed:
            return
        fallocate = getattr(os, "posix_fallocate", None)
        try:
            if fallocate is None:
                raise OSError(errno.EOPNOTSUPP, "no posix_fallocate")
            fallocate(self._fd, 0, total)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise self._write_error(exc.strerror or exc) from None
            # No way to reserve here: at least refuse what cannot fit now.
            if shutil.disk_usage(self._tmp.parent).free < total - os.fstat(self._fd).st_size:
                raise self._write_error(os.strerror(errno.ENOSPC)) from None
        self._claimed = total

    def add(self, key: str, maps: dict, scene=None) -> None:
        """Add the three charts (uint8 class maps of the scene's full shape) of one scene.

        ``scene``, the scene file the maps are of, lets the file be validated
        against it before it is put in place.
        """
        if key in self.keys:
            raise ValueError(f"scene {key} added twice to {self.path}")
        arrays = {chart: np.asarray(maps[chart]) for chart in C.LABEL_CHARTS}
        for chart, arr in arrays.items():
            if arr.ndim != 2:
                raise ValueError(f"{key} {chart}: map must be 2-D, got shape {arr.shape}")
        # Upper bound of what HDF5 writes for them: uint8 maps, deflate adding at most
        # ~0.1% to data it cannot compress.
        need = sum(a.size + a.size // 64 + 8 * sum(a.shape) + self._PER_VARIABLE
                   for a in arrays.values())
        # (h5netcdf keeps its h5py.File as _h5file; its size is what HDF5 has used so far)
        self._claim(self._file._h5file.id.get_filesize() + need + self._RESERVE)
        for chart, arr in arrays.items():
            name = variable_name(key, chart)
            dims = (f"{name}_dim0", f"{name}_dim1")
            self._file.dimensions.update(dict(zip(dims, arr.shape)))
            chunks = (min(arr.shape[0], 1024), min(arr.shape[1], 1024))
            self._file.create_variable(name, dims, np.uint8, data=arr.astype(np.uint8, copy=False),
                                       compression="gzip", compression_opts=1, chunks=chunks)
        self.keys.append(key)
        self.scenes.append(None if scene is None else Path(scene))

    def close(self) -> None:
        """Finish writing the temporary file."""
        if self._file is not None:
            f, self._file = self._file, None
            f.close()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                # HDF5 leaves the claimed space past its end of file when it wrote up to
                # it; cut the file to the end its superblock records.
                end = self._hdf5_end(fd)
                if end is not None and os.fstat(fd).st_size > end:
                    os.ftruncate(fd, end)
            finally:
                os.close(fd)

    @staticmethod
    def _hdf5_end(fd) -> int | None:
        """The end-of-file address an HDF5 superblock at offset 0 records (None: no superblock)."""
        head = os.pread(fd, 64, 0)
        if len(head) < 48 or head[:8] != b"\x89HDF\r\n\x1a\n":
            return None
        version = head[8]
        if version in (0, 1):  # base, free-space, end-of-file addresses after 24 (+4) bytes
            size, at = head[13], 24 + 4 * version
        else:  # base, superblock extension, end-of-file addresses after 12 bytes
            size, at = head[9], 12
        base, _, eof = (int.from_bytes(head[at + i * size: at + (i + 1) * size], "little")
                        for i in range(3))
        return base + eof

    def _discard(self) -> None:
        """Close everything and remove the temporary file (on an error: write nothing)."""
        try:
            if self._file is not None:
                f, self._file = self._file, None
                f.close()  # only writes into space already claimed
        finally:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)
            self._tmp.unlink(missing_ok=True)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._discard()
            return False
        try:
            try:
                self.close()
            except OSError as e:
                raise self._write_error(e.strerror or e) from None
            if self.scenes and all(s is not None for s in self.scenes):
                problems = validate_submission(self._tmp, self.scenes)
                if problems:
                    raise RuntimeError(f"{self.path}: the written submission is invalid "
                                       f"({problems[0]}); please report this bug")
            os.replace(self._tmp, self.path)
        finally:
            self._discard()
        return False


def open_submission(path) -> h5netcdf.File:
    """Open a submission for reading, with a clear error if it is not NetCDF4."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(path, None, "no such submission file", "check the --submission path")
    f = None
    try:
        walk_hdf5(path)
        f = h5netcdf.File(path, "r")
        for var in f.variables.values():  # h5netcdf resolves these lazily: fail here, not later
            var.dimensions, var.shape, var.dtype
        return f
    except Exception as exc:
        if f is not None:
            f.close()
        raise SceneError(path, None, f"cannot be read as NetCDF4 ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                         "write the submission again with `seaice predict`") from None


def map_problems(f: h5netcdf.File, path, key: str, chart: str, shape, where=None,
                 scene_name: str = "") -> list[str]:
    """Problems of one map of a submission: the check ``validate`` and ``evaluate`` share.

    Parameters
    ----------
    f : h5netcdf.File
        The open submission.
    path : path-like
        The submission file (for messages).
    key, chart : str
        Which map.
    shape : tuple
        The scene's full 80 m shape.
    where : bool array of ``shape``, or a callable returning one, optional
        Pixels whose class must be in range (valid SAR, or labelled reference).
        A callable is only called when some pixel's value is out of range (a
        map in range everywhere needs no mask: the scene is not read).
    scene_name : str
        The scene file (for messages).

    Returns
    -------
    list of str
        Empty for a good map; a missing map is one problem.
    """
    name = variable_name(key, chart)
    if name not in f.variables:
        return [f"{path}: {name}: missing (scene {scene_name or key})"]
    var = f.variables[name]
    problems = []
    if var.dtype != np.uint8:
        problems.append(f"{path}: {name}: dtype {var.dtype}, expected uint8")
    if tuple(var.dimensions) != (f"{name}_dim0", f"{name}_dim1"):
        problems.append(f"{path}: {name}: dims {tuple(var.dimensions)}, "
                        f"expected ('{name}_dim0', '{name}_dim1')")
    if tuple(var.shape) != tuple(shape):
        problems.append(f"{path}: {name}: shape {tuple(var.shape)}, expected {tuple(shape)} "
                        f"(full 80 m shape of {scene_name or key})")
        return problems
    if where is not None and var.dtype.kind in "iuf":
        values = np.asarray(var[...])
        bad = (values < 0) | (values >= C.N_CLASSES[chart]) | (values != np.round(values))
        if bad.any():
            mask = where() if callable(where) else where
            values, bad = values[mask], bad[mask]
        if values.size and bad.any():
            problems.append(f"{path}: {name}: value {values[bad][0].item()!r} is not a class "
                            f"0..{C.N_CLASSES[chart] - 1} at {int(bad.sum())} scored pixel(s)")
    return problems


def validate_submission(path, scenes) -> list[str]:
    """Problems of a submission against the test scenes it is for.

    Parameters
    ----------
    path : path-like
        The submission file.
    scenes : path-like or list of path-like
        Folder of the test scenes (``*_prep.nc``), or the scene files
        themselves; their ``nersc_sar_primary`` gives each scene's shape and
        valid pixels.

    Returns
    -------
    list of str
        One line per problem (empty for a valid file): unreadable file,
        missing variable, wrong dtype, wrong dims or shape, class out of range
        at a valid pixel, unknown scene.

    Raises
    ------
    SceneError
        When ``scenes`` are not test scenes (a reference folder, say).
    """
    try:
        f = open_submission(path)
    except SceneError as exc:
        return [str(exc)]
    problems = []
    with f:
        expected = set()
        if isinstance(scenes, (str, os.PathLike)):
            scene_paths, where = list_scenes(scenes, kind="test"), str(scenes)
        else:
            scene_paths, where = [Path(p) for p in scenes], "the given test scenes"
        for scene_path in scene_paths:
            ds = open_scene(scene_path, validate=False)
            key = scene_key(scene_path)
            try:
                if C.SAR_VARS[0] not in ds.variables:
                    raise SceneError(scene_path, C.SAR_VARS[0], "missing: not a test scene",
                                     "pass the test scenes (*_prep.nc) the submission is for")
                shape = tuple(ds.sizes[d] for d in C.SAR_DIMS)
                valid = functools.cache(functools.partial(_scene_valid, ds, scene_path))
                for chart in C.LABEL_CHARTS:
                    expected.add(variable_name(key, chart))
                    try:
                        problems += map_problems(f, path, key, chart, shape, valid,
                                                 scene_path.name)
                    except SceneError:  # the scene, not the submission
                        raise
                    except Exception as exc:  # h5py/h5netcdf raise many types for damaged files
                        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                        problems.append(f"{path}: {variable_name(key, chart)}: cannot be read "
                                        f"({type(exc).__name__}: {reason[:200]})")
            finally:
                ds.close()
        for name in sorted(set(f.variables) - expected):
            problems.append(f"{path}: {name}: unknown scene or chart (not among {where})")
    return problems


def _scene_valid(ds, path):
    """Valid SAR pixels of a test scene; read only when a map has values out of range."""
    try:
        return valid_mask(ds)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SceneError(path, C.SAR_VARS[0], f"cannot be read ({reason[:200]})",
                         "pass undamaged test scenes") from None


def read_map(f: h5netcdf.File, key: str, chart: str):
    """One chart map of a submission, or None if the variable is absent."""
    name = variable_name(key, chart)
    return f.variables[name][...] if name in f.variables else None
