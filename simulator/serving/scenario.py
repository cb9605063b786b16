"""Serving scenarios: the YAML mapping of ARCHITECTURE.md -> a ServingScenario (a ServingPlan
plus its workload spec) and the workload frame; simulator.serving.simulate runs the plan.

Keys: model, cluster{device, num_devices, devices_per_node, intra_node, inter_node,
slice_shape},
serving{engine, replicas, tp, pp, scheduler, max_batch_tokens, max_num_seqs, chunk_size,
kv_block_size, preemption, admission, router, gpu_memory_utilization, dtype, kv_dtype, prefix_caching, max_model_len,
horizon_s, fast_forward, replica_groups, disaggregation, routers, migration, client_timeout_s},
workload{trace | synthetic{...} | clients (+ think_time_s, input, output, duration_s |
num_requests, prefix), rate_scale, window{start_s, end_s}, prefix_block_tokens},
slo{ttft_s, tpot_s}, power, failures, autoscale, seed, name, description (cluster keys:
simulator/serving/__init__ and cluster_config). serving.engine (hwmodels/catalog/engines.yaml;
unset: kernel-only) defaults scheduler, max_batch_tokens, max_num_seqs, preemption/admission and
prefix_caching; replica_groups[i].engine overrides it per group (step costs only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from hwmodels.catalog import load_device, load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError
from hwmodels.profile import DeviceProfile
from hwmodels.specs import ClusterSpec, DeviceSpec
from hwmodels.units import parse_duration_s
from simulator.profiles import NO_CHOICE, ProfileChoice
from simulator.schema import Seconds, apply_overrides, check_keys, read_section, with_file
from simulator.serving.cluster_config import (
    AutoscaleConfig,
    FailureConfig,
    PowerConfig,
    ProfileFor,
    ReplicaGroup,
    at_least,
    build_groups,
)
from simulator.serving.plan import ServingConfig, ServingPlan
from traces.closed_loop import ClientsSpec, parse_clients
from traces.readers import read_trace
from traces.stats import scale_trace, window_trace
from traces.synth import synthesize

P = TypeVar("P", bound=ServingPlan)

__all__ = ["ServingConfig", "ServingScenario", "apply_overrides", "load_serving_scenario",
           "load_workload", "parse_serving_section", "scenario_cluster", "with_groups"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSection:
    """`cluster:` of a serving scenario (topology keys are accepted and unused here)."""

    device: str
    num_devices: int | None = None
    devices_per_node: int | None = None
    intra_node: str | None = None
    inter_node: str | None = None  # None: each device's default NIC (default_inter_node)
    nics_per_node: Any = None
    topology: Any = None
    # efficiency profile of `device`: a path (relative to the scenario file), a bundled
    # profile's name or 'defaults'; None: the bundled profile for the device, else defaults
    profile: str | None = None
    # a torus slice's shape (TPU: [2, 4] for a v5e-8 host); product = the slice's chips
    slice_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        at_least(self, "cluster", "num_devices", 1)
        at_least(self, "cluster", "devices_per_node", 1)

    def cluster_spec(self, device: DeviceSpec, num_devices: int, *,
                     file: str | None = None) -> ClusterSpec:
        """The ClusterSpec of `num_devices` devices these keys describe (hw show; load-time
        checks of slice_shape and the links against the device's fabric)."""
        kwargs = {f: getattr(self, f) for f in ("devices_per_node", "intra_node", "inter_node",
                                                "slice_shape") if getattr(self, f) is not None}
        if self.devices_per_node is None and _slice_chips(self.slice_shape):
            kwargs["devices_per_node"] = _slice_chips(self.slice_shape)  # a slice per replica
        try:
            return build_cluster(device, num_devices, **kwargs)
        except ConfigError as err:
            raise with_file(err, file) from None


# keys beside `clients: N` (closed loop; traces.closed_loop), meaningless without it
_CLIENT_SIBLINGS = ("think_time_s", "think", "input", "output", "duration_s", "num_requests",
                    "prefix")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadSection:
    """`workload:` - one of trace (a path or bundled sample), synthetic (traces.synth) and
    clients (closed loop, traces.closed_loop: `clients: N` with think_time_s, input, output,
    duration_s | num_requests, prefix beside it, or `clients: {count, ...}`)."""

    trace: str | None = None
    synthetic: Mapping[str, Any] | None = None
    clients: Any = None
    think_time_s: Any = None
    think: str | None = None
    input: Any = None
    output: Any = None
    duration_s: Any = None
    num_requests: Any = None
    prefix: Any = None
    rate_scale: float | None = None
    window: Any = None  # {start_s, end_s} or [start, end], read by load_workload
    prefix_block_tokens: int | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("trace", "synthetic", "clients") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError("give exactly one of trace, synthetic and clients",
                              key="workload", allowed=["trace", "synthetic", "clients"])
        if self.clients is None:
            for k in _CLIENT_SIBLINGS:
                if getattr(self, k) is not None:
                    raise ConfigError(f"'{k}' belongs to closed-loop clients (workload.clients)"
                                      " or inside workload.synthetic", key=f"workload.{k}")
        else:
            for k in ("rate_scale", "window"):
                if getattr(self, k) is not None:
                    raise ConfigError("not with closed-loop clients: their load follows the "
                                      "service (change workload.clients instead)",
                                      key=f"workload.{k}", allowed=["workload.clients"])
            self.clients_spec()  # validate at load time (clients: 0, negative think time)
        at_least(self, "workload", "rate_scale", 0.0, strict=True)
        at_least(self, "workload", "prefix_block_tokens", 1)

    def clients_spec(self, file: str | None = None) -> ClientsSpec:
        """The closed-loop clients of this section (ConfigError naming the bad key)."""
        return parse_clients(self.clients, {k: getattr(self, k) for k in _CLIENT_SIBLINGS},
                             file=file)


@dataclass(frozen=True, slots=True, kw_only=True)
class SloSection:
    ttft_s: Seconds | None = None
    tpot_s: Seconds | None = None

    def __post_init__(self) -> None:
        at_least(self, "slo", "ttft_s", 0.0, strict=True)
        at_least(self, "slo", "tpot_s", 0.0, strict=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingScenarioFile:
    """The top level of a serving scenario file: every section, read up front."""

    model: Any
    cluster: ClusterSection
    serving: ServingConfig = ServingConfig()
    workload: WorkloadSection
    slo: SloSection = SloSection()
    seed: int = 0
    name: str = ""
    description: str = ""
    power: PowerConfig | None = None
    failures: FailureConfig | None = None
    autoscale: AutoscaleConfig | None = None

    def __post_init__(self) -> None:
        at_least(self, "", "seed", 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingScenario(ServingPlan):
    """A parsed serving scenario: the plan plus its workload spec and name."""

    workload: WorkloadSection
    name: str = ""


def with_groups(scenario: P, groups: list[ReplicaGroup] | tuple[ReplicaGroup, ...]) -> P:
    """The scenario with other replica groups (planners: heterogeneous mixes, pools)."""
    return replace(scenario, groups=tuple(groups))


def group_profiles(device: DeviceSpec, cluster_profile: Any = None,
                   profiles: ProfileChoice | None = None, *,
                   file: str | None = None) -> ProfileFor:
    """How a group's profile key resolves: the command line's choice first, then the group's
    own key, then (for the cluster's device) cluster.profile, then bundled / defaults."""
    choice = profiles or NO_CHOICE

    def profile_for(dev: DeviceSpec, value: Any, key: str) -> DeviceProfile:
        if value is None and dev.name == device.name:
            value, key = cluster_profile, "cluster.profile"
        return choice.for_device(dev, value, file=file, key=key)

    return profile_for


def resolve_serving(serving: ServingConfig, *, device: DeviceSpec, num_devices: int | None,
                    file: str | None = None, profile: Any = None,
                    profiles: ProfileChoice | None = None
                    ) -> tuple[ServingConfig, tuple[ReplicaGroup, ...]]:
    """The serving section with replicas resolved (cluster.num_devices // (tp x pp), bounded
    by it, unless groups or disaggregation size the cluster) and its replica groups, each
    with its resolved profile (`profile`: cluster.profile; `profiles`: the command line's)."""
    try:
        per = serving.tp * serving.pp
        budget = num_devices
        if serving.sized_by_groups:
            num_devices = None
        if serving.replicas is None:
            serving = replace(serving, replicas=max(1, num_devices // per) if num_devices else 1)
        if num_devices is not None and serving.replicas * per > num_devices:  # type: ignore
            raise ConfigError(f"replicas x tp x pp = {serving.replicas * per} exceeds "  # type: ignore
                              f"cluster.num_devices {num_devices}", key="serving.replicas")
        groups = build_groups(serving.replica_groups, serving.disaggregation,
                              device=device, tp=serving.tp, pp=serving.pp,
                              replicas=serving.replicas,  # type: ignore[arg-type]
                              profile_for=group_profiles(device, profile, profiles, file=file))
        if budget is not None and serving.sized_by_groups:
            # groups size the cluster; a num_devices given next to them must hold them
            # (it was silently ignored: 3 devices 'ran' 64)
            need = sum(g.count * g.devices_per_replica for g in groups)
            sized_by = ("serving.disaggregation" if serving.disaggregation is not None
                        else "serving.replica_groups")
            if need > budget:
                raise ConfigError(f"{sized_by} needs {need} devices (count x tp x pp summed), "
                                  f"more than cluster.num_devices {budget}",
                                  key="cluster.num_devices")
        return serving, groups
    except ConfigError as err:
        raise with_file(err, file) from None


def parse_serving_section(section: Mapping[str, Any] | None, *, device: DeviceSpec,
                          num_devices: int | None = None, file: str | None = None,
                          profile: Any = None, profiles: ProfileChoice | None = None
                          ) -> tuple[ServingConfig, tuple[ReplicaGroup, ...]]:
    """A serving: section -> (ServingConfig, replica groups); planners build typed plans from
    their serving keys this way. `num_devices` (cluster.num_devices) defaults and bounds the
    replica count unless groups or disaggregation size the cluster; `profile` / `profiles`
    as in resolve_serving."""
    serving = read_section(section, ServingConfig, file=file, section="serving")
    return resolve_serving(serving, device=device, num_devices=num_devices, file=file,
                           profile=profile, profiles=profiles)


def load_serving_scenario(mapping: Mapping[str, Any], *, file: str | None = None,
                          profiles: ProfileChoice | None = None) -> ServingScenario:
    """Validate a serving scenario mapping; errors name the file and key. `profiles` (the
    command line's --profile / --no-profile) overrides cluster.profile and group profiles."""
    if not isinstance(mapping, Mapping):
        raise ConfigError("a scenario must be a mapping", file=file)
    top = read_section(mapping, ServingScenarioFile, file=file)
    model = load_model(top.model, file=file)
    cl = top.cluster
    device = load_device(cl.device)
    serving, groups = resolve_serving(top.serving, device=device, num_devices=cl.num_devices,
                                      file=file, profile=cl.profile, profiles=profiles)
    (profiles or NO_CHOICE).check_devices([g.device for g in groups], where=file)
    _check_node(cl, device, file, groups)
    disagg = serving.disaggregation
    return ServingScenario(
        model=model, device=device, serving=serving, workload=top.workload,
        slo_ttft_s=top.slo.ttft_s, slo_tpot_s=top.slo.tpot_s, seed=top.seed,
        intra_node=cl.intra_node, inter_node=cl.inter_node, name=top.name, file=file,
        groups=groups, devices_per_node=cl.devices_per_node, slice_shape=cl.slice_shape,
        prefix_block_tokens=top.workload.prefix_block_tokens,
        disagg_link=None if disagg is None else disagg.link,
        disagg_same_node=disagg is not None and disagg.same_node,
        power=top.power, failures=top.failures, autoscale=top.autoscale)


def _slice_chips(shape: tuple[int, ...] | None) -> int:
    """Chips of a slice_shape of positive integers; 0 when unset or malformed (build_cluster
    then reports the bad shape, naming its key and allowed values)."""
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                            for d in shape):
        return 0
    return math.prod(shape)


def _check_node(cl: ClusterSection, device: DeviceSpec, file: str | None,
                groups: Sequence[ReplicaGroup] = ()) -> None:
    """Build one node from the cluster keys, so a link the device does not have is refused at
    load (one node: the host-link check of multi-node clusters stays where the serving path
    builds its clusters). With slice_shape (a TPU), one slice is one replica: every replica
    group of the cluster's device must have tp x pp = the shape's chips, as the step cost
    builds each replica on that slice."""
    if cl.slice_shape is None:
        per_node = cl.devices_per_node or device.devices_per_node
        cl.cluster_spec(device, min(cl.num_devices or per_node, per_node), file=file)
        return
    chips = _slice_chips(cl.slice_shape)
    for g in groups:
        if g.device.name == device.name and chips and g.tp * g.pp != chips:
            raise ConfigError(
                f"slice_shape {'x'.join(map(str, cl.slice_shape))} has {chips} chips, a "
                f"replica has tp x pp = {g.tp * g.pp}: one replica runs on one slice",
                file=file, key="cluster.slice_shape",
                allowed=f"dims whose product is {g.tp * g.pp}")
    cl.cluster_spec(device, chips or 1, file=file)


def scenario_cluster(mapping: Mapping[str, Any], *, file: str | None = None) -> ClusterSpec:
    """The whole cluster a serving scenario describes (`fleetsim hw show --scenario`): the
    cluster keys over cluster.num_devices, else over the devices its replica groups use."""
    sc = load_serving_scenario(mapping, file=file)
    cl = read_section(mapping, ServingScenarioFile, file=file).cluster
    n = cl.num_devices or sum(g.count * g.tp * g.pp for g in sc.groups
                              if g.device.name == sc.device.name) or 1
    return cl.cluster_spec(sc.device, n, file=file)


def load_workload(scenario: ServingScenario, *, trace: str | Path | None = None,
                  seed: int | None = None) -> pd.DataFrame | ClientsSpec:
    """The scenario's request frame: its trace (a path relative to the scenario file, a bundled
    sample name, or `trace` overriding it) or its synthetic spec, then window and rate_scale;
    for closed-loop clients (and no `trace`) their ClientsSpec, which simulate_serving runs."""
    wl, file = scenario.workload, scenario.file
    if trace is None and wl.clients is not None:
        return wl.clients_spec(file)
    if trace is not None or wl.trace is not None:
        ref = str(trace if trace is not None else wl.trace)
        if trace is None and file and not Path(ref).is_absolute() \
                and (Path(file).parent / ref).exists():
            ref = str(Path(file).parent / ref)
        df = read_trace(ref)
    else:
        df = synthesize(dict(wl.synthetic or {}), seed=scenario.seed if seed is None else seed, file=file)
    window = wl.window
    if window is not None:
        if isinstance(window, Mapping):
            window = check_keys(window, ("start_s", "end_s"), file=file,
                                section="workload.window")
            start, end = window.get("start_s", 0), window.get("end_s")
        elif isinstance(window, (list, tuple)) and len(window) == 2:
            start, end = window
        else:
            raise ConfigError(f"expected {{start_s, end_s}} or [start, end], got {window!r}",
                              file=file, key="workload.window")
        start_s = parse_duration_s(start, key="workload.window", file=file)
        end_s = None if end is None else parse_duration_s(end, key="workload.window", file=file)
        spans = (float(df["arrival_time_s"].min()), float(df["arrival_time_s"].max())) \
            if len(df) else (0.0, 0.0)
        df = window_trace(df, start_s, end_s)
        if not len(df):
            raise ConfigError(f"the window [{start_s:g}, {end_s if end_s is not None else 'end'}"
                              f") s selects no request: arrivals span {spans[0]:g} .. "
                              f"{spans[1]:g} s", file=file, key="workload.window")
    if wl.rate_scale is not None:
        df = scale_trace(df, wl.rate_scale)
    return df
