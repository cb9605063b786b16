"""Cluster-level serving configuration: replica groups (heterogeneous devices, disaggregated
prefill/decode pools), power, failures, autoscaling and migration - frozen specs parsed from the
scenario YAML with errors naming file and key (keys documented in simulator/serving/__init__)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hwmodels._compat import StrEnum
from hwmodels.catalog import load_device
from hwmodels.errors import ConfigError
from hwmodels.specs import DeviceSpec
from hwmodels.units import parse_duration_s


class Role(StrEnum):
    """What a replica group serves: whole requests, or one phase of a disaggregated pipeline."""

    BOTH = "both"
    PREFILL = "prefill"
    DECODE = "decode"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaGroup:
    """`count` identical replicas of `tp` x `pp` devices; price defaults to the catalog's."""

    name: str
    device: DeviceSpec
    count: int = 1
    tp: int = 1
    pp: int = 1
    role: Role = Role.BOTH
    price_usd_per_hour: float | None = None  # per device
    slowdown: float = 1.0  # step-time multiplier (a straggling or throttled group)

    def __post_init__(self) -> None:
        for key in ("count", "tp", "pp"):
            value = getattr(self, key)
            minimum = 0 if key == "count" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"must be an integer >= {minimum}, got {value!r}",
                                  key=f"replica_groups.{self.name}.{key}")
        if not self.slowdown >= 1.0:
            raise ConfigError(f"must be >= 1, got {self.slowdown!r}",
                              key=f"replica_groups.{self.name}.slowdown")

    @property
    def devices_per_replica(self) -> int:
        return self.tp * self.pp

    @property
    def price(self) -> float:
        """USD per device-hour."""
        return (self.device.price_usd_per_hour if self.price_usd_per_hour is None
                else self.price_usd_per_hour)


@dataclass(frozen=True, slots=True, kw_only=True)
class CapControllerConfig:
    """POLCA-style row power controller: read row power every interval_s; above high x budget
    tighten one level, below low x budget loosen one; a decision applies latency_s later."""

    budget_w: float
    interval_s: float = 1.0
    latency_s: float = 2.0
    levels: tuple[float, ...] = (1.0, 0.85, 0.7)
    high: float = 0.95
    low: float = 0.8
    targets: str = "all"


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerConfig:
    """Per-step power accounting, power time series and (static or controlled) capping."""

    bin_s: float = 1.0
    devices_per_server: int = 8
    servers_per_row: int = 4
    cap_fraction: float | None = None  # static cap as a fraction of TDP
    cap_w: float | None = None  # static cap in watts per device (instead of cap_fraction)
    cap_targets: str = "all"  # all | prefill | decode | <group name>
    controller: CapControllerConfig | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureConfig:
    """Replica crashes (time to failure per replica), repair, retries and stragglers."""

    mtbf_s: float | None = None
    distribution: str = "exponential"  # or weibull
    weibull_shape: float = 1.0
    repair_s: float = 600.0
    retry_budget: int = 2
    straggler_fraction: float = 0.0
    straggler_slowdown: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AutoscaleConfig:
    """Threshold autoscaler for one replica group with provisioning delay and cooldown."""

    group: str | None = None
    min_replicas: int = 1
    max_replicas: int = 8
    metric: str = "queue"  # queue | latency | utilization
    up_threshold: float = 16.0
    down_threshold: float = 2.0
    interval_s: float = 10.0
    cooldown_s: float = 60.0
    instance_start_s: float = 60.0
    storage_Bps: float = 2.0e9  # weights read at this rate (NVMe / object store)


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationConfig:
    """Llumnix-style rebalancing: every interval_s move up to max_per_round decoding requests
    from the most to the least loaded replica when their outstanding differ by >= threshold."""

    interval_s: float = 1.0
    threshold: int = 8
    max_per_round: int = 4


FAILURE_DISTRIBUTIONS = ("exponential", "weibull")
AUTOSCALE_METRICS = ("queue", "latency", "utilization")
GROUP_KEYS = ("name", "device", "count", "tp", "pp", "price_usd_per_hour", "slowdown", "role")
DISAGG_KEYS = ("prefill_replicas", "decode_replicas", "prefill", "decode", "link", "same_node")
POWER_KEYS = ("bin_s", "devices_per_server", "servers_per_row", "cap_fraction", "cap_w",
              "cap_targets", "controller")
