"""Score a submission file against reference scenes, as the challenge did."""
from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np

from scenes import contract as C
from scenes.reader import SceneError, atomic_path, iter_scenes, list_scenes, open_scene, scene_key

from .metrics import ChartAccumulator, combine, score_from_confusion
from .submission import map_problems, open_submission, read_map

log = logging.getLogger(__name__)


def reference_kind(reference_dir) -> str:
    """``"reference"`` for a folder of ``*_prep_reference.nc``, ``"train"`` for labelled
    training scenes; one line naming the folder for anything else (test scenes, say)."""
    reference_dir = Path(reference_dir)
    if any(reference_dir.glob("*_prep_reference.nc")):
        return "reference"
    for path in list_scenes(reference_dir):
        ds = open_scene(path, validate=False)
        try:
            labelled = all(c in ds.variables for c in C.LABEL_CHARTS)
        finally:
            ds.close()
        if not labelled:
            raise SceneError(reference_dir, None, "holds no *_prep_reference.nc files and its "
                             f"scenes have no labels ({path.name} lacks SIC, SOD, FLOE)",
                             "pass the reference folder (--reference DIR of "
                             "*_prep_reference.nc) or labelled training scenes")
    return "train"


def refuse_bad_map(sub, submission, key, chart, true) -> None:
    """Refuse a map ``seaice validate`` rejects (dtype, dims, classes), as the challenge did.

    A missing map or one of another shape is not refused here: its chart scores 0.
    """
    for problem in map_problems(sub, submission, key, chart, true.shape, true != C.MASK_VALUE):
        if ": missing (" in problem or ": shape " in problem:
            continue
        raise ValueError(f"{problem}; the challenge refuses such a submission: write it with "
                         "`seaice predict` and check it with `seaice validate`")


def score_submission(submission, reference_dir, *, report_dir=None) -> dict:
    """Challenge scores of a submission.

    Parameters
    ----------
    submission : path-like
        Submission NetCDF file (see :mod:`evaluation.submission`).
    reference_dir : path-like
        Folder of ``*_prep_reference.nc`` files (or labelled ``*_prep.nc``
        training scenes) giving the true SIC / SOD / FLOE.
    report_dir : path-like, optional
        If given, write ``per_scene_scores.csv`` and
        ``confusion_{chart}.csv`` there.

    Returns
    -------
    dict
        ``scores`` (SIC, SOD, FLOE, combined; x100, rounded), ``per_scene``
        (list of dicts: ``scene``, each chart's score, None where a score of
        that scene alone means nothing, and ``not_scored``, chart -> why; see
        :func:`scene_score_problem`), ``confusion`` (chart -> int array [true, pred]),
        ``missing`` (list of absent submission variables: their chart scores 0).
    """
    reference_dir = Path(reference_dir)
    kind = reference_kind(reference_dir)
    accs = {c: ChartAccumulator(c) for c in C.LABEL_CHARTS}
    per_scene, missing = [], []
    with open_submission(submission) as sub:
        for path, ref in iter_scenes(reference_dir, kind=kind, check_values=True):
            key = scene_key(path)
            row = {"scene": key, "not_scored": {}}
            for chart in C.LABEL_CHARTS:
                true = ref[chart].values
                refuse_bad_map(sub, submission, key, chart, true)
                pred = read_map(sub, key, chart)
                if pred is None or pred.shape != true.shape:
                    missing.append(f"{key}_{chart}")
                    row[chart] = float("nan")
                    continue
                cm = accs[chart].add(true, pred)
                why = scene_score_problem(chart, cm)
                if why:  # the pooled score still counts these pixels
                    row[chart], row["not_scored"][chart] = None, why
                    continue
                row[chart] = round(score_from_confusion(chart, cm) * 100, 3)
            per_scene.append(row)
    raw = {}
    for chart, acc in accs.items():
        # The challenge pooled all scenes: a chart absent for any scene is a missing chart.
        absent = any(m.endswith(f"_{chart}") for m in missing)
        raw[chart] = None if absent else acc.score()
    if missing:
        log.warning("submission lacks %d map(s) (or has the wrong shape): %s; those charts score 0",
                    len(missing), ", ".join(missing[:6]))
    result = {"scores": combine(raw), "per_scene": per_scene,
              "confusion": {c: a.counts[:, : C.N_CLASSES[c]] for c, a in accs.items()},
              "missing": missing}
    if report_dir is not None:
        write_report_csvs(result, report_dir)
    return result


