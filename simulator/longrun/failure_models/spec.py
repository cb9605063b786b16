"""The `run.failures` schema and the failure-model registry (one module per model)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap
from hwmodels.registry import Registry
from simulator.longrun.failures import (
    DAY_S,
    HOUR_S,
    LLAMA3_NODE_FAILURES_PER_1000_NODE_DAYS,
    REPAIR_HARDWARE_S,
    ComponentFailure,
    FailureModel,
    FailureModelKind,
    Scope,
    check_weibull_shape,
)
from simulator.schema import Seconds, read_section, with_file

KEY = "run.failures"

# Which rate key goes with which scope, and its unit in seconds.
RATE_KEYS: dict[str, tuple[Scope, float]] = {
    "rate_per_gpu_hour": (Scope.GPU, HOUR_S),
    "rate_per_node_day": (Scope.NODE, DAY_S),
    "rate_per_switch_day": (Scope.SWITCH, DAY_S),
}


def _check_positive(value: float | None, key: str) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"must be > 0, got {value!r}", key=key)


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentSpec:
    """`run.failures.components.<cause>`: a new cause (with one rate) or changes to one."""

    rate_per_gpu_hour: float | None = None
    rate_per_node_day: float | None = None
    rate_per_switch_day: float | None = None
    shape: float | None = None
    replace: bool | None = None
    repair_s: Seconds | None = None
    nodes_per_switch: int | None = None

    def __post_init__(self) -> None:
        given = [k for k in RATE_KEYS if getattr(self, k) is not None]
        if len(given) > 1:
            raise ConfigError("give one rate", key=f"{KEY}.components", allowed=list(RATE_KEYS))

    def apply(self, cause: str, base: ComponentFailure | None) -> ComponentFailure:
        """The component this spec describes, on top of the model's `base` (None: a new one)."""
        key = f"{KEY}.components.{cause}"
        changes: dict[str, object] = {}
        for rate_key, (scope, unit_s) in RATE_KEYS.items():
            rate = getattr(self, rate_key)
            if rate is not None:
                if not rate > 0:
                    raise ConfigError(f"failure rate must be a number > 0, got {rate!r}",
                                      key=f"{key}.{rate_key}")
                changes.update(scope=scope, rate_per_unit_s=rate / unit_s)
        if self.shape is not None:
            check_weibull_shape(self.shape, f"{key}.shape")
        if not changes and base is None:
            raise ConfigError("a new cause needs a rate", key=key, allowed=list(RATE_KEYS))
        for name in ("shape", "replace", "repair_s", "nodes_per_switch"):
            if getattr(self, name) is not None:
                changes[name] = getattr(self, name)
        if base is None:
            return ComponentFailure(cause=cause, **changes)  # type: ignore[arg-type]
        return replace(base, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class FailuresSpec:
    """`run.failures`: which model, its options, and per-cause changes."""

    model: FailureModelKind = FailureModelKind.LLAMA3
    scale: float = 1.0  # llama3: multiplies every component's rate
    shape: float | None = None  # Weibull shape (llama3: 1, weibull: 0.78; exponential: 1)
    node_failures_per_1000_node_days: float = LLAMA3_NODE_FAILURES_PER_1000_NODE_DAYS
    repair_s: Seconds = REPAIR_HARDWARE_S  # exponential/weibull: node repair time
    components: Mapping[str, ComponentSpec] = field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        _check_positive(self.scale, f"{KEY}.scale")
        if self.shape is not None:
            check_weibull_shape(self.shape, f"{KEY}.shape")
        _check_positive(self.node_failures_per_1000_node_days,
                        f"{KEY}.node_failures_per_1000_node_days")
        if self.model is FailureModelKind.EXPONENTIAL and self.shape is not None:
            raise ConfigError("the exponential model has shape 1; use model: weibull",
                              key=f"{KEY}.shape")


ComponentsFn = Callable[[FailuresSpec], tuple[ComponentFailure, ...]]
FAILURE_MODELS: Registry[FailureModelKind, ComponentsFn] = Registry(
    "failure model", FailureModelKind, key=f"{KEY}.model")


def build_failure_model(spec: FailuresSpec | Mapping[str, object] | None = None, *,
                        file: str | None = None) -> FailureModel:
    """The FailureModel of a `run.failures` spec or mapping (None -> the llama3 default)."""
    if not isinstance(spec, FailuresSpec):
        spec = read_section(spec, FailuresSpec, file=file, section=KEY)
    try:
        components = {c.cause: c for c in FAILURE_MODELS.get(spec.model)(spec)}
        for cause, change in spec.components.items():
            components[cause] = change.apply(cause, components.get(cause))
        return FailureModel(kind=spec.model, components=tuple(components.values()))
    except ConfigError as err:
        raise with_file(err, file) from None
