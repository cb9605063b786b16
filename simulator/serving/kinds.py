"""Serving enums shared by the engine, lanes and extensions: replica lifecycle states and the
KV preemption mode (roles are cluster_config.Role; policies have their own kinds)."""

from __future__ import annotations

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError


class ReplicaState(StrEnum):
    """A replica's place in its lifecycle (autoscaling and failures move it)."""

    BOOTING = "booting"  # provisioned and billed, not routable yet
    ACTIVE = "active"
    DRAINING = "draining"  # no new requests; retired once empty
    RETIRED = "retired"


class PreemptionMode(StrEnum):
    """What happens to a decoding request evicted for KV space (vLLM's two modes)."""

    RECOMPUTE = "recompute"  # back to the queue's front, prompt + generated tokens prefilled again
    SWAP = "swap"  # KV blocks moved to host memory and back


def enum_value(kinds: type[StrEnum], value: object, field: str) -> StrEnum:
    """`value` as a member of `kinds`; a ConfigError naming `field` and the allowed values."""
    try:
        return kinds(str(value))
    except ValueError:
        raise ConfigError(f"unknown value {value!r}", key=field,
                          allowed=[str(k) for k in kinds]) from None


__all__ = ["PreemptionMode", "ReplicaState", "enum_value"]
