"""Which inputs the three chart models use: tree, TreeSHAP and permutation importance.

For each parameter (SIC, SOD, FLOE) of a loaded model bundle:

- ``gain`` and ``split``: total split gain and number of splits per feature,
  from the booster (its saved, best iterations). No data needed.
- ``mean_abs_shap``: mean absolute TreeSHAP contribution per feature
  (LightGBM's ``pred_contrib``) on sampled pixels, in the units of the raw
  model output (class-index value for the SIC regressor, log-odds for the
  classifiers, averaged over classes).
- ``permutation_drop``: for each feature *group*, the drop of the chart's
  challenge metric (x100: R2 for SIC made the model's ``sic_mode`` way,
  weighted F1 for SOD and FLOE) when the group's columns are shuffled
  together across the sampled pixels, averaged over seeded repeats
  (``permutation_std``: their standard deviation). Each chart model is
  scored alone per pixel, without the spatial smoothing and without the
  SIC gate of :func:`models.predict_scene`.

Pixels are drawn uniformly from the valid SAR pixels of each scene where the
reference SIC is labelled (all valid pixels when a scene has no labels), and
weighted by the pixels they stand for, so the metrics pool scenes like the
challenge does.

A model folder with a second stage adds rows with ``parameter``
``"{chart}_stage2"`` for each chart that has a stage-2 model, its features in
their own groups (``stage2_outputs``, ``stage2_regions``, ``stage2_boxes``),
measured at lattice points (:mod:`evaluation.stage2_importance`).

The result is one tidy table with columns ``parameter, feature, group,
metric, value``. Rows with ``feature == "*"`` hold the group totals: the sum
of the group's feature rows for ``gain``, ``split`` and ``mean_abs_shap``,
and the permutation metrics, which exist per group only.
"""
from __future__ import annotations

import json
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from featurize import feature_groups, featurize_at
from models import load_model
from models.predict import bundle_models, sic_model_key
from models.sampling import draw_uniform, scene_seed
from scenes import contract as C
from scenes.reader import (atomic_path, atomic_write_text, list_scenes, open_scene, scene_key,
                           valid_mask)

from . import stage2_importance
from .metrics import ChartAccumulator

log = logging.getLogger(__name__)

#: Column order of the tidy table.
COLUMNS = ("parameter", "feature", "group", "metric", "value")
#: Feature value of the group-total rows.
GROUP_ROW = "*"
TREE_METRICS = ("gain", "split")
SHAP_METRIC = "mean_abs_shap"
PERM_METRIC = "permutation_drop"
PERM_STD = "permutation_std"
#: Pixels drawn per scene unless told otherwise.
DEFAULT_PIXELS_PER_SCENE = 3000
#: TreeSHAP runs on a seeded subsample of the drawn pixels: at most
#: MAX_SHAP_PIXELS, fewer for big models (about SHAP_BUDGET pixel-trees per
#: chart, ~10 s on one core) but not fewer than MIN_SHAP_PIXELS.
MAX_SHAP_PIXELS = 2000
MIN_SHAP_PIXELS = 500
SHAP_BUDGET = 2_000_000


@dataclass
class PixelSample:
    """Featurized pixels of several scenes with their labels.

    Attributes
    ----------
    X : float32 (N, F)
    y : dict chart -> uint8 (N,)
        Reference class, 255 where masked or unknown.
    weight : float64 (N,)
        Scene pixels each row stands for.
    scene_keys : list of str
    labelled : bool
        Whether any scene had labels.
    """

    X: np.ndarray
    y: dict
    weight: np.ndarray
    scene_keys: list
    labelled: bool


@dataclass
class ImportanceResult:
    """What :func:`compute_importance` found.

    Attributes
    ----------
    table : pandas.DataFrame
        The tidy table (:data:`COLUMNS`).
    baseline : dict chart -> float
        Per-pixel challenge metric (x100) of each chart model on the sample,
        the reference of ``permutation_drop``; empty without labels.
    n_pixels : dict chart -> int
        Labelled sampled pixels per chart.
    scene_keys : list of str
    meta : dict
        Model folder, settings and the SIC mode.
    """

    table: object
    baseline: dict = field(default_factory=dict)
    n_pixels: dict = field(default_factory=dict)
    scene_keys: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)


