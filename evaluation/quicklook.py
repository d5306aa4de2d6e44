"""Quicklook PNG of the ice-chart polygons over the HH image, with lat/lon lines."""
from __future__ import annotations

import numpy as np

from scenes import contract as C
from scenes.geolocation import TiePoints

from .colours import CHART_COLOURS
from .figures import QUICKLOOK_SIDE, draw_latlon_grid, save_figure


def _path(geom, scale):
    """One matplotlib path (outer rings and holes) of a polygon in pixel coordinates."""
    from matplotlib.path import Path as MPath

    verts, codes = [], []
    polys = getattr(geom, "geoms", [geom])
    for poly in polys:
        for ring in (poly.exterior, *poly.interiors):
            xy = np.asarray(ring.coords) * scale - 0.5  # pixel corners -> image coordinates
            if len(xy) < 3:
                continue
            verts.append(xy)
            codes += [MPath.MOVETO] + [MPath.LINETO] * (len(xy) - 2) + [MPath.CLOSEPOLY]
    return MPath(np.concatenate(verts), codes) if verts else None


def plot_polygons(out_png, hh, geoms, sod, tp: TiePoints, *, title: str = ""):
    """Polygons (pixel coordinates) filled with their SOD colour over the HH image.

    Parameters
    ----------
    out_png : path-like
        Where the PNG goes (written as is: the caller gives a temporary name).
    hh : float32 (H, W)
        ``nersc_sar_primary`` of the scene (z-scores, 0 = no data).
    geoms : shapely geometries in pixel coordinates
    sod : int array
        SOD class of each polygon (its WMO colour).
    tp : TiePoints
        For the latitude / longitude lines.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import PathCollection
    from matplotlib.patches import Patch

    step = max(1, int(np.ceil(max(hh.shape) / QUICKLOOK_SIDE)))
    img = hh[::step, ::step]
    nodata = ~C.sar_valid(img)
    fig, ax = plt.subplots(figsize=(7.5, 7.5 * img.shape[0] / img.shape[1] + 0.6))
    lo, hi = np.percentile(img[~nodata], [2, 98]) if (~nodata).any() else (0, 1)
    ax.imshow(np.ma.masked_where(nodata, img), cmap="gray", vmin=lo, vmax=hi,
              interpolation="nearest")
    paths, colours = [], []
    for g, k in zip(geoms, sod):
        p = _path(g, 1.0 / step)
        if p is not None:
            paths.append(p)
            colours.append(CHART_COLOURS["SOD"][int(k)])
    ax.add_collection(PathCollection(paths, facecolors=colours, edgecolors="black",
                                     linewidths=0.4, alpha=0.45))
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(img.shape[0] - 0.5, -0.5)
    unit = f" (x {step})" if step > 1 else ""
    ax.set_xlabel(f"SAR sample{unit}", fontsize=8)
    ax.set_ylabel(f"SAR line{unit}", fontsize=8)
    ax.tick_params(labelsize=7)
    draw_latlon_grid(ax, tp, step)
    handles = [Patch(facecolor=c, edgecolor="black", label=n)
               for c, n in zip(CHART_COLOURS["SOD"], C.CLASS_NAMES["SOD"])]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=3,
              fontsize=7, frameon=False, title="stage of development (WMO colours)",
              title_fontsize=7)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, out_png)
