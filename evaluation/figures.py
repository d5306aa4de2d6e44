"""Figures people look at: scene maps and confusion matrices (PNG).

Maps use the WMO ice-chart colours (:mod:`evaluation.colours`) and carry
latitude / longitude lines from the scene's tie points.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5netcdf
import matplotlib

matplotlib.use("Agg")  # batch jobs have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402

from scenes import contract as C  # noqa: E402
from scenes.geolocation import TiePoints, tie_points  # noqa: E402
from scenes.reader import SceneError, atomic_path, list_scenes, open_scene, scene_key  # noqa: E402

from .colours import CHART_COLOURS, NO_DATA_COLOUR  # noqa: E402
from .scoring import write_report_csvs  # noqa: E402
from .submission import open_submission, read_map  # noqa: E402

#: Largest side of a quicklook in pixels; real scenes are decimated to it.
QUICKLOOK_SIDE = 1000

#: Spacings (degrees) tried for the latitude / longitude lines, finest first.
_GRID_STEPS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


def _decimate(a: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil(max(a.shape) / QUICKLOOK_SIDE)))
    return a[::step, ::step]


def save_figure(fig, path) -> Path:
    """Save a matplotlib figure as PNG atomically (temporary name, then rename) and close it.

    A failed write (a full disk) is one ``OSError`` line naming ``path``; no
    temporary is left.
    """
    path = Path(path)
    tmp = atomic_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(f"{path}: cannot be written ({exc.strerror or exc}); free disk space "
                      "or write the figures elsewhere") from None
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def _grid_step(values, lines: int = 4) -> float:
    span = float(np.nanmax(values) - np.nanmin(values))
    return next((s for s in _GRID_STEPS if span / s <= lines), _GRID_STEPS[-1])


def draw_latlon_grid(ax, tp: TiePoints, step: int = 1) -> None:
    """Labelled latitude / longitude lines over an image of the scene decimated by ``step``."""
    H, W = tp.shape
    lat, lon = tp.grid(np.arange(0, H, step), np.arange(0, W, step))
    if np.ptp(tp.lon) > 180:  # across the antimeridian: keep longitudes continuous
        lon = np.mod(lon, 360.0)
    for values, fmt in ((lat, _lat_label), (lon, _lon_label)):
        s = _grid_step(values)
        levels = np.arange(np.floor(values.min() / s) * s, values.max() + s, s)
        cs = ax.contour(values, levels=levels, colors="black", linewidths=0.5,
                        linestyles="dashed", alpha=0.7)
        ax.clabel(cs, fontsize=6, fmt=fmt)


def _lat_label(v) -> str:
    return f"{abs(round(float(v), 2)):g}°{'N' if v >= 0 else 'S'}"


def _lon_label(v) -> str:
    v = (float(v) + 180.0) % 360.0 - 180.0
    return f"{abs(round(v, 2)):g}°{'E' if v >= 0 else 'W'}"


def _scene_grid(scene):
    """The scene's tie points, or None when it has none a map could use."""
    try:
        return tie_points(scene)
    except (SceneError, KeyError, ValueError):
        return None


def _class_panel(ax, fig, values, chart, title):
    n = C.N_CLASSES[chart]
    cmap = ListedColormap(CHART_COLOURS[chart][:n]).with_extremes(bad=NO_DATA_COLOUR)
    norm = BoundaryNorm(np.arange(-0.5, n + 0.5), n)
    im = ax.imshow(values, cmap=cmap, norm=norm, interpolation="nearest")
    cbar = fig.colorbar(im, ax=ax, ticks=np.arange(n), fraction=0.046, pad=0.02)
    cbar.ax.set_yticklabels(C.CLASS_NAMES[chart], fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def plot_scene_maps(scene, predicted: dict, out_png, *, reference=None, title=None,
                    confidence=None) -> Path:
    """HH/HV quicklook and predicted (and reference) SIC, SOD, FLOE of one scene.

    Parameters
    ----------
    scene : xarray.Dataset
        The input scene (for HH, HV and the no-data mask).
    predicted : dict chart -> uint8 array
        Predicted class maps at the scene's full shape.
    out_png : path-like
    reference : xarray.Dataset or dict, optional
        Reference labels; 255 is drawn as masked (grey).
    confidence : dict, optional
        Confidence layers (``"SOD_confidence"``, ``"SIC_spread"`` ..., uint8
        0..100) drawn in a row of their own.
    """
    hh = _decimate(scene[C.SAR_VARS[0]].values)
    hv = _decimate(scene[C.SAR_VARS[1]].values)
    nodata = ~C.sar_valid(hh)
    conf = {c: (n, confidence[n]) for c in C.LABEL_CHARTS for n in
            (f"{c}_confidence", f"{c}_spread") if confidence and n in confidence}
    rows = 1 + (reference is not None) + bool(conf)
    fig, axes = plt.subplots(rows, 4, figsize=(17, 4.2 * rows), squeeze=False)
    for ax in axes[2:, 0]:
        ax.set_axis_off()
    for ax, band, name in ((axes[0, 0], hh, "HH"), (axes[min(1, rows - 1), 0], hv, "HV")):
        if rows == 1 and name == "HV":
            continue
        img = np.ma.masked_where(nodata, band)
        lo, hi = np.percentile(band[~nodata], [2, 98]) if (~nodata).any() else (0, 1)
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"{name} (z-scored dB)", fontsize=9)
        ax.set_axis_off()
    for j, chart in enumerate(C.LABEL_CHARTS, start=1):
        pred = np.ma.masked_where(nodata, _decimate(np.asarray(predicted[chart])))
        _class_panel(axes[0, j], fig, pred, chart, f"predicted {chart}")
        if reference is not None:
            ref = _decimate(np.asarray(reference[chart]))
            _class_panel(axes[1, j], fig, np.ma.masked_where(ref == C.MASK_VALUE, ref), chart,
                         f"reference {chart} (grey = masked)")
        if chart in conf:
            name, layer = conf[chart]
            ax = axes[-1, j]
            im = ax.imshow(np.ma.masked_where(nodata, _decimate(np.asarray(layer))),
                           cmap="magma" if name.endswith("_confidence") else "magma_r",
                           vmin=0, vmax=100, interpolation="nearest")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
            ax.set_title(f"{chart} confidence: probability of the class (%)"
                         if name.endswith("_confidence") else
                         f"{chart} spread of the regression (% points)", fontsize=9)
            ax.set_axis_off()
    tp = _scene_grid(scene)
    if tp is not None:
        step = max(1, int(np.ceil(max(tp.shape) / QUICKLOOK_SIDE)))
        for ax in axes[:, 1:].ravel():
            if ax.images:
                draw_latlon_grid(ax, tp, step)
    if title:
        fig.suptitle(title)
    return save_figure(fig, out_png)


