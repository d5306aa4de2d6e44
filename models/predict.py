"""Full-resolution SIC, SOD and FLOE maps of a scene from a trained model bundle.

Boosting costs about 50-100 ns per tree per pixel, far too much for the 26 M
pixels of a real scene. The charts are polygons tens of kilometres wide, so
the models run on a lattice every ``stride`` SAR pixels (features only there,
via :func:`featurize.featurize_at`); the lattice outputs (class
probabilities, or the SIC value of the regression model) are smoothed
(:mod:`models.smoothing`) and then interpolated bilinearly to every pixel,
fused with the class decision in one numba kernel, so that no
full-resolution probability map is ever held. ``stride=1`` predicts every
pixel (row blocks of :func:`featurize.featurize_blocks`); it needs memory
for the probabilities of the whole scene, so keep it to small scenes.

Map consistency follows the labels, where SIC 0 is exactly SOD = FLOE = 0:
one open-water decision holds for all three maps. Where it says water, all
three are 0; elsewhere SOD and FLOE take their most probable ice class (class
0 excluded). The water rule is chosen per model on validation scenes
(``water_rule`` in the manifest): ``"sic"``, the SIC map is 0, where a SIC
value (regression or expected value) below ``water_threshold`` is water and
others round to at least 1 (a regression on the class index blurs the ice
edge towards 1, so the plain 0.5 is not always best); or ``"classifiers"``,
the mean open-water probability of the SOD and FLOE models is at least 1/2,
and then SIC is 0 there and at least 1 elsewhere. Pixels without SAR data
(``nersc_sar_primary == 0``) are 0 in all maps (they are not scored).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from featurize import featurize_at, featurize_blocks
from scenes import contract as C

from . import _kernels, smoothing, stage2

#: Default lattice step in SAR pixels (12 x 80 m = 0.96 km, finer than the
#: 2 km AMSR2 grid and far finer than the chart polygons).
DEFAULT_STRIDE = 12
#: How the SIC map is made: regression value rounded, classifier argmax, or
#: classifier expected value rounded.
SIC_MODES = ("regression", "argmax", "expected")
#: Which model decides open water for all three maps (see the module docstring).
WATER_RULES = ("sic", "classifiers")
#: Model keys of a system: the SIC regressor, the SIC classifier, SOD, FLOE.
MODEL_KEYS = ("SIC_regression", "SIC_classification", "SOD", "FLOE")
#: SIC values below which "sic" calls open water, tried on validation scenes.
WATER_THRESHOLDS = (0.5, 0.75, 1.0, 1.5, 2.0, 2.5)
#: Lattice points featurized and predicted at a time (bounds memory).
MAX_POINTS = 1 << 18


def sic_model_key(sic_mode: str) -> str:
    """Which SIC model a SIC mode uses: the regressor, or the classifier."""
    if sic_mode not in SIC_MODES:
        raise ValueError(f"SIC mode must be one of {SIC_MODES}, got {sic_mode!r}")
    return "SIC_regression" if sic_mode == "regression" else "SIC_classification"


def bundle_models(bundle) -> dict:
    """A loaded bundle's three models by model key (see :data:`MODEL_KEYS`)."""
    return {sic_model_key(bundle.sic_mode): bundle.models["SIC"], "SOD": bundle.models["SOD"],
            "FLOE": bundle.models["FLOE"]}


@dataclass(frozen=True)
class Lattice:
    """Prediction points: every ``stride``-th row and column, centred in its block."""

    shape: tuple
    stride: int
    rows: np.ndarray
    cols: np.ndarray

    @property
    def lattice_shape(self):
        return (self.rows.size, self.cols.size)