CONTROLLER_KEYS = ("budget_w", "interval_s", "latency_s", "levels", "high", "low", "targets")
FAILURE_KEYS = ("mtbf_s", "distribution", "weibull_shape", "repair_s", "retry_budget",
                "stragglers")
AUTOSCALE_KEYS = ("group", "min_replicas", "max_replicas", "metric", "up_threshold",
                  "down_threshold", "interval_s", "cooldown_s", "instance_start_s",
                  "storage_Bps")
MIGRATION_KEYS = ("interval_s", "threshold", "max_per_round")


def check_keys(sec: Any, allowed: Sequence[str], where: str, file: str | None) -> dict[str, Any]:
    """A mapping with only allowed keys (ConfigError naming the key otherwise)."""
    if not isinstance(sec, Mapping):
        raise ConfigError(f"expected a mapping, got {type(sec).__name__}", file=file, key=where)
    for k in sec:
        if k not in allowed:
            raise ConfigError(f"unknown key '{k}'", file=file, key=f"{where}.{k}",
                              allowed=list(allowed))
    return dict(sec)


def num(sec: Mapping[str, Any], key: str, where: str, file: str | None, default: float | None,
        *, minimum: float = 0.0, strict: bool = True, duration: bool = False) -> float | None:
    """A number (or duration) >= / > minimum, or the default when absent."""
    if sec.get(key) is None:
        return default
    raw = sec[key]
    if duration:
        value = parse_duration_s(raw, key=f"{where}.{key}", file=file)
    else:
        try:  # YAML 1.1 reads 2.0e9 (no exponent sign) as a string
            value = float(raw) if isinstance(raw, (int, float, str)) \
                and not isinstance(raw, bool) else float("nan")
        except ValueError:
            value = float("nan")
        if value != value:
            raise ConfigError(f"expected a number, got {raw!r}", file=file,
                              key=f"{where}.{key}")
    if value < minimum or (strict and value == minimum):
        raise ConfigError(f"must be {'>' if strict else '>='} {minimum}, got {raw!r}", file=file,
                          key=f"{where}.{key}")
    return value


def integer(sec: Mapping[str, Any], key: str, where: str, file: str | None, default: int,
            minimum: int = 1) -> int:
    value = sec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"expected an integer >= {minimum}, got {value!r}", file=file,
                          key=f"{where}.{key}")
    return value


def parse_group(sec: Any, where: str, file: str | None, *, default_device: DeviceSpec,
                default_tp: int, default_pp: int, default_name: str,
                role: Role | None = None) -> ReplicaGroup:
    """One replica_groups entry (or a disaggregation pool)."""
    sec = check_keys(sec, GROUP_KEYS, where, file)
    device = load_device(str(sec["device"])) if "device" in sec else default_device
    raw_role = sec.get("role", str(role or Role.BOTH))
    try:
        group_role = Role(str(raw_role))
    except ValueError:
        raise ConfigError(f"unknown value {raw_role!r}", file=file, key=f"{where}.role",
                          allowed=[r.value for r in Role]) from None
    if role is not None and group_role is not role:
        raise ConfigError(f"a {role} pool cannot have role {group_role}", file=file,
                          key=f"{where}.role", allowed=[str(role)])
    price = num(sec, "price_usd_per_hour", where, file, None, strict=False)
    try:
        return ReplicaGroup(
            name=str(sec.get("name", default_name)), device=device,
            count=integer(sec, "count", where, file, 1, minimum=0),
            tp=integer(sec, "tp", where, file, default_tp),
            pp=integer(sec, "pp", where, file, default_pp), role=group_role,
            price_usd_per_hour=price,
            slowdown=float(num(sec, "slowdown", where, file, 1.0, minimum=1.0,
                               strict=False)))  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ConfigError(str(exc.args[0]) if exc.args else "invalid", file=file,
                          key=where) from None


