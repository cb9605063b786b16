"""Fused / overlapped TP communication (hwmodels.training.tp_overlap, ParallelConfig field)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwmodels.catalog import load_model, read_yaml
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError
from hwmodels.parallel import ParallelConfig, TPOverlapImpl, TrainingConfig
from hwmodels.training.tp_overlap import TP_OVERLAP_TRAITS, TPOverlapTraits, exposed_tp_s, traits
from simulator.training.scenario import load_training_scenario
from simulator.training.simulate import simulate_iteration

ROOT = Path(__file__).resolve().parents[2]
RING = [TPOverlapImpl.TE_USERBUFFERS, TPOverlapImpl.MINDSPEED_MC2,
        TPOverlapImpl.XLA_COLLECTIVE_MATMUL]


def test_default_keeps_overlap_tp_comm_meaning() -> None:
    assert ParallelConfig().tp_overlap is TPOverlapImpl.NONE
    assert ParallelConfig(overlap_tp_comm=True).tp_overlap is TPOverlapImpl.IDEAL
    # a named implementation wins over the old bool, both ways
    assert ParallelConfig(overlap_tp_comm=True,
                          tp_comm_overlap_impl="none").tp_overlap is TPOverlapImpl.NONE
    p = ParallelConfig(tp=8, sequence_parallel=True, tp_comm_overlap_impl="mindspeed-mc2")
    assert p.tp_overlap is TPOverlapImpl.MINDSPEED_MC2
    assert isinstance(p.tp_comm_overlap_impl, TPOverlapImpl)


def test_bad_implementation_names_key_and_values() -> None:
    with pytest.raises(ConfigError) as err:
        ParallelConfig(tp_comm_overlap_impl="flux")
    assert err.value.key == "parallelism.tp_comm_overlap_impl"
    assert "mindspeed-mc2" in str(err.value) and "xla-collective-matmul" in str(err.value)


@pytest.mark.parametrize("impl", ["mindspeed-mc2", "te-userbuffers"])
def test_fused_ag_rs_implementations_need_sequence_parallel(impl: str) -> None:
    with pytest.raises(ConfigError, match="sequence_parallel"):
        ParallelConfig(tp=4, tp_comm_overlap_impl=impl)
    ParallelConfig(tp=4, sequence_parallel=True, tp_comm_overlap_impl=impl)
    ParallelConfig(tp=1, tp_comm_overlap_impl=impl)  # nothing to fuse: accepted
    ParallelConfig(tp=4, tp_comm_overlap_impl="xla-collective-matmul")


def test_none_and_ideal_reduce_to_the_v0_formulas() -> None:
    for comm, gemm in ((0.2, 1.0), (1.5, 1.0), (0.0, 1.0)):
        assert exposed_tp_s(comm, gemm, "none", 8) == comm
        assert exposed_tp_s(comm, gemm, "ideal", 8) == max(0.0, comm - gemm)


@pytest.mark.parametrize("impl", RING)
def test_ring_decomposition_hides_behind_all_but_one_piece(impl: TPOverlapImpl) -> None:
    t = traits(impl)
    assert t.hidden_fraction(8) == pytest.approx(7 / 8)
    assert t.hidden_fraction(2) == pytest.approx(1 / 2)
    assert t.hidden_fraction(1) == 0.0
    # comm longer than the hideable GEMM: the rest shows, plus the slowdown on all the GEMM
    comm, gemm = 2.0, 1.0
    assert exposed_tp_s(comm, gemm, impl, 4) == pytest.approx(
        comm - 0.75 * gemm + t.gemm_slowdown * gemm)
    # short comm: only the slowdown of the GEMM it runs under
    assert exposed_tp_s(0.3, 1.0, impl, 4) == pytest.approx(t.gemm_slowdown * 0.3 / 0.75)


def test_every_implementation_has_traits_and_a_source() -> None:
    assert set(TP_OVERLAP_TRAITS) == set(TPOverlapImpl)
    assert all(t.source for t in TP_OVERLAP_TRAITS.values())
    with pytest.raises(ValueError):
        TPOverlapTraits(pieces=0, gemm_slowdown=1.5)
    with pytest.raises(ValueError):
        TPOverlapTraits(pieces=-3, gemm_slowdown=0.0)


times = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)


@given(comm=times, gemm=times, tp=st.sampled_from([2, 4, 8, 16]),
       impl=st.sampled_from(RING))
def test_overlap_is_between_ideal_and_none(comm: float, gemm: float, tp: int,
                                           impl: TPOverlapImpl) -> None:
    got = exposed_tp_s(comm, gemm, impl, tp)
    assert exposed_tp_s(comm, gemm, "ideal", tp) - 1e-12 <= got <= comm + 1e-12


@given(comm=times, gemm=times, more=st.floats(min_value=0.0, max_value=5.0),
       impl=st.sampled_from(RING))
def test_more_gemm_or_more_ranks_never_exposes_more(comm: float, gemm: float, more: float,
                                                    impl: TPOverlapImpl) -> None:
    base = exposed_tp_s(comm, gemm, impl, 4)
    assert exposed_tp_s(comm, gemm + more, impl, 4) <= base + 1e-12
    assert exposed_tp_s(comm, gemm, impl, 8) <= base + 1e-12
    assert exposed_tp_s(comm + more, gemm, impl, 4) >= base - 1e-12


@pytest.fixture(scope="module")
def tp8_job():
    model = load_model("llama2-13b")
    cluster = build_cluster("ascend-910b", 8, devices_per_node=8, intra_node="hccs")
    training = TrainingConfig(seq_len=4096, global_batch=32, micro_batch=4)
    plan = ParallelConfig(tp=8, sequence_parallel=True)
    return model, cluster, training, plan


def _time(job, **change) -> float:
    model, cluster, training, plan = job
    plan = dataclasses.replace(plan, **change)
    return simulate_iteration(model, cluster, training, plan).iteration_time_s


def test_overlap_tp_comm_true_is_exactly_ideal(tp8_job) -> None:
    assert _time(tp8_job, overlap_tp_comm=True) == _time(tp8_job, tp_comm_overlap_impl="ideal")


def test_iteration_orders_none_mc2_ideal(tp8_job) -> None:
    none = _time(tp8_job)
    mc2 = _time(tp8_job, tp_comm_overlap_impl="mindspeed-mc2")
    ideal = _time(tp8_job, tp_comm_overlap_impl="ideal")
    assert none > mc2 > ideal


def test_scenario_key_reaches_the_plan() -> None:
    path = ROOT / "simulator/scenarios/ascend-910b-4node.yaml"
    scen = load_training_scenario(read_yaml(path), file=str(path))
    assert scen.parallel.tp_overlap is TPOverlapImpl.MINDSPEED_MC2