def make_lattice(shape, stride: int) -> Lattice:
    """The lattice of a (H, W) scene: positions ``stride // 2 + k * stride``."""
    stride = int(stride)
    if stride < 1:
        raise ValueError(f"stride must be a positive number of SAR pixels, got {stride}")
    H, W = (int(n) for n in shape)
    if H < 1 or W < 1:
        raise ValueError(f"scene shape must be positive, got {shape}")
    off = min(stride // 2, H - 1, W - 1)
    rows = np.arange(min(off, H - 1), H, stride, dtype=np.int64)
    cols = np.arange(min(off, W - 1), W, stride, dtype=np.int64)
    return Lattice((H, W), stride, rows, cols)


def axis_weights(lat_pos, out_pos):
    """Bilinear weights along one axis: lattice index below each output and the fraction.

    Outputs before the first / after the last lattice position take its value.
    """
    lat_pos = np.asarray(lat_pos, dtype=np.float64)
    out_pos = np.asarray(out_pos, dtype=np.float64)
    i0 = np.clip(np.searchsorted(lat_pos, out_pos, side="right") - 1, 0, lat_pos.size - 1)
    i1 = np.minimum(i0 + 1, lat_pos.size - 1)
    gap = lat_pos[i1] - lat_pos[i0]
    frac = np.where(gap > 0, (out_pos - lat_pos[i0]) / np.where(gap > 0, gap, 1), 0.0)
    return i0.astype(np.int64), np.clip(frac, 0, 1).astype(np.float32)


def _sar_shape(ds):
    if C.SAR_VARS[0] not in ds.variables:
        raise ValueError(f"scene lacks {C.SAR_VARS[0]}; open a train or test scene "
                         "(scenes.reader.open_scene)")
    var = ds[C.SAR_VARS[0]]
    if var.ndim != 2:
        raise ValueError(f"{C.SAR_VARS[0]} must be 2-D {C.SAR_DIMS}, got dims {var.dims}")
    return tuple(int(n) for n in var.shape)


def scan_scene(ds, lattice: Lattice, *, composite: bool = False, out_rows=None,
               out_cols=None, chunk_rows: int = 1024):
    """Valid masks at the output pixels and on the lattice, and the SLIC composite.

    Reads the SAR in row chunks. The composite holds the means of the valid
    HH and HV (z-scores) over each lattice point's ``stride x stride`` block.

    Returns
    -------
    valid_out : bool (len(out_rows), len(out_cols))
    valid_l : bool lattice shape
    comp : float32 (2, Hl, Wl) or None
    """
    H, W = lattice.shape
    s = lattice.stride
    out_rows = np.arange(H) if out_rows is None else np.asarray(out_rows, dtype=np.int64)
    out_cols = np.arange(W) if out_cols is None else np.asarray(out_cols, dtype=np.int64)
    Hl, Wl = lattice.lattice_shape
    valid_out = np.zeros((out_rows.size, out_cols.size), bool)
    valid_l = np.zeros((Hl, Wl), bool)
    comp = np.zeros((2, Hl, Wl), np.float32) if composite else None
    bands = C.SAR_VARS if composite else C.SAR_VARS[:1]
    chunk = max(s, (int(chunk_rows) // s) * s)
    col_starts = np.minimum(np.arange(Wl) * s, W - 1)
    for r0 in range(0, H, chunk):
        r1 = min(H, r0 + chunk)
        sl = {C.SAR_DIMS[0]: slice(r0, r1)}
        hh = np.asarray(ds[C.SAR_VARS[0]].isel(sl).values)
        valid = C.sar_valid(hh)
        sel = (out_rows >= r0) & (out_rows < r1)
        if sel.any():
            valid_out[sel] = valid[out_rows[sel] - r0][:, out_cols]
        lsel = (lattice.rows >= r0) & (lattice.rows < r1)
        if lsel.any():
            valid_l[lsel] = valid[lattice.rows[lsel] - r0][:, lattice.cols]
        if composite:
            # Lattice block i covers rows [i*s, (i+1)*s); chunks start on block edges.
            blocks = np.arange(r0 // s, min(Hl, -(-r1 // s)))
            if blocks.size:
                row_starts = blocks * s - r0
                count = np.add.reduceat(np.add.reduceat(valid.astype(np.float32), row_starts,
                                                        axis=0), col_starts, axis=1)
                for b, var in enumerate(bands):
                    x = hh if b == 0 else np.asarray(ds[var].isel(sl).values)
                    x = np.where(valid, x, 0).astype(np.float32)
                    total = np.add.reduceat(np.add.reduceat(x, row_starts, axis=0),
                                            col_starts, axis=1)
                    comp[b, blocks] = np.where(count > 0, total / np.maximum(count, 1), 0)
    return valid_out, valid_l, comp


def empty_outputs(models, lattice_shape) -> dict:
    """Zeroed lattice output arrays for ``models`` (see :func:`lattice_predict`)."""
    Hl, Wl = lattice_shape
    out = {}
    for key in models:
        if key == "SIC_regression":
            out["SIC_value"] = np.zeros((Hl, Wl), np.float32)
        elif key in ("SIC_classification", "SOD", "FLOE"):
            chart = key.split("_")[0]
            out[f"{chart}_proba"] = np.zeros((C.N_CLASSES[chart], Hl, Wl), np.float32)
        else:
            raise ValueError(f"unknown model key {key!r}")
    return out


def predict_points(models, X, ii, jj, out) -> None:
    """Write the predictions of ``models`` for features ``X`` at lattice points (ii, jj)."""
    for key, est in models.items():
        if key == "SIC_regression":
            out["SIC_value"][ii, jj] = est.predict(X)
        else:
            out[f"{key.split('_')[0]}_proba"][:, ii, jj] = est.predict_proba(X).T


def lattice_predict(ds, config, models: dict, lattice: Lattice, valid_l, *,
                    block_rows: int = 256, timings=None) -> dict:
    """Model outputs on the lattice (0 at invalid lattice points).

    Parameters
    ----------
    models : dict
        Keys ``"SIC_regression"`` (an :class:`IceRegressor`),
        ``"SIC_classification"``, ``"SOD"``, ``"FLOE"`` (classifiers); any subset.

    Returns
    -------
    dict
        ``"SIC_value"`` float32 (Hl, Wl) from the regressor; ``"SIC_proba"``,
        ``"SOD_proba"``, ``"FLOE_proba"`` float32 (K, Hl, Wl). ``timings``
        (a dict), if given, gets the seconds spent on ``features`` and ``boosting``.
    """
    out = empty_outputs(models, lattice.lattice_shape)
    spent = {"features": 0.0, "boosting": 0.0}
    if lattice.stride == 1:
        blocks = featurize_blocks(ds, config, block_rows=block_rows)
        chunks = ((row0, X[:, valid_l[row0:row1]].T, valid_l[row0:row1])
                  for row0, row1, X in blocks)
    else:
        ii_all, jj_all = np.nonzero(valid_l)
        chunks = ((a, featurize_at(ds, config, lattice.rows[ii_all[a:a + MAX_POINTS]],
                                   lattice.cols[jj_all[a:a + MAX_POINTS]],
                                   block_rows=block_rows), None)
                  for a in range(0, ii_all.size, MAX_POINTS))
    t0 = time.perf_counter()
    for start, X, v in chunks:
        t1 = time.perf_counter()
        spent["features"] += t1 - t0
        if v is None:
            ii, jj = ii_all[start:start + MAX_POINTS], jj_all[start:start + MAX_POINTS]
        else:
            ii, jj = np.nonzero(v)
            ii = ii + start
        if ii.size:
            predict_points(models, np.ascontiguousarray(X), ii, jj, out)
        t0 = time.perf_counter()
        spent["boosting"] += t0 - t1
    if timings is not None:
        timings.update(spent)
    return out


class Renderer:
    """Class maps at chosen output pixels from one scene's lattice outputs.

    Holds what several smoothing settings share (interpolation weights,
    superpixels, the nearest valid lattice point of each invalid one, the
    last smoothing of each array), so that validation can try many cheaply.
    ``lat`` must not change while the Renderer is used. ``shared`` (a dict,
    optional) keeps the superpixels, nearest points and Gaussian-filtered
    masks for other Renderers of the same scene, lattice and composite (other
    outputs of the same scene).
    """

    def __init__(self, lat: dict, lattice: Lattice, valid_l, valid_out, out_rows=None,
                 out_cols=None, composite=None, shared: dict | None = None):
        H, W = lattice.shape
        self.lat = lat
        self.lattice = lattice
        self.valid_l = valid_l
        self.valid_out = np.ascontiguousarray(valid_out, dtype=bool)
        out_rows = np.arange(H) if out_rows is None else out_rows
        out_cols = np.arange(W) if out_cols is None else out_cols
        self.ri, self.ra = axis_weights(lattice.rows, out_rows)
        self.ci, self.ca = axis_weights(lattice.cols, out_cols)
        self.composite = composite
        self._shared = {} if shared is None else shared
        self._segments = self._shared.setdefault("segments", {})
        # the last smoothing of each lattice array (``lat`` must not change afterwards):
        # validation tries every water rule with the same smoothing, and the rules differ
        # only in the gate applied after it
        self._smoothed = {}

    def _smooth(self, a, spec, key=None):
        spec = smoothing.check_spec(spec)
        label = smoothing.spec_label(spec)
        if spec["method"] == "none":
            key = None  # nothing worth keeping
        if key is not None and key in self._smoothed and self._smoothed[key][0] == label:
            return self._smoothed[key][1]
        segments = None
        if spec["method"] == "slic":
            size = spec["segment_px"]
            if size not in self._segments:
                if self.composite is None:
                    raise ValueError("slic smoothing needs the SAR composite; scan the "
                                     "scene with composite=True")
                self._segments[size] = smoothing.superpixels(
                    self.composite, self.valid_l, size / self.lattice.stride)
            segments = self._segments[size]
        a = smoothing.smooth(a, self.valid_l, spec, stride=self.lattice.stride,
                             segments=segments, cache=self._shared.setdefault("gaussian", {}))
        if "nearest" not in self._shared:
            self._shared["nearest"] = smoothing.nearest_valid(self.valid_l)
        a = smoothing.fill_invalid(a, self.valid_l, self._shared["nearest"])
        if key is not None:
            self._smoothed[key] = (label, a)
        return a

    def _argmax(self, P, kmin=0, gate=None):
        out = np.empty(self.valid_out.shape, np.uint8)
        P = np.ascontiguousarray(np.moveaxis(P, 0, -1), dtype=np.float32)
        g = gate if gate is not None else np.zeros((1, 1), np.uint8)
        _kernels.upsample_argmax(P, self.ri, self.ra, self.ci, self.ca, kmin, g,
                                 gate is not None, self.valid_out, out)
        return out

    def _round(self, V, vmax, t0=0.5):
        out = np.empty(self.valid_out.shape, np.uint8)
        _kernels.upsample_round(np.ascontiguousarray(V, dtype=np.float32), self.ri, self.ra,
                                self.ci, self.ca, vmax, float(t0), self.valid_out, out)
        return out

    def sic(self, mode: str, spec=None, water_threshold: float = 0.5) -> np.ndarray:
        """SIC map (uint8) by ``mode`` (see ``SIC_MODES``) after smoothing ``spec``.

        A value below ``water_threshold`` (regression, expected value) is open
        water, 0; others round to the nearest class, at least 1.
        """
        vmax = C.N_CLASSES["SIC"] - 1
        if mode == "regression":
            return self._round(self._smooth(self.lat["SIC_value"], spec, "SIC_value"), vmax,
                               water_threshold)
        if mode not in SIC_MODES:
            raise ValueError(f"SIC mode must be one of {SIC_MODES}, got {mode!r}")
        P = self._smooth(self.lat["SIC_proba"], spec, "SIC_proba")
        if mode == "argmax":
            return self._argmax(P)
        k = np.arange(P.shape[0], dtype=np.float32)[:, None, None]
        return self._round((P * k).sum(axis=0), vmax, water_threshold)

    def ice(self, chart: str, spec, sic_map) -> np.ndarray:
        """SOD or FLOE map: 0 where ``sic_map`` is 0, else the best ice class.

        ``sic_map=None`` gives the best ice class everywhere (valid pixels);
        :meth:`gate` then makes any SIC map's version of it.
        """
        if sic_map is not None and (sic_map.shape != self.valid_out.shape
                                    or sic_map.dtype != np.uint8):
            raise ValueError("sic_map must be the uint8 SIC map of the same output pixels")
        P = self._smooth(self.lat[f"{chart}_proba"], spec, f"{chart}_proba")
        return self._argmax(P, kmin=1, gate=sic_map)

    @staticmethod
    def gate(ice_map, sic_map) -> np.ndarray:
        """``ice(chart, spec, sic_map)`` from ``ice(chart, spec, None)``: 0 where SIC is 0."""
        return np.where(sic_map == 0, np.uint8(0), ice_map)

    def water_sic(self, sic_map, spec) -> np.ndarray:
        """``sic_map`` under the ``"classifiers"`` water rule.

        Water where the mean open-water probability of the SOD and FLOE
        models (smoothed by ``spec``) is at least 1/2: SIC 0 there and at
        least 1 elsewhere.
        """
        pw = 0.5 * (self.lat["SOD_proba"][0] + self.lat["FLOE_proba"][0])
        water = self._round(self._smooth(pw, spec, "water"), 1) == 1
        out = np.maximum(sic_map, 1)
        out[water | ~self.valid_out] = 0
        return out

    def maps(self, sic_mode, specs, water_rule="sic", water_threshold=0.5) -> dict:
        """The three consistent maps (see the module docstring)."""
        if water_rule not in WATER_RULES:
            raise ValueError(f"water_rule must be one of {WATER_RULES}, got {water_rule!r}")
        sic = self.sic(sic_mode, specs.get("SIC"), water_threshold)
        if water_rule == "classifiers":
            sic = self.water_sic(sic, specs.get("SIC"))
        return {"SIC": sic, "SOD": self.ice("SOD", specs.get("SOD"), sic),
                "FLOE": self.ice("FLOE", specs.get("FLOE"), sic)}

    def _pick(self, P, classes):
        out = np.empty(self.valid_out.shape, np.uint8)
        P = np.ascontiguousarray(np.moveaxis(P, 0, -1), dtype=np.float32)
        _kernels.upsample_pick(P, self.ri, self.ra, self.ci, self.ca,
                               np.ascontiguousarray(classes, dtype=np.uint8), self.valid_out, out)
        return out

    def confidence(self, maps: dict, sic_mode: str, specs) -> dict:
        """How sure the models are of ``maps`` (from :meth:`maps`), uint8 0..100 per pixel.

        ``"SOD_confidence"`` / ``"FLOE_confidence"`` (and ``"SIC_confidence"``
        for a SIC classifier): the model's probability, in percent, of the
        class each pixel got, after the same smoothing as the maps; where the
        water rule made a pixel water, that is the model's own open-water
        probability, so a low value there means the models disagree. The SIC
        regression has no probabilities: ``"SIC_spread"`` is instead the
        standard deviation, in % concentration, of its unsmoothed lattice
        values within :data:`SPREAD_RADIUS` lattice steps (high at edges and
        where the model is noisy). Pixels without SAR data are 255 (no data,
        as in the products). The maps are not changed.
        """
        out = {}
        for chart in ("SOD", "FLOE"):
            P = self._smooth(self.lat[f"{chart}_proba"], specs.get(chart))
            out[f"{chart}_confidence"] = self._pick(P, maps[chart])
        if sic_mode == "regression":
            spread = np.empty(self.valid_out.shape, np.uint8)
            _kernels.upsample_percent(lattice_spread(self.lat["SIC_value"], self.valid_l),
                                      self.ri, self.ra, self.ci, self.ca, self.valid_out, spread)
            out["SIC_spread"] = spread
        else:
            P = self._smooth(self.lat["SIC_proba"], specs.get("SIC"))
            out["SIC_confidence"] = self._pick(P, maps["SIC"])
        return out


#: Half-width, in lattice steps, of the window of the SIC regression's spread.
SPREAD_RADIUS = 2


def lattice_spread(values, valid_l) -> np.ndarray:
    """Standard deviation (% concentration, float32) of valid lattice SIC values (class
    units) in the ``(2 SPREAD_RADIUS + 1)``-point square around each lattice point."""
    w = valid_l.astype(np.float64)
    v = np.where(valid_l, values, 0).astype(np.float64)
    size = 2 * SPREAD_RADIUS + 1
    n = ndimage.uniform_filter(w, size, mode="nearest")
    m1 = ndimage.uniform_filter(v, size, mode="nearest") / np.maximum(n, 1e-9)
    m2 = ndimage.uniform_filter(v * v, size, mode="nearest") / np.maximum(n, 1e-9)
    return (10.0 * np.sqrt(np.maximum(m2 - m1 * m1, 0))).astype(np.float32)


def predict_scene(ds, bundle, *, stride=None, block_rows: int = 256, smoothing=True,
                  timings=None, confidence: bool = False, system=None) -> dict:
    """SIC, SOD and FLOE maps of one scene.

    Parameters
    ----------
    ds : xarray.Dataset
        A train or test scene from :func:`scenes.reader.open_scene`.
    bundle : models.persistence.ModelBundle
        A loaded model folder (:func:`models.persistence.load_model`).
    stride : int, optional
        Lattice step in SAR pixels (default: the bundle's, chosen when
        training); 1 predicts every pixel (small scenes only).
    block_rows : int
        Rows per feature block; bounds memory, not the result.
    smoothing : bool
        Apply the bundle's smoothing (chosen on validation scenes).
    timings : dict, optional
        Filled with the seconds of each phase (``scan``, ``features``,
        ``boosting``, ``render``) and the number of ``lattice_points``.
    confidence : bool
        Also return the per-pixel confidence layers of
        :meth:`Renderer.confidence` (the maps are the same either way).
    system : str, optional
        Which system makes the maps (:data:`models.stage2.SYSTEMS`): default
        the bundle's chosen one (``"stage1"`` for a folder without a second
        stage). ``"stage1"`` is the per-pixel models with the smoothing
        chosen for them, as before the second stage existed; the others need
        the folder's second stage (for comparisons, e.g. ``benchmarks/bench_regions.py``).

    Returns
    -------
    dict chart -> uint8 (H, W)
        Plus, with ``confidence``, ``"SOD_confidence"``, ``"FLOE_confidence"``
        and ``"SIC_confidence"`` or ``"SIC_spread"`` (uint8 0..100, 255 without SAR data).
    """
    clock = time.perf_counter
    t0 = clock()
    st2 = getattr(bundle, "stage2", None)
    system = (st2.system if st2 is not None else "stage1") if system is None else system
    if system != "stage1" and (st2 is None or system not in st2.systems):
        have = list(st2.systems) if st2 is not None else ["stage1"]
        raise ValueError(f"system {system!r} is not in model {bundle.model_dir} (it has {have}); "
                         "train with the second stage to get the others")
    settings = st2.systems[system] if system != "stage1" else None
    chosen = bundle.smoothing if settings is None else settings["smoothing"]
    specs = {c: (chosen.get(c) if smoothing else None) for c in C.LABEL_CHARTS}
    need_comp = settings is not None or any(smoothing_spec_is_slic(s) for s in specs.values())
    shape = _sar_shape(ds)
    lattice = make_lattice(shape, bundle.stride if stride is None else stride)
    valid_out, valid_l, comp = scan_scene(ds, lattice, composite=need_comp)
    t1 = clock()
    models = bundle_models(bundle)
    phases = {}
    lat = lattice_predict(ds, bundle.feature_config, models, lattice, valid_l,
                          block_rows=block_rows, timings=phases)
    t2 = clock()
    sic_mode, rule, threshold = bundle.sic_mode, bundle.water_rule, bundle.water_threshold
    if settings is not None:
        # the second stage: stage-2 outputs where the system has them, the region vote
        cols = stage2.input_columns(st2.spec, bundle.feature_names)
        inputs = (stage2.lattice_inputs(ds, bundle.feature_config, lattice, valid_l,
                                        bundle.feature_names, cols) if cols else None)
        lat = stage2.final_outputs(
            lat, valid_l, comp, lattice.stride, spec=st2.spec,
            models=st2.models if system.startswith("stage2") else {},
            region_level=settings["region_level"] if smoothing else None, inputs=inputs)
        sic_mode, rule, threshold = (settings["sic_mode"], settings["water_rule"],
                                     settings["water_threshold"])
        phases["stage2"] = clock() - t2
        t2 = clock()
    r = Renderer(lat, lattice, valid_l, valid_out, composite=comp)
    maps = r.maps(sic_mode, specs, rule, threshold)
    if confidence:
        maps.update(r.confidence(maps, sic_mode, specs))
    if timings is not None:
        timings.update(scan=t1 - t0, render=clock() - t2, lattice_points=int(valid_l.sum()),
                       **phases)
    return maps


def smoothing_spec_is_slic(spec) -> bool:
    return spec is not None and smoothing.check_spec(spec)["method"] == "slic"
