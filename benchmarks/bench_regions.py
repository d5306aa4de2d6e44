"""Region-level decisions: today's default, the new default, their true-polygon oracles, naive.

Usage::

    python benchmarks/bench_regions.py [--seed 11 [SEED ...]] [--n-train 12] [--n-test 4]
                                       [--size 2000] [--n-pixels 1000000] [--eval-step 4]
                                       [--work DIR] [--cores 2] [--pictures DIR]

Per ``--seed``, writes (or reuses) the synthetic dataset of
``bench_baseline.py``, trains one model folder with
:func:`pipeline.train_models` (stage 1, then the cross-fitted stage 2 and
the choice of system, :mod:`pipeline.stage2`) and the naive per-pixel
LightGBM of ``bench_baseline.py``, and scores on the test scenes:

- ``naive``: the naive model (sub-grid only, it is too slow for every pixel);
- ``today``: the same folder's stage 1 with today's choices
  (``predict_scene(system="stage1")``: what the code wrote before stage 2);
- ``new``: the folder's chosen system (``predict_scene``);
- every candidate system forced (``stage1+regions``, ``stage2``,
  ``stage2+regions``): the ablation of regions, stage 2 and the selection;
- ``oracle(today)``, ``oracle(new)``: the same maps decided per TRUE chart
  polygon (:mod:`evaluation.oracle`: SIC mean, SOD/FLOE majority), the upper
  bound of any region vote of those predictions.

With ``--pictures DIR`` it only draws, for each test scene of each seed
whose model folder is already trained, where the region decisions go wrong:
HH with the true chart polygons and our regions, SIC and SOD of the
reference, today's maps, the new maps and the true-polygon oracle.

Every system is scored on the sub-grid (every ``--eval-step`` pixel, as the
naive model) and, except naive, on every pixel. The fraction of the gap
closed is ``(new - today) / (oracle(today) - today)`` per chart and
combined; the summary gives it per seed and for the mean over seeds.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_baseline import (MIN_SIC_VARIANCE, _naive_fit, _naive_predict,  # noqa: E402
                            benchmark_parser, dataset, open_reference, parse_benchmark_args,
                            sic_variance)
from evaluation.metrics import challenge_scores  # noqa: E402
from evaluation.oracle import polygon_vote, reference_polygons  # noqa: E402
from models import load_model, predict_scene  # noqa: E402
from pipeline import train_models  # noqa: E402
from scenes import contract as C  # noqa: E402
from scenes.reader import list_scenes, open_scene  # noqa: E402

CHARTS = C.LABEL_CHARTS
METRICS = (*CHARTS, "combined")


def fit(seed, args):
    """Dataset, model folder (trained unless present) and naive model of one seed."""
    data = dataset(seed, args)
    model_dir = Path(args.work) / f"regions_model_seed{seed}_{args.size}"
    t = time.perf_counter()
    if not (model_dir / "manifest.json").is_file():
        train_models(data / "train", model_dir, seed=0, n_pixels=args.n_pixels, n_jobs=args.cores,
                     progress=False, overwrite=True)
    t_train = time.perf_counter() - t
    bundle = load_model(model_dir)
    tr = bundle.manifest.training
    naive = _naive_fit([data / "train" / n for n in tr.train_scenes],
                       [data / "train" / n for n in tr.val_scenes], args.n_pixels, 0, args.cores)
    return data, bundle, naive, t_train


def score_seed(seed, args):
    """Scores of every system on one seed's test scenes (sub-grid and every pixel)."""
    data, bundle, naive, t_train = fit(seed, args)
    systems = ["today", "new"]
    stage2 = bundle.stage2
    forced = [s for s in (stage2.systems if stage2 is not None else {}) if s != "stage1"]
    systems += [f"forced {s}" for s in forced]
    true_full, true_sub = {c: [] for c in CHARTS}, {c: [] for c in CHARTS}
    pred_full = {k: {c: [] for c in CHARTS} for k in systems + ["oracle(today)", "oracle(new)"]}
    pred_sub = {k: {c: [] for c in CHARTS} for k in ["naive"] + list(pred_full)}
    seconds = {"today": 0.0, "new": 0.0}
    for path in list_scenes(data / "test", kind="test")[: args.n_test]:
        ds = open_scene(path)
        ref = open_reference(data, path)
        truth = {c: np.asarray(ref[c].values) for c in CHARTS}
        H, W = truth["SIC"].shape
        step = args.eval_step
        rows, cols = np.arange(step // 2, H, step), np.arange(step // 2, W, step)
        out = {}
        t = time.perf_counter()
        out["today"] = predict_scene(ds, bundle, system="stage1")
        seconds["today"] += time.perf_counter() - t
        t = time.perf_counter()
        out["new"] = predict_scene(ds, bundle)
        seconds["new"] += time.perf_counter() - t
        for s in forced:
            out[f"forced {s}"] = predict_scene(ds, bundle, system=s)
        poly = reference_polygons(truth)
        out["oracle(today)"] = polygon_vote(poly, out["today"])
        out["oracle(new)"] = polygon_vote(poly, out["new"])
        out_sub = {k: {c: m[c][rows][:, cols] for c in CHARTS} for k, m in out.items()}
        out_sub["naive"] = _naive_predict(naive, ds, rows, cols)
        for c in CHARTS:
            true_full[c].append(truth[c])
            true_sub[c].append(truth[c][rows][:, cols])
            for k in pred_full:
                pred_full[k][c].append(out[k][c])
            for k in pred_sub:
                pred_sub[k][c].append(out_sub[k][c])
        ds.close()
        ref.close()
    full = {k: challenge_scores(true_full, p) for k, p in pred_full.items()}
    sub = {k: challenge_scores(true_sub, p) for k, p in pred_sub.items()}
    return dict(full=full, sub=sub, bundle=bundle, t_train=t_train, seconds=seconds,
                usable=sic_variance(true_full["SIC"]) >= MIN_SIC_VARIANCE)


def gap_fraction(new, today, oracle):
    """``(new - today) / (oracle - today)``, None when the oracle is not above today."""
    gap = oracle - today
    return None if gap <= 1e-9 else (new - today) / gap


def _f(x):
    return "   n/a" if x is None else f"{x:+6.2f}"


def print_seed(seed, res, args):
    bundle = res["bundle"]
    st = bundle.stage2
    print(f"\nseed {seed}: {args.n_train} training scenes, {args.n_test} test scenes of "
          f"{args.size} x {args.size}; n_pixels={args.n_pixels}; training {res['t_train']:.0f} s; "
          f"prediction today {res['seconds']['today']:.1f} s, new {res['seconds']['new']:.1f} s")
    if st is None:
        print("  no stage 2 in this model folder (see the train log)")
    else:
        sel = st.selection
        print(f"  chosen: {sel.get('why')}")
        print(f"  stage-2 rounds {sel.get('rounds')}")
    print(f"  {'system':28s} {'SIC':>7s} {'SOD':>7s} {'FLOE':>7s} {'comb.':>7s}   "
          f"(every pixel)  {'SIC':>7s} {'SOD':>7s} {'FLOE':>7s} {'comb.':>7s}  (sub-grid)")
    for k, s in res["sub"].items():
        f = res["full"].get(k)
        full = " ".join(f"{f[m]:7.2f}" for m in METRICS) if f else " " * 31
        print(f"  {k:28s} {full}                 " + " ".join(f"{s[m]:7.2f}" for m in METRICS))
    full = res["full"]
    fr = {m: gap_fraction(full["new"][m], full["today"][m], full["oracle(today)"][m])
          for m in METRICS}
    print("  gap closed (new - today) / (oracle(today) - today): "
          + ", ".join(f"{m} {_f(v)}" for m, v in fr.items()))
    if not res["usable"]:
        print("  warning: the test SIC is nearly one class (see bench_baseline.MIN_SIC_VARIANCE); "
              "left out of the mean")
    sys.stdout.flush()


def summary(results):
    use = {s: r for s, r in results.items() if r["usable"]}
    if not use:
        return
    names = ["naive", "today", "new", "oracle(today)"]
    print(f"\nheld-out summary over {len(use)} seeds (every pixel; naive on the sub-grid)")
    print(f"{'seed':8s} " + " ".join(f"{n + ' ' + m:>20s}" for n in names[1:] for m in ("comb.",))
          + f" {'naive comb.':>12s}  gap closed: " + " ".join(f"{m:>8s}" for m in METRICS))
    for seed, r in use.items():
        full = r["full"]
        fr = [gap_fraction(full["new"][m], full["today"][m], full["oracle(today)"][m])
              for m in METRICS]
        print(f"{seed:<8d} " + " ".join(f"{full[n]['combined']:20.2f}" for n in names[1:])
              + f" {r['sub']['naive']['combined']:12.2f}  " + " ".join(f"{_f(x):>8s}" for x in fr))
    mean = {n: {m: float(np.mean([r["full"][n][m] for r in use.values()])) for m in METRICS}
            for n in names[1:]}
    mean["naive"] = {m: float(np.mean([r["sub"]["naive"][m] for r in use.values()]))
                     for m in METRICS}
    print("mean over seeds:")
    for n in names:
        print(f"  {n:16s} " + " ".join(f"{m} {mean[n][m]:6.2f}" for m in METRICS))
    print("  fraction of the mean gap closed: " + ", ".join(
        f"{m} {_f(gap_fraction(mean['new'][m], mean['today'][m], mean['oracle(today)'][m]))}"
        for m in METRICS))
    print("  new - today per chart (mean): " + ", ".join(
        f"{m} {mean['new'][m] - mean['today'][m]:+.2f}" for m in METRICS))
    chosen = {s: (r["bundle"].stage2.system if r["bundle"].stage2 is not None else "stage1")
              for s, r in use.items()}
    print(f"  chosen systems: {chosen}")
    forced = sorted({k for r in use.values() for k in r["full"] if k.startswith("forced")})
    for k in forced:
        have = [r for r in use.values() if k in r["full"]]
        comb = np.mean([r["full"][k]["combined"] - r["full"]["today"]["combined"] for r in have])
        print(f"  ablation {k:26s}: mean combined - today {comb:+.2f} over {len(have)} seeds")


def draw_pictures(seed, args):
    """PNGs of one seed's test scenes: regions against the true polygons, and the maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    from models import stage2 as S2
    from models.predict import bundle_models, lattice_predict, make_lattice, scan_scene

    data = dataset(seed, args)
    bundle = load_model(Path(args.work) / f"regions_model_seed{seed}_{args.size}")
    st = bundle.stage2
    level = (st.systems[st.system]["region_level"] if st is not None else None)
    level = 2 if level is None else level
    spec = st.spec if st is not None else S2.DEFAULT_SPEC
    out_dir = Path(args.pictures)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in list_scenes(data / "test", kind="test")[: args.n_test]:
        ds = open_scene(path)
        ref = open_reference(data, path)
        truth = {c: np.asarray(ref[c].values) for c in CHARTS}
        shape = truth["SIC"].shape
        lattice = make_lattice(shape, bundle.stride)
        _, valid_l, comp = scan_scene(ds, lattice, composite=True)
        lat = lattice_predict(ds, bundle.feature_config, bundle_models(bundle), lattice, valid_l)
        regions = S2.region_levels(lat, valid_l, comp, spec)[level]
        ri = np.clip(np.rint((np.arange(shape[0]) - lattice.rows[0]) / lattice.stride), 0,
                     regions.shape[0] - 1).astype(int)
        ci = np.clip(np.rint((np.arange(shape[1]) - lattice.cols[0]) / lattice.stride), 0,
                     regions.shape[1] - 1).astype(int)
        poly = reference_polygons(truth)
        maps = {"reference": truth, "today": predict_scene(ds, bundle, system="stage1"),
                "new": predict_scene(ds, bundle)}
        maps["oracle(today)"] = polygon_vote(poly, maps["today"])
        scores = {k: challenge_scores({c: [truth[c]] for c in CHARTS}, {c: [m[c]] for c in CHARTS})
                  for k, m in maps.items() if k != "reference"}
        overlay = np.zeros(shape + (4,))
        overlay[find_boundaries(regions[ri][:, ci], mode="inner")] = (0, 1, 1, 0.7)
        overlay[find_boundaries(poly, mode="inner")] = (1, 0, 0, 1)
        fig, ax = plt.subplots(2, 5, figsize=(22, 9))
        hh = np.asarray(ds[C.SAR_VARS[0]].values)
        for row in range(2):
            ax[row, 0].imshow(np.where(hh == 0, np.nan, hh), cmap="gray")
            ax[row, 0].imshow(overlay)
        ax[0, 0].set_title(f"HH; true polygons red, our regions (level {level}) cyan")
        err = np.where(truth["SIC"] == C.MASK_VALUE, np.nan,
                       np.abs(maps["new"]["SIC"].astype(float) - truth["SIC"]))
        ax[1, 0].imshow(err, cmap="magma", vmin=0, vmax=5)
        ax[1, 0].set_title("|SIC error| of the new maps (classes), boundaries as above")
        for j, (name, m) in enumerate(maps.items(), start=1):
            for row, (chart, cmap, top) in enumerate((("SIC", "viridis", 10), ("SOD", "tab10", 9))):
                a = m[chart]
                ax[row, j].imshow(np.where(a == C.MASK_VALUE, np.nan, a), cmap=cmap, vmin=0,
                                  vmax=top, interpolation="nearest")
                what = "" if name == "reference" else f" {scores[name][chart]:.1f}"
                ax[row, j].set_title(f"{chart} {name}{what}")
        for a in ax.ravel():
            a.set_xticks([])
            a.set_yticks([])
        fig.suptitle(f"seed {seed}, test scene {path.name[:19]}: combined today "
                     f"{scores['today']['combined']:.1f}, new {scores['new']['combined']:.1f}, "
                     f"oracle {scores['oracle(today)']['combined']:.1f}")
        fig.tight_layout()
        png = out_dir / f"regions_seed{seed}_{path.name[:19]}.png"
        fig.savefig(png, dpi=50)
        plt.close(fig)
        print(f"wrote {png}")
        ds.close()
        ref.close()


def main(argv=None):
    ap = benchmark_parser(__doc__.splitlines()[0], seed=11, n_train=12, n_test=4, config=False)
    ap.add_argument("--pictures", metavar="DIR", default=None,
                    help="only draw the test scenes of seeds already trained into DIR")
    args = parse_benchmark_args(ap, argv)
    if args.pictures:
        for seed in args.seed:
            draw_pictures(seed, args)
        return
    results = {}
    for seed in args.seed:
        results[seed] = score_seed(seed, args)
        print_seed(seed, results[seed], args)
    summary(results)


if __name__ == "__main__":
    main()
