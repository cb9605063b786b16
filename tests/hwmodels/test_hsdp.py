"""Hybrid sharding (ParallelConfig.fsdp_shard_size): ZeRO-3 shard groups of S consecutive DP
ranks, replicated across dp/S groups whose grad shards are all-reduced.

Checked: the rank groups (shard group contiguous, replica group strided), the collectives the
iteration issues (per-layer gathers / reduce-scatters only inside the shard group, the
cross-replica all-reduce of the 1/S grad shard once per step or per microbatch as the stack
does it), memory (model states / S), and the trade-off on a 2-node job: hybrid sharding wins on
a slow inter-node link and loses on memory.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError
from hwmodels.memory import training_memory
from hwmodels.parallel import (
    FSDPImpl,
    ParallelConfig,
    TrainingConfig,
    replica_count,
    shard_group_size,
)
from hwmodels.training import fsdp
from hwmodels.training.comm import CommModel
from hwmodels.training.costs import CostCache
from hwmodels.training.estimate import estimate_iteration
from hwmodels.training.gradsync import BUCKET_MIN_PARAMS, finish_stage, stage_params
from hwmodels.training.placement import node_shard_size, stage_groups
from simulator.training import simulate_iteration

MODEL = load_model("llama3-8b")
TRAIN = TrainingConfig(seq_len=4096, global_batch=64, micro_batch=1)


def _cluster(inter: str = "ib-ndr", n: int = 16):
    return build_cluster("h100-sxm", n, devices_per_node=8, inter_node=inter)


# --- the field --------------------------------------------------------------------------------

@pytest.mark.parametrize(("kw", "needle"), [
    ({"dp": 8, "zero": 3, "fsdp_shard_size": 3}, "does not divide dp 8"),
    ({"dp": 8, "zero": 1, "fsdp_shard_size": 4}, "needs zero: 3"),
    ({"dp": 8, "zero": 3, "fsdp_shard_size": 0}, "integer >= 1"),
    ({"dp": 8, "zero": 3, "fsdp_shard_size": True}, "integer >= 1"),
    ({"dp": 8, "zero": 3, "fsdp_shard_size": 2.0}, "integer >= 1"),
    ({"dp": 8, "ep": 2, "zero": 3, "fsdp_shard_size": 4}, "ep 2"),
])
def test_bad_shard_size_names_the_key(kw, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        ParallelConfig(**kw)
    assert err.value.key == "parallelism.fsdp_shard_size"


def test_shard_and_replica_counts():
    p = ParallelConfig(dp=16, zero=3, fsdp_shard_size=4)
    assert (shard_group_size(p), replica_count(p)) == (4, 4)
    full = ParallelConfig(dp=16, zero=3)
    assert (shard_group_size(full), replica_count(full)) == (16, 1)


# --- rank groups ------------------------------------------------------------------------------

def test_shard_group_contiguous_replica_group_strided():
    g = stage_groups(ParallelConfig(dp=16, zero=3, fsdp_shard_size=8), 0)
    assert g.dp_cp_group == tuple(range(8))
    assert g.replica_group == (0, 8)
    # tp 2 x cp 2 inside: the shard group is 4 DP ranks x 2 CP ranks (stride tp), replicas
    # are 4 DP coordinates apart = 16 ranks
    g = stage_groups(ParallelConfig(tp=2, cp=2, dp=8, zero=3, fsdp_shard_size=4), 0)
    assert g.dp_cp_group == (0, 2, 4, 6, 8, 10, 12, 14)
    assert g.replica_group == (0, 16)
    assert g.expert_dp_group == g.dp_cp_group
    assert stage_groups(ParallelConfig(dp=16, zero=3), 0).replica_group == ()


@settings(max_examples=60, deadline=None)
@given(tp=st.sampled_from([1, 2, 4]), cp=st.sampled_from([1, 2]), pp=st.sampled_from([1, 2]),
       dp_exp=st.integers(0, 5), s_exp=st.integers(0, 5), stage=st.integers(0, 1))
def test_groups_partition_the_data_ranks(tp, cp, pp, dp_exp, s_exp, stage):
    dp, shard = 2 ** dp_exp, 2 ** min(s_exp, dp_exp)
    p = ParallelConfig(tp=tp, cp=cp, pp=pp, dp=dp, zero=3, fsdp_shard_size=shard)
    g = stage_groups(p, min(stage, pp - 1))
    full = stage_groups(replace(p, fsdp_shard_size=None), min(stage, pp - 1))
    assert len(g.dp_cp_group) == shard * cp
    assert len(g.replica_group) == (dp // shard if dp // shard > 1 else 1)
    assert set(g.dp_cp_group) <= set(full.dp_cp_group)
    assert set(g.replica_group) <= set(full.dp_cp_group)
    assert set(g.dp_cp_group) & set(g.replica_group) == {g.rank}


@settings(max_examples=60, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), cp=st.sampled_from([1, 2]),
       pp=st.sampled_from([1, 2, 4]), dp=st.integers(1, 48), per_node=st.sampled_from([4, 8, 16]),
       order=st.sampled_from([("tp", "cp", "ep", "dp", "pp"), ("tp", "pp", "cp", "ep", "dp")]))
def test_node_shard_size_keeps_every_group_inside_a_node(tp, cp, pp, dp, per_node, order):
    p = ParallelConfig(tp=tp, cp=cp, pp=pp, dp=dp, rank_order=order)
    k = node_shard_size(p, per_node)
    assert dp % k == 0
    if k == 1:
        return
    hybrid = replace(p, zero=3, fsdp_shard_size=k)
    for s in range(pp):
        members = stage_groups(hybrid, s).dp_cp_group
        assert len({r // per_node for r in members}) == 1
    assert node_shard_size(p, per_node * 1024) == dp  # one big node holds all of DP


# --- communication ----------------------------------------------------------------------------

class Recorder(CommModel):
    """CommModel that records every collective it prices (op, group, bytes)."""

    __slots__ = ("calls",)

    def __init__(self, cluster, profile=None):
        super().__init__(cluster, profile)
        self.calls = []

    def time_s(self, ranks, op, nbytes, channels=None):
        self.calls.append((str(op), tuple(ranks), float(nbytes)))
        return super().time_s(ranks, op, nbytes, channels)


def _finish(parallel, comm, window=(0.5, 1.0)):
    groups = stage_groups(parallel, 0)
    params = stage_params(MODEL, parallel, 0)
    return finish_stage(stage=0, params=params, groups=groups, comm=comm, training=TRAIN,
                        parallel=parallel, compute_end_s=1.0, last_grad_window={0: window})


@pytest.mark.parametrize(("impl", "per_microbatch"), [
    (FSDPImpl.DEEPSPEED, False), (FSDPImpl.MEGATRON, False), (FSDPImpl.FSDP2, True),
    (FSDPImpl.FSDP1, True)])
def test_cross_replica_all_reduce_of_the_grad_shard(impl, per_microbatch):
    p = ParallelConfig(dp=16, zero=3, fsdp_shard_size=8, fsdp_impl=impl,
                       overlap_grad_reduce=False)
    comm = Recorder(_cluster())
    end = _finish(p, comm)
    reduces = [c for c in comm.calls if c[0] == "all_reduce"]
    assert reduces and {c[1] for c in reduces} == {(0, 8)}  # the replica group only
    dense = stage_params(MODEL, p, 0).dense
    traits = fsdp.traits(p)
    n = math.ceil(dense / (traits.reduce_bucket_params or BUCKET_MIN_PARAMS))
    size = reduces[-1][2]
    assert n * size == pytest.approx(dense / 8 * traits.grad_bytes)  # the 1/S grad shard
    t = CommModel(_cluster()).all_reduce((0, 8), size)
    # not overlapped: the last microbatch's buckets go out after compute (1.0 s); stacks
    # that all-reduce every microbatch have the other 3 (64 / (1 x 16) = 4) queued first
    earlier = 3 * n * t if per_microbatch else 0.0
    assert end.grad_sync_end_s == pytest.approx(max(1.0, earlier) + n * t)
    # full-DP ZeRO-3 reduces inside the ops: nothing at the end of the step
    comm = Recorder(_cluster())
    _finish(replace(p, fsdp_shard_size=None), comm)
    assert not [c for c in comm.calls if c[0] == "all_reduce"]


def test_layer_gathers_and_reduce_scatters_stay_in_the_shard_group(monkeypatch):
    p = ParallelConfig(dp=16, zero=3, fsdp_shard_size=8)
    calls = []
    orig = CommModel.time_s

    def spy(self, ranks, op, nbytes, channels=None):
        if len(ranks) > 1:  # groups of one (tp 1) cost nothing
            calls.append((str(op), tuple(ranks), float(nbytes)))
        return orig(self, ranks, op, nbytes, channels)

    monkeypatch.setattr(CommModel, "time_s", spy)
    simulate_iteration(MODEL, _cluster(), TRAIN, p)
    gathers = [c for c in calls if c[0] in ("all_gather", "reduce_scatter")]
    assert gathers and {c[1] for c in gathers} == {tuple(range(8))}
    layer_bytes = 2 * fsdp_layer_params()  # FSDP2: one unit per layer, bf16 weights
    assert any(c[0] == "all_gather" and c[2] == pytest.approx(layer_bytes) for c in gathers)
    assert {c[1] for c in calls if c[0] == "all_reduce"} == {(0, 8)}


def fsdp_layer_params() -> float:
    from hwmodels import flops
    return flops.layer_param_count(MODEL, moe=False)


# --- memory and the trade-off -----------------------------------------------------------------

@pytest.mark.parametrize("shard", [1, 2, 4, 8])
def test_model_states_divide_by_the_shard_size(shard):
    p = ParallelConfig(dp=16, zero=3, fsdp_shard_size=shard)
    full = training_memory(MODEL, TRAIN, replace(p, fsdp_shard_size=None))
    hsdp = training_memory(MODEL, TRAIN, p)
    assert hsdp.optimizer_bytes == pytest.approx(full.optimizer_bytes * 16 / shard)
    assert hsdp.activations_bytes == full.activations_bytes
    assert hsdp.total_bytes >= full.total_bytes


def test_shard_size_dp_is_full_sharding():
    p = ParallelConfig(dp=16, zero=3)
    a = simulate_iteration(MODEL, _cluster("eth-100g"), TRAIN, p)
    b = simulate_iteration(MODEL, _cluster("eth-100g"), TRAIN, replace(p, fsdp_shard_size=16))
    assert a.iteration_time_s == b.iteration_time_s
    assert a.peak_memory_gib == b.peak_memory_gib


@pytest.mark.parametrize("impl", [FSDPImpl.FSDP2, FSDPImpl.DEEPSPEED])
def test_two_nodes_hybrid_wins_on_a_slow_link_and_loses_on_memory(impl):
    full = ParallelConfig(dp=16, zero=3, fsdp_impl=impl)
    hsdp = replace(full, fsdp_shard_size=8)
    slow = _cluster("eth-100g")
    f = simulate_iteration(MODEL, slow, TRAIN, full)
    h = simulate_iteration(MODEL, slow, TRAIN, hsdp)
    assert h.iteration_time_s < f.iteration_time_s
    assert h.breakdown.exposed_comm_s < f.breakdown.exposed_comm_s
    assert h.peak_memory_gib > f.peak_memory_gib


def test_estimate_prices_hybrid_plans_like_the_simulator():
    p = ParallelConfig(dp=16, zero=3, fsdp_impl=FSDPImpl.DEEPSPEED, fsdp_shard_size=8)
    cluster = _cluster("eth-100g")
    sim = simulate_iteration(MODEL, cluster, TRAIN, p).iteration_time_s
    cache = CostCache()  # one cache for both plans, as the planner shares it
    est = estimate_iteration(MODEL, TRAIN, p, CommModel(cluster), cache=cache).iteration_time_s
    full = estimate_iteration(MODEL, TRAIN, replace(p, fsdp_shard_size=None),
                              CommModel(cluster), cache=cache).iteration_time_s
    assert est == pytest.approx(sim, rel=1e-6)
    assert est < full
