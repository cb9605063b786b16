"""ZeRO-0/1/2 overlapped DP collectives slow the compute beside them, as FSDP's do."""

import pytest

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.parallel import FSDPImpl, ParallelConfig, PipelineSchedule, TrainingConfig
from hwmodels.training.fsdp import OVERLAP_COMPUTE_SLOWDOWN
from hwmodels.training.gradsync import overlap_contention
from simulator.training.simulate import simulate_iteration

MODEL = load_model("gpt3-175b")
CLUSTER = build_cluster("a100-80gb", 1024, inter_node="ib-hdr")
TRAIN = TrainingConfig(seq_len=2048, global_batch=1536, micro_batch=1)


def _plan(impl: FSDPImpl, **kw) -> ParallelConfig:
    return ParallelConfig(tp=2, pp=8, dp=64, vpp=6, zero=2, sequence_parallel=True,
                          schedule=PipelineSchedule.INTERLEAVED, fsdp_impl=impl, **kw)


def test_contention_constant_is_the_fsdp_one_except_ideal_and_v01():
    assert overlap_contention(_plan(FSDPImpl.FSDP2)) == OVERLAP_COMPUTE_SLOWDOWN
    assert overlap_contention(_plan(FSDPImpl.MEGATRON)) == OVERLAP_COMPUTE_SLOWDOWN
    assert overlap_contention(_plan(FSDPImpl.IDEAL)) == 0.0
    assert overlap_contention(_plan(FSDPImpl.NCCL)) == 0.0


def test_overlapped_zero2_costs_more_than_ideal_but_less_than_serial():
    """Contention is charged only on what overlapped: between the ideal overlap and no
    overlap at all (every bucket and the param gather after the compute)."""
    real = simulate_iteration(MODEL, CLUSTER, TRAIN, _plan(FSDPImpl.FSDP2))
    ideal = simulate_iteration(MODEL, CLUSTER, TRAIN, _plan(FSDPImpl.IDEAL))
    serial = simulate_iteration(MODEL, CLUSTER, TRAIN, _plan(
        FSDPImpl.FSDP2, overlap_grad_reduce=False, overlap_param_gather=False))
    assert ideal.iteration_time_s < real.iteration_time_s < serial.iteration_time_s
    extra = real.breakdown.exposed_comm_s - ideal.breakdown.exposed_comm_s
    hidden = serial.breakdown.exposed_comm_s - ideal.breakdown.exposed_comm_s
    assert extra == pytest.approx(OVERLAP_COMPUTE_SLOWDOWN * hidden, rel=0.35)
