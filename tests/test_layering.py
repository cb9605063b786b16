"""The layer contract (pyproject [tool.importlinter]) holds, and really fails on an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hwmodels", "traces", "calibration", "simulator", "planners", "fleetsim")
pytest.importorskip("importlinter")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the packages under root with root's pyproject (fresh interpreter)."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, text=True,
                          capture_output=True, timeout=120)


def _copy_tree(dst: Path) -> None:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=shutil.ignore_patterns(
            "__pycache__", "*.yaml", "*.json", "*.csv", "*.jsonl", "*.gz", "data", "scenarios"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")


def test_layers_are_kept() -> None:
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


@pytest.mark.parametrize(("module", "upward"), [
    ("hwmodels/units.py", "from simulator.training import simulate_iteration"),
    ("traces/stats.py", "import planners.sweep"),
    ("simulator/schema.py", "from calibration import run_calibration"),
    ("planners/sweep.py", "from fleetsim.cli import main"),
])
def test_an_upward_import_breaks_the_contract(tmp_path: Path, module: str, upward: str) -> None:
    _copy_tree(tmp_path)
    path = tmp_path / module
    # a lazy import inside a function body counts as much as a top-level one
    path.write_text(path.read_text() + f"\n\ndef _upward() -> None:\n    {upward}  # noqa\n")
    res = _lint(tmp_path)
    assert res.returncode != 0, res.stdout
    assert "BROKEN" in res.stdout
    assert module.removesuffix(".py").replace("/", ".") in res.stdout
