"""Fixtures: one quick CPU calibration shared by the calibration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="session")
def cpu_profile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """(path, dict) of a quick fp32 CPU profile measured once per test session."""
    from calibration import run_calibration

    path = tmp_path_factory.mktemp("calibration") / "cpu.json"
    messages: list[str] = []
    profile = run_calibration(device="cpu", quick=True, out=path, dtypes=["fp32"],
                              log=messages.append)
    assert any("wrote" in m for m in messages)
    return path, profile


@pytest.fixture(scope="session")
def validated_profile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """(path, dict) of a quick fp32 CPU profile with --validate (step and per-op tables)."""
    from calibration import run_calibration

    path = tmp_path_factory.mktemp("calibration") / "cpu-validated.json"
    profile = run_calibration(device="cpu", quick=True, out=path, dtypes=["fp32"],
                              validate=True, log=lambda _m: None)
    return path, profile
