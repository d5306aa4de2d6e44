"""Is the synthetic generator as hard, per pixel, as real scenes? A published reference, repeated.

Usage::

    python benchmarks/bench_realism.py [--seed 11 [SEED ...]] [--n-train 40] [--n-test 10]
                                       [--size 2000] [--n-pixels 1000000] [--work DIR]

Park et al. (2020, The Cryosphere 14:2629) trained a classifier on GLCM
texture of Sentinel-1 HH/HV (incidence-angle corrected) with labels from
rasterised ice charts and, on scenes not used for training, retrieved three
cover types (open water, mixed first-year ice, old ice) with an overall
accuracy of 87 % in winter (January-March) and 67 % in summer (June-August).

This script repeats that protocol on synthetic datasets (the same files as
``bench_baseline.py``, ``WORK/baseline_seed{S}_{size}``, reused when
present): SOD charts grouped into the three types (0 water; 1-4 new, young
and first-year ice; 5 old ice), pixels sampled as for training, scene-wise
validation for early stopping, the product's SOD LightGBM estimator (Park et
al. used a random forest) and overall accuracy on every ``--eval-step``-th
pixel of the test scenes, by season. Three feature sets:

- ``texture``: what Park et al. used: HH, HV, HV-HH in dB, incidence-
  normalised HH, GLCM texture of HH and HV (windows 11 and 25 px);
- ``naive``: the 24 raw z-scored inputs (SAR, AMSR2, ERA5, geometry);
- ``full``: the product's default features.

If ``texture`` scores far above 87 % / 67 %, the generator is easier than
real data and the synthetic benchmarks flatter per-pixel models.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_baseline import (benchmark_parser, dataset, open_reference,  # noqa: E402
                            parse_benchmark_args, raw_inputs)
from featurize import FeatureConfig, feature_names  # noqa: E402
from featurize.assemble import featurize_at  # noqa: E402
from models.sampling import build_training_set  # noqa: E402
from models.split import scene_label_counts, split_scenes  # noqa: E402
from models.estimator import estimator_settings, make_estimators  # noqa: E402
from scenes import contract as C  # noqa: E402
from scenes.reader import list_scenes, open_scene  # noqa: E402

#: Park et al. (2020), overall accuracy on real Sentinel-1 scenes.
PUBLISHED = {"winter": 87.0, "summer": 67.0}
SEASONS = {"winter": (1, 2, 3), "summer": (6, 7, 8), "all": tuple(range(1, 13))}


def three_types(sod):
    """SOD classes -> 0 open water, 1 mixed first-year (new..thick FY), 2 old ice; 255 kept."""
    sod = np.asarray(sod)
    out = np.full(sod.shape, 255, np.uint8)
    out[sod == 0] = 0
    out[(sod >= 1) & (sod <= 4)] = 1
    out[sod == 5] = 2
    return out


def feature_sets(config):
    """Names of all columns (``[config features] + [raw 24 inputs]``) and each set's indices."""
    names = feature_names(config)
    texture = ["hh_db", "hv_db", "hvmhh_db", "hh_ia_norm"] + [n for n in names if "_glcm" in n]
    allnames = names + ["raw_" + v for v in C.INPUT_VARS]
    sets = {"texture": texture, "naive": ["raw_" + v for v in C.INPUT_VARS], "full": names}
    return allnames, {k: [allnames.index(n) for n in v] for k, v in sets.items()}


def _features(ds, rows, cols, *, config):
    """Every column of :func:`feature_sets` at pixels (a featurizer for the sampler)."""
    return np.hstack([featurize_at(ds, config, rows, cols), raw_inputs(ds, rows, cols)])


def _sample(paths, config, n_pixels, seed, cores):
    ts = build_training_set(paths, n_pixels=n_pixels, seed=seed, n_jobs=cores, progress=False,
                            featurizer=functools.partial(_features, config=config),
                            feature_names=feature_sets(config)[0])
    return ts.X, three_types(ts.y["SOD"]), ts.weight["SOD"]


