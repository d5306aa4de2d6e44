"""Benchmark featurisation of real-size synthetic scenes; prints its figures.

1. Full featurisation (every row block) of one scene: wall time and peak RSS
   of a fresh process that opens the scene file lazily and walks all blocks.
2. ``featurize_at`` at random valid pixels of a few scenes, extrapolated to
   the 2 M training samples of 20 scenes (100 k per scene).

Usage::

    python benchmarks/bench_featurize.py [--size 5000 5200] [--threads 2]
        [--points 100000] [--point-scenes 2] [--block-rows 256]
        [--config '{"texture_factor": 2}'] [--workdir DIR]

Each measurement runs in its own process (``NUMBA_NUM_THREADS=threads``), after
a warm-up on a tiny scene so that JIT compilation is not counted. Wall time
needs otherwise idle cores; CPU time (all threads) is printed beside it.
Scenes come from :func:`scenes.synth.make_scene` and are written once to
``--workdir`` (zlib level 1, about 0.5 GB each), then opened lazily.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _scene(shape, seed):
    from scenes.synth import make_scene
    return make_scene(shape, seed=seed, kind="train")


def _write_scenes(workdir, shape, n):
    Path(workdir).mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        path = Path(workdir) / f"2021010{k + 1}T120000_dmi_prep.nc"
        if not path.exists():
            _scene(shape, seed=k).to_netcdf(path, engine="h5netcdf")
        paths.append(path)
    return paths


def _open(path):
    from scenes.reader import open_scene
    return open_scene(path, validate=True, check_values=False)


def _warm_up(config):
    import featurize
    ds = _scene((160, 170), seed=99)
    for _ in featurize.featurize_blocks(ds, config, block_rows=64):
        pass
    featurize.featurize_at(ds, config, np.array([0, 80]), np.array([0, 100]))


def _peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def child_full(path, config_json, block_rows):
    import featurize
    config = featurize.FeatureConfig.from_dict(json.loads(config_json))
    _warm_up(config)
    ds = _open(path)
    t, c = time.perf_counter(), time.process_time()
    n = 0
    for _, _, X in featurize.featurize_blocks(ds, config, block_rows=block_rows):
        n += X.shape[1]
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "rows": n, "shape": list(ds["nersc_sar_primary"].shape),
                      "n_features": featurize.n_features(config),
                      "peak_rss_gb": _peak_rss_gb()}))


def child_points(paths, config_json, n_points, seed):
    import featurize
    from scenes.reader import valid_mask
    config = featurize.FeatureConfig.from_dict(json.loads(config_json))
    _warm_up(config)
    rng = np.random.default_rng(seed)
    times, cpus = [], []
    for path in paths:
        ds = _open(path)
        valid = valid_mask(ds)
        flat = np.flatnonzero(valid)
        pick = np.sort(rng.choice(flat, size=min(n_points, flat.size), replace=False))
        rows, cols = np.unravel_index(pick, valid.shape)
        del valid, flat
        t, c = time.perf_counter(), time.process_time()
        featurize.featurize_at(ds, config, rows, cols)
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    print(json.dumps({"seconds_per_scene": times, "cpu_seconds_per_scene": cpus, "points_per_scene": int(rows.size),
                      "peak_rss_gb": _peak_rss_gb()}))


def _run_child(args, threads):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, __file__, *args], env=env,
                         capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"benchmark child failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, nargs=2, default=(5000, 5200))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--points", type=int, default=100_000)
    p.add_argument("--point-scenes", type=int, default=2)
    p.add_argument("--block-rows", type=int, default=256)
    p.add_argument("--config", default="{}", help="FeatureConfig fields as JSON")
    p.add_argument("--workdir", default=None, help="where to keep the scene files")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        kind, *rest = a.child
        if kind == "full":
            child_full(rest[0], a.config, a.block_rows)
        else:
            child_points(rest, a.config, a.points, seed=0)
        return

    import featurize
    config = featurize.FeatureConfig.from_dict(json.loads(a.config))
    cfg_json = json.dumps(config.to_dict())
    workdir = a.workdir or tempfile.mkdtemp(prefix="bench_featurize_")
    n_scenes = max(1, a.point_scenes)
    t = time.perf_counter()
    paths = _write_scenes(workdir, tuple(a.size), n_scenes)
    print(f"scenes: {n_scenes} x {a.size[0]} x {a.size[1]} in {workdir} "
          f"({time.perf_counter() - t:.0f} s to make)")
    print(f"config: {cfg_json}")
    print(f"features: {featurize.n_features(config)}, threads: {a.threads}, "
          f"block_rows: {a.block_rows}")

    full = _run_child(["--child", "full", str(paths[0]), "--config", cfg_json,
                       "--block-rows", str(a.block_rows)], a.threads)
    print(f"full scene {full['shape']}: {full['wall_s']:.1f} s wall, {full['cpu_s']:.1f} s CPU "
          f"(all threads), peak RSS {full['peak_rss_gb']:.2f} GB (whole process)")

    if a.point_scenes > 0:
        pts = _run_child(["--child", "points", *map(str, paths[:a.point_scenes]),
                          "--config", cfg_json, "--points", str(a.points)], a.threads)
        per = np.mean(pts["seconds_per_scene"])
        scale = 2_000_000 / (20 * pts["points_per_scene"])
        print(f"featurize_at: {pts['points_per_scene']} points per scene, "
              f"{', '.join(f'{s:.1f}' for s in pts['seconds_per_scene'])} s wall, "
              f"{', '.join(f'{s:.1f}' for s in pts['cpu_seconds_per_scene'])} s CPU per scene, "
              f"peak RSS {pts['peak_rss_gb']:.2f} GB")
        print(f"  extrapolated to 2 M points over 20 scenes: "
              f"{20 * per * scale / 60:.1f} min")


if __name__ == "__main__":
    main()
