"""ZeRO-3 / FSDP stacks: the unit schedule (prefetch depth, shared DP channel), the stacks'
traits, unshard memory, ZeRO-Offload, and the ZeRO-1/2 first-bucket gather."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError
from hwmodels.memory import training_memory
from hwmodels.parallel import (
    FSDPImpl,
    GradReduceDType,
    ParallelConfig,
    Recompute,
    TrainingConfig,
)
from hwmodels.training import fsdp
from hwmodels.training.comm import CommModel
from hwmodels.training.estimate import estimate_iteration
from hwmodels.training.offload import offload_step

times = st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=30)


# -- the schedule ----------------------------------------------------------------------------

def test_forward_prefetch_hides_short_gathers_but_not_the_first():
    # gathers shorter than compute: only the first unit's gather shows
    assert fsdp.schedule_forward([3.0] * 5, [1.0] * 5, depth=1) == pytest.approx(1.0)
    # no prefetch (depth 0): every gather waits in front of its unit
    assert fsdp.schedule_forward([3.0] * 5, [1.0] * 5, depth=0) == pytest.approx(5.0)
    # gathers longer than compute: the channel is the bottleneck
    assert fsdp.schedule_forward([1.0] * 4, [2.0] * 4, depth=1) == pytest.approx(4 * 2 - 3 * 1)


def test_deeper_prefetch_absorbs_an_uneven_gather():
    compute = [2.0, 2.0, 2.0, 2.0]
    gather = [0.5, 0.5, 3.5, 0.5]  # one big unit (e.g. a bucket boundary)
    one = fsdp.schedule_forward(compute, gather, depth=1)
    two = fsdp.schedule_forward(compute, gather, depth=2)
    assert two < one
    assert two == pytest.approx(0.5)


def test_reduce_scatter_competes_with_gathers_in_backward():
    compute, gather = [2.0] * 6, [1.0] * 6
    no_rs = fsdp.schedule_backward(compute, gather, [0.0] * 6, depth=1)
    with_rs = fsdp.schedule_backward(compute, gather, [1.5] * 6, depth=1)
    # each unit's 2 s must cover the next gather (1 s) and the last reduce-scatter (1.5 s)
    assert no_rs == pytest.approx(1.0)
    assert with_rs > no_rs + 1.5  # the last reduce-scatter plus the shared channel's backlog


@settings(max_examples=200, deadline=None)
@given(times, st.integers(min_value=0, max_value=4), st.data())
def test_schedule_bounds(compute, depth, data):
    """Exposed time is at least the first gather (and, backward, the last reduce-scatter)
    and never more than doing everything in series; more prefetch never hurts."""
    n = len(compute)
    gather = data.draw(st.lists(st.floats(0.0, 10.0), min_size=n, max_size=n))
    reduce = data.draw(st.lists(st.floats(0.0, 10.0), min_size=n, max_size=n))
    f = fsdp.schedule_forward(compute, gather, depth)
    assert gather[0] - 1e-9 <= f <= sum(gather) + 1e-9
    b = fsdp.schedule_backward(compute, gather, reduce, depth)
    assert b <= sum(gather) + sum(reduce) + 1e-9
    assert b >= max(gather[0], reduce[-1]) - 1e-9
    assert fsdp.schedule_forward(compute, gather, depth + 1) <= f + 1e-9


def test_schedule_rejects_bad_depth():
    with pytest.raises(ValueError):
        fsdp.schedule_forward([1.0], [1.0], depth=-1)
    with pytest.raises(ValueError):
        fsdp.schedule_backward([1.0], [1.0], [1.0], depth=1, reduce_every=0)


# -- the stacks ------------------------------------------------------------------------------

def test_every_stack_has_real_traits():
    assert set(fsdp.FSDP_TRAITS) == set(FSDPImpl)
    nccl = fsdp.FSDP_TRAITS[FSDPImpl.NCCL]
    for impl in (FSDPImpl.DEEPSPEED, FSDPImpl.FSDP1, FSDPImpl.FSDP2, FSDPImpl.MEGATRON):
        t = fsdp.FSDP_TRAITS[impl]
        assert t != nccl and not t.closed_form and t.contention > 0, impl
    assert fsdp.FSDP_TRAITS[FSDPImpl.IDEAL].ideal
    assert ParallelConfig().fsdp_impl is FSDPImpl.FSDP2  # zero=3 no longer means ideal


def test_deepspeed_unit_plan_follows_its_config_defaults():
    t = fsdp.FSDP_TRAITS[FSDPImpl.DEEPSPEED]
    p = ParallelConfig(zero=3, fsdp_impl=FSDPImpl.DEEPSPEED)
    small = fsdp.unit_plan(t, p, 40e6, full_recompute=True)  # 10M-param sub-modules
    assert small.units_per_layer == 4 and small.depth == 5  # 5e7 prefetch bucket / 1e7
    assert not small.regather  # within max_reuse_distance: the recompute's gather is kept
    big = fsdp.unit_plan(t, p, 1.8e9, full_recompute=True)  # a GPT-3 175B layer at tp1
    assert big.depth == 1 and big.regather
    assert big.reduce_every == 1  # 450M-param units: one per 5e8 reduce bucket
    user = fsdp.unit_plan(t, dataclasses.replace(p, fsdp_prefetch=3, fsdp_bucket_mb=1800.0),
                          1.8e9, full_recompute=False)
    assert user.depth == 3 and user.units_per_layer == 2  # 1.8 GB buckets of a 3.6 GB layer


def _gpt3_plan(impl: FSDPImpl, **kw: object) -> tuple[float, float]:
    model = load_model("gpt3-175b")
    cluster = build_cluster("a100-80gb", 1024, inter_node="ib-hdr")
    training = TrainingConfig(seq_len=2048, global_batch=2048, micro_batch=1)
    p = ParallelConfig(dp=1024, zero=3, recompute=Recompute.FULL, fsdp_impl=impl, **kw)
    e = estimate_iteration(model, training, p, CommModel(cluster))
    return e.iteration_time_s, e.exposed_comm_s


def test_gpt3_zero3_stacks_are_slower_than_ideal():
    ideal, ideal_exposed = _gpt3_plan(FSDPImpl.IDEAL)
    assert ideal_exposed == pytest.approx(0.0, abs=1e-9)
    for impl in (FSDPImpl.DEEPSPEED, FSDPImpl.FSDP1, FSDPImpl.FSDP2, FSDPImpl.MEGATRON):
        t, exposed = _gpt3_plan(impl)
        assert t > 1.05 * ideal and exposed > 1.0, impl
    no_prefetch, _ = _gpt3_plan(FSDPImpl.FSDP2, overlap_param_gather=False)
    assert no_prefetch > _gpt3_plan(FSDPImpl.FSDP2)[0]


# -- memory and offload ----------------------------------------------------------------------

def test_prefetch_depth_costs_unshard_memory():
    model = load_model("gpt-7.5b")
    t = TrainingConfig(seq_len=2048, global_batch=512, micro_batch=1)
    base = ParallelConfig(dp=64, zero=3, recompute=Recompute.FULL, fsdp_impl=FSDPImpl.FSDP2)
    one = training_memory(model, t, base)
    three = training_memory(model, t, dataclasses.replace(base, fsdp_prefetch=3))
    layer_bytes = (three.weights_bytes - one.weights_bytes) / 2  # two more 16-bit layers
    assert three.weights_bytes > one.weights_bytes
    assert layer_bytes == pytest.approx(
        2.0 * 12 * model.hidden_size ** 2, rel=0.05)  # ~12 h^2 parameters a GPT layer


def test_offload_moves_optimizer_off_the_gpu_and_costs_host_time():
    model = load_model("gpt-7.5b")
    cluster = build_cluster("a100-80gb", 64, inter_node="ib-hdr")
    t = TrainingConfig(seq_len=2048, global_batch=512, micro_batch=4)
    p = ParallelConfig(dp=64, zero=2, recompute=Recompute.FULL)
    off = dataclasses.replace(p, offload_optimizer=True)
    assert training_memory(model, t, off).optimizer_bytes == 0.0
    assert training_memory(model, t, p).optimizer_bytes > 0.0
    comm = CommModel(cluster)
    on_gpu, offloaded = estimate_iteration(model, t, p, comm), estimate_iteration(model, t, off,
                                                                                   comm)
    assert offloaded.iteration_time_s > on_gpu.iteration_time_s
    assert offloaded.optimizer_s > on_gpu.optimizer_s
    step = offload_step(cluster, off, 1e9)
    # 4 B/param over PCIe Gen4 x16 at the catalog's 0.7 efficiency; CPU-Adam shared by 8 ranks
    assert step.host_transfer_s == pytest.approx(4e9 / (32e9 * 0.7), rel=0.05)
    assert step.cpu_optimizer_s == pytest.approx(8 * 0.22, rel=1e-6)


def test_zero1_overlapped_param_gather_still_exposes_the_first_bucket():
    model = load_model("gpt-7.5b")
    cluster = build_cluster("a100-80gb", 64, inter_node="ib-hdr")
    t = TrainingConfig(seq_len=2048, global_batch=512, micro_batch=4)
    comm = CommModel(cluster)
    z0 = estimate_iteration(model, t, ParallelConfig(dp=64, zero=0), comm)
    z1 = estimate_iteration(model, t, ParallelConfig(dp=64, zero=1), comm)
    z1_serial = estimate_iteration(model, t, ParallelConfig(dp=64, zero=1,
                                                             overlap_param_gather=False), comm)
    # reduce-scatter instead of all-reduce, but the first bucket's gather is not hidden
    assert z1.exposed_comm_s < z1_serial.exposed_comm_s
    assert z1.exposed_comm_s > 0 and z0.exposed_comm_s > 0


def test_fsdp2_copy_out_costs_time_and_one_more_unit_of_memory():
    fsdp1, fsdp1_exposed = _gpt3_plan(FSDPImpl.FSDP1)
    fsdp2, fsdp2_exposed = _gpt3_plan(FSDPImpl.FSDP2)
    assert fsdp2 > fsdp1 and fsdp2_exposed > fsdp1_exposed
    model = load_model("gpt-7.5b")
    t = TrainingConfig(seq_len=2048, global_batch=512, micro_batch=1)
    mem = {impl: training_memory(model, t, ParallelConfig(dp=64, zero=3, fsdp_impl=impl))
           for impl in (FSDPImpl.FSDP1, FSDPImpl.FSDP2)}
    extra = mem[FSDPImpl.FSDP2].weights_bytes - mem[FSDPImpl.FSDP1].weights_bytes
    assert extra == pytest.approx(2.0 * 12 * model.hidden_size ** 2, rel=0.05)  # one layer


# -- the gradient reduction's dtype (parallelism.grad_reduce_dtype) --------------------------

def test_grad_reduce_dtype_is_validated_and_normalized():
    assert ParallelConfig(grad_reduce_dtype="bf16").grad_reduce_dtype is GradReduceDType.BF16
    assert ParallelConfig().grad_reduce_dtype is None
    with pytest.raises(ConfigError) as err:
        ParallelConfig(grad_reduce_dtype="fp16")
    assert err.value.key == "parallelism.grad_reduce_dtype"


def test_zero3_reduce_dtype_sets_the_wire_bytes_and_the_live_grads():
    """fp32 reduce-scatters (torchtitan's FSDP2, Composer's DEFAULT) carry twice the bytes of
    bf16 ones (FSDP1 as llm-foundry's PURE runs it): the unit's reduce-scatter and the
    unsharded grads it holds double; unset = the stack's own."""
    assert fsdp.grad_wire_bytes(ParallelConfig(zero=3, fsdp_impl=FSDPImpl.FSDP2)) == 4.0
    assert fsdp.grad_wire_bytes(ParallelConfig(zero=3, fsdp_impl=FSDPImpl.FSDP1)) == 2.0
    fp32 = ParallelConfig(zero=3, fsdp_impl=FSDPImpl.FSDP1, grad_reduce_dtype="fp32")
    assert fsdp.grad_wire_bytes(fp32) == 4.0
    bf16, _ = _gpt3_plan(FSDPImpl.FSDP1)
    slow, _ = _gpt3_plan(FSDPImpl.FSDP1, grad_reduce_dtype="fp32")
    assert slow > bf16
    model = load_model("gpt-7.5b")
    t = TrainingConfig(seq_len=2048, global_batch=512, micro_batch=1)
    base = ParallelConfig(dp=64, zero=3, fsdp_impl=FSDPImpl.FSDP1)
    extra = (training_memory(model, t, dataclasses.replace(base, grad_reduce_dtype="fp32"))
             .grads_bytes - training_memory(model, t, base).grads_bytes)
    assert extra == pytest.approx(2.0 * 12 * model.hidden_size ** 2, rel=0.05)  # +2 B a param


def test_megatron_bf16_grad_reduce_halves_dp_traffic_and_the_grad_buffer():
    """--grad-reduce-in-bf16: Megatron's DDP buffer and its reduce-scatter in bf16 instead of
    fp32 main grads: half the grad bytes in memory, less exposed DP communication."""
    model = load_model("gpt-7.5b")
    cluster = build_cluster("a100-80gb", 64, inter_node="ib-hdr")
    t = TrainingConfig(seq_len=2048, global_batch=512, micro_batch=4)
    comm = CommModel(cluster)
    fp32 = ParallelConfig(dp=64, zero=1, overlap_grad_reduce=False)
    bf16 = dataclasses.replace(fp32, grad_reduce_dtype="bf16")
    assert training_memory(model, t, bf16).grads_bytes == pytest.approx(
        training_memory(model, t, fp32).grads_bytes / 2)
    e32, e16 = estimate_iteration(model, t, fp32, comm), estimate_iteration(model, t, bf16, comm)
    assert e16.exposed_comm_s < e32.exposed_comm_s
    assert estimate_iteration(model, t, dataclasses.replace(fp32, grad_reduce_dtype="fp32"),
                              comm).iteration_time_s == e32.iteration_time_s
