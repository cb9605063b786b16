"""A ServingPlan -> the engine's inputs: each group's replica setup (hwmodels step cost, KV
blocks, limits, price, step power) and the cluster options (transfer links, caps, configs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hwmodels.catalog import load_link
from hwmodels.dtypes import kv_cache_dtype
from hwmodels.engine_profiles import Admission
from hwmodels.errors import ConfigError
from hwmodels.memory import kv_bytes_per_token, kv_cache_capacity, serving_weight_bytes
from hwmodels.power import StepPower
from hwmodels.step import StepCostModel
from simulator.serving.cluster_config import MigrationConfig, ReplicaGroup, targets_group
from simulator.serving.engine import ClusterOptions, ReplicaSetup
from simulator.serving.plan import ServingPlan
from simulator.serving.power import CapController
from simulator.serving.replica import LaneConfig
from simulator.serving.routers import RouterKind
from simulator.serving.steptime import step_cost_from_model
from simulator.serving.transfer import link_cost

# vLLM's block manager keeps 1% of blocks free when admitting prompts (watermark=0.01).
WATERMARK_FRACTION = 0.01
# Reference decode batch for capacity-aware routing: 64 sequences at 1024 context tokens.
CAPACITY_BATCH, CAPACITY_CONTEXT = 64, 1024


def build_group_setup(plan: ServingPlan, group: ReplicaGroup) -> ReplicaSetup:
    """hwmodels -> the step cost, KV blocks, limits, price, power model of one group's
    replicas."""
    sv, model, device = plan.serving, plan.model, group.device
    try:
        cost = StepCostModel(model, device, tp=group.tp, pp=group.pp, dtype=sv.dtype,
                             kv_dtype=sv.kv_dtype, profile=group.profile,
                             intra_link=plan.intra_node, inter_link=plan.inter_node,
                             engine_overhead=sv.engine_overhead, ep=sv.ep,
                             dp_attention=sv.dp_attention, engine=plan.engine_of(group),
                             # fixed-shape engines (JetStream): slots and preallocated cache
                             decode_slots=sv.max_num_seqs, cache_len=sv.max_model_len,
                             slice_shape=plan.slice_shape
                             if group.device.name == plan.device.name else None)
    except ConfigError as err:  # an engine the profile has not fitted: name the scenario
        if err.key in ("serving.engine_overhead", "serving.engine"):
            raise err.with_context(file=plan.file) from None
        raise
    try:
        cap = kv_cache_capacity(model, device, tp=group.tp, pp=group.pp, dtype=sv.dtype,
                                kv_dtype=sv.kv_dtype,
                                gpu_memory_utilization=sv.gpu_memory_utilization,
                                block_size=sv.kv_block_size, dp_attention=sv.dp_attention)
    except ConfigError as err:  # hwmodels names the bare field ('tp'): say where it was set
        if err.key and "." not in err.key:
            where = (f"serving.replica_groups[{group.name}]"
                     if sv.replica_groups is not None else "serving")
            raise ConfigError(err.message, key=f"{where}.{err.key}",
                              allowed=err.allowed) from None
        raise
    host = load_link(device.host_link)
    block_bytes = cap.bytes / cap.blocks  # per device; every device swaps its share at once
    lane = LaneConfig(total_blocks=cap.blocks, block_size=sv.kv_block_size,
                      max_num_seqs=sv.max_num_seqs, max_batch_tokens=sv.max_batch_tokens,
                      chunk_size=sv.chunk_size,
                      max_model_len=sv.max_model_len or model.max_seq_len,
                      preemption=sv.preemption,
                      swap_s_per_block=block_bytes / (host.bandwidth_Bps * host.efficiency),
                      watermark_blocks=int(WATERMARK_FRACTION * cap.blocks),
                      fast_forward=sv.fast_forward, client_timeout_s=sv.client_timeout_s,
                      reserve_output=sv.admission is Admission.NO_EVICT,
                      multi_step=sv.num_scheduler_steps)
    ref = cost.time_s(0, 0, CAPACITY_BATCH, CAPACITY_BATCH * CAPACITY_CONTEXT)
    return ReplicaSetup(
        step_cost=step_cost_from_model(cost, pp=group.pp), lane=lane,
        scheduler=sv.scheduler, pp=group.pp, devices=group.devices_per_replica,
        prefix_caching=sv.prefix_caching, name=f"{model.name}@{device.name}",
        group=group.name, role=group.role, price_usd_per_hour=group.price,
        slowdown=group.slowdown, capacity=CAPACITY_BATCH / (ref * group.slowdown),
        idle_w=device.idle_w,
        step_power=StepPower(model, device, tp=group.tp, pp=group.pp, dtype=sv.dtype,
                             kv_dtype=sv.kv_dtype),
        kv_bytes_per_token=kv_bytes_per_token(model, kv_cache_dtype(sv.dtype, sv.kv_dtype)),
        weight_bytes_per_device=serving_weight_bytes(model, sv.dtype, tp=group.tp,
                                                     pp=group.pp,
                                                     dp_attention=sv.dp_attention))


def build_replica_setup(plan: ServingPlan) -> ReplicaSetup:
    """hwmodels -> one replica's step cost, KV blocks and limits (the first group)."""
    return build_group_setup(plan, plan.replica_groups()[0])


