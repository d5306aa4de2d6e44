"""``run.py train``: train the SIC, SOD and FLOE models on a folder of training scenes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from featurize import FeatureConfig
from models.manifest import Manifest
from models.smoothing import spec_label
from pipeline import train_models
from scenes.contract import LABEL_CHARTS

from .options import (add_device, add_jobs, add_mlflow, add_scale_out, add_seed, scene_runner,
                      show_progress)
from .tracking import log_train


def add_parser(sub, parents):
    p = sub.add_parser("train", parents=parents, help="train the three chart models",
                       description="Sample pixels across training scenes, train one LightGBM model per "
                                   "chart with early stopping on held-out scenes, and save a model folder.")
    p.add_argument("--data", required=True, metavar="TRAIN_DIR", help="folder of training *_prep.nc scenes")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    p.add_argument("--pixels", type=int, default=2_000_000, metavar="N",
                   help="training pixels sampled over all scenes (default 2000000)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of scenes held out for early stopping and choices (default 0.2)")
    p.add_argument("--features", metavar="JSON", default=None,
                   help="feature configuration as JSON, changes from the default, e.g. "
                        "'{\"texture_windows\": [11], \"scene\": false}' (keys: "
                        "featurize.FeatureConfig; the model folder records it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    add_device(p)
    add_seed(p)
    add_jobs(p)
    add_mlflow(p)
    add_scale_out(p, "sampled pixels and validation features")
    p.add_argument("--distributed", action="store_true",
                   help="with --scheduler: keep the sampled pixels on the cluster and train there "
                        "with lightgbm.dask (for samples that do not fit one machine; all rounds "
                        "are trained, the best one is kept by the validation scenes)")
    p.set_defaults(func=run)


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


def run(args) -> int:
    if args.distributed and not args.scheduler:
        raise ValueError("--distributed trains on a Dask cluster; add --scheduler ADDRESS or "
                         "--scheduler local:N")
    config = feature_config(args.features)
    with scene_runner(args, args.out) as runner:
        manifest = train_models(args.data, args.out, config=config, device=args.device,
                                seed=args.seed,
                                n_pixels=args.pixels, val_fraction=args.val_fraction,
                                n_jobs=args.jobs, progress=show_progress(args),
                                overwrite=args.overwrite, runner=runner,
                                distributed=args.distributed)
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
    return 0


def validation_summary(scores, manifest: Manifest, out) -> str:
    """Two lines: validation scores of the chosen settings, and those settings.

    Every setting tried is in the manifest; printing them all buried the result.
    """
    best = scores["smoothed"]
    n_val = len(manifest.training.val_scenes)
    smoothing = ", ".join(f"{c} {spec_label(manifest.smoothing[c])}" for c in LABEL_CHARTS)
    return (f"validation ({n_val} scene(s)): combined {best['combined']:.3f} (SIC "
            f"{best['SIC']:.3f}, SOD {best['SOD']:.3f}, FLOE {best['FLOE']:.3f}); "
            f"{scores['unsmoothed']['combined']:.3f} without smoothing\n"
            f"chosen: SIC mode {best['sic_mode']}, water rule {best['water_rule']}, "
            f"smoothing {smoothing}; every setting tried is in {Path(out) / 'manifest.json'}")
