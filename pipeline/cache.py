"""Per-scene results on disk, so that a killed ``train`` or ``predict`` resumes.

Layout of a cache folder (by default ``<out>.cache`` beside the output)::

    CACHE_DIR/
      {task}-{hash}/          one folder per task and configuration
        config.json           what the hash was taken of (for people; not read back)
        {scene key}.npz       one scene's result

The hash covers the task's configuration (feature config, seed, pixels per
scene; or model hash, stride, smoothing), :data:`CACHE_VERSION` and a
fingerprint of this package's source, so a different configuration or
changed code never reads an old entry. Each entry also records the size and
modification time of the scene file it was made from; an entry whose scene
file changed since is a miss.

An entry holds the result's arrays as ``.npy`` members and everything else
(nested dicts, numbers, strings, :class:`models.predict.Lattice`) as one JSON
member: nothing is pickled. The JSON member also holds a SHA-256 of the
arrays (names, dtypes, shapes and bytes): an entry whose arrays do not match
it (damaged on disk, or replaced) is recomputed with a warning naming the
file, instead of feeding a wrong array to the run. An entry is written to a
temporary name in the same folder and renamed into place, so a run killed
at any moment leaves whole entries only; a write that fails (a full disk)
ends in one ``OSError`` line naming the cache file and leaves no temporary.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import importlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from models.predict import Lattice
from scenes.reader import atomic_path, atomic_write_text, remove_stale_tmp

log = logging.getLogger(__name__)

#: Bumped when the entry format changes (2: entries hold a checksum of their arrays).
CACHE_VERSION = 2
_META = "__meta__"
#: Packages whose source fixes what a cached result holds.
_CODE_PACKAGES = ("scenes", "featurize", "models", "pipeline")
#: Dataclasses an entry may hold, by name.
_DATACLASSES = {"Lattice": Lattice}


def stable_hash(obj, n: int = 16) -> str:
    """Hex digest of the canonical JSON of ``obj`` (dict key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def hash_files(folder, n: int = 16) -> str:
    """Digest of the names and bytes of the files directly in ``folder``."""
    h = hashlib.sha256()
    for p in sorted(Path(folder).iterdir()):
        if p.is_file():
            h.update(p.name.encode() + b"\0")
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:n]


@lru_cache(maxsize=None)
def code_fingerprint() -> str:
    """Digest of the ``.py`` files of the packages that compute cached results."""
    h = hashlib.sha256()
    for name in _CODE_PACKAGES:
        root = Path(importlib.import_module(name).__file__).parent
        for p in sorted(root.rglob("*.py")):
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def source_identity(path) -> dict:
    """Name, size and modification time of a scene file (a changed file is a miss)."""
    st = os.stat(path)
    return {"name": Path(path).name, "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def default_cache_dir(out) -> Path:
    """``<out>.cache`` beside the output file or folder."""
    out = Path(out)
    return out.with_name(out.name + ".cache")


# --- encoding: arrays as .npy members, the rest as JSON ----------------------------
def _encode(obj, arrays):
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError("object arrays cannot be cached")
        name = f"a{len(arrays)}"
        arrays[name] = obj
        return {"__array__": name}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj) or "__array__" in obj or "__type__" in obj:
            raise TypeError("cached dicts need plain string keys")
        return {k: _encode(v, arrays) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and type(obj).__name__ in _DATACLASSES:
        fields = {f.name: _encode(getattr(obj, f.name), arrays) for f in dataclasses.fields(obj)}
        return {"__type__": type(obj).__name__, "fields": fields}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot cache a {type(obj).__name__}")


def _decode(obj, arrays):
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__array__" in obj:
        return arrays[obj["__array__"]]
    if "__tuple__" in obj:
        return tuple(_decode(v, arrays) for v in obj["__tuple__"])
    if "__type__" in obj:
        cls = _DATACLASSES[obj["__type__"]]
        return cls(**{k: _decode(v, arrays) for k, v in obj["fields"].items()})
    return {k: _decode(v, arrays) for k, v in obj.items()}


class SceneCache:
    """One task's per-scene results under one configuration.

    Parameters
    ----------
    root : path-like
        The cache folder (created on the first :meth:`save`).
    task : str
        ``"sample"``, ``"val"``, ``"predict"``...: a sub-folder per task.
    config : dict
        JSON-able configuration the results depend on.
    compress : bool
        zlib the members (worth it for class maps, not for float features).
    """

    def __init__(self, root, task: str, config: dict, *, compress: bool = False):
        self.root = Path(root)
        self.task = str(task)
        self.config = {"task": self.task, "cache_version": CACHE_VERSION,
                       "code": code_fingerprint(), **config}
        self.dir = self.root / f"{self.task}-{stable_hash(self.config)}"
        self.compress = bool(compress)
        self._cleaned = False

    def path(self, key: str) -> Path:
        """The entry file of scene ``key``."""
        return self.dir / f"{key}.npz"

    def _read_meta(self, npz) -> dict:
        meta = json.loads(str(npz[_META][()]))
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
            raise ValueError("no checksum in its JSON member")
        return meta

    def has(self, key: str, source: dict) -> bool:
        """Whether a readable entry made from this very scene file exists (reads its JSON only)."""
        path = self.path(key)
        if not path.is_file():
            return False
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = self._read_meta(npz)
        except Exception as exc:  # numpy, zipfile and json raise many types for a bad file
            log.warning("%s: unreadable cache entry (%s); recomputing the scene", path,
                        _one_line(exc))
            return False
        if meta.get("source") != source:
            log.info("%s: scene file changed since it was cached; recomputing", path)
            return False
        return True

    def load(self, key: str, source: dict):
        """The cached result of scene ``key``, or None (missing, stale, unreadable or damaged)."""
        if not self.has(key, source):
            return None
        path = self.path(key)
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = self._read_meta(npz)
                arrays = {k: npz[k] for k in npz.files if k != _META}
            if _checksum(arrays) != meta["sha256"]:
                log.warning("%s: cache entry damaged (its arrays do not match their checksum); "
                            "recomputing the scene", path)
                return None
            return _decode(meta["result"], arrays)
        except Exception as exc:  # numpy, zipfile and json raise many types for a bad file
            log.warning("%s: unreadable cache entry (%s); recomputing the scene", path,
                        _one_line(exc))
            return None

    def save(self, key: str, source: dict, result) -> Path:
        """Write the entry of scene ``key`` atomically; return its path.

        Raises
        ------
        OSError
            One line naming the entry when it cannot be written (a full disk).
        """
        arrays = {}
        meta = {"key": key, "source": source, "result": _encode(result, arrays)}
        meta["sha256"] = _checksum(arrays)
        final = self.path(key)
        tmp = atomic_path(final)
        save = np.savez_compressed if self.compress else np.savez
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not self._cleaned:
                remove_stale_tmp(self.dir)
                self._cleaned = True
            config_file = self.dir / "config.json"
            if not config_file.is_file():
                atomic_write_text(config_file, json.dumps(self.config, indent=2, sort_keys=True,
                                                          default=str) + "\n")
            with open(tmp, "wb") as fh:
                save(fh, **arrays, **{_META: np.array(json.dumps(meta))})
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc  # config.json
            reason = cause.strerror or _one_line(cause)
            raise OSError(f"{final}: cannot write this cache entry ({reason}); free disk space, "
                          "or pass --cache DIR on another disk, or --no-cache") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return final


def _checksum(arrays: dict) -> str:
    """SHA-256 of the arrays of an entry: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.data if a.size else b"")
    return h.hexdigest()


def _one_line(exc) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
