"""Training scenarios: the YAML mapping of ARCHITECTURE.md -> specs, read by simulator.schema.

Sections and their schemas: model (catalog name, path to an HF config.json/YAML, or inline HF
keys), cluster (ClusterSection), training (hwmodels TrainingConfig), parallelism (hwmodels
ParallelConfig, plus `dp: auto`, a default schedule from vpp and `rank_order: tp-cp-ep-dp-pp`
as a string), optional run (simulator.longrun RunSpec), name, description. A new key is a
field in one of those dataclasses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap
from hwmodels.ops import resolve_profile
from hwmodels.parallel import ParallelConfig, PipelineSchedule, TrainingConfig
from hwmodels.profile import DeviceProfile
from hwmodels.specs import ClusterSpec, ModelSpec
from hwmodels.training.hetero import PoolSpec, resolve_stage_pools
from hwmodels.training.placement import node_shard_size
from simulator.longrun.scenario import RunSpec
from simulator.profiles import NO_CHOICE, ProfileChoice
from simulator.schema import apply_overrides, read_section, with_file
from simulator.training.plan import TrainingPlan


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSection:
    """One entry of `cluster.pools:` (a heterogeneous job): a device type on its own nodes."""

    device: str
    num_devices: int
    devices_per_node: int | None = None
    intra_node: str | None = None
    inter_node: str | None = None
    nics_per_node: int | None = None
    profile: str | None = None  # as cluster.profile
    power_cap_w: float | None = None  # as cluster.power_cap_w

    def __post_init__(self) -> None:
        for name, minimum in (("num_devices", 1), ("devices_per_node", 1), ("nics_per_node", 0)):
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise ConfigError(f"must be >= {minimum}, got {value!r}",
                                  key=f"cluster.pools.{name}")

    def build(self, *, file: str | None = None) -> ClusterSpec:
        """The pool's own ClusterSpec."""
        kwargs = {f: getattr(self, f) for f in ("devices_per_node", "intra_node", "inter_node",
                                                "nics_per_node", "power_cap_w")
                  if getattr(self, f) is not None}
        try:
            return build_cluster(self.device, self.num_devices, **kwargs)
        except ConfigError as err:
            raise with_file(err, file) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSection:
    """`cluster:` as written; unset fields take build_cluster's defaults (inter_node: the
    device's reference NIC, DeviceSpec.default_inter_node; nics_per_node: one per device)."""

    device: str | None = None
    num_devices: int | None = None
    devices_per_node: int | None = None
    intra_node: str | None = None
    inter_node: str | None = None
    nics_per_node: int | None = None
    topology: str | None = None
    oversubscription: float | None = None
    nodes_per_leaf: int | None = None
    # efficiency profile: a path (relative to the scenario file), a bundled profile's name or
    # 'defaults'; None: the bundled profile for the device, else catalog defaults
    profile: str | None = None
    # the node's host side for offload (hwmodels/catalog/hosts.yaml); None: the device's entry
    host: str | None = None
    # a torus slice's shape (TPU: [16, 16] for a v5e pod); product = devices_per_node
    slice_shape: tuple[int, ...] | None = None
    # a static board power limit per device, W (nvidia-smi -pl; hwmodels.power.power_capped)
    power_cap_w: float | None = None
    # a heterogeneous job: device pools instead of device/num_devices (and their links)
    pools: tuple[PoolSection, ...] = ()

    def __post_init__(self) -> None:
        if self.pools:
            given = [f for f in ("device", "num_devices", "devices_per_node", "intra_node",
                                 "inter_node", "nics_per_node", "topology", "oversubscription",
                                 "nodes_per_leaf", "profile", "host", "slice_shape",
                                 "power_cap_w")
                     if getattr(self, f) is not None]
            if given:
                raise ConfigError(f"give cluster.pools or cluster.{given[0]}, not both (each "
                                  f"pool names its device, count, links and profile)",
                                  key="cluster.pools")
        else:
            for name in ("device", "num_devices"):
                if getattr(self, name) is None:
                    raise ConfigError("missing required key", key=f"cluster.{name}",
                                      allowed="cluster.device and cluster.num_devices, or "
                                              "cluster.pools")
        for name, minimum in (("num_devices", 1), ("devices_per_node", 1),
                              ("nics_per_node", 0), ("nodes_per_leaf", 1),
                              ("oversubscription", 1)):
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise ConfigError(f"must be >= {minimum}, got {value!r}", key=f"cluster.{name}")

    def build(self, *, file: str | None = None) -> ClusterSpec:
        """The ClusterSpec (device and links looked up in the catalog); with pools, the first
        pool's hardware over the whole job's devices (the job's rank space and world size)."""
        if self.pools:
            first = self.pools[0].build(file=file)
            return replace(first, num_devices=sum(p.num_devices for p in self.pools))
        kwargs = {f: getattr(self, f) for f in ("devices_per_node", "intra_node", "inter_node",
                                                "nics_per_node", "topology", "oversubscription",
                                                "nodes_per_leaf", "host", "slice_shape",
                                                "power_cap_w")
                  if getattr(self, f) is not None}
        try:
            return build_cluster(self.device, self.num_devices, **kwargs)
        except ConfigError as err:
            raise with_file(err, file) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingScenarioFile:
    """The top level of a training scenario file (its allowed keys)."""

    model: Any  # catalog name, path, or inline HF keys: hwmodels.catalog.load_model reads it
    cluster: ClusterSection
    training: TrainingConfig
    parallelism: Mapping[str, Any] = field(default_factory=FrozenMap)  # needs the cluster
    run: RunSpec | None = None
    name: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingScenario:
    """A parsed training scenario: specs for simulate_iteration plus the run: section."""

    model: ModelSpec
    cluster: ClusterSpec
    training: TrainingConfig
    parallel: ParallelConfig
    run: RunSpec | None = None  # None: one iteration only
    name: str = ""
    file: str | None = None  # where it was read from (named in later errors)
    profile: DeviceProfile | None = None  # resolved efficiency profile (None: bundled/defaults)
    pools: tuple[PoolSpec, ...] = ()  # a heterogeneous job's pools (cluster.pools)

    def plan(self, *, timeline: bool = False) -> TrainingPlan:
        """The typed plan one iteration simulates (simulate_training's input)."""
        return TrainingPlan(model=self.model, cluster=self.cluster, training=self.training,
                            parallel=self.parallel, timeline=timeline, profile=self.profile,
                            name=self.name or (str(self.file) if self.file else None),
                            pools=self.pools)

    def profiles(self) -> dict[str, DeviceProfile]:
        """{device: the complete profile every cost of this scenario uses}."""
        if self.pools:
            return {p.cluster.device.name: resolve_profile(p.cluster.device, p.profile)
                    for p in self.pools}
        return {self.cluster.device.name: resolve_profile(self.cluster.device, self.profile)}


