"""Figures people look at: scene maps and confusion matrices (PNG)."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # batch jobs have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402

from scenes import contract as C  # noqa: E402
from scenes.reader import atomic_path, list_scenes, open_scene, scene_key  # noqa: E402

from .submission import open_submission, read_map  # noqa: E402

#: Largest side of a quicklook in pixels; real scenes are decimated to it.
QUICKLOOK_SIDE = 1000

_CHART_COLOURS = {
    # open water dark blue, 100 % ice white, as ice charts and SAR images show them
    "SIC": plt.get_cmap("Blues_r", 11)(np.linspace(0, 1, 11)),
    "SOD": ["#0b3d91", "#f0e442", "#e69f00", "#56b4e9", "#009e73", "#cc79a7"],
    "FLOE": ["#0b3d91", "#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026", "#7a0177"],
}


def _decimate(a: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil(max(a.shape) / QUICKLOOK_SIDE)))
    return a[::step, ::step]


def save_figure(fig, path) -> Path:
    """Save a matplotlib figure as PNG atomically (temporary name, then rename) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _class_panel(ax, fig, values, chart, title):
    n = C.N_CLASSES[chart]
    cmap = ListedColormap(_CHART_COLOURS[chart][:n]).with_extremes(bad="#bbbbbb")
    norm = BoundaryNorm(np.arange(-0.5, n + 0.5), n)
    im = ax.imshow(values, cmap=cmap, norm=norm, interpolation="nearest")
    cbar = fig.colorbar(im, ax=ax, ticks=np.arange(n), fraction=0.046, pad=0.02)
    cbar.ax.set_yticklabels(C.CLASS_NAMES[chart], fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def plot_scene_maps(scene, predicted: dict, out_png, *, reference=None, title=None) -> Path:
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
    """
    hh = _decimate(scene[C.SAR_VARS[0]].values)
    hv = _decimate(scene[C.SAR_VARS[1]].values)
    nodata = ~C.sar_valid(hh)
    rows = 2 if reference is not None else 1
    fig, axes = plt.subplots(rows, 4, figsize=(17, 4.2 * rows), squeeze=False)
    for ax, band, name in ((axes[0, 0], hh, "HH"), (axes[-1, 0], hv, "HV")):
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


def plot_submission_maps(submission, scenes: dict, reference_dir, out_dir) -> list[Path]:
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
                written.append(plot_scene_maps(ds, maps, Path(out_dir) / f"maps_{key}.png",
                                               reference=ref, title=key))
            finally:
                ds.close()
                if ref is not None:
                    ref.close()
    return written
