"""Time and peak memory of writing one real-size synthetic training scene.

Runs the write in a fresh child process (so the peak RSS is the generator's,
not this script's), after a tiny warm-up scene that loads or compiles the
Numba kernels. Prints the measured figures.

    python benchmarks/bench_synth.py                 # 5000 x 5200, seed 0
    python benchmarks/bench_synth.py --shape 3540x5226 --seed 3
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from scenes.synth import make_scene, write_synthetic_dataset
h, w, seed, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
make_scene((100, 110))
warm = time.perf_counter() - t0
t0, c0 = time.perf_counter(), time.process_time()
paths = write_synthetic_dataset(out, n_train=1, n_test=0, size=(h, w), seed=seed, progress=False)
print(json.dumps({"warmup_s": warm, "write_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "file": str(paths["train"][0])}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="5000x5200", help="HxW of the scene (default 5000x5200)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    h, w = (int(v) for v in args.shape.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        res = subprocess.run([sys.executable, "-c", CHILD, str(h), str(w), str(args.seed), tmp],
                             capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1])
        r = json.loads(res.stdout.strip().splitlines()[-1])
        size_mb = Path(r["file"]).stat().st_size / 1e6
    print(f"synthetic training scene {h} x {w} (seed {args.seed}):")
    print(f"  write wall time   {r['write_s']:.1f} s  (CPU {r['cpu_s']:.1f} s, all threads)")
    print(f"  peak RSS          {r['peak_rss_kb'] / 1e6:.2f} GB")
    print(f"  file size         {size_mb:.0f} MB")
    print(f"  warm-up (Numba load/compile + 100 x 110 scene) {r['warmup_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
