"""Same inputs, same seed, same bytes: model text files and submission of a fixed small run.

The hashes were recorded on the code before the architecture refactor
(commit 6cdbb6e) and must not move when code is only reorganised. A change
that is meant to change the models or maps (new features, new defaults)
updates them in the same commit and says why.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import lightgbm
import pytest

from scenes.synth import write_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]
#: Recorded with LightGBM 4.7.0 and numpy 2.4.6 (Python 3.11) on x86-64.
RECORDED_WITH = {"lightgbm": "4.7.0"}
GOLDEN = {
    "SIC.txt": "c2d5e8ec4b9ccac44d575b4f7f1718b27f4d4964f7f2430b1839b877500fe4b2",
    "SOD.txt": "85fec9dd7496de9de8607f31990ed47b321cb81e774bbff2ed2c45e9c84e9964",
    "FLOE.txt": "ddb594089c1aec41919e23698bb5f8cdca5d63f1136e0842a18a43bbdd6813f1",
    "upload_package.nc": "409f2ef9f1551e391be6f6a8503ee25232af19aaab02fdf69952a78de0c26111",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(cwd, *args):
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), *map(str, args)], cwd=cwd,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def test_fixed_run_gives_the_recorded_bytes(tmp_path):
    write_synthetic_dataset(tmp_path / "data", n_train=4, n_test=2, size=(160, 170), seed=2024,
                            progress=False)
    _run(tmp_path, "train", "-q", "--data", tmp_path / "data" / "train", "--out",
         tmp_path / "model", "--pixels", 20000, "--seed", 3, "--jobs", 1, "--no-cache")
    _run(tmp_path, "predict", "-q", "--data", tmp_path / "data" / "test", "--model",
         tmp_path / "model", "--out", tmp_path / "upload_package.nc", "--no-cache")
    got = {name: _sha256(tmp_path / "model" / name) for name in ("SIC.txt", "SOD.txt", "FLOE.txt")}
    got["upload_package.nc"] = _sha256(tmp_path / "upload_package.nc")
    if lightgbm.__version__ != RECORDED_WITH["lightgbm"] and got != GOLDEN:
        pytest.fail(f"hashes differ, and LightGBM is {lightgbm.__version__}, not the "
                    f"{RECORDED_WITH['lightgbm']} they were recorded with: check the scores did "
                    "not move, then record the new hashes here")
    assert got == GOLDEN
