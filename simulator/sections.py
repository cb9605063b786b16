"""Key-checked reading of one scenario section by a list of allowed keys (serving's loader).

Training and long runs read their sections with `simulator.schema.read_section`, driven by
the dataclass schemas; this keyed form remains for the serving scenario until its sections
become dataclasses too (see simulator/schema.py), then it goes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hwmodels.errors import ConfigError
from simulator.schema import check_keys


def read_section(mapping: Mapping[str, Any], key: str, allowed: Sequence[str],
                 file: str | None, *, required: bool) -> dict[str, Any]:
    """mapping[key] as a dict ({} if absent and optional); unknown keys name file and key."""
    raw = mapping.get(key)
    if raw is None and required:
        raise ConfigError("missing required section", file=file, key=key, allowed=list(allowed))
    return check_keys(raw, allowed, file=file, section=key)
