"""Where per-scene tasks run: in this process, in joblib workers, or on a Dask cluster.

An executor runs ``task(*args)`` for each argument tuple of a list and yields
the results in the order of the list, whatever order they finish in, calling
``done()`` once per finished task (progress bars). That order is what makes a
run's output independent of how it was executed. A new way of running scenes
(threads, a batch system, ...) is one more class here with the same ``map``,
chosen in :func:`cli.options.scene_runner`.
"""
from __future__ import annotations

import warnings

from joblib import Parallel, delayed

from .dask import iter_ordered, submit_scenes, wait_all


def _nothing():
    pass


class SerialExecutor:
    """Every task in this process, one after the other."""

    def map(self, task, items, done=_nothing):
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
        futures = submit_scenes(self.client, task, list(items))
        yield from iter_ordered(self.client, futures, done=done)

    def submit(self, task, items, done=_nothing) -> list:
        """Run every task and keep the results on the workers; return the futures in order."""
        futures = submit_scenes(self.client, task, list(items))
        wait_all(self.client, futures, done=done)
        return futures

    def share(self, obj):
        """``obj`` sent once to every worker, for tasks to receive by reference."""
        return self.client.scatter(obj, broadcast=True, hash=False)
