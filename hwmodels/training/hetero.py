"""Heterogeneous training jobs: pools of unlike devices in one pipeline, and the layer split.

A job's pipeline stages run on pools (each pool: one device type on its own nodes and fabric).
Stages go to pools contiguously unless told otherwise; layers are split so that the slowest
stage (per-layer time x layers + its fixed embedding/loss work) is as fast as memory allows, as
the published heterogeneous trainers do (AMP, NeurIPS'22; Metis, USENIX ATC'24; FlashFlex,
arXiv 2409.01143: stage layers in proportion to device speed, bounded by device memory).
Pure functions of numbers and frozen specs; the simulator and the planner both call them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hwmodels.errors import ConfigError, InfeasibleError
from hwmodels.memory import DEFAULT_HEADROOM, training_memory
from hwmodels.parallel import ParallelConfig, TrainingConfig
from hwmodels.profile import DeviceProfile
from hwmodels.specs import ClusterSpec, ModelSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSpec:
    """One pool of a heterogeneous job: identical devices on their own nodes and fabric."""

    cluster: ClusterSpec  # the pool's devices (num_devices), nodes and links
    profile: DeviceProfile | None = None  # efficiency profile (None: bundled/defaults)

    def __post_init__(self) -> None:
        if not isinstance(self.cluster, ClusterSpec):
            raise ConfigError(f"must be a ClusterSpec, got {type(self.cluster).__name__}",
                              key="cluster.pools")
        if self.profile is not None and not isinstance(self.profile, DeviceProfile):
            raise ConfigError(f"must be a DeviceProfile or None, got "
                              f"{type(self.profile).__name__}", key="cluster.pools.profile")

    @property
    def num_devices(self) -> int:
        return self.cluster.num_devices

    def same_hardware(self, other: PoolSpec) -> bool:
        """Whether both pools cost every op alike (device, links and profile equal)."""
        a, b = self.cluster, other.cluster
        return (a.device == b.device and a.devices_per_node == b.devices_per_node
                and a.intra_node == b.intra_node and a.inter_node == b.inter_node
                and a.nics == b.nics and self.profile == other.profile)


def job_cluster(pool: PoolSpec, total_devices: int) -> ClusterSpec:
    """The pool's hardware stretched over the whole job's rank numbering (at least two nodes,
    so a rank always has a peer on another node for cross-pool sends)."""
    dpn = pool.cluster.devices_per_node
    n = max(total_devices, 2 * dpn)
    return replace(pool.cluster, num_devices=-(-n // dpn) * dpn)


def resolve_stage_pools(parallel: ParallelConfig, pools: Sequence[PoolSpec]) -> tuple[int, ...]:
    """Each stage's pool: parallelism.stage_pools, or contiguous stages per pool in pool order.
    Every pool must hold exactly its stages' tp*cp*dp devices each (ConfigError otherwise)."""
    p = parallel
    per_stage = p.tp * p.cp * p.dp
    if not pools:
        raise ConfigError("needs at least one pool", key="cluster.pools")
    for i, pool in enumerate(pools):
        if pool.num_devices % per_stage:
            raise ConfigError(f"pool {i} has {pool.num_devices} devices, not a multiple of one "
                              f"stage's tp*cp*dp = {per_stage}",
                              key=f"cluster.pools[{i}].num_devices")
    if p.vpp > 1:
        raise ConfigError("pools run one chunk per stage", key="parallelism.vpp", allowed=[1])
    if p.stage_pools:
        stage_pools = tuple(p.stage_pools)
        bad = [i for i in stage_pools if i >= len(pools)]
        if bad:
            raise ConfigError(f"unknown pool index {bad[0]}", key="parallelism.stage_pools",
                              allowed=f"0..{len(pools) - 1}")
    else:
        stage_pools = tuple(i for i, pool in enumerate(pools)
                            for _ in range(pool.num_devices // per_stage))
        if len(stage_pools) != p.pp:
            raise ConfigError(f"the pools hold {len(stage_pools)} stages of tp*cp*dp = "
                              f"{per_stage} devices, the plan has pp {p.pp}",
                              key="parallelism.pp", allowed=[len(stage_pools)])
    for i, pool in enumerate(pools):
        need = stage_pools.count(i) * per_stage
        if need != pool.num_devices:
            raise ConfigError(f"pool {i} has {pool.num_devices} devices, its "
                              f"{stage_pools.count(i)} stages use {need}",
                              key="parallelism.stage_pools")
    return stage_pools


def balanced_split(num_layers: int, per_layer_s: Sequence[float], fixed_s: Sequence[float],
                   max_layers: Sequence[int]) -> tuple[int, ...]:
    """Layers per stage minimizing the slowest stage's time (fixed_s + layers x per_layer_s),
    each stage >= 1 layer and <= its max_layers. Greedy: each layer goes to the stage it would
    finish earliest on, which is optimal for identical unit jobs on uniform machines; ties go
    to the lower stage. InfeasibleError when the memory caps cannot hold the model."""
    pp = len(per_layer_s)
    if not pp == len(fixed_s) == len(max_layers):
        raise ConfigError("per_layer_s, fixed_s and max_layers need one entry per stage",
                          key="stage_layers")
    if any(t <= 0 for t in per_layer_s):
        raise ConfigError(f"per-layer times must be > 0, got {list(per_layer_s)}",
                          key="per_layer_s")
    if pp > num_layers:
        raise ConfigError(f"pp {pp} exceeds num_layers {num_layers}", key="parallelism.pp")
    if min(max_layers) < 1 or sum(max_layers) < num_layers:
        raise InfeasibleError(f"stage memory holds at most {list(max_layers)} layers, the "
                              f"model has {num_layers}",
                              hint="more devices per stage (tp), recompute or ZeRO")
    counts = [1] * pp
    heap = [(fixed_s[s] + 2 * per_layer_s[s], s) for s in range(pp) if max_layers[s] > 1]
    heapq.heapify(heap)
    for _ in range(num_layers - pp):
        _, s = heapq.heappop(heap)
        counts[s] += 1
        if counts[s] < max_layers[s]:
            heapq.heappush(heap, (fixed_s[s] + (counts[s] + 1) * per_layer_s[s], s))
    return tuple(counts)


def stage_times_s(counts: Sequence[int], per_layer_s: Sequence[float],
                  fixed_s: Sequence[float]) -> tuple[float, ...]:
    """Estimated forward+backward seconds of one microbatch on each stage."""
    return tuple(f + n * t for n, t, f in zip(counts, per_layer_s, fixed_s, strict=True))


def pipeline_estimate_s(stage_s: Sequence[float], microbatches: int) -> float:
    """1F1B pipeline phase with unlike stages: every stage's fill/drain once plus the slowest
    stage for the other m - 1 microbatches (the steady state is paced by it)."""
    return sum(stage_s) + (microbatches - 1) * max(stage_s)


def memory_capacity_bytes(cluster: ClusterSpec) -> float:
    """Device memory a plan may use (the simulator's headroom, hwmodels.memory)."""
    return cluster.device.memory_bytes * (1.0 - DEFAULT_HEADROOM)


def layer_caps(model: ModelSpec, training: TrainingConfig, parallel: ParallelConfig,
               capacity_bytes: Sequence[float], *, flash_attention: bool = True) -> tuple[int, ...]:
    """The most layers each stage can hold within its device's capacity_bytes. A stage's
    memory is affine in its own layer count (weights, optimizer state and stored activations
    per layer), so two probes (1 and 2 layers) give the slope; 0: not even one layer fits."""
    pp, n = parallel.pp, model.num_layers
    caps = []
    for s in range(pp):
        mem = []
        for k in (1, 2):
            if n - k < pp - 1:
                mem.append(float("inf"))
                continue
            rest = [1] * pp
            rest[s] = k
            rest[(s + 1) % pp] += n - sum(rest)
            probe = replace(parallel, stage_layers=tuple(rest), first_stage_layers=None,
                            last_stage_layers=None)
            mem.append(training_memory(model, training, probe, stage=s,
                                       flash_attention=flash_attention).total_bytes)
        one, slope = mem[0], mem[1] - mem[0]
        if one > capacity_bytes[s]:
            caps.append(0)
        elif slope <= 0 or slope == float("inf"):
            caps.append(n - pp + 1)
        else:
            caps.append(min(n - pp + 1, 1 + int((capacity_bytes[s] - one) // slope)))
    return tuple(caps)


__all__ = ["PoolSpec", "balanced_split", "job_cluster", "layer_caps", "memory_capacity_bytes",
           "pipeline_estimate_s", "resolve_stage_pools", "stage_times_s"]
