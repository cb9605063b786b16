"""Cluster-level serving configuration: replica groups (heterogeneous devices, disaggregated
prefill/decode pools), power, failures, autoscaling and migration - frozen specs parsed from the
scenario YAML by simulator.schema.read_section: the fields are the allowed keys, types and
defaults; checks live in __post_init__ (keys documented in simulator/serving/__init__)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hwmodels._compat import StrEnum
from hwmodels.catalog import load_device
from hwmodels.engine_profiles import load_engine
from hwmodels.errors import ConfigError
from hwmodels.profile import DeviceProfile
from hwmodels.specs import DeviceSpec
from simulator.longrun.failures import check_weibull_shape
from simulator.schema import BytesPerSecond, Seconds


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
    # the complete efficiency profile of `device` its costs use (None: bundled, else defaults)
    profile: DeviceProfile | None = None
    # serving engine preset of this group (hwmodels.engine_profiles; None: serving.engine)
    engine: str | None = None

    def __post_init__(self) -> None:
        where = f"replica_groups.{self.name}"
        if self.engine is not None:
            object.__setattr__(self, "engine",
                               load_engine(self.engine, key=f"{where}.engine").name)
        if self.profile is not None and not isinstance(self.profile, DeviceProfile):
            raise ConfigError(f"expected a DeviceProfile, got {type(self.profile).__name__}",
                              key=f"{where}.profile")
        for key in ("count", "tp", "pp"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"expected an integer, got {value!r}", key=f"{where}.{key}")
            at_least(self, where, key, 0 if key == "count" else 1)
        at_least(self, where, "slowdown", 1.0)

    @property
    def devices_per_replica(self) -> int:
        return self.tp * self.pp

    @property
    def price(self) -> float:
        """USD per device-hour."""
        return (self.device.price_usd_per_hour if self.price_usd_per_hour is None
                else self.price_usd_per_hour)


class AutoscaleMetric(StrEnum):
    """What the autoscaler compares with its thresholds."""

    QUEUE = "queue"
    LATENCY = "latency"
    UTILIZATION = "utilization"


class FailureDistribution(StrEnum):
    """Time-to-failure distribution of a replica."""

    EXPONENTIAL = "exponential"
    WEIBULL = "weibull"


class CapTarget(StrEnum):
    """Which groups a power cap applies to (a group name is accepted too)."""

    ALL = "all"
    PREFILL = "prefill"
    DECODE = "decode"


def at_least(obj: object, section: str, key: str, minimum: float, *,
             strict: bool = False) -> None:
    """ConfigError naming section.key unless obj.key (when set) is >= minimum (> if strict)."""
    value = getattr(obj, key)
    if value is None:
        return
    if not value >= minimum or (strict and value == minimum):  # NaN fails too
        what = ("an integer " if isinstance(value, int) else "") + (">" if strict else ">=")
        raise ConfigError(f"must be {what} {minimum:g}, got {value!r}",
                          key=f"{section}.{key}" if section else key)


def targets_group(targets: str, group: ReplicaGroup) -> bool:
    """Whether a cap target (all | prefill | decode | a group name) covers the group."""
    return targets in (CapTarget.ALL, group.role, group.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class CapControllerConfig:
    """POLCA-style row power controller: read row power every interval_s; above high x budget
    tighten one level, below low x budget loosen one; a decision applies latency_s later."""

    budget_w: float
    interval_s: Seconds = 1.0
    latency_s: Seconds = 2.0
    levels: tuple[float, ...] = (1.0, 0.85, 0.7)
    high: float = 0.95
    low: float = 0.8
    targets: CapTarget | str = CapTarget.ALL

    def __post_init__(self) -> None:
        w = "power.controller"
        for key, strict in (("budget_w", True), ("interval_s", True), ("latency_s", False),
                            ("high", True), ("low", True)):
            at_least(self, w, key, 0.0, strict=strict)
        levels = self.levels
        if (not levels or any(not 0 < x <= 1 for x in levels)
                or list(levels) != sorted(levels, reverse=True)):
            raise ConfigError(f"expected decreasing fractions in (0, 1], got {list(levels)!r}",
                              key=f"{w}.levels")
        if not self.low < self.high:
            raise ConfigError(f"low {self.low} must be below high {self.high} (hysteresis)",
                              key=f"{w}.low")
        object.__setattr__(self, "levels", tuple(float(x) for x in levels))


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerConfig:
    """Per-step power accounting, power time series and (static or controlled) capping."""

    bin_s: Seconds = 1.0
    devices_per_server: int | None = None  # None: the plan's devices per node
    servers_per_row: int = 4
    cap_fraction: float | None = None  # static cap as a fraction of TDP
    cap_w: float | None = None  # static cap in watts per device (instead of cap_fraction)
    cap_targets: CapTarget | str = CapTarget.ALL  # or a group name
    controller: CapControllerConfig | None = None

    def __post_init__(self) -> None:
        if self.cap_fraction is not None and self.cap_w is not None:
            raise ConfigError("give one of cap_fraction and cap_w", key="power.cap_w")
        for key in ("bin_s", "cap_fraction", "cap_w"):
            at_least(self, "power", key, 0.0, strict=True)
        for key in ("devices_per_server", "servers_per_row"):
            at_least(self, "power", key, 1)
        if self.cap_fraction is not None and self.cap_fraction > 1:
            raise ConfigError(f"must be in (0, 1], got {self.cap_fraction}",
                              key="power.cap_fraction")


@dataclass(frozen=True, slots=True, kw_only=True)
class StragglersConfig:
    """failures.stragglers: this fraction of replicas runs slowdown x slower."""

    fraction: float = 0.0
    slowdown: float = 1.0

    def __post_init__(self) -> None:
        at_least(self, "failures.stragglers", "fraction", 0.0)
        at_least(self, "failures.stragglers", "slowdown", 1.0)
        if self.fraction > 1:
            raise ConfigError(f"must be in [0, 1], got {self.fraction}",
                              key="failures.stragglers.fraction")


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureConfig:
    """Replica crashes (time to failure per replica), repair, retries and stragglers."""

    mtbf_s: Seconds | None = None
    distribution: FailureDistribution = FailureDistribution.EXPONENTIAL
    weibull_shape: float = 1.0
    repair_s: Seconds = 600.0
    retry_budget: int = 2
    stragglers: StragglersConfig = StragglersConfig()

    def __post_init__(self) -> None:
        for key, minimum, strict in (("mtbf_s", 0.0, True), ("weibull_shape", 0.0, True),
                                     ("repair_s", 0.0, False), ("retry_budget", 0, False)):
            at_least(self, "failures", key, minimum, strict=strict)
        # the same range as the long-run sampler: Weibull draws overflow below it
        check_weibull_shape(self.weibull_shape, "failures.weibull_shape")

    @property
    def straggler_fraction(self) -> float:
        return self.stragglers.fraction

    @property
    def straggler_slowdown(self) -> float:
        return self.stragglers.slowdown


@dataclass(frozen=True, slots=True, kw_only=True)
class AutoscaleConfig:
    """Threshold autoscaler for one replica group with provisioning delay and cooldown."""

    group: str | None = None
    min_replicas: int = 1
    max_replicas: int | None = None  # None: max(min_replicas, 8)
    metric: AutoscaleMetric = AutoscaleMetric.QUEUE
    up_threshold: float = 16.0
    down_threshold: float = 2.0
    interval_s: Seconds = 10.0
    cooldown_s: Seconds = 60.0
    instance_start_s: Seconds = 60.0
    storage_Bps: BytesPerSecond = 2.0e9  # weights read at this rate (NVMe / object store)

    def __post_init__(self) -> None:
        if self.max_replicas is None:
            object.__setattr__(self, "max_replicas", max(self.min_replicas, 8))
        w = "autoscale"
        at_least(self, w, "min_replicas", 0)
        at_least(self, w, "max_replicas", 1)
        for key, strict in (("up_threshold", True), ("down_threshold", False),
                            ("interval_s", True), ("cooldown_s", False),
                            ("instance_start_s", False), ("storage_Bps", True)):
            at_least(self, w, key, 0.0, strict=strict)
        if self.max_replicas < self.min_replicas:  # type: ignore[operator]
            raise ConfigError(f"max_replicas {self.max_replicas} < min_replicas "
                              f"{self.min_replicas}", key="autoscale.max_replicas")
        if not self.down_threshold < self.up_threshold:
            raise ConfigError(f"down_threshold {self.down_threshold} must be below "
                              f"up_threshold {self.up_threshold}", key="autoscale.down_threshold")


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationConfig:
    """Llumnix-style rebalancing: every interval_s move up to max_per_round decoding requests
    from the most to the least loaded replica when their outstanding differ by >= threshold."""

    interval_s: Seconds = 1.0
    threshold: int = 8
    max_per_round: int = 4

    def __post_init__(self) -> None:
        at_least(self, "serving.migration", "interval_s", 0.0, strict=True)
        at_least(self, "serving.migration", "threshold", 1)
        at_least(self, "serving.migration", "max_per_round", 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupSpec:
    """One serving.replica_groups entry or disaggregation pool as written; unset fields take
    the serving section's device, tp and pp (resolved by `resolve`)."""

    name: str | None = None
    device: str | None = None
    count: int | None = None
    tp: int | None = None
    pp: int | None = None
    price_usd_per_hour: float | None = None
    slowdown: float = 1.0
    role: Role | None = None
    # a path (relative to the scenario file), a bundled profile's name or 'defaults'; None:
    # cluster.profile for the cluster's device, else the bundled profile / catalog defaults
    profile: str | None = None
    engine: str | None = None  # serving engine preset (None: serving.engine)

    def resolve(self, where: str, *, device: DeviceSpec, tp: int, pp: int, name: str,
                count: int = 1, role: Role | None = None,
                profile_for: ProfileFor | None = None) -> ReplicaGroup:
        """The ReplicaGroup, defaults filled in; a pool's role must match `role`;
        `profile_for(device, value, key)` resolves its profile key."""
        if role is not None and self.role is not None and self.role is not role:
            raise ConfigError(f"a {role} pool cannot have role {self.role}",
                              key=f"{where}.role", allowed=[str(role)])
        for key, minimum in (("count", 0), ("tp", 1), ("pp", 1), ("price_usd_per_hour", 0),
                             ("slowdown", 1)):
            at_least(self, where, key, minimum)
        dev = device if self.device is None else load_device(self.device)
        return ReplicaGroup(
            name=self.name if self.name is not None else name,
            device=dev,
            profile=None if profile_for is None else profile_for(dev, self.profile,
                                                                 f"{where}.profile"),
            count=count if self.count is None else self.count,
            tp=tp if self.tp is None else self.tp, pp=pp if self.pp is None else self.pp,
            role=self.role or role or Role.BOTH,
            price_usd_per_hour=self.price_usd_per_hour, slowdown=float(self.slowdown),
            engine=self._engine(where))

    def _engine(self, where: str) -> str | None:
        if self.engine is None:
            return None
        return load_engine(self.engine, key=f"{where}.engine").name


