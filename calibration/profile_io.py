"""Write and read profile JSON files; validate them on load.

Writing is atomic (temp file + rename). `check_profile` validates the structure with the
standard library only (for the bare-box path); `load_checked` uses hwmodels.profile.load_profile
where hwmodels is installed, so a file fleetsim cannot read is never reported as good.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from calibration.errors import CalibrationError

PROFILE_FORMAT = "fleetsim-profile"  # must equal hwmodels.profile.PROFILE_FORMAT
PROFILE_VERSION = 2  # must equal hwmodels.profile.PROFILE_VERSION
CURVE_KEYS = ("memory", "attention_prefill", "attention_decode")


def _check_curve(raw: Any, file: str, key: str, yname: str = "eff") -> None:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("x"), list) \
            or not isinstance(raw.get(yname), list):
        raise CalibrationError(f"expected {{x: [...], {yname}: [...]}}", file=file, key=key)
    xs, ys = raw["x"], raw[yname]
    if not xs or len(xs) != len(ys):
        raise CalibrationError("curve needs equal, non-empty x and y lists", file=file, key=key)
    for v in xs + ys:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or v <= 0:
            raise CalibrationError(f"curve values must be finite numbers > 0, got {v!r}",
                                   file=file, key=key)
    if xs != sorted(xs):
        raise CalibrationError("curve x values must be increasing", file=file, key=key)


def check_profile(data: Any, *, file: str = "<profile>", device: str | None = None) -> None:
    """Raise CalibrationError unless `data` is a version-1 profile (for `device`, if given)."""
    if not isinstance(data, Mapping):
        raise CalibrationError("expected a JSON object", file=file)
    if data.get("format") != PROFILE_FORMAT:
        raise CalibrationError(f"not a fleetsim profile (format={data.get('format')!r})",
                               file=file, key="format", allowed=[PROFILE_FORMAT])
    if data.get("version") != PROFILE_VERSION:
        version = data.get("version")
        older = isinstance(version, int) and not isinstance(version, bool) \
            and version < PROFILE_VERSION
        why = "is older than this fleetsim reads; re-create it with fleetsim calibrate" \
            if older else "is not supported"
        raise CalibrationError(f"profile format version {version!r} {why}", file=file,
                               key="version", allowed=[PROFILE_VERSION])
    if not isinstance(data.get("device"), str) or not data["device"]:
        raise CalibrationError("missing required key", file=file, key="device")
    src = data.get("source")
    if not isinstance(src, Mapping) or not isinstance(src.get("description"), str) \
            or not src["description"]:
        raise CalibrationError("expected {description: ...} saying where the measurements "
                               "came from", file=file, key="source.description")
    gemm = data.get("gemm") or {}
    if not isinstance(gemm, Mapping):
        raise CalibrationError("expected a mapping dtype -> curve", file=file, key="gemm")
    for dt, raw in gemm.items():
        _check_curve(raw, file, f"gemm.{dt}")
    for key in (*CURVE_KEYS, "gemm_memory"):
        if data.get(key) is not None:
            _check_curve(data[key], file, key)
    for kind, raw in (data.get("elementwise") or {}).items():
        _check_curve(raw, file, f"elementwise.{kind}")
    for op, per_world in (data.get("collectives") or {}).items():
        if not isinstance(per_world, Mapping):
            raise CalibrationError("expected {group size: curve}", file=file,
                                   key=f"collectives.{op}")
        for world, raw in per_world.items():
            _check_curve(raw, file, f"collectives.{op}.{world}", "busbw_Bps")
    if device is not None and str(data["device"]).lower() != device.lower():
        raise CalibrationError(f"profile is for device '{data['device']}', not '{device}'",
                               file=file, key="device", allowed=[data["device"]])


def write_profile(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Validate and write a profile atomically; returns the path."""
    path = Path(path)
    check_profile(data, file=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=False)
            fh.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a profile is shared data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_profile_json(path: str | Path, *, device: str | None = None) -> dict[str, Any]:
    """The validated JSON object of a profile file (stdlib only)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise CalibrationError(f"cannot read profile: {err.strerror}", file=str(path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CalibrationError(f"malformed JSON: {err}", file=str(path)) from None
    check_profile(data, file=str(path), device=device)
    return data


def load_checked(path: str | Path, *, device: str | None = None) -> Any:
    """hwmodels.profile.DeviceProfile of a file (validated by both checkers)."""
    read_profile_json(path, device=device)
    from hwmodels.profile import load_profile

    return load_profile(path, device=device)
