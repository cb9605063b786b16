"""Torch device selection, synchronization and the torch-name -> fleetsim-catalog-name map.

Imports only torch and the standard library (this module runs on bare GPU boxes).
"""

from __future__ import annotations

import datetime as _dt
import platform
import re
from typing import Any

import torch

from calibration.errors import CalibrationError

DEVICE_TYPES = ("cpu", "cuda", "npu", "xpu", "mps")

# Substring rules from the names torch reports (torch.cuda.get_device_name, torch.npu...) to
# fleetsim catalog names; first match wins, so longer/more specific names come first
# (GB200 before B200, H200 before H20, L40S before L4). Names as printed by nvidia-smi /
# rocm-smi / npu-smi on those boards.
_NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"GB200", "gb200"),
    (r"B200", "b200"),
    (r"H200", "h200"),
    (r"H100.*PCIe", "h100-pcie"),
    (r"H100", "h100-sxm"),  # "NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5 80GB"
    (r"\bH20\b", "h20"),
    (r"A100.*80GB", "a100-80gb"),  # "NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"
    (r"A100", "a100-40gb"),  # "NVIDIA A100-SXM4-40GB", "A100-PCIE-40GB"
    (r"V100", "v100"),
    (r"L40S", "l40s"),
    (r"\bL4\b", "l4"),
    (r"A10G", "a10g"),
    (r"MI325X", "mi325x"),
    (r"MI300X", "mi300x"),
    (r"MI250X|MI250", "mi250x"),  # torch sees one GCD per device
    # npu-smi names the bin ("Ascend910B1" ... "Ascend910B4"); the catalog has one entry per
    # bin, ascend-910b being the 910B2
    (r"910B1", "ascend-910b1"),
    (r"910B3", "ascend-910b3"),
    (r"910B4", "ascend-910b4"),
    (r"910B", "ascend-910b"),
    (r"Gaudi ?3|HL-325", "gaudi3"),
    (r"Gaudi ?2|HL-225", "gaudi2"),
)


def catalog_name_for(reported: str, device_type: str) -> str | None:
    """fleetsim catalog name for a torch-reported device name, or None if unknown."""
    if device_type == "cpu":
        return "cpu"
    for pattern, name in _NAME_RULES:
        if re.search(pattern, reported, flags=re.IGNORECASE):
            return name
    return None


def _npu_module() -> Any:
    """torch.npu after importing the Ascend plugin (torch_npu), or None if not installed."""
    try:
        import torch_npu  # noqa: F401  (registers torch.npu)
    except ImportError:
        return None
    return getattr(torch, "npu", None)


def backend_module(device: torch.device) -> Any:
    """torch.cuda / torch.xpu / torch.npu / torch.mps for an accelerator, None for the CPU."""
    if device.type == "cpu":
        return None
    if device.type == "npu":
        return _npu_module()
    return getattr(torch, device.type, None)


def select_device(spec: str) -> torch.device:
    """torch.device for 'cpu', 'cuda', 'cuda:1', 'npu', 'xpu', 'mps'; unavailable -> error."""
    text = str(spec).strip().lower()
    kind, _, index_text = text.partition(":")
    if kind not in DEVICE_TYPES:
        raise CalibrationError(f"unknown device '{spec}'", key="--device",
                               allowed="cpu, cuda, cuda:N, npu, npu:N, xpu, xpu:N, mps")
    if index_text and not index_text.isdigit():
        raise CalibrationError(f"bad device index in '{spec}'", key="--device",
                               allowed="a non-negative integer after ':'")
    index = int(index_text) if index_text else 0
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not (torch.backends.mps.is_available() and index == 0):
            raise CalibrationError(f"device '{spec}' is not available (torch.backends.mps "
                                   "reports no Metal device)", key="--device")
        return torch.device("mps")
    module = _npu_module() if kind == "npu" else getattr(torch, kind, None)
    if module is None or not module.is_available():
        hint = {"cuda": f"torch {torch.__version__} sees no CUDA/ROCm device",
                "npu": "torch_npu is not installed or sees no Ascend NPU",
                "xpu": f"torch {torch.__version__} sees no Intel XPU"}[kind]
        raise CalibrationError(f"device '{spec}' is not available ({hint})", key="--device",
                               allowed="cpu")
    count = module.device_count()
    if index >= count:
        raise CalibrationError(f"device '{spec}' is not available: {count} {kind} device(s) "
                               "visible", key="--device",
                               allowed=", ".join(f"{kind}:{i}" for i in range(count)))
    module.set_device(index)
    return torch.device(kind, index)


def synchronize(device: torch.device) -> None:
    """Wait for all queued work on the device (no-op on the CPU)."""
    module = backend_module(device)
    if module is not None:
        module.synchronize()


def device_count(device: torch.device) -> int:
    """Devices of this kind visible to torch (1 for the CPU and MPS)."""
    if device.type in ("cpu", "mps"):
        return 1
    module = backend_module(device)
    return int(module.device_count()) if module is not None else 1


def reported_name(device: torch.device) -> str:
    """The device name as the vendor runtime reports it."""
    if device.type == "cpu":
        return platform.processor() or platform.machine() or "cpu"
    if device.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    module = backend_module(device)
    return str(module.get_device_name(device.index or 0))


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and identities recorded in the profile (torch, CUDA/HIP, driver, host)."""
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "platform": platform.platform(),
        "device_type": device.type,
        "device_index": device.index or 0,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cpu":
        env["cpu_threads"] = torch.get_num_threads()
        env["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        env["cpu_clock"] = "thread CPU time" if env["cpu_threads"] == 1 else "wall time"
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["hip"] = getattr(torch.version, "hip", None)
        env["cudnn"] = torch.backends.cudnn.version()
        props = torch.cuda.get_device_properties(device)
        env["compute_capability"] = f"{props.major}.{props.minor}"
        env["multiprocessors"] = props.multi_processor_count
        env["memory_bytes"] = props.total_memory
        env["driver"] = _nvidia_driver()
    return env


def _nvidia_driver() -> str | None:
    """Driver version from NVML via torch (torch.cuda has no direct getter), else None."""
    try:
        import pynvml  # shipped as nvidia-ml-py alongside most CUDA torch installs

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # noqa: BLE001 - optional information only
        return None
