"""Benchmarks of the models package: predicting one real-size scene, training on 2 M pixels.

Usage::

    # one 5000 x 5200 synthetic scene: time per phase and peak RSS (own process)
    python benchmarks/bench_models.py predict [--model DIR] [--work DIR] [--stride N]
                                              [--stage2] [--system NAME]
    # train on --n-pixels from --n-scenes synthetic scenes of real size
    python benchmarks/bench_models.py train [--n-scenes 20] [--size real] [--work DIR]
                                            [--no-stage2]
    # sampling per scene at the pixels per scene of a 512-scene training: the train
    # job's joblib workers, then a Dask LocalCluster
    python benchmarks/bench_models.py sample [--n-scenes 20] [--work DIR]

All pin themselves to ``--cores`` CPUs (default 2, the target laptop) and
print their measured figures. ``predict`` without ``--model`` first trains a
worst-case model on small scenes (early stopping off, so every model keeps
all ``n_estimators`` rounds; SIC as the 11-class classifier); with
``--stage2`` its second stage is the worst case too (every chart's stage-2
model keeps ``pipeline.stage2.MAX_ROUNDS`` rounds, system ``stage2+regions``).
``--system stage1`` predicts such a folder as the code did before the second
stage (the same stage-1 work), for a before/after on one model. ``train
--no-stage2`` trains without the second stage (today's training). Scenes are
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


def _worst_case_model(work, n_estimators, stage2=False):
    from pipeline import stage2 as P2
    from pipeline import train_models

    model = Path(work) / f"worst_case_model_{n_estimators}{'_stage2' if stage2 else ''}"
    if (model / "manifest.json").is_file():
        return model
    scenes = _scenes(Path(work) / "small", n_train=4, n_test=0, size=(768, 800), seed=99)
    if stage2:  # the most a second stage can cost: every chart, all rounds, a region vote
        P2.FORCE_ROUNDS, P2.FORCE_SYSTEM = P2.MAX_ROUNDS, "stage2+regions"
    try:
        train_models(scenes, model, seed=0, n_pixels=200_000, sic_modes=("argmax",),
                     estimator_params={"n_estimators": n_estimators, "early_stopping_rounds": 0},
                     progress=False, stage2=stage2)
    finally:
        P2.FORCE_ROUNDS = P2.FORCE_SYSTEM = None
    return model


def _predict_child(scene, model, stride, repeat, system=None):
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
        maps = predict_scene(ds, bundle, stride=stride, timings=timings, system=system)
        timings["total"] = time.perf_counter() - t
        ds.close()
        runs.append(timings)
    shape = maps["SIC"].shape
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    st = bundle.stage2
    system = system or (st.system if st is not None else "stage1")
    if st is not None:
        trees.update({f"{c}_stage2": m.booster_.num_trees() for c, m in st.models.items()})
    print(json.dumps({"shape": shape, "runs": runs, "trees": trees, "peak_rss_mb": rss,
                      "system": system,
                      "sic_mode": bundle.sic_mode, "smoothing": bundle.smoothing,
                      "stride": stride or bundle.stride,
                      "classes_seen": {c: np.unique(m).tolist() for c, m in maps.items()}}))


def bench_predict(args):
    cores = _pin(args.cores)
    scene = _scenes(Path(args.work) / "predict", n_train=0, n_test=1,
                    size=(5000, 5200), seed=777)[0]
    model = Path(args.model) if args.model else _worst_case_model(args.work, args.n_estimators,
                                                                   args.stage2)
    cmd = [sys.executable, __file__, "_predict_child", str(scene), str(model),
           str(args.stride or 0), str(args.repeat), str(args.cores), args.system or ""]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode:
        sys.exit(res.stderr)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"predict_scene on {out['shape'][0]} x {out['shape'][1]} ({cores} cores), model {model}")
    print(f"  trees per chart {out['trees']}, SIC mode {out['sic_mode']}, stride {out['stride']}, "
          f"smoothing {out['smoothing']}, system {out['system']}")
    for i, r in enumerate(out["runs"]):
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in r.items()
                           if k not in ("total", "lattice_points"))
        print(f"  run {i + 1}: total {r['total']:.1f} s ({phases}; "
              f"{r['lattice_points']} lattice points)")
    print(f"  peak RSS of the predicting process: {out['peak_rss_mb']:.0f} MB")


#: Scenes of the real training set (FORMAT.md), for the extrapolation.
REAL_TRAIN_SCENES = 512


def big_split(n_all: int = REAL_TRAIN_SCENES, val_share: float = 0.2) -> tuple[int, int]:
    """Training and validation scenes of an ``n_all``-scene training: ``val_share`` held out,
    at most :data:`models.split.MAX_VAL_SCENES`."""
    from models.split import MAX_VAL_SCENES

    big_val = min(MAX_VAL_SCENES, round(n_all * val_share))
    return n_all - big_val, big_val


def extrapolate(timings: dict, n_train: int, n_val: int, n_all: int = REAL_TRAIN_SCENES,
                val_share: float = 0.2, stage2_scenes: int = 32,
                sampling_per_scene_s: float | None = None) -> dict:
    """Seconds of each phase of a training on ``n_all`` scenes, from a measured run.

    The split holds out ``val_share`` of the scenes, at most
    :data:`models.split.MAX_VAL_SCENES`. A phase that works scene by scene
    scales with the scenes it reads (all, training or validation scenes); the
    fits and the cross-fit work on a fixed number of sampled pixels and stay
    as measured. Stage 2 featurizes at most ``stage2_scenes`` training scenes
    plus the validation scenes, and chooses its system on those. Sampling
    takes ``sampling_per_scene_s`` per training scene when given (measured at
    the pixels per scene of the big training); otherwise it scales the
    measured run's sampling, an upper bound (each scene gives fewer pixels
    when there are more scenes).
    """
    big_train, big_val = big_split(n_all, val_share)
    n = n_train + n_val
    s2_small = min(stage2_scenes, n_train) + n_val
    s2_big = min(stage2_scenes, big_train) + big_val
    scale = {"checks_s": n_all / n, "label_counts_s": n_all / n,
             "sampling_s": big_train / n_train, "validation_features_s": big_val / max(n_val, 1),
             "fit_s": 1.0, "selection_s": big_val / max(n_val, 1),
             "stage2_cross_fit_s": 1.0, "stage2_features_s": s2_big / s2_small,
             "stage2_fit_s": s2_big / s2_small, "stage2_selection_s": s2_big / s2_small}
    out = {k: timings[k] * f for k, f in scale.items() if k in timings}
    if sampling_per_scene_s is not None:
        out["sampling_s"] = sampling_per_scene_s * big_train
    return out


def _train_scenes(args):
    """The ``--n-scenes`` synthetic training scenes of ``--size`` (written once under --work)."""
    size = "real" if args.size == ["real"] else tuple(int(s) for s in args.size)
    return _scenes(Path(args.work) / f"train_{args.size[0]}", n_train=args.n_scenes,
                   n_test=0, size=size, seed=2024)


def sampling_at_scale(train_paths, cores, n_pixels, n_all=REAL_TRAIN_SCENES, val_share=0.2,
                      dask=False):
    """Seconds per scene to sample ``train_paths`` at the pixels per scene of an ``n_all``-scene
    training of ``n_pixels`` (the train job's scene runner, nothing cached); with ``dask``,
    on a LocalCluster of ``cores`` one-thread workers, timed after each has sampled once."""
    from featurize import FeatureConfig
    from models.sampling import pixels_per_scene
    from pipeline import SceneRunner
    from pipeline.dask import DaskTrainingSet, dask_client
    from pipeline.train import sample_scenes

    n_max = pixels_per_scene(n_pixels, big_split(n_all, val_share)[0])
    kw = dict(config=FeatureConfig(), n_pixels=n_max * len(train_paths), seed=0)
    if not dask:
        t = time.perf_counter()
        sample_scenes(SceneRunner(n_jobs=cores, progress=False), train_paths, **kw)
        return (time.perf_counter() - t) / len(train_paths), n_max
    with dask_client(f"local:{cores}") as client:
        runner = SceneRunner(client=client, progress=False)
        # imports and numba's cached kernels, once per worker, as a long job pays them once
        DaskTrainingSet.sample(runner, train_paths[:cores], **dict(kw, seed=1))
        t = time.perf_counter()
        DaskTrainingSet.sample(runner, train_paths, **kw)
        return (time.perf_counter() - t) / len(train_paths), n_max


def bench_sample(args):
    """Sampling per scene at the density of a 512-scene training, joblib workers and Dask."""
    cores = _pin(args.cores)
    scenes = _train_scenes(args)
    local, n_max = sampling_at_scale(scenes, cores, args.n_pixels)
    print(f"sampling {len(scenes)} real-size scenes at the {n_max} pixels per scene of a "
          f"{REAL_TRAIN_SCENES}-scene training, {cores} cores:")
    print(f"  joblib workers (the train job): {local:.2f} s per scene")
    on_dask, _ = sampling_at_scale(scenes, cores, args.n_pixels, dask=True)
    print(f"  LocalCluster of {cores} one-thread workers (the Dask path): {on_dask:.2f} s per scene")


def bench_train(args):
    from models.split import MAX_VAL_SCENES
    from pipeline import train_models

    cores = _pin(args.cores)
    scenes = _train_scenes(args)
    model = Path(args.work) / "bench_model"
    t = time.perf_counter()
    man = train_models(scenes, model, seed=0, n_pixels=args.n_pixels, n_jobs=cores,
                       progress=True, overwrite=True, stage2=args.stage2)
    total = time.perf_counter() - t
    tr = man.training
    print(f"train_models: {len(scenes)} scenes ({len(tr.train_scenes)} train, "
          f"{len(tr.val_scenes)} validation), {tr.n_rows} rows drawn for "
          f"n_pixels={args.n_pixels}, {cores} cores: {total:.0f} s")
    print(f"  phases {tr.timings_s}")
    per_scene, n_max = sampling_at_scale(
        [p for p in scenes if p.name in set(tr.train_scenes)], cores, args.n_pixels)
    print(f"  sampling at the {n_max} pixels per scene of a {REAL_TRAIN_SCENES}-scene training: "
          f"{per_scene:.2f} s per scene ({cores} cores)")
    big = extrapolate(tr.timings_s, len(tr.train_scenes), len(tr.val_scenes),
                      sampling_per_scene_s=per_scene)
    print(f"  extrapolated to {REAL_TRAIN_SCENES} scenes (20 % validation, at most "
          f"{MAX_VAL_SCENES}) on {cores} cores: "
          f"{sum(big.values()) / 60:.1f} min ("
          + ", ".join(f"{k[:-2]} {v / 60:.1f}" for k, v in big.items()) + " min)")
    print(f"  rounds kept {tr.best_iterations}, SIC mode {man.sic_mode}, "
          f"smoothing {man.smoothing}")
    v = man.validation
    print(f"  validation unsmoothed {v['unsmoothed']}")
    print(f"  validation smoothed   {v['smoothed']}")
    if man.stage2 is not None:
        print(f"  stage 2: {man.stage2.selection.get('why')}; rounds {man.stage2.rounds}")
    print(f"  SIC modes {v['sic_modes']}")
    print(f"  peak RSS of this process (children excluded): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"largest child: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_predict_child":
        scene, model, stride, repeat, cores, system = argv[1:7]
        _pin(int(cores))
        return _predict_child(scene, model, int(stride) or None, int(repeat), system or None)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("predict")
    p.add_argument("--model", help="model folder (default: a worst-case model trained here)")
    p.add_argument("--stride", type=int, default=None)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--n-estimators", type=int, default=300)
    p.add_argument("--stage2", action="store_true",
                   help="the worst-case model gets a worst-case second stage too")
    p.add_argument("--system", default=None,
                   help="predict with this system of the folder (default its chosen one; "
                        "stage1: as before the second stage)")
    t = sub.add_parser("train")
    t.add_argument("--n-scenes", type=int, default=20)
    t.add_argument("--size", nargs="+", default=["real"], help="'real' or H W")
    t.add_argument("--n-pixels", type=int, default=2_000_000)
    t.add_argument("--no-stage2", dest="stage2", action="store_false",
                   help="train without the second stage (as before it existed)")
    m = sub.add_parser("sample", help="sampling at dataset density, joblib and Dask")
    m.add_argument("--n-scenes", type=int, default=20)
    m.add_argument("--size", nargs="+", default=["real"], help="'real' or H W")
    m.add_argument("--n-pixels", type=int, default=2_000_000)
    for q in (p, t, m):
        q.add_argument("--work", default="bench_work", help="folder for scenes and models")
        q.add_argument("--cores", type=int, default=2)
    args = ap.parse_args(argv)
    {"predict": bench_predict, "train": bench_train, "sample": bench_sample}[args.cmd](args)


if __name__ == "__main__":
    main()
