"""Speed of featurize.texture.glcm against per-window skimage, and on a full band.

Run on demand (figures are printed, nothing is asserted)::

    python benchmarks/bench_texture.py            # everything (~2 min on 2 cores)
    python benchmarks/bench_texture.py --no-full  # skip the full 5000 x 5200 band

The test image is SAR-like: smooth regions of three backscatter classes with
multiplicative 4-look speckle, in dB, quantised by
:func:`featurize.quantize.quantize_db` (HH range) to 32 levels. skimage runs
``graycomatrix``/``graycoprops`` per window on a small crop (the reference of
``tests/naive.py``); glcm runs on a larger crop, so both are per-pixel rates.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np
from scipy.ndimage import gaussian_filter

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from naive import glcm_naive  # noqa: E402

from featurize.quantize import quantize_db  # noqa: E402
from featurize.texture import DEFAULT_PROPS, glcm, glcm_at  # noqa: E402

LEVELS = 32
LINEAR_PROPS = ("contrast", "dissimilarity", "homogeneity", "correlation", "mean", "variance")


def sar_like(shape, seed=0):
    """uint8 grey levels of a synthetic HH scene (see module docstring)."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 40)
    cls = np.digitize(field, np.quantile(field[::7, ::7], [0.5, 0.8]))
    db = np.array([-24.0, -15.0, -9.0], np.float32)[cls]
    speckle = rng.gamma(4.0, 0.25, size=shape).astype(np.float32)
    db += 10.0 * np.log10(speckle)
    return quantize_db(db, "hh", LEVELS)


def timed(fn, repeat=1):
    """Best wall time and its CPU time over ``repeat`` calls."""
    best = (np.inf, np.inf)
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skimage-crop", type=int, default=64, help="side of the skimage crop")
    ap.add_argument("--crop", type=int, default=1024, help="side of the glcm crop")
    ap.add_argument("--no-full", action="store_true", help="skip the full-band timing")
    ap.add_argument("--full-shape", type=int, nargs=2, default=(5000, 5200))
    args = ap.parse_args(argv)
    max_threads = numba.config.NUMBA_NUM_THREADS
    img = sar_like((args.crop, args.crop), seed=1)
    sk = img[: args.skimage_crop, : args.skimage_crop]
    kw = dict(levels=LEVELS, props=DEFAULT_PROPS)
    glcm(img[:64, :64], window=11, **kw)  # compile (or load the cache)
    glcm_at(img, np.array([0]), np.array([0]), window=11, **kw)
    print(f"machine: {max_threads} numba threads available; levels={LEVELS}, "
          f"props={len(DEFAULT_PROPS)} (skimage defaults of featurize.texture), distances=(1,)")

    for window in (11, 25):
        sk_wall, _ = timed(lambda: glcm_naive(sk, window=window, **kw))
        sk_rate = sk.size / sk_wall
        print(f"\nwindow {window}: skimage per window ({sk.shape[0]}x{sk.shape[1]} crop): "
              f"{sk_rate:,.0f} px/s ({1e6 / sk_rate:.0f} us/px)")
        for threads in sorted({1, min(2, max_threads)}):
            numba.set_num_threads(threads)
            wall, cpu = timed(lambda: glcm(img, window=window, **kw), repeat=3)
            rate = img.size / wall
            print(f"  glcm {threads} thread(s) ({img.shape[0]}x{img.shape[1]}): {rate:,.0f} px/s "
                  f"({1e9 / rate:.0f} ns/px wall, {1e9 * cpu / img.size:.0f} ns/px cpu) "
                  f"-> {rate / sk_rate:,.0f}x skimage")
            if threads == 1:
                lw, _ = timed(lambda: glcm(img, window=window, levels=LEVELS,
                                           props=LINEAR_PROPS), repeat=3)
                print(f"    without the count-based props (no ASM/energy/entropy): "
                      f"{1e9 * lw / img.size:.0f} ns/px")
                rng = np.random.default_rng(0)
                n = 20000
                rows, cols = rng.integers(0, img.shape[0], n), rng.integers(0, img.shape[1], n)
                pw, _ = timed(lambda: glcm_at(img, rows, cols, window=window, **kw), repeat=2)
                print(f"    glcm_at, {n} random points: {n / pw:,.0f} points/s")

    if not args.no_full:
        numba.set_num_threads(min(2, max_threads))
        band = sar_like(tuple(args.full_shape), seed=2)
        total = 0.0
        print(f"\nfull band {band.shape[0]}x{band.shape[1]} ({band.size / 1e6:.1f} Mpx), "
              f"{numba.get_num_threads()} threads:")
        for window in (25, 11):
            wall, cpu = timed(lambda: glcm(band, window=window, **kw))
            total += wall
            print(f"  window {window}: {wall:.1f} s wall ({cpu:.1f} s cpu)")
        print(f"  texture of 2 bands x windows (11, 25): about {2 * total:.0f} s wall")


if __name__ == "__main__":
    main()