# --- tree importance ---------------------------------------------------------------
def _rows(parameter, names, groups, metric, values):
    """Feature rows and their group-sum rows, groups in first-seen order."""
    rows = [(parameter, n, groups[n], metric, float(v)) for n, v in zip(names, values)]
    total = {}
    for n, v in zip(names, values):
        total[groups[n]] = total.get(groups[n], 0.0) + float(v)
    rows += [(parameter, GROUP_ROW, g, metric, v) for g, v in total.items()]
    return rows


def tree_importance(bundle) -> list:
    """``gain`` and ``split`` rows of every feature and group, for the three charts."""
    groups = feature_groups(bundle.feature_config)
    rows = []
    for chart in C.LABEL_CHARTS:
        est = bundle.models[chart]
        for metric in TREE_METRICS:
            values = est.booster_.feature_importance(importance_type=metric,
                                                     iteration=est.best_iteration_)
            rows += _rows(chart, bundle.feature_names, groups, metric, values)
    return rows


# --- TreeSHAP ------------------------------------------------------------------------
def mean_abs_shap(est, X, weight=None) -> np.ndarray:
    """Weighted mean |TreeSHAP contribution| per feature, averaged over classes.

    ``pred_contrib`` gives ``(N, F + 1)`` for one output and ``(N, K (F + 1))``
    for K classes (each class block ends with its bias column, dropped here).
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    n, f = X.shape
    if n == 0:
        return np.zeros(f)
    contrib = np.asarray(est.booster_.predict(X, pred_contrib=True,
                                              num_iteration=est.best_iteration_))
    k = contrib.shape[1] // (f + 1)
    if contrib.shape[1] != k * (f + 1):
        raise AssertionError(f"pred_contrib gave {contrib.shape[1]} columns for {f} features")
    a = np.abs(contrib.reshape(n, k, f + 1)[:, :, :f]).mean(axis=1)
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    return (a * w[:, None]).sum(axis=0) / w.sum()


# --- per-pixel predictions and scores ----------------------------------------------
def chart_predict(bundle, chart: str, X) -> np.ndarray:
    """Per-pixel classes of one chart's model alone (SIC by the bundle's ``sic_mode``).

    No smoothing and no water rule: the regressor's rounded value, the
    classifier's argmax, or (``"expected"``) its rounded expected class.
    """
    if chart != "SIC":
        return np.argmax(bundle.models[chart].predict_proba(X), axis=1).astype(np.uint8)
    key = sic_model_key(bundle.sic_mode)
    est = bundle_models(bundle)[key]
    if key == "SIC_regression":
        return est.predict_classes(X)
    p = est.predict_proba(X)
    if bundle.sic_mode == "expected":
        v = p @ np.arange(p.shape[1], dtype=np.float64)
        return np.clip(np.rint(v), 0, C.N_CLASSES["SIC"] - 1).astype(np.uint8)
    return np.argmax(p, axis=1).astype(np.uint8)


def chart_score(chart: str, true, pred, weight=None) -> float:
    """Challenge metric (x100) of pixels ``true`` (255 ignored) and ``pred``, weighted."""
    acc = ChartAccumulator(chart)
    acc.add(true, pred, weight)
    return 100.0 * acc.score()


# --- permutation importance ----------------------------------------------------------
def permutation_drop(score, X, groups: dict, *, n_repeats: int = 3, seed: int = 0) -> dict:
    """Drop of ``score(X)`` when the columns of each group are shuffled together.

    Parameters
    ----------
    score : callable ``(X) -> float``
        Higher is better.
    X : array (N, F)
    groups : dict name -> list of column indices
    n_repeats : int
        Shuffles per group; each group's shuffles are seeded by ``seed`` and
        the group name, so a group's result does not depend on the others.
    seed : int

    Returns
    -------
    dict name -> (mean drop, std of the drops)
    """
    X = np.asarray(X)
    if int(n_repeats) < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    base = float(score(X))
    out = {}
    Xp = X.copy()
    for name, cols in groups.items():
        cols = np.asarray(cols, dtype=np.int64)
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(str(name).encode())])
        drops = []
        for _ in range(int(n_repeats)):
            Xp[:, cols] = X[rng.permutation(X.shape[0])][:, cols]
            drops.append(base - float(score(Xp)))
        Xp[:, cols] = X[:, cols]
        out[name] = (float(np.mean(drops)), float(np.std(drops)))
    return out


# --- pixel sample ----------------------------------------------------------------------
def find_labels(scene_path, ds, reference_dir=None):
    """Labels of a scene: its own SIC/SOD/FLOE, else ``reference_dir/KEY_prep_reference.nc``.

    Returns dict chart -> uint8 (H, W), or None when neither exists.
    """
    if all(c in ds.variables for c in C.LABEL_CHARTS):
        return {c: np.asarray(ds[c].values) for c in C.LABEL_CHARTS}
    if reference_dir is None:
        return None
    ref_path = Path(reference_dir) / f"{scene_key(scene_path)}_prep_reference.nc"
    if not ref_path.is_file():
        return None
    ref = open_scene(ref_path, kind="reference", check_values=False)
    try:
        labels = {c: np.asarray(ref[c].values) for c in C.LABEL_CHARTS}
    finally:
        ref.close()
    shape = ds[C.SAR_VARS[0]].shape
    if any(v.shape != shape for v in labels.values()):
        raise ValueError(f"{ref_path}: reference shape {labels['SIC'].shape} differs from the "
                         f"scene's {shape}; pass the references of these scenes (--reference)")
    return labels


def sample_pixels(scene_paths, config, *, n_per_scene: int = DEFAULT_PIXELS_PER_SCENE,
                  seed: int = 0, reference_dir=None, progress: bool = False) -> PixelSample:
    """Draw and featurize up to ``n_per_scene`` pixels of each scene.

    Pixels are drawn uniformly, without replacement, from the valid SAR
    pixels whose reference SIC is labelled (from the scene itself or from
    ``reference_dir``), or from all valid pixels of a scene without labels.
    Each scene's draw is seeded by ``seed`` and the scene key
    (:func:`models.sampling.draw_uniform`). ``progress`` shows a bar over scenes.
    """
    if int(n_per_scene) < 1:
        raise ValueError(f"n_per_scene must be >= 1, got {n_per_scene}")
    Xs, ys, ws, keys, any_labels = [], {c: [] for c in C.LABEL_CHARTS}, [], [], False
    for path in tqdm(scene_paths, desc="sampling pixels", unit="scene", disable=not progress):
        ds = open_scene(path)
        try:
            key = scene_key(path)
            pool = valid_mask(ds)
            labels = find_labels(path, ds, reference_dir)
            if labels is not None:
                any_labels = True
                pool &= labels["SIC"] != C.MASK_VALUE
            rng = np.random.default_rng(scene_seed(seed, key))
            idx, weight = draw_uniform(pool, n_per_scene, rng)
            if idx.size == 0:
                log.warning("%s: no valid%s pixels; skipped", key,
                            " labelled" if labels is not None else "")
                continue
            rows, cols = np.divmod(idx, pool.shape[1])
            Xs.append(featurize_at(ds, config, rows, cols))
            for c in C.LABEL_CHARTS:
                ys[c].append(labels[c].ravel()[idx] if labels is not None
                             else np.full(idx.size, C.MASK_VALUE, np.uint8))
            ws.append(weight)
            keys.append(key)
        finally:
            ds.close()
    if not Xs:
        raise ValueError("no valid pixels in the given scenes; pass scenes with SAR data "
                         "(and labels for the permutation importance)")
    return PixelSample(X=np.concatenate(Xs),
                       y={c: np.concatenate(v).astype(np.uint8) for c, v in ys.items()},
                       weight=np.concatenate(ws), scene_keys=keys, labelled=any_labels)


# --- all together ---------------------------------------------------------------------
def compute_importance(bundle, scenes=None, *, reference_dir=None,
                       n_per_scene: int = DEFAULT_PIXELS_PER_SCENE, n_repeats: int = 3,
                       seed: int = 0, max_shap_pixels: int = MAX_SHAP_PIXELS,
                       progress: bool = False) -> ImportanceResult:
    """Tree, TreeSHAP and permutation importance of a model bundle.

    Parameters
    ----------
    bundle : models.ModelBundle or path
    scenes : path or list of paths, optional
        A folder of scenes or scene files. Without scenes, only ``gain`` and
        ``split`` are computed.
    reference_dir : path, optional
        Folder of ``*_prep_reference.nc`` for scenes without labels (test
        scenes). Default: the ``reference`` folder beside the scenes' folder,
        if there is one.
    n_per_scene : int
        Pixels drawn per scene.
    n_repeats : int
        Shuffles per feature group.
    seed : int
    max_shap_pixels : int
        TreeSHAP runs on a seeded subsample of at most this many pixels
        (fewer for models with many trees, see :data:`SHAP_BUDGET`).
    progress : bool
        Show progress bars (sampling, permutation).

    Returns
    -------
    ImportanceResult
    """
    if isinstance(bundle, (str, Path)):
        bundle = load_model(bundle)
    rows = tree_importance(bundle) + stage2_importance.tree_rows(bundle)
    result = ImportanceResult(table=None, meta={
        "model": str(bundle.model_dir), "sic_mode": bundle.sic_mode, "seed": int(seed),
        "n_per_scene": int(n_per_scene), "n_repeats": int(n_repeats)})
    if scenes is not None:
        if isinstance(scenes, (str, Path)) and Path(scenes).is_dir():
            if reference_dir is None and (Path(scenes).parent / "reference").is_dir():
                reference_dir = Path(scenes).parent / "reference"
            scenes = list_scenes(scenes, kind="train")
        elif isinstance(scenes, (str, Path)):
            scenes = [Path(scenes)]
        sample = sample_pixels(scenes, bundle.feature_config, n_per_scene=n_per_scene, seed=seed,
                               reference_dir=reference_dir, progress=progress)
        result.scene_keys = sample.scene_keys
        result.meta.update(scenes=[str(s) for s in scenes], reference=(
            str(reference_dir) if reference_dir is not None and sample.labelled else None))
        rows += _shap_rows(bundle, sample, max_shap_pixels, seed)
        if sample.labelled:
            perm_rows, result.baseline, result.n_pixels, n_classes = _permutation_rows(
                bundle, sample, feature_groups(bundle.feature_config), n_repeats, seed, progress)
            result.meta["reference_classes"] = n_classes
            rows += perm_rows
        else:
            log.warning("the scenes have no labels and no references were found; "
                        "permutation importance skipped (pass --reference DIR)")
        if bundle.stage2 is not None and bundle.stage2.models:
            points = stage2_importance.sample_points(bundle, scenes, find_labels,
                                                     n_per_scene=n_per_scene, seed=seed,
                                                     reference_dir=reference_dir)
            if points is not None:
                more, base, n_points = stage2_importance.data_rows(
                    bundle, *points, mean_abs_shap=mean_abs_shap,
                    permutation_drop=permutation_drop, n_repeats=n_repeats, seed=seed,
                    max_shap=max_shap_pixels)
                rows += more
                result.baseline.update(base)
                result.n_pixels.update(n_points)
    result.table = pd.DataFrame(rows, columns=list(COLUMNS))
    return result


def _shap_rows(bundle, sample, max_pixels, seed):
    groups = feature_groups(bundle.feature_config)
    n = sample.X.shape[0]
    order = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7]).permutation(n)
    rows = []
    for chart in C.LABEL_CHARTS:
        est = bundle.models[chart]
        # TreeSHAP costs about 5 us per pixel and tree: bound pixels x trees
        trees = est.best_iteration_ * est.booster_.num_model_per_iteration()
        m = min(n, int(max_pixels), max(MIN_SHAP_PIXELS, SHAP_BUDGET // max(trees, 1)))
        keep = np.sort(order[:m])
        values = mean_abs_shap(est, sample.X[keep], sample.weight[keep])
        rows += _rows(chart, bundle.feature_names, groups, SHAP_METRIC, values)
    return rows


def _permutation_rows(bundle, sample, groups, n_repeats, seed, progress=False):
    by_group = {}
    for j, name in enumerate(bundle.feature_names):
        by_group.setdefault(groups[name], []).append(j)
    rows, baseline, n_pixels, n_classes = [], {}, {}, {}
    for chart in tqdm(C.LABEL_CHARTS, desc="permutation importance", unit="chart",
                      disable=not progress):
        lab = sample.y[chart] != C.MASK_VALUE
        n_pixels[chart] = int(lab.sum())
        if not lab.any():
            continue
        X, y, w = sample.X[lab], sample.y[chart][lab], sample.weight[lab]
        n_classes[chart] = int(np.unique(y).size)

        def score(Xq, chart=chart, y=y, w=w):
            return chart_score(chart, y, chart_predict(bundle, chart, Xq), w)

        baseline[chart] = round(score(X), 3)
        for g, (mean, std) in permutation_drop(score, X, by_group, n_repeats=n_repeats,
                                               seed=seed).items():
            rows += [(chart, GROUP_ROW, g, PERM_METRIC, mean), (chart, GROUP_ROW, g, PERM_STD, std)]
    return rows, baseline, n_pixels, n_classes


# --- reporting -------------------------------------------------------------------------
def group_table(table, metric: str):
    """``{parameter: {group: value}}`` of the group rows of one metric, largest first."""
    sel = table[(table["metric"] == metric) & (table["feature"] == GROUP_ROW)]
    out = {}
    # the three charts, then their second stages ("SIC_stage2", ...) if the model has them
    params = list(C.LABEL_CHARTS) + [q for q in dict.fromkeys(table["parameter"])
                                     if q not in C.LABEL_CHARTS]
    for chart in params:
        part = sel[sel["parameter"] == chart].sort_values("value", ascending=False, kind="stable")
        if len(part):
            out[chart] = dict(zip(part["group"], part["value"].astype(float)))
    return out


def _shares(d):
    total = sum(d.values())
    return {k: (100.0 * v / total if total > 0 else 0.0) for k, v in d.items()}


def summary_lines(result: ImportanceResult, top: int = 3) -> list:
    """A short text summary: the top feature groups of each parameter by each measure."""
    t = result.table
    measures = [(PERM_METRIC, "permutation drop", lambda v: f"{v:.2f} pts")]
    measures += [(SHAP_METRIC, "|SHAP| share", lambda v: f"{v:.0f} %"),
                 ("gain", "gain share", lambda v: f"{v:.0f} %")]
    lines = []
    n_scenes = len(result.scene_keys)
    if n_scenes:
        labelled = sum(result.n_pixels.values()) > 0
        lines.append(f"importance of {result.meta.get('model')} on pixels of {n_scenes} scene(s)"
                     + ("" if labelled else " (no labels: no permutation importance)"))
    else:
        lines.append(f"importance of {result.meta.get('model')} (no scenes: gain and split only)")
    params = list(C.LABEL_CHARTS) + [q for q in dict.fromkeys(t["parameter"])
                                     if q not in C.LABEL_CHARTS]
    for chart in params:
        head = chart if chart in C.LABEL_CHARTS else chart.replace("_stage2", " stage 2")
        if chart in result.baseline:
            what = "R2" if chart.startswith("SIC") else "weighted F1"
            where = "pixels" if chart in C.LABEL_CHARTS else "lattice points"
            head += (f" (per-pixel {what} {result.baseline[chart]:.1f} on "
                     f"{result.n_pixels[chart]} {where})")
            if result.meta.get("reference_classes", {}).get(chart) == 1:
                head += ": the reference holds one class only, the metric says little"
        lines.append(head)
        for metric, label, fmt in measures:
            d = group_table(t, metric).get(chart)
            if not d:
                continue
            if metric != PERM_METRIC:
                d = _shares(d)
            best = [(g, v) for g, v in d.items() if v > 0][:top]
            lines.append(f"  top groups by {label}: " + (
                ", ".join(f"{g} {fmt(v)}" for g, v in best) if best else "none above 0"))
    return lines


def _group_colours(groups):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return {g: cmap(i % 10) for i, g in enumerate(groups)}


def plot_top_features(result: ImportanceResult, out_png, *, top: int = 15) -> Path:
    """Bar chart of the top features of each parameter (|SHAP| if measured, else gain)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from .figures import save_figure

    t = result.table
    metric = SHAP_METRIC if (t["metric"] == SHAP_METRIC).any() else "gain"
    feats = t[(t["metric"] == metric) & (t["feature"] != GROUP_ROW)]
    colours = _group_colours(list(dict.fromkeys(feats["group"])))
    fig, axes = plt.subplots(1, 3, figsize=(16, 0.32 * top + 1.6))
    for ax, chart in zip(axes, C.LABEL_CHARTS):
        part = feats[feats["parameter"] == chart]
        total = float(part["value"].sum())
        part = part.sort_values("value", ascending=False, kind="stable").head(top)[::-1]
        share = 100 * part["value"] / total if total > 0 else part["value"] * 0
        ax.barh(part["feature"], share, color=[colours[g] for g in part["group"]])
        ax.set_title(chart)
        ax.set_xlabel(f"{'mean |SHAP|' if metric == SHAP_METRIC else 'gain'} share (%)")
        ax.tick_params(axis="y", labelsize=8)
    fig.legend(handles=[Patch(color=c, label=g) for g, c in colours.items()],
               loc="lower center", ncol=min(len(colours), 8), fontsize=8, frameon=False)
    fig.suptitle(f"top {top} features per parameter")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save_figure(fig, out_png)