def run_seed(seed, args, config):
    """Accuracy per feature set and season on one dataset: {set: {season: (hits, n)}}."""
    data = dataset(seed, args)
    paths = list_scenes(data / "train", kind="train")[: args.n_train]
    train, val = split_scenes(paths, 0.2, 0, counts=[scene_label_counts(p) for p in paths])
    Xt, yt, wt = _sample(train, config, args.n_pixels, 0, args.cores)
    Xv, yv, wv = _sample(val, config, args.n_pixels // 4, 0, args.cores)
    Xe, ye, month, test_months = [], [], [], []
    q = args.eval_step
    for path in list_scenes(data / "test", kind="test")[: args.n_test]:
        ds = open_scene(path)
        ref = open_reference(data, path)
        H, W = ds[C.SAR_VARS[0]].shape
        rr, cc = np.meshgrid(np.arange(q // 2, H, q), np.arange(q // 2, W, q), indexing="ij")
        y = three_types(np.asarray(ref["SOD"].values)[rr, cc]).ravel()
        keep = y != 255
        Xe.append(_features(ds, rr.ravel()[keep], cc.ravel()[keep], config=config))
        ye.append(y[keep])
        test_months.append(int(path.name[4:6]))  # YYYYMMDD...
        month.append(np.full(keep.sum(), test_months[-1]))
        ds.close()
        ref.close()
    Xe, ye, month = np.vstack(Xe), np.concatenate(ye), np.concatenate(month)
    _, sets = feature_sets(config)
    out = {}
    for name, cols in sets.items():
        params = {**estimator_settings(args.n_pixels), "random_state": 0, "n_jobs": args.cores}
        est = make_estimators(params, sic_classifier=False)["SOD"]
        rt, rv = yt != 255, yv != 255
        est.fit(Xt[rt][:, cols], yt[rt], sample_weight=wt[rt] / wt[rt].mean(),
                eval_set=(Xv[rv][:, cols], yv[rv], wv[rv] / wv[rv].mean()))
        hit = est.predict(Xe[:, cols]) == ye
        out[name] = {s: (int(hit[np.isin(month, m)].sum()), int(np.isin(month, m).sum()))
                     for s, m in SEASONS.items()}
    scenes = {s: sorted({t for t in test_months if t in m}) for s, m in SEASONS.items()}
    print(f"seed {seed}: {len(train)} train + {len(val)} validation scenes, test months "
          f"winter {scenes['winter']}, summer {scenes['summer']}", flush=True)
    _table(out)
    return out


def _pct(hits, n):
    return f"{100.0 * hits / n:6.1f}" if n else "     -"


def _table(acc):
    print(f"{'features':10s} {'winter %':>9s} {'summer %':>9s} {'all %':>7s}   (test pixels)")
    for name, a in acc.items():
        print(f"{name:10s} {_pct(*a['winter']):>9s} {_pct(*a['summer']):>9s} {_pct(*a['all']):>7s}"
              f"   ({a['winter'][1]} / {a['summer'][1]} / {a['all'][1]})")
    print(f"{'published':10s} {PUBLISHED['winter']:9.1f} {PUBLISHED['summer']:9.1f}        "
          "  (Park et al. 2020, texture, real scenes)", flush=True)


def main(argv=None):
    ap = benchmark_parser(__doc__.splitlines()[0], seed=11, n_train=40, n_test=10, config=False)
    args = parse_benchmark_args(ap, argv)
    config = FeatureConfig()
    total = {}
    for seed in args.seed:
        for name, a in run_seed(seed, args, config).items():
            t = total.setdefault(name, {s: (0, 0) for s in SEASONS})
            for s, (h, n) in a.items():
                t[s] = (t[s][0] + h, t[s][1] + n)
    if len(args.seed) > 1:
        print(f"\npooled over seeds {' '.join(map(str, args.seed))}:")
        _table(total)


if __name__ == "__main__":
    main()
