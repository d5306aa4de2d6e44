"""Where per-scene tasks run: in this process, in joblib workers, or on a Dask cluster.

An executor runs ``task(*args)`` for each argument tuple of a list and yields
the results in the order of the list, whatever order they finish in, calling
``done()`` once per finished task (progress bars). That order is what makes a
run's output independent of how it was executed. A new way of running scenes
(threads, a batch system, ...) is one more class here with the same ``map``,
chosen in :func:`cli.options.scene_runner`.

Worker processes must not outlive the run that started them (a ``kill -9``
of ``train`` left its joblib workers running for many minutes, hundreds of
MB each). Every ``map``/``submit`` first records this process's pid in the
environment (:func:`mark_workers_parent`), which the worker processes it
starts inherit; a worker runs :func:`watch_parent`, a daemon thread that
ends the worker soon after that pid is gone: joblib workers as they start, and
any worker that inherited the variable with its first per-scene task
(:func:`pipeline.runner._scene_task`). The processes of a local Dask cluster
end by themselves within a second of a ``kill -9`` of the run (checked); the
workers of a remote cluster do not have the variable and are left alone.
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

from joblib import Parallel, delayed, parallel_config

from .dask import iter_ordered, submit_scenes, wait_all


#: Environment variable holding the pid of the process the per-scene workers work for.
PARENT_PID_VAR = "SEAICE_WORKERS_PARENT"
#: Environment variable holding the pid of a process whose watchdog runs (children
#: inherit it, so it only counts in the process it names).
_WATCHING_VAR = "SEAICE_WATCHDOG"

# The watchdog, in the standard library only: a joblib worker runs this text as its
# initializer, before it imports this package (seconds, during which a killed run
# would otherwise leave it behind). Started at most once per process; nothing is
# watched in the parent itself, nor where the variable is unset (a remote Dask cluster).
_WATCHDOG_SOURCE = """
import os, threading, time

def _gone(pid, direct):
    if direct and os.getppid() != pid:  # handed to another parent: ours died
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    try:  # killed but not yet reaped by its own parent
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False

def _watch(pid, direct, interval):
    while not _gone(pid, direct):
        time.sleep(interval)
    os._exit(1)  # nobody is left to take the result: finish nothing

_pid, _me = os.environ.get(PARENT_PID_VAR, ""), str(os.getpid())
if _pid.isdigit() and _pid != _me and os.environ.get(WATCHING_VAR) != _me:
    os.environ[WATCHING_VAR] = _me
    threading.Thread(target=_watch, args=(int(_pid), os.getppid() == int(_pid), INTERVAL),
                     name="seaice-parent-watchdog", daemon=True).start()
"""
#: Names the watchdog text reads.
_WATCHDOG_NAMES = {"PARENT_PID_VAR": PARENT_PID_VAR, "WATCHING_VAR": _WATCHING_VAR,
                   "INTERVAL": 0.5}
_WATCHDOG_CODE = compile(_WATCHDOG_SOURCE, "<seaice parent watchdog>", "exec")


def mark_workers_parent() -> None:
    """Record this process as the parent of the worker processes it starts from now on.

    Worker processes inherit the variable and end themselves once this
    process is gone (see :func:`watch_parent`).
    """
    os.environ[PARENT_PID_VAR] = str(os.getpid())


def watch_parent() -> None:
    """In a worker process, start (once) a daemon thread that ends the process once its
    parent run (:data:`PARENT_PID_VAR`) is gone; does nothing in the parent itself."""
    exec(_WATCHDOG_CODE, dict(_WATCHDOG_NAMES))


def _nothing():
    pass


class SerialExecutor:
    """Every task in this process, one after the other."""

    def map(self, task, items, done=_nothing):
        mark_workers_parent()  # the tasks run here: nothing to watch
        for args in items:
            result = task(*args)
            done()
            yield result


class JoblibExecutor:
    """Tasks in ``n_jobs`` joblib worker processes (-1: one per core).

    Parameters
    ----------
    n_jobs : int
    """

    def __init__(self, n_jobs: int = -1):
        self.n_jobs = n_jobs

    def map(self, task, items, done=_nothing):
        items = list(items)
        if len(items) < 2:  # a worker process would only add its start-up time
            yield from SerialExecutor().map(task, items, done)
            return
        mark_workers_parent()
        # Each worker starts its watchdog (exec of the text) before anything else.
        with parallel_config(backend="loky", initializer=exec,
                             initargs=(_WATCHDOG_SOURCE, dict(_WATCHDOG_NAMES))):
            results = Parallel(n_jobs=self.n_jobs, return_as="generator")(
                delayed(task)(*args) for args in items)
        try:
            for result in results:
                done()
                yield result
        finally:
            with warnings.catch_warnings():
                # joblib warns that stopping early cancelled the tasks still running.
                warnings.filterwarnings("ignore", message=".*tasks which were still being")
                results.close()


class DaskExecutor:
    """Tasks on the workers of a :class:`distributed.Client` (created by the caller).

    Parameters
    ----------
    client : distributed.Client
    """

    def __init__(self, client):
        self.client = client

    def map(self, task, items, done=_nothing):
        mark_workers_parent()
        futures = submit_scenes(self.client, task, list(items))
        yield from iter_ordered(self.client, futures, done=done)

    def submit(self, task, items, done=_nothing) -> list:
        """Run every task and keep the results on the workers; return the futures in order."""
        mark_workers_parent()
        futures = submit_scenes(self.client, task, list(items))
        wait_all(self.client, futures, done=done)
        return futures

    def share(self, obj):
        """``obj`` sent once to every worker, for tasks to receive by reference."""
        return self.client.scatter(obj, broadcast=True, hash=False)


def thread_map(fn, items, threads: int) -> list:
    """``[fn(x) for x in items]`` on up to ``threads`` threads of this process, in order.

    For per-scene work on arrays already in memory whose heavy parts release
    the GIL (scipy's filters, numba kernels compiled ``nogil``): the scenes of
    a choice overlap there. ``fn`` must not share mutable state between items;
    the results come back in the order of ``items`` whatever order they finish in.
    """
    items = list(items)
    threads = max(1, min(int(threads), len(items)))
    if threads == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))
