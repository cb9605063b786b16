"""Bad input: unavailable devices, unsupported dtypes, wrong/old/corrupt profiles -> one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from calibration import run_calibration, validate_profile  # noqa: E402
from calibration.errors import CalibrationError  # noqa: E402
from calibration.profile_io import check_profile, load_checked  # noqa: E402
from calibration.runner import parse_peak_tflops  # noqa: E402
from hwmodels.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "calibration", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("device", "needle"), [
    ("tpu", "unknown device 'tpu'"),
    ("cuda:x", "bad device index"),
    *([("cuda", "is not available")] if not torch.cuda.is_available() else []),
    *([("cuda:99", "not available")] if torch.cuda.is_available() else []),
    *([("xpu", "is not available")] if not (hasattr(torch, "xpu")
                                            and torch.xpu.is_available()) else []),
    *([("npu", "torch_npu is not installed")]
      if not hasattr(torch, "npu") else []),
])
def test_unavailable_device_one_line_exit_2(tmp_path: Path, device: str, needle: str) -> None:
    res = _cli("--device", device, "--out", str(tmp_path / "p.json"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize(("dtype", "needle"), [("fp8", "fp8' is not supported on cpu"),
                                               ("tf32", "tf32' is not supported on cpu"),
                                               ("int3", "unknown dtype")])
def test_unsupported_dtype(tmp_path: Path, dtype: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        run_calibration(device="cpu", quick=True, out=tmp_path / "p.json", dtypes=[dtype],
                        log=lambda _m: None)
    assert "\n" not in str(info.value) and info.value.key == "--dtypes"
    res = _cli("--device", "cpu", "--dtypes", dtype, "--out", str(tmp_path / "p.json"))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1


def test_cpu_cannot_pose_as_a_gpu(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be written as 'h100-sxm'"):
        run_calibration(device="cpu", out=tmp_path / "p.json", catalog_name="h100-sxm",
                        log=lambda _m: None)


@pytest.mark.parametrize(("text", "needle"), [("bf16=abc", "bad value"), ("xx=1", "unknown"),
                                              ("bf16=-3", "must be > 0")])
def test_bad_peak_flags(text: str, needle: str) -> None:
    with pytest.raises(CalibrationError, match=needle):
        parse_peak_tflops(text)
    assert parse_peak_tflops("bf16=989, fp32=67") == {"bf16": 989e12, "fp32": 67e12}


def _write(tmp_path: Path, data: Any, name: str = "bad.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_profile_for_another_device_rejected(cpu_profile: tuple[Path, dict[str, Any]]) -> None:
    path, _ = cpu_profile
    with pytest.raises(CalibrationError, match="profile is for device 'cpu', not 'h100-sxm'"):
        load_checked(path, device="h100-sxm")


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda d: d.update(version=0), "version 0 is older"),
    (lambda d: d.update(version=1), "version 1 is older"),
    (lambda d: d.update(version=3), "version 3 is not supported"),
    (lambda d: d.update(format="other"), "not a fleetsim profile"),
    (lambda d: d.pop("source"), "key 'source.description'"),
    (lambda d: d["gemm"]["fp32"].update(eff=[-1.0] * len(d["gemm"]["fp32"]["eff"])), "> 0"),
    (lambda d: d["attention_decode"].update(x=list(reversed(d["attention_decode"]["x"]))),
     "increasing"),
])
def test_corrupted_profile_rejected(tmp_path: Path, cpu_profile: tuple[Path, dict[str, Any]],
                                    mutate: Any, needle: str) -> None:
    data = json.loads(cpu_profile[0].read_text())
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(CalibrationError, match=needle):
        load_checked(path)
    with pytest.raises(ConfigError):
        validate_profile(path, log=lambda _m: None)


def test_malformed_json_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"format": "fleetsim-profile", ')
    with pytest.raises(ConfigError, match="malformed JSON") as info:
        validate_profile(path, log=lambda _m: None)
    assert str(path) in str(info.value)
    with pytest.raises(CalibrationError, match="cannot read profile"):
        load_checked(tmp_path / "missing.json")
    with pytest.raises(CalibrationError, match="expected a JSON object"):
        check_profile([1, 2])
