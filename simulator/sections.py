"""Reading one section of a scenario mapping: a mapping whose keys must all be known."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hwmodels.errors import ConfigError


def read_section(mapping: Mapping[str, Any], key: str, allowed: Sequence[str],
                 file: str | None, *, required: bool) -> dict[str, Any]:
    """mapping[key] as a dict ({} if absent and optional); unknown keys name file and key."""
    raw = mapping.get(key)
    if raw is None:
        if required:
            raise ConfigError("missing required section", file=file, key=key,
                              allowed=list(allowed))
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping, got {type(raw).__name__}", file=file, key=key)
    for k in raw:
        if k not in allowed:
            raise ConfigError(f"unknown key '{k}'", file=file, key=f"{key}.{k}",
                              allowed=list(allowed))
    return dict(raw)