def plot_groups(result: ImportanceResult, out_png) -> Path:
    """Feature-group importance per parameter: shares of gain, split, |SHAP|; permutation drop."""
    import matplotlib.pyplot as plt

    from .figures import save_figure

    t = result.table
    measures = [(m, f"{m} share (%)") for m in TREE_METRICS]
    measures += [(m, label) for m, label in ((SHAP_METRIC, "mean |SHAP| share (%)"),
                                             (PERM_METRIC, "permutation drop (metric points)"))
                 if (t["metric"] == m).any()]
    groups = list(dict.fromkeys(t["group"]))
    colours = _group_colours(groups)
    fig, axes = plt.subplots(len(measures), 3, figsize=(15, 2.6 * len(measures)), squeeze=False)
    for i, (metric, label) in enumerate(measures):
        per_chart = group_table(t, metric)
        for j, chart in enumerate(C.LABEL_CHARTS):
            ax = axes[i, j]
            d = per_chart.get(chart, {})
            if metric != PERM_METRIC:
                d = _shares(d)
            names = [g for g in groups if g in d][::-1]
            vals = [d[g] for g in names]
            if metric == PERM_METRIC:
                std = group_table(t, PERM_STD).get(chart, {})
                ax.barh(names, vals, xerr=[std.get(g, 0) for g in names],
                        color=[colours[g] for g in names])
                ax.axvline(0, color="k", lw=0.6)
            else:
                ax.barh(names, vals, color=[colours[g] for g in names])
            ax.set_xlabel(label, fontsize=8)
            ax.tick_params(axis="y", labelsize=8)
            if i == 0:
                ax.set_title(chart)
    fig.suptitle("feature-group importance")
    fig.tight_layout()
    return save_figure(fig, out_png)