def parse_groups(serving: Mapping[str, Any], *, device: DeviceSpec, tp: int, pp: int,
                 replicas: int, file: str | None) -> tuple[tuple[ReplicaGroup, ...], dict]:
    """serving.replica_groups / serving.disaggregation -> groups, plus disaggregation options
    (link, same_node); the homogeneous form becomes one group."""
    groups: list[ReplicaGroup] = []
    raw_groups = serving.get("replica_groups")
    if raw_groups is not None:
        if not isinstance(raw_groups, list) or not raw_groups:
            raise ConfigError("expected a non-empty list of groups", file=file,
                              key="serving.replica_groups")
        for i, g in enumerate(raw_groups):
            groups.append(parse_group(g, f"serving.replica_groups[{i}]", file,
                                      default_device=device, default_tp=tp, default_pp=pp,
                                      default_name=f"g{i}"))
    disagg = serving.get("disaggregation")
    options: dict[str, Any] = {}
    if disagg is not None:
        w = "serving.disaggregation"
        d = check_keys(disagg, DISAGG_KEYS, w, file)
        if raw_groups is not None and any(g.role is not Role.BOTH for g in groups):
            raise ConfigError("give pools either in replica_groups roles or in disaggregation",
                              file=file, key=w)
        pools = []
        for role in (Role.PREFILL, Role.DECODE):
            base = {"count": integer(d, f"{role}_replicas", w, file, 1)}
            spec = {**base, **(d.get(str(role)) or {})}
            pools.append(parse_group(spec, f"{w}.{role}", file, default_device=device,
                                     default_tp=tp, default_pp=pp, default_name=str(role),
                                     role=role))
        groups = [g for g in groups if g.role is Role.BOTH] + pools
        options = {"link": d.get("link"), "same_node": bool(d.get("same_node", False))}
    if not groups:
        groups = [ReplicaGroup(name="default", device=device, count=replicas, tp=tp, pp=pp)]
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ConfigError(f"group names must be unique, got {names}", file=file,
                          key="serving.replica_groups")
    roles = {g.role for g in groups}
    if (Role.PREFILL in roles) != (Role.DECODE in roles):
        raise ConfigError("a disaggregated cluster needs both a prefill and a decode pool",
                          file=file, key="serving.replica_groups", allowed=["prefill+decode"])
    if Role.PREFILL in roles and Role.BOTH in roles:
        raise ConfigError("mixing co-located and disaggregated groups is not supported",
                          file=file, key="serving.replica_groups")
    return tuple(groups), options


def parse_power(raw: Any, *, devices_per_node: int, file: str | None) -> PowerConfig | None:
    if raw is None:
        return None
    w = "power"
    sec = check_keys(raw, POWER_KEYS, w, file)
    if "cap_fraction" in sec and "cap_w" in sec:
        raise ConfigError("give one of cap_fraction and cap_w", file=file, key="power.cap_w")
    cap = num(sec, "cap_fraction", w, file, None)
    if cap is not None and cap > 1:
        raise ConfigError(f"must be in (0, 1], got {cap}", file=file, key="power.cap_fraction")
    controller = None
    if sec.get("controller") is not None:
        cw = "power.controller"
        c = check_keys(sec["controller"], CONTROLLER_KEYS, cw, file)
        if "budget_w" not in c:
            raise ConfigError("missing required key", file=file, key=f"{cw}.budget_w")
        levels = c.get("levels", [1.0, 0.85, 0.7])
        if (not isinstance(levels, list) or not levels
                or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x <= 1
                       for x in levels)
                or list(levels) != sorted(levels, reverse=True)):
            raise ConfigError(f"expected decreasing fractions in (0, 1], got {levels!r}",
                              file=file, key=f"{cw}.levels")
        high = float(num(c, "high", cw, file, 0.95))  # type: ignore[arg-type]
        low = float(num(c, "low", cw, file, 0.8))  # type: ignore[arg-type]
        if not low < high:
            raise ConfigError(f"low {low} must be below high {high} (hysteresis)", file=file,
                              key=f"{cw}.low")
        controller = CapControllerConfig(
            budget_w=float(num(c, "budget_w", cw, file, None)),  # type: ignore[arg-type]
            interval_s=float(num(c, "interval_s", cw, file, 1.0, duration=True)),  # type: ignore
            latency_s=float(num(c, "latency_s", cw, file, 2.0, strict=False,  # type: ignore
                                duration=True)),
            levels=tuple(float(x) for x in levels), high=high, low=low,
            targets=str(c.get("targets", "all")))
    return PowerConfig(
        bin_s=float(num(sec, "bin_s", w, file, 1.0, duration=True)),  # type: ignore[arg-type]
        devices_per_server=integer(sec, "devices_per_server", w, file, devices_per_node),
        servers_per_row=integer(sec, "servers_per_row", w, file, 4),
        cap_fraction=cap, cap_w=num(sec, "cap_w", w, file, None),
        cap_targets=str(sec.get("cap_targets", "all")), controller=controller)


