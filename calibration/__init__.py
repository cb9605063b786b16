"""fleetsim calibration: torch/Triton microbenchmarks -> fitted device profile JSON.

`python -m calibration --device cuda --out PROFILE.json` needs only torch and numpy (the
benchmark path never imports simpy/pandas/scipy/hwmodels). The functions below are the API the
fleetsim CLI calls; they import torch lazily so `import calibration` is cheap without it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["import_measurements", "run_calibration", "validate_profile"]


def run_calibration(device: str = "cpu", quick: bool = False, out: str | Path | None = None,
                    catalog_name: str | None = None, validate: bool = False,
                    log: Callable[[str], None] | None = None, **options: Any) -> dict[str, Any]:
    """Measure, fit and write a profile; returns the profile dict ('validation' rows included
    with validate=True). options: dtypes, peak_tflops, mem_bw_gbps, cpu_ranks.
    Bad input raises hwmodels.errors.ConfigError (one line)."""
    from calibration.errors import CalibrationError, to_config_error
    from calibration.runner import calibrate, stderr_log

    try:
        return calibrate(device, quick=quick, out=out, catalog_name=catalog_name,
                         validate=validate, log=log or stderr_log, **options)
    except CalibrationError as err:
        raise to_config_error(err) from None


def validate_profile(path: str | Path, device: str | None = None, quick: bool = False,
                     log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Time the validation steps on the local device and compare with predictions from the
    profile at `path` (and the defaults): one dict per step. device defaults to the kind the
    profile was measured on."""
    from calibration.devices import select_device
    from calibration.errors import CalibrationError, to_config_error
    from calibration.profile_io import read_profile_json
    from calibration.runner import stderr_log
    from calibration.validate import run_validation

    try:
        data = read_profile_json(path)
        env = data.get("env") or {}
        spec = device or (f"{env['device_type']}:{env.get('device_index', 0)}"
                          if env.get("device_type", "cpu") != "cpu" else "cpu")
        dev = select_device(spec)
        if (dev.type == "cpu") != (str(data["device"]).lower() == "cpu"):
            raise CalibrationError(f"profile is for '{data['device']}', device is {dev}",
                                   file=str(path), key="device", allowed=[data["device"]])
        return run_validation(path, dev, quick=quick, log=log or stderr_log)
    except CalibrationError as err:
        raise to_config_error(err) from None


def import_measurements(root: str | Path, device: str, out: str | Path | None = None,
                        allow_worse: bool = False,
                        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Fit published kernel tables (Vidur layout under `root`) for a catalog device; write
    `out` only if the profile beats the catalog defaults on held-out shapes (or allow_worse).
    Bad input raises hwmodels.errors.ConfigError; a losing fit ProfileRejectedError."""
    from calibration.errors import CalibrationError, to_config_error
    from calibration.importers.build import build_profile

    try:
        return build_profile(root, device, allow_worse=allow_worse, out=out, log=log)
    except CalibrationError as err:
        raise to_config_error(err) from None
