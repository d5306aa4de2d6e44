"""The challenge submission file: write it, validate it, read it back.

One NetCDF4 file with, per test scene key ``K`` and chart ``C``, a uint8
variable ``f"{K}_{C}"`` with dims ``(f"{K}_{C}_dim0", f"{K}_{C}_dim1")`` at
the full 80 m shape of the scene, zlib level 1 (the challenge's
``upload_package.nc``).
"""
from __future__ import annotations

import os
from pathlib import Path

import h5netcdf
import numpy as np

from scenes import contract as C
from scenes.reader import SceneError, atomic_path, list_scenes, open_scene, scene_key, valid_mask


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

    Examples
    --------
    >>> with SubmissionWriter("upload_package.nc") as sub:      # doctest: +SKIP
    ...     sub.add("20200424T101936_cis", {"SIC": sic, "SOD": sod, "FLOE": floe})
    """

    def __init__(self, path):
        self.path = Path(path)
        self._tmp = atomic_path(self.path)
        self._file = None
        self.keys: list[str] = []
        self.scenes: list[Path | None] = []

    def __enter__(self):
        if not self.path.parent.is_dir():
            raise SceneError(self.path, None, "its folder does not exist",
                             "create the output folder first or choose another --out")
        try:
            self._file = h5netcdf.File(self._tmp, "w")
        except OSError as exc:
            raise SceneError(self.path, None, f"cannot be written ({exc.strerror or exc})",
                             "choose a writable output location") from None
        return self

    def add(self, key: str, maps: dict, scene=None) -> None:
        """Add the three charts (uint8 class maps of the scene's full shape) of one scene.

        ``scene``, the scene file the maps are of, lets the file be validated
        against it before it is put in place.
        """
        if key in self.keys:
            raise ValueError(f"scene {key} added twice to {self.path}")
        for chart in C.LABEL_CHARTS:
            arr = np.asarray(maps[chart])
            if arr.ndim != 2:
                raise ValueError(f"{key} {chart}: map must be 2-D, got shape {arr.shape}")
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
            self._file.close()
            self._file = None

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close()
            if exc_type is None:
                if self.scenes and all(s is not None for s in self.scenes):
                    problems = validate_submission(self._tmp, self.scenes)
                    if problems:
                        raise RuntimeError(f"{self.path}: the written submission is invalid "
                                           f"({problems[0]}); please report this bug")
                os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)
        return False


def open_submission(path) -> h5netcdf.File:
    """Open a submission for reading, with a clear error if it is not NetCDF4."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(path, None, "no such submission file", "check the --submission path")
    try:
        return h5netcdf.File(path, "r")
    except Exception as exc:
        raise SceneError(path, None, f"cannot be read as NetCDF4 ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                         "write the submission again with `run.py predict`") from None


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
    """
    try:
        f = open_submission(path)
    except SceneError as exc:
        return [str(exc)]
    problems = []
    with f:
        expected = set()
        if isinstance(scenes, (str, os.PathLike)):
            scene_paths, where = list_scenes(scenes), str(scenes)
        else:
            scene_paths, where = [Path(p) for p in scenes], "the given test scenes"
        for scene_path in scene_paths:
            ds = open_scene(scene_path, validate=False)
            key = scene_key(scene_path)
            try:
                shape = tuple(ds.sizes[d] for d in C.SAR_DIMS)
                valid = None
                for chart in C.LABEL_CHARTS:
                    name = variable_name(key, chart)
                    expected.add(name)
                    if name not in f.variables:
                        problems.append(f"{path}: {name}: missing (scene {scene_path.name})")
                        continue
                    var = f.variables[name]
                    if var.dtype != np.uint8:
                        problems.append(f"{path}: {name}: dtype {var.dtype}, expected uint8")
                    if tuple(var.dimensions) != (f"{name}_dim0", f"{name}_dim1"):
                        problems.append(f"{path}: {name}: dims {tuple(var.dimensions)}, "
                                        f"expected ('{name}_dim0', '{name}_dim1')")
                    if tuple(var.shape) != shape:
                        problems.append(f"{path}: {name}: shape {tuple(var.shape)}, expected {shape} "
                                        f"(full 80 m shape of {scene_path.name})")
                        continue
                    if valid is None:
                        valid = valid_mask(ds)
                    values = var[...][valid]
                    if values.size and values.max() >= C.N_CLASSES[chart]:
                        problems.append(f"{path}: {name}: class {int(values.max())} out of range "
                                        f"0..{C.N_CLASSES[chart] - 1} at valid pixels")
            finally:
                ds.close()
        for name in sorted(set(f.variables) - expected):
            problems.append(f"{path}: {name}: unknown scene or chart (not among {where})")
    return problems


def read_map(f: h5netcdf.File, key: str, chart: str):
    """One chart map of a submission, or None if the variable is absent."""
    name = variable_name(key, chart)
    return f.variables[name][...] if name in f.variables else None
