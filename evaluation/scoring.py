"""Score a submission file against reference scenes, as the challenge did."""
from __future__ import annotations

import csv
import logging
import os
from pathlib import Path


from scenes import contract as C
from scenes.reader import atomic_path, iter_scenes, scene_key

from .metrics import ChartAccumulator, combine, score_from_confusion
from .submission import open_submission, read_map

log = logging.getLogger(__name__)


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
        (list of dicts), ``confusion`` (chart -> int array [true, pred]),
        ``missing`` (list of absent submission variables: their chart scores 0).
    """
    reference_dir = Path(reference_dir)
    kind = "reference" if any(reference_dir.glob("*_prep_reference.nc")) else "train"
    accs = {c: ChartAccumulator(c) for c in C.LABEL_CHARTS}
    per_scene, missing = [], []
    with open_submission(submission) as sub:
        for path, ref in iter_scenes(reference_dir, kind=kind, check_values=True):
            key = scene_key(path)
            row = {"scene": key}
            for chart in C.LABEL_CHARTS:
                pred = read_map(sub, key, chart)
                true = ref[chart].values
                if pred is None or pred.shape != true.shape:
                    missing.append(f"{key}_{chart}")
                    row[chart] = float("nan")
                    continue
                cm = accs[chart].add(true, pred)
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


def _write_csv(path: Path, header, rows) -> None:
    tmp = atomic_path(path)
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


def write_report_csvs(result: dict, report_dir) -> list[Path]:
    """Per-scene scores and per-chart confusion matrices as CSV files."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    written = [report_dir / "per_scene_scores.csv"]
    _write_csv(written[0], ["scene", *C.LABEL_CHARTS],
               [[r["scene"], *(r[c] for c in C.LABEL_CHARTS)] for r in result["per_scene"]])
    for chart, cm in result["confusion"].items():
        path = report_dir / f"confusion_{chart}.csv"
        names = C.CLASS_NAMES[chart]
        _write_csv(path, ["true \\ predicted", *names],
                   [[names[i], *map(int, cm[i])] for i in range(cm.shape[0])])
        written.append(path)
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
