"""Importance of the second stage's features, by their own groups.

Stage-2 features exist on the prediction lattice only (region and box
aggregates of the stage-1 outputs of a whole scene), so they cannot be made
at sampled pixels as the stage-1 features are. Here each scene is predicted
by stage 1 on its lattice, its stage-2 features are made there, and labelled
lattice points are drawn uniformly (seeded per scene). For each chart with
a stage-2 model, the rows of the tidy table of :mod:`evaluation.importance`
get ``parameter`` ``"{chart}_stage2"`` and the groups of
:func:`models.stage2.feature_group` (``stage2_outputs``, ``stage2_regions``,
``stage2_boxes``): ``gain`` and ``split``; ``mean_abs_shap`` (TreeSHAP of the
correction stage 2 adds to the stage-1 output); and, with labels, the
``permutation_drop`` of the chart's metric when a group's columns are
shuffled (the stage-2 model alone at lattice points: SIC rounded, SOD/FLOE
most probable class; no water rule, no vote).
"""
from __future__ import annotations

import numpy as np

from models import stage2 as S2
from models.predict import bundle_models, lattice_predict, make_lattice, scan_scene
from models.sampling import draw_uniform, scene_seed
from scenes import contract as C
from scenes.reader import open_scene, scene_key

from .metrics import ChartAccumulator

GROUP_ROW = "*"


def _parameter(chart):
    return f"{chart}_stage2"


def _rows(parameter, names, metric, values):
    rows = [(parameter, n, S2.feature_group(n), metric, float(v)) for n, v in zip(names, values)]
    total = {}
    for n, v in zip(names, values):
        total[S2.feature_group(n)] = total.get(S2.feature_group(n), 0.0) + float(v)
    return rows + [(parameter, GROUP_ROW, g, metric, v) for g, v in total.items()]


def tree_rows(bundle) -> list:
    """``gain`` and ``split`` rows of every stage-2 model."""
    st = bundle.stage2
    rows = []
    for chart, est in (st.models.items() if st is not None else ()):
        for metric in ("gain", "split"):
            values = est.booster_.feature_importance(importance_type=metric,
                                                     iteration=est.best_iteration_)
            rows += _rows(_parameter(chart), st.feature_names, metric, values)
    return rows


def sample_points(bundle, scenes, find_labels, *, n_per_scene: int, seed: int,
                  reference_dir=None):
    """Stage-2 features and labels at up to ``n_per_scene`` labelled lattice points per scene.

    ``find_labels(path, ds, reference_dir)`` gives a scene's labels (or None).
    Returns ``(F2, y)`` with ``y`` chart -> uint8 (255: masked), or None
    when no scene has labels.
    """
    st = bundle.stage2
    models = bundle_models(bundle)
    Fs, ys = [], {c: [] for c in C.LABEL_CHARTS}
    for path in scenes:
        ds = open_scene(path)
        try:
            labels = find_labels(path, ds, reference_dir)
            if labels is None:
                continue
            shape = tuple(int(n) for n in ds[C.SAR_VARS[0]].shape)
            lattice = make_lattice(shape, bundle.stride)
            _, valid_l, comp = scan_scene(ds, lattice, composite=True, out_rows=np.arange(1),
                                          out_cols=np.arange(1))
            lat = lattice_predict(ds, bundle.feature_config, models, lattice, valid_l)
            cols = S2.input_columns(st.spec, bundle.feature_names)
            inputs = (S2.lattice_inputs(ds, bundle.feature_config, lattice, valid_l,
                                        bundle.feature_names, cols) if cols else None)
        finally:
            ds.close()
        F2, _ = S2.stage2_features(lat, valid_l, comp, lattice.stride, st.spec, inputs=inputs)
        ii, jj = np.nonzero(valid_l)
        y_l = {c: labels[c][lattice.rows[ii], lattice.cols[jj]] for c in C.LABEL_CHARTS}
        pool = np.any([y_l[c] != C.MASK_VALUE for c in C.LABEL_CHARTS], axis=0)
        idx, _ = draw_uniform(pool, n_per_scene, np.random.default_rng(scene_seed(seed,
                                                                                  scene_key(path))))
        Fs.append(F2[idx])
        for c in C.LABEL_CHARTS:
            ys[c].append(y_l[c][idx])
    if not Fs:
        return None
    return np.concatenate(Fs), {c: np.concatenate(v) for c, v in ys.items()}


def _predict(est, chart, X):
    if chart == "SIC":
        return np.clip(np.rint(est.predict(X)), 0, C.N_CLASSES["SIC"] - 1).astype(np.uint8)
    return np.argmax(est.predict_proba(X), axis=1).astype(np.uint8)


def data_rows(bundle, F2, y, *, mean_abs_shap, permutation_drop, n_repeats: int, seed: int,
              max_shap: int):
    """``mean_abs_shap`` and ``permutation_drop``/``permutation_std`` rows, and the baselines.

    ``mean_abs_shap`` and ``permutation_drop`` are the functions of
    :mod:`evaluation.importance` (passed in: that module imports this one).
    """
    st = bundle.stage2
    names = st.feature_names
    groups = {}
    for j, n in enumerate(names):
        groups.setdefault(S2.feature_group(n), []).append(j)
    rows, baseline, n_points = [], {}, {}
    order = np.random.default_rng([int(seed) & 0xFFFFFFFF, 8]).permutation(len(F2))
    for chart, est in st.models.items():
        keep = np.sort(order[:max_shap])
        rows += _rows(_parameter(chart), names, "mean_abs_shap", mean_abs_shap(est, F2[keep]))
        lab = y[chart] != C.MASK_VALUE
        n_points[_parameter(chart)] = int(lab.sum())
        if not lab.any():
            continue
        X, yy = F2[lab], y[chart][lab]

        def score(Xq, chart=chart, est=est, yy=yy):
            acc = ChartAccumulator(chart)
            acc.add(yy, _predict(est, chart, Xq))
            return 100.0 * acc.score()

        baseline[_parameter(chart)] = round(score(X), 3)
        for g, (mean, std) in permutation_drop(score, X, groups, n_repeats=n_repeats,
                                               seed=seed).items():
            rows += [(_parameter(chart), GROUP_ROW, g, "permutation_drop", mean),
                     (_parameter(chart), GROUP_ROW, g, "permutation_std", std)]
    return rows, baseline, n_points