def read_parallelism(raw: Mapping[str, Any], cluster: ClusterSpec, *,
                     file: str | None = None) -> ParallelConfig:
    """ParallelConfig from `parallelism:`, with the scenario sugar: dp: auto fills
    num_devices/(tp*pp*cp), vpp > 1 defaults to the interleaved schedule, rank_order may be a
    'tp-cp-ep-dp-pp' string, fsdp_shard_size: node (or slice) = the DP ranks one node holds
    (hwmodels.training.placement.node_shard_size)."""
    values = dict(raw)
    auto = values.get("dp", "auto") == "auto"
    if auto:
        values["dp"] = 1
    vpp = values.get("vpp", 1)
    if values.get("schedule") is None and isinstance(vpp, int) and vpp > 1:
        values["schedule"] = PipelineSchedule.INTERLEAVED.value
    order = values.get("rank_order")
    if isinstance(order, str):
        values["rank_order"] = [x.strip() for x in order.replace(",", "-").split("-")]
    # fsdp_shard_size (node | slice: the DP ranks of one node, a TPU slice) is checked
    # against dp once dp: auto is resolved
    shard = values.pop("fsdp_shard_size", None)
    parallel = read_section(values, ParallelConfig, file=file, section="parallelism")
    if auto:
        denom = parallel.tp * parallel.pp * parallel.cp
        if cluster.num_devices % denom:
            raise ConfigError(f"dp: auto needs num_devices {cluster.num_devices} divisible by "
                              f"tp*pp*cp = {denom}", file=file, key="parallelism.dp")
        parallel = replace(parallel, dp=cluster.num_devices // denom)
    if shard is not None:
        if shard in ("node", "slice"):
            shard = node_shard_size(parallel, cluster.devices_per_node)
        try:
            parallel = replace(parallel, fsdp_shard_size=shard)
        except ConfigError as err:
            raise with_file(err, file) from None
    return parallel


def load_training_scenario(mapping: Mapping[str, Any], *, file: str | None = None,
                           profiles: ProfileChoice | None = None) -> TrainingScenario:
    """Specs from a scenario mapping; bad keys/values raise ConfigError naming file and key.
    `profiles` (the command line's --profile / --no-profile) overrides cluster.profile."""
    if not isinstance(mapping, Mapping):
        raise ConfigError("scenario must be a mapping", file=file)
    top = read_section(mapping, TrainingScenarioFile, file=file)
    try:
        model = load_model(top.model, file=file)
    except ConfigError as err:
        raise err.with_context(file=file, key="model") from None
    cluster = top.cluster.build(file=file)
    choice = profiles or NO_CHOICE
    pools = _read_pools(top, choice, file)
    choice.check_devices([p.cluster.device for p in pools] or [cluster.device], where=file)
    profile = (pools[0].profile if pools else
               choice.for_device(cluster.device, top.cluster.profile, file=file,
                                 key="cluster.profile"))
    parallel = read_parallelism(top.parallelism, cluster, file=file)
    if parallel.stage_pools and not pools:
        raise ConfigError("needs cluster.pools", file=file, key="parallelism.stage_pools")
    if pools:
        try:
            resolve_stage_pools(parallel, pools)
        except ConfigError as err:
            raise with_file(err, file) from None
    return TrainingScenario(model=model, cluster=cluster, training=top.training,
                            parallel=parallel, run=top.run, name=top.name, file=file,
                            profile=profile, pools=pools)


def _read_pools(top: TrainingScenarioFile, choice: ProfileChoice,
                file: str | None) -> tuple[PoolSpec, ...]:
    """cluster.pools as PoolSpecs with their profiles resolved (() for a homogeneous job)."""
    if top.cluster.pools and top.run is not None:
        raise ConfigError("a run: section is not supported with cluster.pools yet", file=file,
                          key="run")
    out = []
    for i, pool in enumerate(top.cluster.pools):
        cluster = pool.build(file=file)
        prof = choice.for_device(cluster.device, pool.profile, file=file,
                                 key=f"cluster.pools[{i}].profile")
        out.append(PoolSpec(cluster=cluster, profile=prof))
    return tuple(out)


__all__ = ["ClusterSection", "TrainingScenario", "TrainingScenarioFile", "apply_overrides",
           "load_training_scenario", "read_parallelism"]