def plot_confusion(cm: np.ndarray, chart: str, out_png) -> Path:
    """Row-normalised confusion matrix (true x predicted) with class names."""
    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    names = C.CLASS_NAMES[chart]
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(names), 0.8 + 0.55 * len(names)))
    im = ax.imshow(norm, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted"); ax.set_ylabel("reference")
    for i in range(norm.shape[0]):
        for j in range(norm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] < 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of reference row")
    ax.set_title(f"{chart} confusion (row-normalised)")
    return save_figure(fig, out_png)


def plot_confusions(confusion: dict, out_dir) -> list[Path]:
    """``out_dir/confusion_{chart}.png`` for each chart of ``{chart: matrix}``."""
    return [plot_confusion(cm, chart, Path(out_dir) / f"confusion_{chart}.png")
            for chart, cm in confusion.items()]


def read_confidence(products_dir, key: str) -> dict | None:
    """Confidence layers of one scene from its products (``{key}_charts.nc``), if there."""
    path = Path(products_dir) / f"{key}_charts.nc"
    if not path.is_file():
        return None
    with h5netcdf.File(path, "r") as f:
        return {name: np.where(f.variables[name][...] == 255, 0, f.variables[name][...])
                for name in f.variables if name.endswith(("_confidence", "_spread"))}


def plot_submission_maps(submission, scenes: dict, reference_dir, out_dir,
                         products_dir=None) -> list[Path]:
    """Map figures ``out_dir/maps_{key}.png`` of a submission's scenes.

    Parameters
    ----------
    submission : path-like
        Submission file holding the predicted maps.
    scenes : dict key -> path
        The input scenes to draw (for the HH/HV quicklook and no-data mask).
    reference_dir : path-like
        Folder of reference scenes; a scene without one is drawn without it.
    out_dir : path-like
    products_dir : path-like, optional
        Products folder of ``seaice predict --products``: its confidence
        layers get a row in the figures.
    """
    refs = {scene_key(p): p for p in list_scenes(reference_dir)}
    written = []
    with open_submission(submission) as sub:
        for key, path in scenes.items():
            maps = {c: read_map(sub, key, c) for c in C.LABEL_CHARTS}
            if any(m is None for m in maps.values()):
                raise ValueError(f"{submission}: no maps of scene {key}; pass the scenes the "
                                 "submission was predicted from (--scenes)")
            ds = open_scene(path, check_values=False)
            ref = open_scene(refs[key], check_values=False) if key in refs else None
            try:
                conf = read_confidence(products_dir, key) if products_dir else None
                written.append(plot_scene_maps(ds, maps, Path(out_dir) / f"maps_{key}.png",
                                               reference=ref, title=key, confidence=conf))
            finally:
                ds.close()
                if ref is not None:
                    ref.close()
    return written


def write_report(result: dict, report_dir, *, submission=None, scenes=None,
                 reference_dir=None) -> list[Path]:
    """The report folder of ``seaice evaluate --report``: CSVs, confusion PNGs, scene maps.

    All or nothing: if any file cannot be made (a full disk, a scene that
    cannot be drawn), the files this call wrote are removed again, and the
    folder too if this call made it and it is left empty; then the error
    propagates.

    Parameters
    ----------
    result : dict
        :func:`evaluation.scoring.score_submission` output.
    report_dir : path-like
    submission, scenes, reference_dir
        With ``scenes`` (``{key: path}``), map figures of those scenes
        (:func:`plot_submission_maps`).
    """
    report_dir = Path(report_dir)
    made = not report_dir.exists()
    before = set(report_dir.iterdir()) if not made else set()
    try:
        written = write_report_csvs(result, report_dir)
        written += plot_confusions(result["confusion"], report_dir)
        if scenes:
            written += plot_submission_maps(submission, scenes, reference_dir, report_dir)
    except BaseException:
        # new files only: one the user had before keeps its place (it was replaced, or not)
        for path in (set(report_dir.iterdir()) - before if report_dir.is_dir() else ()):
            if path.is_file():
                path.unlink(missing_ok=True)
        if made and report_dir.is_dir() and not any(report_dir.iterdir()):
            report_dir.rmdir()
        raise
    return written
