"""Time and peak memory of converting one raw (40 m) scene to ready-to-train (80 m).

Writes one synthetic raw training scene (``scenes.synth_raw``, default
10000 x 10400 at 40 m), then converts it in a fresh child process limited to
``--threads`` threads (so the peak RSS and the time are the converter's
alone) and prints the figures; also checks that the labels came back as the
generator made them. The target: at most 60 s and 3 GB on 2 cores.

    python benchmarks/bench_convert.py                      # 10000 x 10400, seed 0
    python benchmarks/bench_convert.py --shape 2000x2080 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WRITE = """
import json, resource, sys, time
from scenes.synth import make_scene
from scenes.synth_raw import write_raw_scene
h, w, seed, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
ds = make_scene((h // 2, w // 2), seed=seed, kind="train")
r = write_raw_scene(f"{out}/{ds.attrs['original_id']}", ds, seed=seed, shape=(h, w))
ds[["SIC", "SOD", "FLOE"]].to_netcdf(f"{out}/labels.nc", engine="h5netcdf")
print(json.dumps({"write_s": time.perf_counter() - t0, "file": str(r["path"]),
                  "polygons": r["polygons"],
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

CONVERT = """
import json, resource, sys, time
from scenes.rawconvert import convert_scene
raw, out = sys.argv[1], sys.argv[2]
t0, c0 = time.perf_counter(), time.process_time()
r = convert_scene(raw, out)
print(json.dumps({"convert_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "shape": r["shape"]}))
"""


def _child(code, args, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-c", code, *map(str, args)]
    if hasattr(os, "sched_setaffinity"):  # pin the child to the first `threads` cores
        cores = sorted(os.sched_getaffinity(0))[:threads]
        cmd = ["taskset", "-c", ",".join(map(str, cores))] + cmd if len(cores) == threads else cmd
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="10000x10400", help="HxW at 40 m (default 10000x10400)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="cores for the conversion (default 2)")
    args = ap.parse_args(argv)
    h, w = (int(v) for v in args.shape.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        wr = _child(WRITE, [h, w, args.seed, tmp], threads=os.cpu_count() or 1)
        raw = Path(wr["file"])
        out = Path(tmp) / "converted_prep.nc"
        t0 = time.perf_counter()
        cv = _child(CONVERT, [raw, out], threads=args.threads)
        wall = time.perf_counter() - t0
        import numpy as np
        import xarray as xr
        with xr.open_dataset(out, engine="h5netcdf") as a, \
                xr.open_dataset(Path(tmp) / "labels.nc", engine="h5netcdf") as b:
            same = all(np.array_equal(a[c].values, b[c].values) for c in ("SIC", "SOD", "FLOE"))
        raw_mb, out_mb = raw.stat().st_size / 1e6, out.stat().st_size / 1e6
    print(f"raw scene {h} x {w} (seed {args.seed}, {wr['polygons']} polygons), "
          f"written in {wr['write_s']:.0f} s ({raw_mb:.0f} MB)")
    print(f"  convert wall time  {cv['convert_s']:.1f} s  (CPU {cv['cpu_s']:.1f} s; child process "
          f"incl. start-up {wall:.1f} s; {args.threads} core(s))")
    print(f"  peak RSS           {cv['peak_rss_kb'] / 1e6:.2f} GB")
    print(f"  output             {cv['shape'][0]} x {cv['shape'][1]} at 80 m, {out_mb:.0f} MB")
    print(f"  labels identical to the generator's 80 m charts: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