def static_cap_w(plan: ServingPlan, group: ReplicaGroup) -> float | None:
    """The static cap (W per device) for a group, if power.cap_* targets it."""
    pc = plan.power
    if pc is None or (pc.cap_fraction is None and pc.cap_w is None):
        return None
    if not targets_group(pc.cap_targets, group):
        return None
    watts = pc.cap_w if pc.cap_w is not None else pc.cap_fraction * group.device.tdp_w  # type: ignore
    if not watts > group.device.idle_w:
        raise ConfigError(f"cap {watts:g} W must exceed {group.device.name}'s idle "
                          f"{group.device.idle_w:g} W", file=plan.file, key="power.cap_w")
    return None if watts >= group.device.tdp_w else watts


def cluster_options(plan: ServingPlan, groups: tuple[ReplicaGroup, ...], *,
                    cap_controller: CapController | Callable[[], CapController] | None = None
                    ) -> ClusterOptions:
    """The engine's cluster options from the plan's configs."""
    sv = plan.serving
    transfer = None
    if plan.disaggregated or sv.migration is not None or sv.router == RouterKind.LLUMNIX:
        dev = groups[0].device
        per_node = plan.devices_per_node or dev.devices_per_node
        intra = link_cost(dev, intra_node=plan.disagg_link or plan.intra_node,
                          inter_node=plan.inter_node, cross_node=False,
                          devices_per_node=per_node, profile=groups[0].profile)
        inter = link_cost(dev, intra_node=plan.intra_node,
                          inter_node=plan.disagg_link or plan.inter_node,
                          cross_node=True, devices_per_node=per_node,
                          profile=groups[0].profile)
        transfer = (intra, inter, per_node, plan.disagg_same_node)
    migration = sv.migration
    if migration is None and sv.router == RouterKind.LLUMNIX:
        migration = MigrationConfig()
    factory: Callable[[], Any] | None = None
    pc = plan.power
    if cap_controller is not None:
        factory = cap_controller if callable(cap_controller) else (lambda: cap_controller)
    elif pc is not None and pc.controller is not None:
        ctl_cfg = pc.controller
        factory = lambda: CapController.from_config(ctl_cfg)  # noqa: E731
    caps = {g.name: c for g in groups if (c := static_cap_w(plan, g)) is not None}
    decode_router = (RouterKind.LEAST_LOADED if sv.router in (RouterKind.PREFIX_AFFINITY,
                                                              RouterKind.SESSION_AFFINITY)
                     else sv.router)
    return ClusterOptions(routers=sv.routers, decode_router=decode_router, transfer=transfer,
                          power=pc, cap_w=caps, cap_controller=factory,
                          failures=plan.failures, autoscale=plan.autoscale,
                          migration=migration)
