"""Per-pixel feature stacks of a scene, in row blocks or at sparse points.

A :class:`~featurize.config.FeatureConfig` fixes the features; the groups of
:data:`featurize.groups.REGISTRY` it enables, in registry order, give the
feature names (:func:`feature_names`), their groups (:func:`feature_groups`)
and the order of the output planes. :func:`featurize_blocks` walks a scene in
row blocks, reading each block with a halo of rows (the largest a group
asks for) so that the tiled output is identical to the untiled one, and
allocates one block of features at a time. :func:`featurize_at` computes the
same values at chosen pixels only (sparse training samples).

For each target (a :class:`Block` of rows or a set of :class:`Points`) the
engine reads the SAR rows once (:class:`Inputs`), then lets every group fill
its own planes through a :class:`Planes` that checks it writes exactly as
many as it has names, and sets the planes of SAR-grid groups
(``nan_at_fill``) to NaN at fill pixels.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

from scenes.contract import SAR_BANDS, SAR_DIMS, sar_valid, to_physical

from . import context, groups, radiometer, texture
from .config import FeatureConfig


def feature_groups(config: FeatureConfig | None = None) -> dict:
    """Ordered ``{feature name: group}`` (same order as :func:`feature_names`)."""
    config = FeatureConfig() if config is None else config
    out = {}
    for group in groups.enabled_groups(config):
        names, labels = group.names(config), group.labels(config)
        if len(labels) != len(names) or len(set(names) | set(out)) != len(out) + len(names):
            raise AssertionError(f"{type(group).__name__}: names not unique or not one "
                                 "label per name")  # a bug in the registry
        out.update(zip(names, labels))
    return out


def feature_names(config: FeatureConfig | None = None) -> list:
    """Stable ordered feature names; their count is the ``F`` of the outputs."""
    return list(feature_groups(config))


# --- scene access -------------------------------------------------------------
def _check_scene(ds, config, enabled):
    need = [SAR_BANDS["hh"]] + [SAR_BANDS[b] for b in config.sar_bands]
    for group in enabled:
        need += group.variables(config)
    missing = [v for v in dict.fromkeys(need) if v not in ds.variables]
    if missing:
        raise ValueError(f"scene lacks variables {missing}; open a full train/test scene "
                         "(scenes.reader.open_scene) or turn those feature groups off")
    hh = ds[SAR_BANDS["hh"]]
    if hh.dims != SAR_DIMS:
        raise ValueError(f"nersc_sar_primary has dims {hh.dims}, expected {SAR_DIMS}")
    return hh.shape


def _read_rows(ds, var, row0, row1):
    return np.asarray(ds[var].isel({SAR_DIMS[0]: slice(row0, row1)}).values)


class Inputs:
    """What the groups of one target share, read once: SAR rows with a halo, in dB.

    Attributes
    ----------
    config : FeatureConfig
    height : int
        Image rows of the scene.
    r0 : int
        Image row of the first row read.
    rows_valid : bool array (h, W)
        Valid pixels of image rows ``r0 : r0 + h``, the target's rows and the halo.
    rows_db : dict of float32 arrays (h, W)
        Backscatter (dB) of those rows per band, NaN at fill; with both bands
        also ``"hvmhh"`` = hv - hh.
    valid : bool array of ``target.shape``
        Valid pixels of the target.
    """

    def __init__(self, ds, config, target, halo, height):
        self.config, self.height = config, height
        self._ds, self._target = ds, target
        self.r0 = max(0, target.lo - halo)
        r1 = min(height, target.hi + halo)
        # HH always: it holds the valid mask
        z = {b: _read_rows(ds, SAR_BANDS[b], self.r0, r1)
             for b in dict.fromkeys(("hh",) + config.sar_bands)}
        self.rows_valid = sar_valid(z["hh"])
        self.rows_db = {}
        for b in config.sar_bands:
            x = to_physical(SAR_BANDS[b], z[b])
            x[~self.rows_valid] = np.nan
            self.rows_db[b] = x
        if len(config.sar_bands) == 2:
            self.rows_db["hvmhh"] = self.rows_db["hv"] - self.rows_db["hh"]
        self.valid = self.at(self.rows_valid)

    def at(self, rows_array):
        """Values of an array of the rows read at the target pixels."""
        return self._target.take(rows_array, self.r0)

    def read(self, var):
        """A SAR-grid scene variable (as stored) at the target pixels."""
        return self._target.read(self._ds, var)

    @cached_property
    def ia(self):
        """Incidence angle (degrees) at the target; NaN at fill and where the scene has none.

        Read on first use: a group using it lists ``sar_incidenceangle`` in its variables.
        """
        ia_z = self.read(groups.IA_VAR)
        ia = to_physical(groups.IA_VAR, ia_z)
        ia[~self.valid | (ia_z == 0)] = np.nan
        return ia


class Planes:
    """The output planes of one group, handed out in order."""

    def __init__(self, out, group):
        self.out, self.group, self.n = out, group, 0

    def put(self, plane):
        """Write the next plane (an array of the target's shape, or a constant)."""
        self.claim(1)[0] = plane

    def claim(self, n):
        """The next ``n`` planes, to write into."""
        if self.n + n > len(self.out):
            raise AssertionError(f"{type(self.group).__name__} writes more than its "
                                 f"{len(self.out)} planes")  # a bug in the group
        view = self.out[self.n:self.n + n]
        self.n += n
        return view

    def check_full(self):
        if self.n != len(self.out):
            raise AssertionError(f"{type(self.group).__name__} wrote {self.n} of its "
                                 f"{len(self.out)} planes")  # a bug in the group


# --- where the features go: a row block or a set of points -----------------------
class Block:
    """Image rows ``lo:hi``, all columns; planes are (rows, W)."""

    def __init__(self, lo, hi, width):
        self.lo, self.hi, self.width = lo, hi, width
        self.shape = (hi - lo, width)

    def take(self, rows_array, r0):
        return rows_array[self.lo - r0:self.hi - r0]

    def read(self, ds, var):
        return _read_rows(ds, var, self.lo, self.hi)

    def box_stats(self, bands_db, centres, valid, scales, r0, height, out, buffers):
        """Context statistics (:func:`featurize.context.box_stats_rows`) into ``out``."""
        context.box_stats_rows(bands_db, centres, valid, scales, row0=self.lo,
                               row1=self.hi, row_off=r0, h_img=height, out=out,
                               buffers=buffers)

    def glcm(self, grey, t0, factor, **kwargs):
        """GLCM planes of texture-image rows ``t0:`` (``grey``) at the target pixels."""
        t = texture.glcm(grey, **kwargs)
        if factor == 1:
            return t[:, self.lo - t0:self.hi - t0]
        # each 80 m pixel takes the value of the texture pixel it lies in
        ti = np.arange(self.lo, self.hi) // factor
        tj = np.arange(self.width) // factor
        return t[:, ti - t0][:, :, tj]

    def bilinear(self, fields, out):
        """2 km fields interpolated to the target pixels, into ``out``."""
        radiometer.bilinear_rows(fields, self.lo, self.hi, self.width, out=out)


class Points:
    """Image pixels ``(rows[k], cols[k])`` within rows ``lo:hi``; planes are (N,)."""

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        self.lo, self.hi = int(rows.min()), int(rows.max()) + 1
        self.shape = rows.shape

    def take(self, rows_array, r0):
        return rows_array[self.rows - r0, self.cols]

    def read(self, ds, var):
        return self.take(_read_rows(ds, var, self.lo, self.hi), self.lo)

    def box_stats(self, bands_db, centres, valid, scales, r0, height, out, buffers):
        out[:] = context.box_stats_at(bands_db, centres, valid, scales, self.rows, self.cols,
                                      row_off=r0, h_img=height, buffers=buffers)

    def glcm(self, grey, t0, factor, **kwargs):
        return texture.glcm_at(grey, self.rows // factor - t0, self.cols // factor, **kwargs)

    def bilinear(self, fields, out):
        out[:] = radiometer.bilinear_points(fields, self.rows, self.cols)


class _Scene:
    """Per-scene state shared by all blocks or point groups."""

    def __init__(self, ds, config):
        self.ds, self.config = ds, config
        self.groups = groups.enabled_groups(config)
        self.H, self.W = _check_scene(ds, config, self.groups)
        self.halo = max((g.halo(config) for g in self.groups), default=0)
        self.sizes = [len(g.names(config)) for g in self.groups]
        self.n_features = n_features(config)
        self.states = [g.prepare(ds, config) for g in self.groups]

    def fill(self, target, out):
        """Write every feature of ``target`` into ``out`` (F, *target.shape)."""
        ctx = Inputs(self.ds, self.config, target, self.halo, self.H)
        k = 0
        for group, n, state in zip(self.groups, self.sizes, self.states):
            planes = Planes(out[k:k + n], group)
            group.fill(ctx, target, planes, state)
            planes.check_full()
            if group.nan_at_fill:
                np.copyto(planes.out, np.nan, where=~ctx.valid)
            k += n


# --- public ---------------------------------------------------------------------
def n_features(config: FeatureConfig | None = None) -> int:
    """Number of features ``F``."""
    return len(feature_groups(config))


def featurize_blocks(ds, config: FeatureConfig | None = None, *, block_rows: int = 256):
    """Feature stacks of a scene, one row block at a time.

    Parameters
    ----------
    ds : xarray.Dataset
        A scene as opened by :func:`scenes.reader.open_scene` (z-scored
        variables, SAR fill 0.0); may be lazy, only a block plus its halo is
        read at a time.
    config : FeatureConfig, optional
    block_rows : int
        Rows per block. The output does not depend on it.

    Returns
    -------
    iterator of (row0, row1, X)
        ``X`` is a new float32 array (n_features, row1 - row0, n_samples) in
        :func:`feature_names` order. The scene and arguments are checked
        before the iterator is returned.
    """
    config = FeatureConfig() if config is None else config
    block_rows = int(block_rows)
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    # validate now, not at the first next()
    return _blocks(_Scene(ds, config), block_rows)


def _blocks(scene, block_rows):
    for row0 in range(0, scene.H, block_rows):
        row1 = min(scene.H, row0 + block_rows)
        X = np.empty((scene.n_features, row1 - row0, scene.W), np.float32)
        scene.fill(Block(row0, row1, scene.W), X)
        yield row0, row1, X


def featurize_at(ds, config: FeatureConfig | None = None, rows=None, cols=None, *,
                 block_rows: int = 256):
    """Features at chosen pixels, equal to :func:`featurize_blocks` there.

    Parameters
    ----------
    ds : xarray.Dataset
    config : FeatureConfig, optional
    rows, cols : int arrays (N,)
        Pixel positions (any order, repeats allowed).
    block_rows : int
        Points are processed in groups spanning at most this many rows, each
        read with its halo; it bounds memory, not the result.

    Returns
    -------
    float32 array (N, n_features)
    """
    config = FeatureConfig() if config is None else config
    scene = _Scene(ds, config)
    rows = np.asarray(rows)
    cols = np.asarray(cols)
    if rows.ndim != 1 or rows.shape != cols.shape or not (
            np.issubdtype(rows.dtype, np.integer) and np.issubdtype(cols.dtype, np.integer)):
        raise ValueError("rows and cols must be 1-D integer arrays of the same length")
    if rows.size and (rows.min() < 0 or rows.max() >= scene.H or cols.min() < 0
                      or cols.max() >= scene.W):
        raise ValueError(f"points must lie inside the scene's {scene.H} x {scene.W} SAR grid")
    rows = rows.astype(np.int64)
    cols = cols.astype(np.int64)
    out = np.empty((rows.size, scene.n_features), np.float32)
    order = np.argsort(rows, kind="stable")
    starts = np.arange(0, scene.H, max(int(block_rows), 1))
    bounds = np.searchsorted(rows[order], np.r_[starts, scene.H])
    for g0, g1 in zip(bounds[:-1], bounds[1:]):
        if g0 == g1:
            continue
        idx = order[g0:g1]
        planes = np.empty((scene.n_features, idx.size), np.float32)
        scene.fill(Points(rows[idx], cols[idx]), planes)
        out[idx] = planes.T
    return out