def write_importance(result: ImportanceResult, out_dir) -> dict:
    """Write ``importance.csv``, ``importance_features.png``, ``importance_groups.png``
    and ``importance_summary.json`` to ``out_dir``; return ``{name: path}``.

    A failed write (a full disk) is one ``OSError`` line naming the file; the
    files this call wrote are removed again, and ``out_dir`` too if this call
    made it and it is empty.
    """
    out_dir = Path(out_dir)
    made = not out_dir.exists()
    paths = {"csv": out_dir / "importance.csv", "summary": out_dir / "importance_summary.json",
             "features_png": out_dir / "importance_features.png",
             "groups_png": out_dir / "importance_groups.png"}
    tmp = atomic_path(paths["csv"])
    done = []
    try:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            result.table.to_csv(tmp, index=False, float_format="%.6g")
            os.replace(tmp, paths["csv"])
        except OSError as exc:
            raise OSError(f"{paths['csv']}: cannot be written ({exc.strerror or exc}); free "
                          "disk space or choose another --out") from None
        finally:
            tmp.unlink(missing_ok=True)
        done.append(paths["csv"])
        summary = {**result.meta, "scene_keys": result.scene_keys, "baseline": result.baseline,
                   "n_pixels": result.n_pixels,
                   "top_groups": {m: {c: list(d)[:5]
                                      for c, d in group_table(result.table, m).items()}
                                  for m in (*TREE_METRICS, SHAP_METRIC, PERM_METRIC)}}
        atomic_write_text(paths["summary"], json.dumps(summary, indent=2) + "\n")
        done.append(paths["summary"])
        done.append(plot_top_features(result, paths["features_png"]))
        done.append(plot_groups(result, paths["groups_png"]))
    except BaseException:
        for path in done:
            path.unlink(missing_ok=True)
        if made and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    return paths
