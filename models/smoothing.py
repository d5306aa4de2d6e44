"""Spatial smoothing of per-pixel model outputs before the final class decision.

The labels are ice-chart polygons tens of kilometres wide, while per-pixel
predictions flicker with the SAR speckle. Smoothing the class probabilities
(or the SIC value) over a neighbourhood before the argmax / rounding brings the
maps closer to the charts. Two methods, both aware of valid pixels:

- ``"gaussian"``: normalised convolution, ``G * (p m) / G * m`` with ``m`` the
  valid mask, so fill pixels neither contribute nor dilute;
- ``"slic"``: mean over SLIC superpixels of an HH/HV composite, which keeps
  the boundaries the SAR shows (ice edges, floe-size transitions).

Everything runs on the prediction lattice (see :mod:`models.predict`); sizes
are given in 80 m SAR pixels and converted with the lattice stride. A spec is
a small dict, stored as JSON in the model manifest:
``{"method": "none"}``, ``{"method": "gaussian", "sigma_px": 25.0}`` or
``{"method": "slic", "segment_px": 125.0}``.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

METHODS = ("none", "gaussian", "slic")
#: Candidate specs tried on the validation scenes (sizes in SAR pixels:
#: 25 px = 2 km, the AMSR2 grid; 125 px = 10 km, a small chart polygon).
DEFAULT_GRID = (
    {"method": "none"},
    {"method": "gaussian", "sigma_px": 12.5},
    {"method": "gaussian", "sigma_px": 25.0},
    {"method": "gaussian", "sigma_px": 50.0},
    {"method": "gaussian", "sigma_px": 100.0},
    {"method": "slic", "segment_px": 62.5},
    {"method": "slic", "segment_px": 125.0},
)


def check_spec(spec) -> dict:
    """Validated copy of a smoothing spec (ValueError naming the problem)."""
    if spec is None:
        return {"method": "none"}
    if not isinstance(spec, dict) or spec.get("method") not in METHODS:
        raise ValueError(f"smoothing spec must be a dict with method in {METHODS}, got {spec!r}")
    method = spec["method"]
    need = {"none": (), "gaussian": ("sigma_px",), "slic": ("segment_px",)}[method]
    extra = sorted(set(spec) - {"method", *need})
    if extra:
        raise ValueError(f"smoothing spec {spec!r}: unknown keys {extra}")
    out = {"method": method}
    for key in need:
        value = spec.get(key)
        if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
            raise ValueError(f"smoothing spec {spec!r}: {key} must be a positive number")
        out[key] = float(value)
    return out


def spec_label(spec) -> str:
    """Short name of a spec, e.g. ``gaussian(sigma_px=25)``."""
    spec = check_spec(spec)
    args = ",".join(f"{k}={v:g}" for k, v in spec.items() if k != "method")
    return f"{spec['method']}({args})" if args else spec["method"]


def _stack(a):
    a = np.asarray(a)
    if a.ndim == 2:
        return a[None], True
    if a.ndim == 3:
        return a, False
    raise ValueError(f"expected an (H, W) or (K, H, W) array, got shape {a.shape}")


def _check_valid(valid, shape):
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != shape:
        raise ValueError(f"valid mask has shape {valid.shape}, the maps {shape}")
    return valid


def gaussian_smooth(a, valid, sigma: float, *, cache: dict | None = None):
    """Valid-aware Gaussian filter of ``a`` (H, W) or (K, H, W) over the last two axes.

    ``sigma`` is in array pixels. Invalid pixels keep their input values;
    valid pixels get the Gaussian-weighted mean of the valid pixels around.
    ``cache`` (a dict, optional, kept for one ``valid`` only) keeps the
    filtered mask of each sigma for the next array of the same pixels.
    """
    x, single = _stack(a)
    valid = _check_valid(valid, x.shape[1:])
    out = np.array(x, dtype=np.float32, copy=True)
    if sigma <= 0 or not valid.any():
        return out[0] if single else out
    if cache is not None and sigma in cache:
        den, ok = cache[sigma]
    else:
        den = ndimage.gaussian_filter(valid.astype(np.float32), sigma, mode="constant",
                                      cval=0.0, truncate=3.0)
        ok = valid & (den > 1e-6)
        if cache is not None:
            cache[sigma] = (den, ok)
    for k in range(x.shape[0]):
        num = ndimage.gaussian_filter(np.where(valid, x[k], 0).astype(np.float32), sigma,
                                      mode="constant", cval=0.0, truncate=3.0)
        out[k][ok] = num[ok] / den[ok]
    return out[0] if single else out


def superpixels(composite, valid, segment: float) -> np.ndarray:
    """SLIC superpixels of a (C, H, W) composite, about ``segment`` pixels across.

    Returns int labels (H, W); 0 marks invalid pixels. SLICO (adaptive
    compactness) avoids a compactness parameter tuned to the image scale.
    Invalid pixels take their nearest valid value before segmenting: SLIC's
    own ``mask`` option places its seeds by k-means, 100x slower here.
    """
    from skimage.segmentation import slic

    comp = np.asarray(composite, dtype=np.float32)
    if comp.ndim == 2:
        comp = comp[None]
    valid = _check_valid(valid, comp.shape[1:])
    if not valid.any():
        return np.zeros(valid.shape, np.int64)
    ok = valid & np.all(np.isfinite(comp), axis=0)
    comp = fill_invalid(np.where(ok[None], comp, 0.0), ok if ok.any() else valid)
    n_seg = max(1, int(round(valid.size / max(float(segment), 1.0) ** 2)))
    labels = slic(np.moveaxis(comp, 0, -1).astype(np.float64), n_segments=n_seg,
                  slic_zero=True, channel_axis=-1, start_label=1,
                  enforce_connectivity=True).astype(np.int64)
    labels[~valid] = 0
    return labels


def segment_mean(a, labels, valid):
    """Mean of ``a`` (H, W) or (K, H, W) over each segment of ``labels``.

    Pixels with label 0 or not valid keep their values.
    """
    x, single = _stack(a)
    valid = _check_valid(valid, x.shape[1:])
    labels = np.asarray(labels)
    if labels.shape != valid.shape:
        raise ValueError(f"segment labels have shape {labels.shape}, the maps {valid.shape}")
    out = np.array(x, dtype=np.float32, copy=True)
    use = valid & (labels > 0)
    if not use.any():
        return out[0] if single else out
    lab = labels[use]
    n = int(lab.max()) + 1
    count = np.bincount(lab, minlength=n).astype(np.float64)
    count[count == 0] = 1
    for k in range(x.shape[0]):
        mean = np.bincount(lab, weights=x[k][use].astype(np.float64), minlength=n) / count
        out[k][use] = mean[lab]
    return out[0] if single else out


def smooth(a, valid, spec, *, stride: float = 1.0, composite=None, segments=None,
           cache: dict | None = None):
    """Apply a smoothing ``spec`` to lattice maps ``a`` (H, W) or (K, H, W).

    Parameters
    ----------
    a : array
        Probabilities (K, H, W) or values (H, W) on a lattice of ``stride``
        SAR pixels.
    valid : bool (H, W)
    spec : dict
        See the module docstring.
    stride : float
        SAR pixels per lattice step (sizes in the spec are SAR pixels).
    composite : array (C, H, W), optional
        Image to segment for ``"slic"``.
    segments : int array (H, W), optional
        Precomputed :func:`superpixels` of the same size (saves time when
        several maps share them).
    cache : dict, optional
        For :func:`gaussian_smooth`, kept for one ``valid`` (several maps of a scene).

    Returns
    -------
    float32 array of ``a``'s shape; invalid pixels unchanged.
    """
    spec = check_spec(spec)
    if spec["method"] == "none":
        x, single = _stack(a)
        _check_valid(valid, x.shape[1:])
        return np.array(a, dtype=np.float32, copy=True)
    if spec["method"] == "gaussian":
        return gaussian_smooth(a, valid, spec["sigma_px"] / float(stride), cache=cache)
    if segments is None:
        if composite is None:
            raise ValueError("slic smoothing needs the composite image (or segments)")
        segments = superpixels(composite, valid, spec["segment_px"] / float(stride))
    return segment_mean(a, segments, valid)


def nearest_valid(valid):
    """Row and column indices (H, W) of each pixel's nearest valid pixel, for
    :func:`fill_invalid` (None when every pixel or none is valid)."""
    valid = np.asarray(valid, bool)
    if valid.all() or not valid.any():
        return None
    _, (ii, jj) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return ii, jj


def fill_invalid(a, valid, nearest=None):
    """Copy of ``a`` (H, W) or (K, H, W) with invalid pixels set to the nearest valid one.

    Used on the lattice before upsampling, so that valid SAR pixels near the
    swath edge never interpolate towards values predicted on fill.
    ``nearest`` is :func:`nearest_valid` of ``valid`` when already known
    (several maps of one scene share it).
    """
    x, single = _stack(a)
    valid = _check_valid(valid, x.shape[1:])
    out = np.array(x, dtype=np.float32, copy=True)
    if valid.all() or not valid.any():
        return out[0] if single else out
    ii, jj = nearest_valid(valid) if nearest is None else nearest
    out = out[:, ii, jj]
    return out[0] if single else out
