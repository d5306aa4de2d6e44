"""Benchmark: ``predict`` of a few scenes in this process and on 1 vs 2 local Dask workers.

Usage::

    python benchmarks/bench_distributed.py [--scenes 4] [--size 1000x1040] [--work DIR]
                                           [--model DIR] [--workers 1 2]

Writes ``--scenes`` synthetic test scenes (and, without ``--model``, trains a
small model on 3 synthetic training scenes of the same size) under
``--work`` once, then predicts them three ways with no cache:

- ``local``: :func:`pipeline.predict_folder` in this process, one scene
  at a time (each on every core);
- ``dask-N``: on a ``LocalCluster`` of N worker processes (``--scheduler
  local:N``: ``cores // N`` threads each), timed after the workers are up
  and have predicted a small scene (imports and numba compilation; printed apart).

Prints the wall time of each, the ratio ``dask-1 / dask-N`` from this one
run, each worker's peak RSS (``VmHWM`` of the worker process, read on the
worker after the run; for ``local``, this process's peak during the run) and
the load average, since the machine may be shared.
The submissions of all modes are compared byte for byte.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _size(text):
    h, _, w = text.partition("x")
    return (int(h), int(w or h))


def _data(work, n_scenes, size, n_train):
    from scenes.reader import list_scenes
    from scenes.synth import write_synthetic_dataset

    data = work / f"data_{size[0]}x{size[1]}_{n_scenes}"
    if not (data / "test").is_dir() or len(list_scenes(data / "test")) < n_scenes:
        t = time.perf_counter()
        write_synthetic_dataset(data, n_train=n_train, n_test=n_scenes, size=size, seed=7,
                                progress=False)
        print(f"wrote {n_train} train + {n_scenes} test scenes of {size[0]} x {size[1]} in "
              f"{time.perf_counter() - t:.0f} s -> {data}")
    return data


def _model(data):
    from pipeline import train_models

    model = data / "model"
    if not (model / "manifest.json").is_file():
        t = time.perf_counter()
        train_models(data / "train", model, seed=0, n_pixels=60_000, val_fraction=0.34,
                     progress=False, overwrite=True)
        print(f"trained a model on 3 scenes in {time.perf_counter() - t:.0f} s -> {model}")
    return model


def _warm_up(scene, model):
    """Predict a small scene: imports and numba compilation are not timed later."""
    from pipeline.predict import predict_path
    predict_path(scene, str(model))
    return os.getpid()


def _peak_rss_mb():
    """Peak RSS of this process's address space (VmHWM; ru_maxrss would carry the
    parent's peak across the fork + exec that starts a worker)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss():
    """Start a new peak RSS measurement of this process (Linux >= 4.0), if allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--size", type=_size, default=(1000, 1040), help="HxW (default 1000x1040)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_distributed")
    ap.add_argument("--model", type=Path, help="model folder (default: train a small one)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)

    from pipeline import SceneRunner, predict_folder
    from pipeline.dask import dask_client

    args.work.mkdir(parents=True, exist_ok=True)
    data = _data(args.work, args.scenes, args.size, 0 if args.model else 3)
    model = args.model or _model(data)
    out = args.work / "out"
    out.mkdir(exist_ok=True)
    warm = args.work / "warm"
    if not (warm / "test").is_dir():
        from scenes.synth import write_synthetic_dataset
        write_synthetic_dataset(warm, n_train=0, n_test=1, size=(200, 210), seed=1,
                                progress=False)
    warm_scene = str(next((warm / "test").glob("*_prep.nc")))
    _warm_up(warm_scene, model)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.scenes} scenes of {args.size[0]} x {args.size[1]}, {cores} cores, "
          f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    wall, files = {}, {}
    files["local"] = out / "local.nc"
    _reset_peak_rss()
    t = time.perf_counter()
    predict_folder(data / "test", model, files["local"], progress=False)
    wall["local"] = time.perf_counter() - t
    print(f"local (this process): {wall['local']:.1f} s, peak RSS {_peak_rss_mb():.0f} MB")

    for n in args.workers:
        mode = f"dask-{n}"
        t = time.perf_counter()
        with dask_client(f"local:{n}") as client:
            client.run(_warm_up, warm_scene, model)
            started = time.perf_counter() - t
            files[mode] = out / f"{mode}.nc"
            t = time.perf_counter()
            predict_folder(data / "test", model, files[mode],
                           runner=SceneRunner(client=client, progress=False))
            wall[mode] = time.perf_counter() - t
            rss = client.run(_peak_rss_mb)
            threads = sorted(set(client.nthreads().values()))
        per_worker = ", ".join(f"{v:.0f}" for v in rss.values())
        print(f"{mode} ({n} workers x {threads[0]} threads): {wall[mode]:.1f} s "
              f"(cluster start and warm-up {started:.1f} s apart); peak RSS per worker "
              f"[{per_worker}] MB")

    same = all(f.read_bytes() == files["local"].read_bytes() for f in files.values())
    first, last = f"dask-{args.workers[0]}", f"dask-{args.workers[-1]}"
    if first != last:
        print(f"ratio {first} / {last}: {wall[first] / wall[last]:.2f}")
    print(f"identical submissions across modes: {same}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