def scene_score_problem(chart: str, cm) -> str | None:
    """Why one scene's score of ``chart`` (confusion ``cm[true, pred]``) means nothing, or None.

    No labelled pixel: no score. SIC of one reference class: R2 compares the
    errors with the spread of the reference, and there is none, so it is 0
    or 100 whatever the map. (A weighted F1 of one class is still the F1 of
    that class, so SOD and FLOE keep their score.)
    """
    support = cm.sum(axis=1)
    if not support.any():
        return f"no labelled {chart} pixels in the reference"
    if chart == "SIC" and np.count_nonzero(support) == 1:
        return f"one SIC class ({int(np.flatnonzero(support)[0])}) in the reference, R2 undefined"
    return None


def format_scene_row(row: dict) -> str:
    """One scene's scores on one line; n/a with the reason where a score means nothing."""
    parts = []
    for chart in C.LABEL_CHARTS:
        value, why = row[chart], row.get("not_scored", {}).get(chart)
        if why:
            parts.append(f"{chart} n/a ({why})")
        elif value is None or value != value:  # NaN: the map is missing
            parts.append(f"{chart} missing")
        else:
            parts.append(f"{chart} {value:.3f}")
    return f"{row['scene']}: " + "  ".join(parts)


def _write_csv(path: Path, header, rows) -> None:
    """Write one CSV atomically; a failed write is one ``OSError`` line naming ``path``."""
    tmp = atomic_path(path)
    try:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(f"{path}: cannot be written ({exc.strerror or exc}); free disk space "
                      "or choose another --report folder") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_report_csvs(result: dict, report_dir) -> list[Path]:
    """Per-scene scores and per-chart confusion matrices as CSV files.

    On an error (a full disk) the files this call wrote are removed again,
    and ``report_dir`` too if this call made it and it is empty.
    """
    report_dir = Path(report_dir)
    made = not report_dir.exists()
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"{report_dir}: cannot be made ({exc.strerror or exc}); choose another "
                      "--report folder") from None
    written = []
    try:
        path = report_dir / "per_scene_scores.csv"
        _write_csv(path, ["scene", *C.LABEL_CHARTS, "note"],
                   [[r["scene"], *("n/a" if r[c] is None else r[c] for c in C.LABEL_CHARTS),
                     "; ".join(f"{c} n/a: {why}" for c, why in r.get("not_scored", {}).items())]
                    for r in result["per_scene"]])
        written.append(path)
        for chart, cm in result["confusion"].items():
            path = report_dir / f"confusion_{chart}.csv"
            names = C.CLASS_NAMES[chart]
            _write_csv(path, ["true \\ predicted", *names],
                       [[names[i], *map(int, cm[i])] for i in range(cm.shape[0])])
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if made and not any(report_dir.iterdir()):
            report_dir.rmdir()
        raise
    return written


def format_table(result: dict) -> str:
    """The scores as a small text table."""
    s = result["scores"]
    lines = [f"{'chart':<9}{'metric':<14}{'score':>9}",
             f"{'SIC':<9}{'R2':<14}{s['SIC']:>9.3f}",
             f"{'SOD':<9}{'weighted F1':<14}{s['SOD']:>9.3f}",
             f"{'FLOE':<9}{'weighted F1':<14}{s['FLOE']:>9.3f}",
             f"{'combined':<9}{'(2,2,1)/5':<14}{s['combined']:>9.3f}"]
    return "\n".join(lines)
