"""Full system against the naive model when the test scenes differ from the training scenes.

Usage::

    python benchmarks/bench_shift.py [--seed 8081 [SEED ...]] [--n-train 40] [--n-test 10]
                                     [--size 2000] [--n-pixels 1000000] [--work DIR]

The product will be judged on scenes written by other code than our
generator, and real sensors differ from any generator. This trains both
systems of ``bench_baseline.py`` once per ``--seed`` (same data, split and
settings) and scores them on the test scenes as written and under shifts of
the inputs that another processor or simulator could plausibly produce:

- SAR calibration: HH and HV both +1 dB or -1 dB (Sentinel-1's absolute
  calibration requirement is 1 dB);
- HV noise floor: -27 dB of residual thermal noise power added to HV (an
  imperfect noise correction; it brightens water and thin ice most);
- speckle: the 80 m product with half our equivalent number of looks (HH and
  HV multiplied by gamma(16)/16 speckle in linear power);
- incidence slope: HH and HV -0.1 dB per degree away from 35 deg (another
  backscatter model's angular dependence);
- AMSR2 calibration: every brightness temperature +3 K.

Invalid SAR pixels stay exactly 0.0. Only the test scenes are shifted; the
models are trained on unshifted scenes. Prints, per shift, the combined score
of both systems (mean over seeds) and the per-chart scores per seed.
"""
from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_baseline import (FULL, NAIVE, benchmark_parser, feature_config, fit_both,  # noqa: E402
                            parse_benchmark_args, score_both)
from scenes import contract as C  # noqa: E402


def _shift_sar(ds, fn):
    """Apply ``fn(name, dB, ds, valid) -> dB`` to HH and HV of valid pixels, keeping fills at 0."""
    out = ds.copy()
    valid = np.asarray(ds[C.SAR_VARS[0]].values) != C.SAR_FILL
    for name in C.SAR_VARS:
        z = np.asarray(ds[name].values)
        db = C.to_physical(name, z[valid])
        new = z.copy()
        new[valid] = C.to_zscore(name, fn(name, db, ds, valid))
        out[name] = ds[name].copy(data=new)
    out.encoding.update(ds.encoding)
    return out


def _rng(ds, name):
    return np.random.default_rng([zlib.crc32(ds.attrs["scene_key"].encode()), zlib.crc32(name.encode())])


def calibration(delta_db):
    return lambda ds: _shift_sar(ds, lambda name, db, ds, valid: db + delta_db)


def hv_noise(floor_db):
    def fn(name, db, ds, valid):
        if name != C.SAR_VARS[1]:
            return db
        return 10 * np.log10(np.maximum(10 ** (0.1 * db) + 10 ** (0.1 * floor_db), 1e-6))
    return lambda ds: _shift_sar(ds, fn)


def speckle(looks):
    def fn(name, db, ds, valid):
        g = _rng(ds, name).gamma(looks, 1.0 / looks, size=db.shape)
        return db + 10 * np.log10(g)
    return lambda ds: _shift_sar(ds, fn)


def incidence_slope(db_per_deg, centre_deg=35.0):
    def fn(name, db, ds, valid):
        ia = C.to_physical("sar_incidenceangle", np.asarray(ds["sar_incidenceangle"].values)[valid])
        return db + db_per_deg * (ia - centre_deg)
    return lambda ds: _shift_sar(ds, fn)


def amsr2_offset(kelvin):
    def transform(ds):
        out = ds.copy()
        for name in C.AMSR2_VARS:
            k = C.to_physical(name, np.asarray(ds[name].values)) + kelvin
            out[name] = ds[name].copy(data=C.to_zscore(name, k))
        out.encoding.update(ds.encoding)
        return out
    return transform


SHIFTS = {
    "none (as written)": None,
    "SAR +1 dB": calibration(1.0),
    "SAR -1 dB": calibration(-1.0),
    "HV noise floor -27 dB": hv_noise(-27.0),
    "speckle, half the looks": speckle(16.0),
    "incidence slope -0.1 dB/deg": incidence_slope(-0.1),
    "AMSR2 +3 K": amsr2_offset(3.0),
}


def main(argv=None):
    ap = benchmark_parser(__doc__.splitlines()[0], seed=8081, n_train=40, n_test=10)
    ap.add_argument("--shift", nargs="+", choices=list(SHIFTS), default=list(SHIFTS),
                    help="shifts to score (default: all)")
    args = parse_benchmark_args(ap, argv)
    config = feature_config(args)
    table = {name: {} for name in args.shift}
    for seed in args.seed:
        fit = fit_both(seed, args, config)
        print(f"seed {seed}: trained on {fit['n_train']} + {fit['n_val']} validation scenes "
              f"of {args.size} x {args.size}; {len(fit['test'])} test scenes, every "
              f"{args.eval_step}th pixel", flush=True)
        print(f"{'shift':30s} {'system':6s} {'SIC':>8s} {'SOD':>8s} {'FLOE':>8s} {'combined':>9s}")
        for name in args.shift:
            scores, _, _ = score_both(fit, args.eval_step, transform=SHIFTS[name], unsmoothed=False)
            table[name][seed] = (scores[NAIVE]["combined"], scores[FULL]["combined"])
            for label, key in (("naive", NAIVE), ("full", FULL)):
                s = scores[key]
                print(f"{name:30s} {label:6s} {s['SIC']:8.3f} {s['SOD']:8.3f} {s['FLOE']:8.3f} "
                      f"{s['combined']:9.3f}", flush=True)
    print(f"\ncombined score, mean over seeds {' '.join(map(str, args.seed))}")
    print(f"{'shift':30s} {'naive':>8s} {'full':>8s} {'gain':>8s}   per seed gain")
    for name, per_seed in table.items():
        nv, full = np.array(list(per_seed.values())).T
        gains = " ".join(f"{g:+.1f}" for g in full - nv)
        print(f"{name:30s} {nv.mean():8.3f} {full.mean():8.3f} {(full - nv).mean():+8.3f}   {gains}")


if __name__ == "__main__":
    main()
