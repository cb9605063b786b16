"""hwmodels.training: the closed-form iteration estimate, its schedule table, stage groups and the
shared cost cache (pure costs, no simulator)."""

from __future__ import annotations

import pytest

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.parallel import ParallelConfig, PipelineSchedule, Recompute, TrainingConfig
from hwmodels.training.comm import CommModel
from hwmodels.training.costs import CostCache, p2p_activation_bytes
from hwmodels.training.estimate import SCHEDULE_SHAPES, estimate_iteration
from hwmodels.training.placement import pipeline_groups, stage_groups

MODEL = load_model("gpt-7.5b")
CLUSTER = build_cluster("a100-80gb", 64, inter_node="ib-hdr")
TRAINING = TrainingConfig(seq_len=2048, global_batch=512, micro_batch=4)


def _estimate(cache: CostCache | None = None, **plan):  # type: ignore[no-untyped-def]
    return estimate_iteration(MODEL, TRAINING, ParallelConfig(**plan), CommModel(CLUSTER),
                              cache=cache)


def test_every_schedule_has_a_closed_form() -> None:
    assert set(SCHEDULE_SHAPES) == set(PipelineSchedule)
    assert [s for s, shape in SCHEDULE_SHAPES.items() if shape.splits_backward] == \
        [PipelineSchedule.ZB_H1]


def test_parts_sum_and_bubble_by_schedule() -> None:
    flat = _estimate(dp=64)
    assert flat.bubble_s == 0.0
    results = {s: _estimate(tp=2, pp=4, dp=8, schedule=s, recompute=Recompute.SELECTIVE)
               for s in (PipelineSchedule.ONE_F_ONE_B, PipelineSchedule.ZB_H1)}
    for e in (flat, *results.values()):
        assert e.compute_s + e.exposed_comm_s + e.bubble_s + e.optimizer_s == \
            pytest.approx(e.iteration_time_s)
    assert 0 < results[PipelineSchedule.ZB_H1].bubble_s < \
        results[PipelineSchedule.ONE_F_ONE_B].bubble_s
    inter = _estimate(tp=2, pp=4, dp=8, vpp=3, schedule=PipelineSchedule.INTERLEAVED)
    assert inter.bubble_s < _estimate(tp=2, pp=4, dp=8).bubble_s


def test_shared_cache_changes_nothing() -> None:
    cache = CostCache()
    plans = [dict(tp=2, pp=4, dp=8), dict(tp=2, pp=2, dp=16, zero=3), dict(dp=64, zero=1)]
    shared = [_estimate(cache, **p) for p in plans]
    assert cache.layers and cache.ends
    assert shared == [_estimate(**p) for p in plans]


def test_stage_groups_match_pipeline_groups() -> None:
    p = ParallelConfig(tp=2, pp=4, dp=8)
    assert tuple(stage_groups(p, s) for s in range(4)) == pipeline_groups(p)


def test_p2p_bytes_split_over_tp_and_cp() -> None:
    p = ParallelConfig(tp=2, cp=2, pp=2, dp=8)
    assert p2p_activation_bytes(MODEL, TRAINING, p) == 4 * 2048 / 2 * MODEL.hidden_size * 2 / 2


def test_zero3_overlap_param_gather_is_the_prefetch_switch() -> None:
    """Under ZeRO-3 overlap_param_gather=False turns off the next-layer prefetch: every
    layer's all-gather is exposed (it was silently ignored before)."""
    from simulator.training.simulate import simulate_iteration

    on = _estimate(tp=1, pp=1, dp=64, zero=3)
    off = _estimate(tp=1, pp=1, dp=64, zero=3, overlap_param_gather=False)
    assert off.exposed_comm_s > on.exposed_comm_s
    assert off.compute_s == pytest.approx(on.compute_s)
    sim_on = simulate_iteration(MODEL, CLUSTER, TRAINING, ParallelConfig(dp=64, zero=3))
    sim_off = simulate_iteration(MODEL, CLUSTER, TRAINING,
                                 ParallelConfig(dp=64, zero=3, overlap_param_gather=False))
    assert sim_off.iteration_time_s > sim_on.iteration_time_s
    assert sim_off.breakdown.exposed_comm_s > sim_on.breakdown.exposed_comm_s
