"""Hand-made profile files the profile tests share (importable: tests/ is on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path

from hwmodels.catalog import load_device
from hwmodels.dtypes import DType
from hwmodels.ops import default_profile


def half_gemm_profile(path: Path, device: str, *, version: int = 2) -> Path:
    """A v2 profile of `device` whose bf16 GEMM efficiency is half the catalog default's."""
    curve = default_profile(load_device(device)).gemm_curve(DType.BF16)
    path.write_text(json.dumps({
        "format": "fleetsim-profile", "version": version, "device": device,
        "name": f"{device}-half-gemm",
        "source": {"kind": "local", "description": "test: catalog GEMM efficiency halved"},
        "gemm": {"bf16": {"x": list(curve.xs), "eff": [y / 2 for y in curve.ys]}}}))
    return path
