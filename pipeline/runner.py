"""Work over folders of scenes: checks, per-scene runs (local, joblib or Dask), resumable.

:class:`SceneRunner` runs one function per scene file through an executor
(:mod:`pipeline.executors`: in this process, in joblib worker processes, or
on a Dask cluster). Results come back in scene order whatever ran them, so
the output of a run does not depend on how it was executed. With a cache
folder (:mod:`pipeline.cache`), each scene's result is stored as soon as it
is done and a rerun with the same configuration reuses it: a killed run
restarted with the same arguments skips the finished scenes and ends with
the same output. With ``skip_bad``, a scene that breaks the data contract is
left out (and listed in :attr:`SceneRunner.skipped`) instead of stopping the run.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from scenes import contract as C
from scenes.reader import SceneError, open_scene, scene_key

from .cache import SceneCache, source_identity
from .dask import limit_worker_threads
from .executors import DaskExecutor, JoblibExecutor, SerialExecutor, watch_parent

log = logging.getLogger(__name__)


# --- checks before any work -------------------------------------------------------
def min_scene_side(config) -> int:
    """Fewest SAR pixels a scene side needs for ``config``'s largest texture window.

    The GLCM runs on the image averaged over ``texture_factor`` blocks and
    needs at least one whole window of those blocks.
    """
    if not config.texture_windows:
        return 1
    return (max(config.texture_windows) - 1) * config.texture_factor + 1


def check_scene_fits(path, shape, config) -> None:
    """Raise :class:`SceneError` if a scene of ``shape`` is too small for ``config``."""
    n = min_scene_side(config)
    H, W = (int(v) for v in shape)
    if min(H, W) < n:
        w = max(config.texture_windows)
        raise SceneError(path, C.SAR_VARS[0],
                         f"scene is {H} x {W} pixels, smaller than the {w} x {w} texture window "
                         f"of the feature configuration (texture_factor "
                         f"{config.texture_factor}: needs at least {n} x {n})",
                         "remove the scene from the folder (or pass --skip-bad), or use a model "
                         "trained with smaller texture_windows")


def ensure_writable(target, what: str = "output") -> None:
    """Raise one line unless new files can be made where ``target`` is to be written.

    Checks the nearest existing folder above ``target`` by creating and
    removing a probe file there (permissions alone say nothing for root or
    on a read-only mount).
    """
    target = Path(target).absolute()
    anchor = target.parent
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    if not anchor.is_dir():
        raise ValueError(f"{target}: cannot write there, {anchor} is a file, not a folder; "
                         f"choose another {what}")
    try:
        with tempfile.TemporaryFile(dir=anchor, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise ValueError(f"{target}: cannot write in {anchor} ({exc.strerror or exc}); "
                         f"choose a writable {what}") from None


# --- per-scene runs ---------------------------------------------------------------
@dataclass(frozen=True)
class BadScene:
    """A scene a task refused: the picklable stand-in of its :class:`SceneError`."""

    path: str
    variable: str | None
    message: str

    def error(self) -> SceneError:
        # SceneError's constructor builds the message; rebuild one from the message itself.
        err = SceneError.__new__(SceneError)
        ValueError.__init__(err, self.message)
        err.path, err.variable = self.path, self.variable
        return err


def _scene_task(func, path, args, kwargs, cache, source, reuse):
    """Run ``func(path, *args, **kwargs)`` for one scene, through the cache."""
    limit_worker_threads()
    # A worker process ends itself once the run that started it is gone (joblib workers
    # started their watchdog as they started; this covers any other worker process).
    watch_parent()
    key = scene_key(path)
    if cache is not None and reuse:
        result = cache.load(key, source)
        if result is not None:
            return result
    try:
        result = func(path, *args, **kwargs)
    except SceneError as exc:
        return BadScene(str(path), exc.variable, str(exc))
    if cache is not None:
        cache.save(key, source, result)
    return result


def _bad_or_none(result):
    return result if isinstance(result, BadScene) else None


class SceneRunner:
    """How per-scene work runs, where it is cached, and what happens to bad scenes.

    Parameters
    ----------
    n_jobs : int
        Scenes at once in joblib worker processes (1: in this process; -1:
        one per core). Not used with a ``client`` or an ``executor``.
    client : distributed.Client, optional
        Run scenes on this Dask cluster instead (created by the caller).
    cache_dir : path-like, optional
        Cache folder (see :mod:`pipeline.cache`); None: no cache.
    fresh : bool
        Recompute every scene (and overwrite its cache entry).
    skip_bad : bool
        Leave out scenes that break the data contract instead of stopping.
    progress : bool
        Show progress bars.
    executor : optional
        Any executor of :mod:`pipeline.executors`; overrides ``n_jobs`` and ``client``.

    Attributes
    ----------
    executor
        What runs the tasks.
    skipped : list of BadScene
        Scenes left out (``skip_bad``), in the order met.
    reused : list of str
        Keys of scenes whose result came from the cache.
    """

    def __init__(self, *, n_jobs: int = 1, client=None, cache_dir=None, fresh: bool = False,
                 skip_bad: bool = False, progress: bool = True, executor=None):
        n_jobs = -1 if n_jobs is None else int(n_jobs)
        if n_jobs == 0:
            raise ValueError("n_jobs must be a positive count or negative (-1 = all cores), got 0")
        if executor is None:
            executor = (DaskExecutor(client) if client is not None else
                        SerialExecutor() if n_jobs == 1 else JoblibExecutor(n_jobs))
        self.executor = executor
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.fresh = bool(fresh)
        self.skip_bad = bool(skip_bad)
        self.progress = bool(progress)
        self.skipped: list[BadScene] = []
        self.reused: list[str] = []

    @property
    def client(self):
        """The Dask client the scenes run on, or None."""
        return getattr(self.executor, "client", None)

    # -- checks ----------------------------------------------------------------------
    def preflight(self, paths, *, kind=None, config=None) -> list[Path]:
        """The metadata checks of every scene (files, variables, dims, dtypes, the 2 km
        grid, size against ``config``), before any heavy work.

        Returns the scenes that passed; a failing one raises its
        :class:`SceneError`, or is skipped with ``skip_bad``. Values (label
        classes, NaN, impossible z-scores, no valid pixel) are checked by each
        task on the arrays it reads (:func:`scenes.reader.load_scene`): a
        real scene is decompressed once, not once to check and again to work.
        A scene whose values fail stops the job (or is skipped) before it is
        worked on; finished scenes stay in the cache. Also checks that the
        cache folder can be written.
        """
        good = []
        paths = [Path(p) for p in paths]
        for p in tqdm(paths, desc="checking scenes", unit="scene", disable=not self.progress,
                      leave=False):
            try:
                # metadata only: values are checked on the arrays each task reads (once)
                ds = open_scene(p, kind=kind, check_values=False)
                try:
                    if config is not None:
                        check_scene_fits(p, tuple(ds.sizes[d] for d in C.SAR_DIMS), config)
                finally:
                    ds.close()
            except SceneError as exc:
                self._refuse(BadScene(str(p), exc.variable, str(exc)))
                continue
            good.append(p)
        if self.cache_dir is not None:
            ensure_writable(self.cache_dir / "x", "--cache folder")
        return good

    def _refuse(self, bad: BadScene) -> None:
        if not self.skip_bad:
            raise bad.error()
        log.warning("skipping %s: %s", Path(bad.path).name, bad.message)
        self.skipped.append(bad)

    def skipped_names(self) -> list[str]:
        return [Path(b.path).name for b in self.skipped]

    # -- running ---------------------------------------------------------------------
    def share(self, obj):
        """``obj`` as tasks should receive it (sent once to every Dask worker)."""
        share = getattr(self.executor, "share", None)
        return obj if share is None else share(obj)

    def _cache(self, task, cache_config, compress):
        if self.cache_dir is None or cache_config is None:
            return None
        return SceneCache(self.cache_dir, task, cache_config, compress=compress)

    def map(self, func, paths, *, task: str, desc: str, cache_config=None, args=(),
            kwargs=None, compress: bool = False):
        """Yield ``(path, func(path, *args, **kwargs))`` for each scene, in scene order.

        Parameters
        ----------
        func : callable
            A module-level function (it may run in another process).
        paths : list of paths
        task : str
            Cache sub-folder name.
        desc : str
            Progress bar label.
        cache_config : dict, optional
            What the result depends on besides the scene; None: not cached.
        args, kwargs
            Further arguments of ``func``.
        compress : bool
            Compress cache entries.

        Scenes skipped as bad input are not yielded (see :attr:`skipped`).
        """
        paths = [Path(p) for p in paths]
        args, kwargs = tuple(args), dict(kwargs or {})
        cache = self._cache(task, cache_config, compress)
        sources = [source_identity(p) for p in paths]
        hit = [cache is not None and not self.fresh and cache.has(scene_key(p), s)
               for p, s in zip(paths, sources)]
        todo = [(func, p, args, kwargs, cache, s, False)
                for p, s, h in zip(paths, sources, hit) if not h]
        bar = tqdm(total=len(paths), initial=sum(hit), desc=desc, unit="scene",
                   disable=not self.progress)
        if any(hit):
            log.info("%s: %d of %d scenes from the cache %s", desc, sum(hit), len(paths),
                     cache.dir)
        computed = self.executor.map(_scene_task, todo, done=lambda: bar.update(1))
        try:
            for p, s, h in zip(paths, sources, hit):
                result = cache.load(scene_key(p), s) if h else None
                if h and result is not None:
                    self.reused.append(scene_key(p))
                elif h:  # unreadable after all: compute it here
                    result = _scene_task(func, p, args, kwargs, cache, s, False)
                else:
                    result = next(computed)
                if isinstance(result, BadScene):
                    self._refuse(result)
                    continue
                yield p, result
        finally:
            computed.close()
            bar.close()

    def submit(self, func, paths, *, task: str, desc: str, cache_config=None, args=(),
               kwargs=None, compress: bool = False) -> list:
        """Run ``func`` per scene on the Dask cluster and keep the results there.

        Waits for all (progress as scenes finish) and returns ``[(path, future)]``
        of the scenes not skipped, in scene order. Cached scenes are loaded by
        the workers.
        """
        if not hasattr(self.executor, "submit"):
            raise ValueError("keeping results on the cluster needs a Dask scheduler "
                             "(--scheduler ADDRESS or local:N)")
        paths = [Path(p) for p in paths]
        cache = self._cache(task, cache_config, compress)
        sources = [source_identity(p) for p in paths]
        if cache is not None and not self.fresh:
            self.reused += [scene_key(p) for p, s in zip(paths, sources)
                            if cache.has(scene_key(p), s)]
        items = [(func, p, tuple(args), dict(kwargs or {}), cache, s, not self.fresh)
                 for p, s in zip(paths, sources)]
        with tqdm(total=len(paths), desc=desc, unit="scene", disable=not self.progress) as bar:
            futures = self.executor.submit(_scene_task, items, done=lambda: bar.update(1))
        client = self.client
        bad = client.gather(client.map(_bad_or_none, futures, pure=False))
        out = []
        for p, f, b in zip(paths, futures, bad):
            if b is not None:
                self._refuse(b)
                f.release()
                continue
            out.append((p, f))
        return out
