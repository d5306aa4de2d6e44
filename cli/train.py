"""``seaice train``: train the SIC, SOD and FLOE models on a folder of training scenes."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from featurize import FeatureConfig
from models.manifest import Manifest
from models.smoothing import spec_label
from models.split import MAX_VAL_SCENES
from pipeline import train_models
from pipeline.convert import ready_scenes
from pipeline.train import AUTO_PIXEL_SHARE, MAX_AUTO_PIXELS
from scenes.contract import LABEL_CHARTS

from .options import (add_device, add_jobs, add_mlflow, add_scale_out, add_seed, scene_runner,
                      show_progress)
from .tracking import log_train, register_option, tracked


def add_parser(sub, parents):
    p = sub.add_parser("train", parents=parents, help="train the three chart models",
                       description="Sample pixels across training scenes, train one LightGBM model per "
                                   "chart with early stopping on held-out scenes, and save a model folder.")
    p.add_argument("--data", required=True, metavar="TRAIN_DIR",
                   help="folder of training *_prep.nc scenes, or of raw AI4Arctic files "
                        "(converted first, see convert-raw)")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    p.add_argument("--pixels", type=pixels_count, default="auto", metavar="N|auto",
                   help=f"training pixels sampled over all scenes (default auto: "
                        f"{AUTO_PIXEL_SHARE * 100:g}%% of the training scenes' labelled pixels, "
                        f"at most "
                        f"{MAX_AUTO_PIXELS})")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of scenes held out for early stopping and choices (default "
                        f"0.2; at most {MAX_VAL_SCENES} scenes)")
    p.add_argument("--features", metavar="JSON", default=None,
                   help="feature configuration as JSON, changes from the default, e.g. "
                        "'{\"texture_windows\": [11], \"scene\": false}' (keys: "
                        "featurize.FeatureConfig; the model folder records it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    p.add_argument("--no-stage2", dest="stage2", action="store_false",
                   help="leave out the second stage (region hierarchy, stage-2 models and the "
                        "choice of system; about as long again as stage 1): the folder then "
                        "predicts with the per-pixel models and their smoothing alone")
    add_device(p)
    add_seed(p)
    add_jobs(p)
    add_mlflow(p)
    register_option(p)
    add_scale_out(p, "sampled pixels and validation features")
    p.add_argument("--distributed", action="store_true",
                   help="with --scheduler: keep the sampled pixels on the cluster and train there "
                        "with lightgbm.dask (for samples that do not fit one machine; all rounds "
                        "are trained, the best one is kept by the validation scenes)")
    p.set_defaults(func=run)


def pixels_count(text: str):
    """``--pixels``: ``auto`` or a whole number >= 1."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 or auto, got {text!r}")
    return value


def feature_config(text):
    """The FeatureConfig of ``--features`` (None: the default)."""
    if text is None:
        return None
    try:
        changes = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--features is not valid JSON ({e.msg}); give an object such as "
                         "'{\"scene\": false}'") from None
    if not isinstance(changes, dict):
        raise ValueError("--features must be a JSON object of FeatureConfig keys, "
                         "e.g. '{\"scene\": false}'")
    return FeatureConfig.from_dict(changes)


def cache_summary(runner) -> str | None:
    """One line: where the run's cache is and how big, or None without one.

    The cache of a large run can outgrow its inputs many times over; users
    should know it is there.
    """
    folder = runner.cache_dir
    if folder is None or not folder.is_dir():
        return None
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return (f"cache: {folder} ({size / 1e6:.1f} MB; a rerun with the same arguments reuses it; "
            "delete it once done, or pass --no-cache)")


@tracked("train")
def run(args) -> int:
    if args.distributed and not args.scheduler:
        raise ValueError("--distributed trains on a Dask cluster; add --scheduler ADDRESS or "
                         "--scheduler local:N")
    config = feature_config(args.features)
    with scene_runner(args, args.out) as runner, \
            ready_scenes(args.data, runner, out=args.out, labels="require") as data:
        manifest = train_models(data, args.out, config=config, device=args.device,
                                seed=args.seed,
                                n_pixels=args.pixels,
                                val_fraction=args.val_fraction,
                                n_jobs=args.jobs, progress=show_progress(args),
                                overwrite=args.overwrite, runner=runner,
                                distributed=args.distributed, stage2=args.stage2)
    print(f"model written to {args.out}")
    if runner.reused:
        print(f"{len(runner.reused)} scene result(s) reused from the cache")
    skipped = manifest.training.skipped_scenes
    if skipped:
        print(f"skipped {len(skipped)} bad scene(s), trained without them (listed in the manifest):",
              file=sys.stderr)
        for s in skipped:
            print(f"  {s.reason}", file=sys.stderr)
    scores = manifest.validation
    if scores:
        print(validation_summary(scores, manifest, args.out))
    log_train(args, args.out, manifest)
    line = cache_summary(runner)
    if line:
        print(line)
    return 0


def validation_summary(scores, manifest: Manifest, out) -> str:
    """Two lines: validation scores of the chosen settings, and those settings.

    Every setting tried is in the manifest; printing them all buried the result.
    A chart whose validation labels could not rank models shows n/a (and so
    does the combined score): its number measures nothing.
    """
    best = scores["smoothed"]
    n_val = len(manifest.training.val_scenes)
    fallbacks = manifest.training.validation_fallbacks
    smoothing = ", ".join(f"{c} {spec_label(manifest.smoothing[c])}" for c in LABEL_CHARTS)
    value = lambda d, k: "n/a" if fallbacks and (k == "combined" or k in fallbacks) \
        else f"{d[k]:.3f}"  # noqa: E731
    note = ("; n/a: validation labels of one class or none, default choices taken"
            if fallbacks else "")
    return (f"validation ({n_val} scene(s)): combined {value(best, 'combined')} (SIC "
            f"{value(best, 'SIC')}, SOD {value(best, 'SOD')}, FLOE {value(best, 'FLOE')}); "
            f"{value(scores['unsmoothed'], 'combined')} without smoothing{note}\n"
            f"chosen: SIC mode {best['sic_mode']}, water rule {best['water_rule']}, "
            f"smoothing {smoothing}; every setting tried is in {Path(out) / 'manifest.json'}"
            + stage2_summary(manifest))


def stage2_summary(manifest: Manifest) -> str:
    """One more line: the system the second stage chose and why ("" without one)."""
    st = manifest.stage2
    if st is None:
        return ""
    rounds = ", ".join(f"{c} {st.rounds.get(c, 0)}" for c in LABEL_CHARTS)
    return f"\nsystem {st.selection.get('why')}; stage-2 rounds {rounds}"