def parse_failures(raw: Any, *, file: str | None) -> FailureConfig | None:
    if raw is None:
        return None
    w = "failures"
    sec = check_keys(raw, FAILURE_KEYS, w, file)
    dist = str(sec.get("distribution", "exponential"))
    if dist not in FAILURE_DISTRIBUTIONS:
        raise ConfigError(f"unknown value {dist!r}", file=file, key="failures.distribution",
                          allowed=FAILURE_DISTRIBUTIONS)
    frac, slow = 0.0, 1.0
    if sec.get("stragglers") is not None:
        s = check_keys(sec["stragglers"], ("fraction", "slowdown"), "failures.stragglers", file)
        frac = float(num(s, "fraction", "failures.stragglers", file, 0.0,  # type: ignore
                         strict=False))
        slow = float(num(s, "slowdown", "failures.stragglers", file, 1.0,  # type: ignore
                         minimum=1.0, strict=False))
        if frac > 1:
            raise ConfigError(f"must be in [0, 1], got {frac}", file=file,
                              key="failures.stragglers.fraction")
    return FailureConfig(
        mtbf_s=num(sec, "mtbf_s", w, file, None, duration=True),
        distribution=dist,
        weibull_shape=float(num(sec, "weibull_shape", w, file, 1.0)),  # type: ignore[arg-type]
        repair_s=float(num(sec, "repair_s", w, file, 600.0, strict=False,  # type: ignore
                           duration=True)),
        retry_budget=integer(sec, "retry_budget", w, file, 2, minimum=0),
        straggler_fraction=frac, straggler_slowdown=slow)


def parse_autoscale(raw: Any, *, file: str | None) -> AutoscaleConfig | None:
    if raw is None:
        return None
    w = "autoscale"
    sec = check_keys(raw, AUTOSCALE_KEYS, w, file)
    metric = str(sec.get("metric", "queue"))
    if metric not in AUTOSCALE_METRICS:
        raise ConfigError(f"unknown value {metric!r}", file=file, key="autoscale.metric",
                          allowed=AUTOSCALE_METRICS)
    lo = integer(sec, "min_replicas", w, file, 1, minimum=0)
    hi = integer(sec, "max_replicas", w, file, max(lo, 8))
    if hi < lo:
        raise ConfigError(f"max_replicas {hi} < min_replicas {lo}", file=file,
                          key="autoscale.max_replicas")
    up = float(num(sec, "up_threshold", w, file, 16.0))  # type: ignore[arg-type]
    down = float(num(sec, "down_threshold", w, file, 2.0, strict=False))  # type: ignore
    if not down < up:
        raise ConfigError(f"down_threshold {down} must be below up_threshold {up}", file=file,
                          key="autoscale.down_threshold")
    return AutoscaleConfig(
        group=None if sec.get("group") is None else str(sec["group"]), min_replicas=lo,
        max_replicas=hi, metric=metric, up_threshold=up, down_threshold=down,
        interval_s=float(num(sec, "interval_s", w, file, 10.0, duration=True)),  # type: ignore
        cooldown_s=float(num(sec, "cooldown_s", w, file, 60.0, strict=False,  # type: ignore
                             duration=True)),
        instance_start_s=float(num(sec, "instance_start_s", w, file, 60.0,  # type: ignore
                                   strict=False, duration=True)),
        storage_Bps=float(num(sec, "storage_Bps", w, file, 2.0e9)))  # type: ignore[arg-type]


def parse_migration(raw: Any, *, file: str | None) -> MigrationConfig | None:
    if raw is None:
        return None
    w = "serving.migration"
    sec = check_keys(raw, MIGRATION_KEYS, w, file)
    return MigrationConfig(
        interval_s=float(num(sec, "interval_s", w, file, 1.0, duration=True)),  # type: ignore
        threshold=integer(sec, "threshold", w, file, 8),
        max_per_round=integer(sec, "max_per_round", w, file, 4))
