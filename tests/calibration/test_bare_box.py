"""The benchmark path runs with torch + numpy only: simpy/pandas/scipy/pulp/hwmodels blocked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("simpy", "pandas", "scipy", "pulp", "hwmodels", "yaml", "networkx", "matplotlib")
# Setting sys.modules[name] = None makes any `import name` raise ImportError.
POISON = "import sys\nfor _m in {blocked!r}:\n    sys.modules[_m] = None\n"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", POISON.format(blocked=BLOCKED) + code],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)


def test_help_without_fleetsim_dependencies() -> None:
    res = _run("from calibration.__main__ import main\nsys.exit(main(['--help']))")
    assert res.returncode == 0, res.stderr
    assert "--device" in res.stdout and "--catalog-name" in res.stdout


def test_cpu_calibration_without_fleetsim_dependencies(tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    res = _run("from calibration.__main__ import main\n"
               f"sys.exit(main(['--device', 'cpu', '--quick', '--dtypes', 'fp32', '--out', "
               f"{str(out)!r}, '--json']))")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["device"] == "cpu" and out.exists()
    assert json.loads(out.read_text())["format"] == "fleetsim-profile"


def test_gpu_without_hwmodels_needs_peaks(tmp_path: Path) -> None:
    """Without hwmodels there is no catalog: an accelerator run must be given its peaks.
    (Checked through resolve_peaks; the device itself is faked as a CUDA torch.device.)"""
    code = ("import torch\nfrom calibration.runner import resolve_peaks\n"
            "from calibration.errors import CalibrationError\n"
            "try:\n"
            "    resolve_peaks(torch.device('cuda'), 'h100-sxm', ['bf16'], {}, None, print)\n"
            "except CalibrationError as e:\n    print('ERR', e)\n"
            "name, peaks = resolve_peaks(torch.device('cuda'), 'h100-sxm', ['bf16'], "
            "{'bf16': 989e12}, 3350.0, print)\nprint(name, peaks['memory_bw_Bps'])\n")
    res = _run(code)
    assert res.returncode == 0, res.stderr
    assert "ERR" in res.stdout and "--peak-tflops" in res.stdout
    assert "h100-sxm 3350000000000.0" in res.stdout
