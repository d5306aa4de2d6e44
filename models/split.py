"""Which training scenes are held out for validation.

Scenes, never pixels, are held out: neighbouring pixels of one chart
polygon are near copies. A plain random draw of a few scenes is often
unrepresentative, because many scenes are mostly open water (57 % of the
real labelled pixels are SIC 0; 29 % of the 513 real training scenes
are over 90 % water, 13 % over 99 %): with a dozen scenes, two all-water
validation scenes leave R2 meaningless and early stopping blind to ice.

So when per-scene label counts are known, :func:`split_scenes` draws
``n_draws`` seeded random splits and keeps the one whose validation labels
are distributed most like the training labels (total variation distance
per chart, weighted like the combined score), among the splits that leave
the training scenes at least ``MIN_TRAIN_SHARE`` of every class's pixels:
a class that one scene nearly alone holds (old ice, say) must not become
validation-only, as the models could then never learn it. Next, it prefers
splits whose validation scenes hold at least two classes of every chart:
on one class (an all-water scene) or none (an all-255 chart) the
validation scores cannot rank models, so early stopping and the choices
made on them would be decided by a tie. Where no such split keeps the
training classes, the train job falls back for that chart
(:func:`validation_problem`; see :mod:`pipeline.train`). Without counts
the split is the first of those draws.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from scenes import contract as C
from scenes.reader import open_scene

#: Random splits compared when label counts are given.
N_DRAWS = 200
#: Share of each class's labelled pixels that the training scenes keep.
MIN_TRAIN_SHARE = 0.5
#: Labels are counted on every LABEL_STEP-th row and column (polygons are large).
LABEL_STEP = 4
#: Validation scenes at most. The choices rest on scene-to-scene variety, which two
#: dozen real scenes of ~26 M pixels show (the challenge's test set had 20); every
#: validation scene costs the train job its features, the choices and stage 2 (at
#: 102 scenes, a fifth of the real dataset, ~40 of 95 minutes on 2 cores), and the
#: scenes above the cap train the models instead.
MAX_VAL_SCENES = 24


def scene_label_counts(path, step: int = LABEL_STEP) -> dict:
    """Pixel count per class of each chart of a training scene (every ``step``-th row and column).

    Returns
    -------
    dict
        ``{chart: int64 array (n_classes,)}``; 255 (masked) is not counted.
    """
    ds = open_scene(path, kind="train", validate=False)
    try:
        out = {}
        for chart in C.LABEL_CHARTS:
            lab = np.asarray(ds[chart].values)[::step, ::step].ravel()
            out[chart] = np.bincount(lab[lab != C.MASK_VALUE],
                                     minlength=C.N_CLASSES[chart])[: C.N_CLASSES[chart]]
    finally:
        ds.close()
    return out


def check_val_fraction(val_fraction) -> float:
    """``val_fraction`` as a float in [0, 1), or ValueError."""
    if not 0 <= float(val_fraction) < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    return float(val_fraction)


def validation_problem(chart: str, labels) -> str | None:
    """Why the validation labels ``labels`` of ``chart`` cannot rank models, or None.

    Empty (every pixel masked) or a single class: every model then scores
    alike on the ranking that matters (R2 of one class is 0 or 100), so
    neither early stopping nor a choice may rest on them.
    """
    labels = np.asarray(labels).ravel()
    classes = np.unique(labels[labels != C.MASK_VALUE])
    if classes.size == 0:
        return f"no labelled {chart} pixels in the validation scenes"
    if classes.size == 1:
        return f"only {chart} class {int(classes[0])} in the validation scenes"
    return None


def _badness(counts, val_mask):
    """How unfit a split is, as a tuple compared in order (lower is better).

    ``counts``: ``{chart: (n_scenes, n_classes) array}``. First the number
    of classes of which the training scenes keep less than
    ``MIN_TRAIN_SHARE`` (the models could not learn them); then the number
    of charts whose validation scenes hold fewer than two classes (they
    cannot rank models); then the total variation distance of validation
    and training label distributions, charts weighted as in the combined
    score (``C.CHART_WEIGHTS``).
    """
    lost, single, distance = 0, 0, 0.0
    for chart, w in C.CHART_WEIGHTS.items():
        val, train = counts[chart][val_mask].sum(0), counts[chart][~val_mask].sum(0)
        lost += int(np.count_nonzero(train < MIN_TRAIN_SHARE * (train + val)))
        single += int(np.count_nonzero(val) < 2)
        if val.sum() == 0 or train.sum() == 0:
            distance += w  # one side has no labelled pixel of this chart: as far as can be
            continue
        distance += w * 0.5 * np.abs(val / val.sum() - train / train.sum()).sum()
    return lost, single, distance


def split_scenes(paths, val_fraction: float, seed: int, counts=None, n_draws: int = N_DRAWS,
                 max_val: int = MAX_VAL_SCENES):
    """Hold out ``round(val_fraction * n)`` (>= 1, <= ``max_val``) scenes for validation.

    Parameters
    ----------
    paths : list of paths
    val_fraction : float
        In [0, 1); 0 keeps every scene for training.
    seed : int
        Seeds the random draws.
    counts : list of dict, optional
        :func:`scene_label_counts` of each scene, in ``paths`` order. Given,
        the best of ``n_draws`` random splits is kept (see the module doc).
    n_draws : int
    max_val : int
        Most validation scenes (:data:`MAX_VAL_SCENES`); the rest train.

    Returns
    -------
    (train, val) : two lists of paths, each sorted by name
    """
    paths = [Path(p) for p in paths]
    if check_val_fraction(val_fraction) == 0:
        return paths, []
    if len(paths) < 2:
        raise ValueError(f"{len(paths)} training scene cannot be split into training and "
                         "validation scenes; pass at least 2 scenes or val_fraction=0")
    if counts is not None and len(counts) != len(paths):
        raise ValueError(f"{len(counts)} label counts for {len(paths)} scenes")
    n_val = min(len(paths) - 1, int(max_val), max(1, int(round(val_fraction * len(paths)))))
    if counts is not None:
        counts = {chart: np.stack([c[chart] for c in counts]).astype(np.float64)
                  for chart in C.CHART_WEIGHTS}
    rng = np.random.default_rng(seed)
    best, best_d = None, (np.inf,)
    for _ in range(n_draws if counts is not None else 1):
        val_mask = np.zeros(len(paths), bool)
        val_mask[rng.permutation(len(paths))[:n_val]] = True
        d = _badness(counts, val_mask) if counts is not None else (0,)
        if d < best_d:  # strict: ties keep the earlier draw
            best, best_d = val_mask, d
    val = sorted((p for p, v in zip(paths, best) if v), key=lambda q: q.name)
    train = sorted((p for p, v in zip(paths, best) if not v), key=lambda q: q.name)
    return train, val
