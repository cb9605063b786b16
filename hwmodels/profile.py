"""Device profiles: measured efficiency curves that replace the catalog's default efficiencies.

A profile is a JSON file written by `fleetsim calibrate` (format below). Cost models take an
optional `DeviceProfile`; without one they use `default_profile(device)`, built from the
catalog's efficiency numbers. Curves are efficiency (fraction of the catalog peak) against
problem size, interpolated linearly in log(size) and clamped at the ends.

JSON format (version 1)::

    {"format": "fleetsim-profile", "version": 1, "device": "<catalog name>",
     "device_reported": "...", "created": "ISO-8601", "env": {...},
     "gemm": {"bf16": {"x": [flops...], "eff": [...]}, ...},        # fraction of peak[dtype]
     "memory": {"x": [bytes...], "eff": [...]},                       # fraction of memory_bw
     "attention_prefill": {"x": [flops...], "eff": [...]},            # fraction of bf16 peak
     "attention_decode": {"x": [bytes...], "eff": [...]},             # fraction of memory_bw
     "kernel_overhead_s": 4e-6, "host_to_device_Bps": 2.5e10,
     "collectives": {"all_reduce": {"x": [bytes...], "busbw_Bps": [...]}, ...},   # optional
     "raw": {...}, "fit": {...}}
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap

PROFILE_FORMAT = "fleetsim-profile"
PROFILE_VERSION = 1
# Bundled profiles are hwmodels package data (hwmodels/profiles/<device>.json), found through
# importlib.resources so an installed wheel finds them as well as a checkout does.
PROFILES_DIR = Path(str(resources.files("hwmodels") / "profiles"))


@dataclass(frozen=True, slots=True)
class Curve:
    """y(x) by linear interpolation in log(x), clamped outside [x0, xn]."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    _logx: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.xs) != len(self.ys) or not self.xs:
            raise ConfigError("curve needs equal, non-empty x and y lists", key="curve")
        if any(x <= 0 for x in self.xs) or any(y <= 0 for y in self.ys):
            raise ConfigError("curve values must be > 0", key="curve")
        if list(self.xs) != sorted(self.xs):
            raise ConfigError("curve x values must be increasing", key="curve")
        object.__setattr__(self, "_logx", tuple(math.log(x) for x in self.xs))

    def __call__(self, x: float) -> float:
        xs, ys = self.xs, self.ys
        if x <= xs[0]:
            return ys[0]
        if x >= xs[-1]:
            return ys[-1]
        i = bisect.bisect_right(xs, x)
        lx = math.log(x)
        t = (lx - self._logx[i - 1]) / (self._logx[i] - self._logx[i - 1])
        return ys[i - 1] + t * (ys[i] - ys[i - 1])

    def to_json(self, yname: str = "eff") -> dict[str, list[float]]:
        return {"x": list(self.xs), yname: list(self.ys)}


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceProfile:
    """Efficiency curves for one device; `source` is 'defaults' or the profile file."""

    device: str
    gemm: FrozenMap[DType, Curve]
    memory: Curve
    attention_prefill: Curve
    attention_decode: Curve
    kernel_overhead_s: float
    host_to_device_Bps: float
    collectives: FrozenMap[str, Curve] = field(default_factory=FrozenMap)
    source: str = "defaults"

    def gemm_curve(self, dtype: DType) -> Curve:
        if dtype in self.gemm:
            return self.gemm[dtype]
        for fallback in (DType.BF16, DType.FP16):
            if fallback in self.gemm:
                return self.gemm[fallback]
        return next(iter(self.gemm.values()))


def _curve(raw: Any, file: str, key: str, yname: str = "eff") -> Curve:
    if not isinstance(raw, Mapping) or "x" not in raw or yname not in raw:
        raise ConfigError(f"expected {{x: [...], {yname}: [...]}}", file=file, key=key)
    try:
        return Curve(tuple(float(v) for v in raw["x"]), tuple(float(v) for v in raw[yname]))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad curve: {err}", file=file, key=key) from None


def profile_from_json(data: Mapping[str, Any], *, file: str = "<profile>") -> DeviceProfile:
    """Validate and parse a profile mapping."""
    if data.get("format") != PROFILE_FORMAT:
        raise ConfigError(f"not a fleetsim profile (format={data.get('format')!r})", file=file,
                          key="format", allowed=[PROFILE_FORMAT])
    if data.get("version") != PROFILE_VERSION:
        raise ConfigError(f"profile format version {data.get('version')!r} is not supported; "
                          "re-run fleetsim calibrate", file=file, key="version",
                          allowed=[PROFILE_VERSION])
    for key in ("device", "gemm", "memory", "attention_prefill", "attention_decode"):
        if key not in data:
            raise ConfigError("missing required key", file=file, key=key)
    gemm: dict[DType, Curve] = {}
    if not isinstance(data["gemm"], Mapping) or not data["gemm"]:
        raise ConfigError("expected a non-empty mapping dtype -> curve", file=file, key="gemm")
    for dt, raw in data["gemm"].items():
        try:
            dtype = DType(dt)
        except ValueError:
            raise ConfigError(f"unknown dtype '{dt}'", file=file, key="gemm",
                              allowed=[d.value for d in DType]) from None
        gemm[dtype] = _curve(raw, file, f"gemm.{dt}")
    colls = {op: _curve(raw, file, f"collectives.{op}", "busbw_Bps")
             for op, raw in (data.get("collectives") or {}).items()}
    overhead = data.get("kernel_overhead_s", 4e-6)
    h2d = data.get("host_to_device_Bps", 2.5e10)
    for key, value in (("kernel_overhead_s", overhead), ("host_to_device_Bps", h2d)):
        if not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"must be a number >= 0, got {value!r}", file=file, key=key)
    return DeviceProfile(
        device=str(data["device"]),
        gemm=FrozenMap(gemm),
        memory=_curve(data["memory"], file, "memory"),
        attention_prefill=_curve(data["attention_prefill"], file, "attention_prefill"),
        attention_decode=_curve(data["attention_decode"], file, "attention_decode"),
        kernel_overhead_s=float(overhead),
        host_to_device_Bps=float(h2d),
        collectives=FrozenMap(colls),
        source=file,
    )


def load_profile(path: str | Path, *, device: str | None = None) -> DeviceProfile:
    """Read and validate a profile file; with `device`, refuse a profile of another device."""
    from hwmodels.catalog import read_text

    path = Path(path)
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ConfigError(f"malformed JSON at line {err.lineno}: {err.msg}",
                          file=str(path)) from None
    if not isinstance(data, Mapping):
        raise ConfigError("expected a JSON object", file=str(path))
    profile = profile_from_json(data, file=str(path))
    if device is not None and profile.device.lower() != device.lower():
        raise ConfigError(f"profile is for device '{profile.device}', not '{device}'",
                          file=str(path), key="device", allowed=[profile.device])
    return profile


def find_profile(device: str, search_dirs: Sequence[Path] | None = None) -> Path | None:
    """The bundled/calibrated profile file for a device name, if any (hwmodels/profiles/)."""
    for root in search_dirs or [PROFILES_DIR]:
        candidate = Path(root) / f"{device.lower()}.json"
        if candidate.exists():
            return candidate
    return None
