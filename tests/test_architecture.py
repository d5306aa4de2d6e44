"""The layout holds: imports flow one way with no cycles, and the installed command
works wherever the user stands."""
from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cli", "pipeline", "evaluation", "models", "featurize", "scenes")


def _lint(root: Path):
    exe = shutil.which("lint-imports") or str(Path(sysconfig.get_path("scripts")) / "lint-imports")
    return subprocess.run([exe, "--config", str(root / "pyproject.toml")], cwd=root,
                          capture_output=True, text=True, env={"PYTHONPATH": str(root),
                                                               "PATH": str(Path(exe).parent)})


def test_import_contracts_kept():
    r = _lint(ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout


@pytest.mark.parametrize("module, bad_import", [
    ("models/smoothing.py", "import pipeline.runner  # upwards"),
    ("featurize/context.py", "import featurize.assemble  # a cycle"),
])
def test_import_contracts_catch_a_bad_import(tmp_path, module, bad_import):
    """The contracts are not vacuous: one upward import or one cycle breaks them."""
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{bad_import}\n")
    r = _lint(tmp_path)
    assert r.returncode != 0 and "BROKEN" in r.stdout.upper(), r.stdout[-2000:]


def _seaice() -> str:
    exe = shutil.which("seaice") or str(Path(sysconfig.get_path("scripts")) / "seaice")
    assert Path(exe).exists(), "the seaice command is not installed: pip install -e ."
    return exe


def test_seaice_command_ignores_modules_in_the_working_directory(tmp_path):
    """A user's own models.py (or cli.py, scenes.py) must not shadow the package."""
    for name in ("models", "cli", "scenes", "pipeline"):
        (tmp_path / f"{name}.py").write_text("raise SystemExit('shadowed by the working directory')\n")
    r = subprocess.run([_seaice(), "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "usage: seaice" in r.stdout
    r = subprocess.run([_seaice(), "synth", "-q", "--out", "d", "--train", "1", "--test", "0",
                        "--size", "60x70"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "d" / "train").glob("*_prep.nc"))) == 1


def test_models_imports_no_higher_layer():
    """The issue's rule, stated directly: models/ names neither pipeline, evaluation nor cli."""
    code = ("import sys, models; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pipeline', 'evaluation', 'cli')); print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
