"""Benchmarks of the models package: predicting one real-size scene, training on 2 M pixels.

Usage::

    # one 5000 x 5200 synthetic scene: time per phase and peak RSS (own process)
    python benchmarks/bench_models.py predict [--model DIR] [--work DIR] [--stride N]
    # train on --n-pixels from --n-scenes synthetic scenes of real size
    python benchmarks/bench_models.py train [--n-scenes 20] [--size real] [--work DIR]

Both pin themselves to ``--cores`` CPUs (default 2, the target laptop) and
print their measured figures. ``predict`` without ``--model`` first trains a
worst-case model on small scenes (early stopping off, so every model keeps
all ``n_estimators`` rounds; SIC as the 11-class classifier). Scenes are
written under ``--work`` once and reused.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _pin(cores):
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[:cores]
        os.sched_setaffinity(0, cpus)
        return len(cpus)
    return None


def _scenes(out, *, n_train, n_test, size, seed):
    from scenes.reader import list_scenes
    from scenes.synth import write_synthetic_dataset

    out = Path(out)
    kind = "train" if n_train else "test"
    have = list_scenes(out / kind, kind=kind) if (out / kind).is_dir() else []
    if len(have) < (n_train or n_test):
        t = time.perf_counter()
        write_synthetic_dataset(out, n_train=n_train, n_test=n_test, size=size, seed=seed)
        print(f"wrote {n_train or n_test} synthetic {kind} scenes in "
              f"{time.perf_counter() - t:.0f} s -> {out}")
        have = list_scenes(out / kind, kind=kind)
    return have[: n_train or n_test]


def _worst_case_model(work, n_estimators):
    from pipeline import train_models

    model = Path(work) / f"worst_case_model_{n_estimators}"
    if (model / "manifest.json").is_file():
        return model
    scenes = _scenes(Path(work) / "small", n_train=4, n_test=0, size=(768, 800), seed=99)
    train_models(scenes, model, seed=0, n_pixels=200_000, sic_modes=("argmax",),
                 estimator_params={"n_estimators": n_estimators, "early_stopping_rounds": 0},
                 progress=False)
    return model


def _predict_child(scene, model, stride, repeat):
    """Runs in a fresh process so that its peak RSS is the prediction's own."""
    import numpy as np

    from models import load_model, predict_scene
    from scenes.reader import open_scene

    bundle = load_model(model)
    trees = {c: m.booster_.num_trees() for c, m in bundle.models.items()}
    runs = []
    for _ in range(repeat):
        ds = open_scene(scene, validate=False)
        timings = {}
        t = time.perf_counter()
        maps = predict_scene(ds, bundle, stride=stride, timings=timings)
        timings["total"] = time.perf_counter() - t
        ds.close()
        runs.append(timings)
    shape = maps["SIC"].shape
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"shape": shape, "runs": runs, "trees": trees, "peak_rss_mb": rss,
                      "sic_mode": bundle.sic_mode, "smoothing": bundle.smoothing,
                      "stride": stride or bundle.stride,
                      "classes_seen": {c: np.unique(m).tolist() for c, m in maps.items()}}))


def bench_predict(args):
    cores = _pin(args.cores)
    scene = _scenes(Path(args.work) / "predict", n_train=0, n_test=1,
                    size=(5000, 5200), seed=777)[0]
    model = Path(args.model) if args.model else _worst_case_model(args.work, args.n_estimators)
    cmd = [sys.executable, __file__, "_predict_child", str(scene), str(model),
           str(args.stride or 0), str(args.repeat), str(args.cores)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode:
        sys.exit(res.stderr)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"predict_scene on {out['shape'][0]} x {out['shape'][1]} ({cores} cores), model {model}")
    print(f"  trees per chart {out['trees']}, SIC mode {out['sic_mode']}, stride {out['stride']}, "
          f"smoothing {out['smoothing']}")
    for i, r in enumerate(out["runs"]):
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in r.items()
                           if k not in ("total", "lattice_points"))
        print(f"  run {i + 1}: total {r['total']:.1f} s ({phases}; "
              f"{r['lattice_points']} lattice points)")
    print(f"  peak RSS of the predicting process: {out['peak_rss_mb']:.0f} MB")


def bench_train(args):
    from pipeline import train_models

    cores = _pin(args.cores)
    size = "real" if args.size == ["real"] else tuple(int(s) for s in args.size)
    scenes = _scenes(Path(args.work) / f"train_{args.size[0]}", n_train=args.n_scenes,
                     n_test=0, size=size, seed=2024)
    model = Path(args.work) / "bench_model"
    t = time.perf_counter()
    man = train_models(scenes, model, seed=0, n_pixels=args.n_pixels, n_jobs=cores,
                       progress=True, overwrite=True)
    total = time.perf_counter() - t
    tr = man.training
    print(f"train_models: {len(scenes)} scenes ({len(tr.train_scenes)} train, "
          f"{len(tr.val_scenes)} validation), {tr.n_rows} rows drawn for "
          f"n_pixels={args.n_pixels}, {cores} cores: {total:.0f} s")
    print(f"  phases {tr.timings_s}")
    print(f"  rounds kept {tr.best_iterations}, SIC mode {man.sic_mode}, "
          f"smoothing {man.smoothing}")
    v = man.validation
    print(f"  validation unsmoothed {v['unsmoothed']}")
    print(f"  validation smoothed   {v['smoothed']}")
    print(f"  SIC modes {v['sic_modes']}")
    print(f"  peak RSS of this process (children excluded): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"largest child: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_predict_child":
        scene, model, stride, repeat, cores = argv[1:6]
        _pin(int(cores))
        return _predict_child(scene, model, int(stride) or None, int(repeat))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("predict")
    p.add_argument("--model", help="model folder (default: a worst-case model trained here)")
    p.add_argument("--stride", type=int, default=None)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--n-estimators", type=int, default=300)
    t = sub.add_parser("train")
    t.add_argument("--n-scenes", type=int, default=20)
    t.add_argument("--size", nargs="+", default=["real"], help="'real' or H W")
    t.add_argument("--n-pixels", type=int, default=2_000_000)
    for q in (p, t):
        q.add_argument("--work", default="bench_work", help="folder for scenes and models")
        q.add_argument("--cores", type=int, default=2)
    args = ap.parse_args(argv)
    {"predict": bench_predict, "train": bench_train}[args.cmd](args)


if __name__ == "__main__":
    main()