@dataclass(frozen=True, slots=True, kw_only=True)
class DisaggregationConfig:
    """serving.disaggregation: a prefill and a decode pool and the link between them."""

    prefill_replicas: int = 1
    decode_replicas: int = 1
    prefill: GroupSpec = GroupSpec()
    decode: GroupSpec = GroupSpec()
    link: str | None = None
    same_node: bool = False

    def __post_init__(self) -> None:
        at_least(self, "serving.disaggregation", "prefill_replicas", 1)
        at_least(self, "serving.disaggregation", "decode_replicas", 1)


# (device, scenario profile value or None, its dotted key) -> the complete profile
ProfileFor = Callable[[DeviceSpec, Any, str], DeviceProfile]


def build_groups(specs: tuple[GroupSpec, ...] | None, disagg: DisaggregationConfig | None, *,
                 device: DeviceSpec, tp: int, pp: int, replicas: int,
                 profile_for: ProfileFor | None = None) -> tuple[ReplicaGroup, ...]:
    """serving.replica_groups / serving.disaggregation -> the replica groups (the homogeneous
    form becomes one group); errors name the dotted key. `profile_for` resolves each group's
    profile key (None: groups carry no profile and costs use the bundled one / defaults)."""
    if specs is not None and not specs:
        raise ConfigError("expected a non-empty list of groups", key="serving.replica_groups")
    groups = [g.resolve(f"serving.replica_groups[{i}]", device=device, tp=tp, pp=pp,
                        name=f"g{i}", profile_for=profile_for)
              for i, g in enumerate(specs or ())]
    if disagg is not None:
        w = "serving.disaggregation"
        if any(g.role is not Role.BOTH for g in groups):
            raise ConfigError("give pools either in replica_groups roles or in disaggregation",
                              key=w)
        pools = [disagg.prefill.resolve(f"{w}.prefill", device=device, tp=tp, pp=pp,
                                        name="prefill", count=disagg.prefill_replicas,
                                        role=Role.PREFILL, profile_for=profile_for),
                 disagg.decode.resolve(f"{w}.decode", device=device, tp=tp, pp=pp,
                                       name="decode", count=disagg.decode_replicas,
                                       role=Role.DECODE, profile_for=profile_for)]
        groups = [g for g in groups if g.role is Role.BOTH] + pools
    if not groups:
        groups = [ReplicaGroup(name="default", device=device, count=replicas, tp=tp, pp=pp,
                               profile=None if profile_for is None
                               else profile_for(device, None, "cluster.profile"))]
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ConfigError(f"group names must be unique, got {names}",
                          key="serving.replica_groups")
    roles = {g.role for g in groups}
    if (Role.PREFILL in roles) != (Role.DECODE in roles):
        raise ConfigError("a disaggregated cluster needs both a prefill and a decode pool",
                          key="serving.replica_groups", allowed=["prefill+decode"])
    if Role.PREFILL in roles and Role.BOTH in roles:
        raise ConfigError("mixing co-located and disaggregated groups is not supported",
                          key="serving.replica_groups")
    return tuple(groups)
