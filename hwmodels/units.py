"""Unit constants and parsers for human-written durations and sizes."""

from __future__ import annotations

import re

from hwmodels.errors import ConfigError

KiB = 1024
MiB = 1024**2
GiB = 1024**3
TiB = 1024**4
GB = 1e9
TB = 1e12
TFLOPS = 1e12
GBps = 1e9

_DURATION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|m|min|h|d|w)?\s*$")
_DURATION_SCALE = {None: 1.0, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
                   "d": 86400.0, "w": 604800.0}


def parse_duration_s(value: object, *, key: str = "duration", file: str | None = None) -> float:
    """Seconds from a number or a string like '30s', '15m', '2h', '54d' (non-negative)."""
    if isinstance(value, bool):
        raise ConfigError(f"expected a duration, got {value!r}", file=file, key=key,
                          allowed="seconds or a string like 30s, 15m, 2h, 54d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ConfigError(f"cannot read duration {value!r}", file=file, key=key,
                              allowed="seconds or a string like 30s, 15m, 2h, 54d")
        seconds = float(m.group(1)) * _DURATION_SCALE[m.group(2)]
    if seconds < 0 or seconds != seconds:
        raise ConfigError(f"duration must be >= 0, got {value!r}", file=file, key=key)
    return seconds


_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([KMGTP]i?B|B)?\s*$", re.I)
_SIZE_SCALE = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15,
               "kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB, "pib": 1024**5}


def parse_size_bytes(value: object, *, key: str = "size", file: str | None = None) -> float:
    """Bytes from a number or a string like '80GiB', '1.5TB' (non-negative)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        nbytes = float(value)
    else:
        m = _SIZE_RE.match(str(value))
        if not m:
            raise ConfigError(f"cannot read size {value!r}", file=file, key=key,
                              allowed="bytes or a string like 80GiB, 1.5TB")
        nbytes = float(m.group(1)) * _SIZE_SCALE[(m.group(2) or "b").lower()]
    if nbytes < 0:
        raise ConfigError(f"size must be >= 0, got {value!r}", file=file, key=key)
    return nbytes
