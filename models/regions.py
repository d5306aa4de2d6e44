"""Chart-scale regions on the prediction lattice: a merge hierarchy of homogeneous areas.

An ice chart is a set of polygons with one egg code each; the analyst's SIC
is the polygon's mean concentration, not what one 80 m pixel shows. The
per-pixel models cannot see a polygon, so their maps are re-decided over
regions that stand in for the polygons: areas of the lattice where the
stage-1 outputs (class probabilities, SIC value) and the SAR look alike.

The regions come from a spatially constrained Ward agglomeration on the
region adjacency graph of the lattice (4-neighbours, valid cells only, so
regions never cross no-data or land): every valid cell starts as its own
region; the adjacent pair whose union adds least to the within-region sum
of squares,

    cost(a, b) = n_a n_b / (n_a + n_b) * || mean_a - mean_b ||^2,

is merged, again and again, while the cheapest adjacent pair costs less
than a threshold. Thresholds in increasing order give nested partitions, a
hierarchy whose levels serve as features of the second stage
(:mod:`models.stage2`) and for a last region vote. Why Ward: two regions
of the same distribution cost about the noise variance to merge whatever
their size (their means converge), while two regions whose means differ by
``d`` cost about ``n d^2``, so large homogeneous areas grow and real
boundaries between large areas survive; a threshold is then a test of
"same area", not a size.

The greedy merge is exact (a heap with lazy deletion; ties broken by the
smaller region ids, a region's id is its first cell in raster order), so
the same inputs give the same regions on any machine. ``tests/naive.py``
holds the slow, obvious version it is tested against.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from scipy import ndimage

__all__ = ["lattice_graph", "merge_levels", "region_stats", "region_means", "boundary_distance",
           "relabel"]


def lattice_graph(valid):
    """Nodes and 4-neighbour edges of the valid cells of a (H, W) lattice.

    Returns
    -------
    node : int64 (H, W)
        Node id of each valid cell (raster order), -1 elsewhere.
    ea, eb : int64 (E,)
        Edges ``ea < eb`` between valid right and lower neighbours, sorted.
    """
    valid = np.asarray(valid, dtype=bool)
    if valid.ndim != 2:
        raise ValueError(f"valid must be a 2-D lattice mask, got shape {valid.shape}")
    node = np.full(valid.shape, -1, np.int64)
    node[valid] = np.arange(int(valid.sum()), dtype=np.int64)
    right = valid[:, :-1] & valid[:, 1:]
    down = valid[:-1, :] & valid[1:, :]
    ea = np.concatenate([node[:, :-1][right], node[:-1, :][down]])
    eb = np.concatenate([node[:, 1:][right], node[1:, :][down]])
    order = np.lexsort((eb, ea))
    return node, ea[order], eb[order]


@njit(cache=True)
def _cost(S, cnt, a, b):
    """Ward cost of merging regions a and b (sums ``S``, counts ``cnt``)."""
    na = cnt[a]
    nb = cnt[b]
    d = 0.0
    for k in range(S.shape[1]):
        x = S[a, k] / na - S[b, k] / nb
        d += x * x
    return na * nb / (na + nb) * d


@njit(cache=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


# The heap: parallel arrays (cost, a, b, version of a, version of b), ordered by
# (cost, a, b), so that equal costs are merged in a fixed order.
@njit(cache=True)
def _less(hc, ha, hb, i, j):
    if hc[i] != hc[j]:
        return hc[i] < hc[j]
    if ha[i] != ha[j]:
        return ha[i] < ha[j]
    return hb[i] < hb[j]


@njit(cache=True)
def _swap(hc, ha, hb, hva, hvb, i, j):
    hc[i], hc[j] = hc[j], hc[i]
    ha[i], ha[j] = ha[j], ha[i]
    hb[i], hb[j] = hb[j], hb[i]
    hva[i], hva[j] = hva[j], hva[i]
    hvb[i], hvb[j] = hvb[j], hvb[i]


@njit(cache=True)
def _sift_down(hc, ha, hb, hva, hvb, i, size):
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        m = left
        if left + 1 < size and _less(hc, ha, hb, left + 1, left):
            m = left + 1
        if not _less(hc, ha, hb, m, i):
            return
        _swap(hc, ha, hb, hva, hvb, i, m)
        i = m


@njit(cache=True)
def _sift_up(hc, ha, hb, hva, hvb, i):
    while i > 0:
        p = (i - 1) // 2
        if not _less(hc, ha, hb, i, p):
            return
        _swap(hc, ha, hb, hva, hvb, i, p)
        i = p


@njit(cache=True)
def _agglomerate(X, ea, eb, thresholds):
    """Greedy Ward merging of nodes ``X`` (n, d) over edges ``ea < eb``.

    Returns the root (smallest node id) of each node's region after merging
    up to each threshold, int64 (len(thresholds), n).
    """
    n, d = X.shape
    L = thresholds.size
    out = np.empty((L, n), np.int64)
    S = X.copy()
    cnt = np.ones(n, np.float64)
    parent = np.arange(n)
    ver = np.zeros(n, np.int64)
    mark = np.full(n, -1, np.int64)
    m = ea.size
    # neighbours: one singly linked list per region in a pool of 2m entries;
    # merging splices two lists, then compacts them to live, distinct roots
    tgt = np.empty(2 * m, np.int64)
    nxt = np.full(2 * m, -1, np.int64)
    head = np.full(n, -1, np.int64)
    tail = np.full(n, -1, np.int64)
    for e in range(m):
        for side in range(2):
            src = ea[e] if side == 0 else eb[e]
            k = 2 * e + side
            tgt[k] = eb[e] if side == 0 else ea[e]
            if head[src] < 0:
                head[src] = k
            else:
                nxt[tail[src]] = k
            tail[src] = k
    room = max(16, 2 * m)
    hc = np.empty(room, np.float64)
    ha = np.empty(room, np.int64)
    hb = np.empty(room, np.int64)
    hva = np.zeros(room, np.int64)
    hvb = np.zeros(room, np.int64)
    for e in range(m):
        hc[e] = _cost(S, cnt, ea[e], eb[e])
        ha[e] = ea[e]
        hb[e] = eb[e]
    size = m
    for i in range(size // 2 - 1, -1, -1):
        _sift_down(hc, ha, hb, hva, hvb, i, size)
    level = 0
    while level < L:
        # drop stale entries (a side merged away, or changed since the entry was made)
        while size > 0:
            a = ha[0]
            b = hb[0]
            if parent[a] == a and parent[b] == b and ver[a] == hva[0] and ver[b] == hvb[0]:
                break
            size -= 1
            _swap(hc, ha, hb, hva, hvb, 0, size)
            _sift_down(hc, ha, hb, hva, hvb, 0, size)
        if size == 0 or hc[0] >= thresholds[level]:
            for i in range(n):
                out[level, i] = _find(parent, i)
            level += 1
            continue
        a = ha[0]
        b = hb[0]
        size -= 1
        _swap(hc, ha, hb, hva, hvb, 0, size)
        _sift_down(hc, ha, hb, hva, hvb, 0, size)
        # a < b: the merged region keeps the smaller id (its first cell in raster order)
        parent[b] = a
        cnt[a] += cnt[b]
        for k in range(d):
            S[a, k] += S[b, k]
        ver[a] += 1
        ver[b] += 1
        if head[b] >= 0:
            if head[a] < 0:
                head[a] = head[b]
            else:
                nxt[tail[a]] = head[b]
            tail[a] = tail[b]
        head[b] = -1
        tail[b] = -1
        mark[a] = a
        prev = -1
        k = head[a]
        while k >= 0:
            r = _find(parent, tgt[k])
            nk = nxt[k]
            if mark[r] == a:  # the region itself, or a neighbour already listed
                if prev < 0:
                    head[a] = nk
                else:
                    nxt[prev] = nk
            else:
                mark[r] = a
                tgt[k] = r
                prev = k
                lo = min(a, r)
                hi = max(a, r)
                if size == room:
                    room *= 2
                    hc = np.concatenate((hc, np.empty(room - size, np.float64)))
                    ha = np.concatenate((ha, np.empty(room - size, np.int64)))
                    hb = np.concatenate((hb, np.empty(room - size, np.int64)))
                    hva = np.concatenate((hva, np.empty(room - size, np.int64)))
                    hvb = np.concatenate((hvb, np.empty(room - size, np.int64)))
                hc[size] = _cost(S, cnt, lo, hi)
                ha[size] = lo
                hb[size] = hi
                hva[size] = ver[lo]
                hvb[size] = ver[hi]
                _sift_up(hc, ha, hb, hva, hvb, size)
                size += 1
            k = nk
        tail[a] = prev
        mark[a] = -1
        k = head[a]
        while k >= 0:
            mark[tgt[k]] = -1
            k = nxt[k]
    return out


def relabel(labels, valid):
    """Labels 1..k numbered by each region's first cell in raster order; 0 where not valid."""
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, np.int32)
    v = np.asarray(valid, dtype=bool)
    if v.any():
        _, first, inv = np.unique(labels[v], return_index=True, return_inverse=True)
        rank = np.empty(first.size, np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(first.size)
        out[v] = rank[inv.ravel()] + 1
    return out


def merge_levels(features, valid, thresholds) -> np.ndarray:
    """Nested regions of a lattice: greedy Ward merging up to each threshold.

    Parameters
    ----------
    features : float array (d, H, W)
        What regions should be homogeneous in, already scaled (a unit of each
        channel is what counts as a real difference); NaN is read as 0.
    valid : bool (H, W)
        Cells that take part (SAR data); others get label 0 and separate regions.
    thresholds : sequence of float
        Increasing Ward costs; level ``k`` merges while the cheapest adjacent
        pair costs less than ``thresholds[k]``.

    Returns
    -------
    int32 (len(thresholds), H, W)
        Region labels ``1..k`` per level (0: not valid); each level's regions
        are unions of the previous level's.
    """
    F = np.asarray(features, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if F.ndim != 3 or F.shape[1:] != valid.shape:
        raise ValueError(f"features must be (d, H, W) over the lattice {valid.shape}, "
                         f"got {F.shape}")
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    if t.size == 0 or not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0) or t[0] < 0:
        raise ValueError(f"thresholds must be finite, >= 0 and increasing, got {t.tolist()}")
    out = np.zeros((t.size,) + valid.shape, np.int32)
    if not valid.any():
        return out
    node, ea, eb = lattice_graph(valid)
    X = np.ascontiguousarray(np.nan_to_num(F[:, valid].T, nan=0.0, posinf=0.0, neginf=0.0))
    roots = _agglomerate(X, ea, eb, t)
    for k in range(t.size):
        lab = np.zeros(valid.shape, np.int64)
        lab[valid] = roots[k]
        out[k] = relabel(lab, valid)
    return out


def region_stats(labels, values, *, std: bool = False):
    """Per-region count, mean (and std) of ``values`` (c, H, W) over labels (H, W) > 0.

    Returns ``count`` float64 (k + 1,), ``mean`` float64 (c, k + 1) and, with
    ``std``, the population std (c, k + 1); index 0 (no region) holds zeros.
    """
    labels = np.asarray(labels)
    V = np.asarray(values, dtype=np.float64)
    if V.ndim == 2:
        V = V[None]
    use = labels > 0
    lab = labels[use].astype(np.int64)
    k = int(labels.max()) + 1 if labels.size else 1
    cnt = np.bincount(lab, minlength=k).astype(np.float64)
    den = np.maximum(cnt, 1)
    mean = np.zeros((V.shape[0], k))
    sd = np.zeros((V.shape[0], k)) if std else None
    for c in range(V.shape[0]):
        x = V[c][use]
        mean[c] = np.bincount(lab, weights=x, minlength=k) / den
        if std:
            m2 = np.bincount(lab, weights=x * x, minlength=k) / den
            sd[c] = np.sqrt(np.maximum(m2 - mean[c] ** 2, 0))
    return (cnt, mean, sd) if std else (cnt, mean)


def region_means(labels, values) -> np.ndarray:
    """``values`` (c, H, W) or (H, W) replaced by their mean over each region (float32).

    Cells with label 0 keep their values.
    """
    V = np.asarray(values, dtype=np.float32)
    single = V.ndim == 2
    V3 = V[None] if single else V
    _, mean = region_stats(labels, V3)
    out = V3.copy()
    use = np.asarray(labels) > 0
    lab = np.asarray(labels)[use]
    for c in range(V3.shape[0]):
        out[c][use] = mean[c][lab]
    return out[0] if single else out


def boundary_distance(labels) -> np.ndarray:
    """Distance (lattice cells, float32) of each cell to the nearest cell of another
    region or outside any region (label 0); 0 outside regions."""
    labels = np.asarray(labels)
    edge = labels == 0
    diff_r = labels[:, 1:] != labels[:, :-1]
    diff_d = labels[1:, :] != labels[:-1, :]
    inner = ~edge
    # a cell next to a different label is on the boundary (distance 1 from the other side)
    b = np.zeros(labels.shape, bool)
    b[:, 1:] |= diff_r
    b[:, :-1] |= diff_r
    b[1:, :] |= diff_d
    b[:-1, :] |= diff_d
    b &= inner
    if not inner.any():
        return np.zeros(labels.shape, np.float32)
    seeds = edge | b
    if not seeds.any():  # one region covering the whole lattice
        return np.full(labels.shape, float(max(labels.shape)), np.float32)
    # boundary cells are 1 cell from the other side, their inner neighbours 2, ...
    d = ndimage.distance_transform_edt(~seeds).astype(np.float32) + 1
    d[edge] = 0
    return d
