"""MoE training terms (hwmodels.training.moe): load imbalance, capacity drops, all-to-all
overlap, expert tensor parallelism in groups, grad sync and memory, and check_plan's EP rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError
from hwmodels.memory import training_memory
from hwmodels.parallel import (
    EPOverlap,
    ParallelConfig,
    Recompute,
    TrainingConfig,
    check_plan,
)
from hwmodels.training import moe
from hwmodels.training.gradsync import stage_params
from hwmodels.training.placement import pipeline_groups

MIXTRAL = load_model("mixtral-8x7b")
DSV3 = load_model("deepseek-v3")


def test_expected_max_of_normals_matches_known_values() -> None:
    assert moe.expected_max_std_normal(1) == 0.0
    assert moe.expected_max_std_normal(2) == pytest.approx(0.5642, abs=0.03)  # 1/sqrt(pi)
    assert moe.expected_max_std_normal(8) == pytest.approx(1.4236, abs=0.02)  # exact table
    assert moe.expected_max_std_normal(64) == pytest.approx(2.4, abs=0.1)


@given(st.integers(1, 500))
def test_expected_max_grows_with_n(n: int) -> None:
    assert moe.expected_max_std_normal(n + 1) > moe.expected_max_std_normal(n)


def _monte_carlo_rank_imbalance(e: int, k: int, ep: int, tokens: int, trials: int) -> float:
    """Mean over trials of busiest EP rank / mean when every token picks k of e uniformly."""
    rng = np.random.default_rng(1234)
    ratios = []
    for _ in range(trials):
        picks = np.argsort(rng.random((tokens * ep, e)), axis=1)[:, :k]
        per_rank = np.bincount((picks // (e // ep)).ravel(), minlength=ep)
        ratios.append(per_rank.max() / per_rank.mean())
    return float(np.mean(ratios))


@pytest.mark.parametrize(("model", "ep", "tokens"), [(MIXTRAL, 8, 256), (DSV3, 16, 64)])
def test_default_imbalance_is_the_balls_in_bins_expectation(model, ep: int,
                                                            tokens: int) -> None:
    plan = ParallelConfig(dp=ep, ep=ep)
    load = moe.moe_load(model, plan, tokens)
    assert load.source == "balls-in-bins"
    simulated = _monte_carlo_rank_imbalance(model.num_experts, model.experts_per_token, ep,
                                            tokens, trials=300)
    assert load.imbalance - 1.0 == pytest.approx(simulated - 1.0, rel=0.15)


def test_capacity_drops_match_a_binomial_simulation() -> None:
    # one rank's 1024 local tokens, top-2 of 8 experts, capacity factor 1.0 and 1.2
    rng = np.random.default_rng(7)
    tokens, e, k = 1024, 8, 2
    for cf in (1.0, 1.2):
        plan = ParallelConfig(dp=8, ep=8, moe_capacity_factor=cf)
        load = moe.moe_load(MIXTRAL, plan, tokens)
        cap = cf * tokens * k / e
        dropped = []
        for _ in range(400):
            picks = np.argsort(rng.random((tokens, e)), axis=1)[:, :k]
            counts = np.bincount(picks.ravel(), minlength=e)
            dropped.append(np.maximum(counts - cap, 0).sum() / (tokens * k))
        assert load.dropped_fraction == pytest.approx(float(np.mean(dropped)), rel=0.25,
                                                      abs=2e-4)


@settings(max_examples=60, deadline=None)
@given(ep=st.sampled_from([1, 2, 4, 8]), tokens=st.floats(16, 65536),
       cf=st.one_of(st.none(), st.floats(0.5, 4.0)), given_imb=st.one_of(
           st.none(), st.floats(1.0, 3.0)))
def test_load_invariants(ep: int, tokens: float, cf: float | None,
                         given_imb: float | None) -> None:
    plan = ParallelConfig(dp=8, ep=ep, moe_capacity_factor=cf, moe_imbalance=given_imb)
    load = moe.moe_load(MIXTRAL, plan, tokens)
    assert load.routed_imbalance >= 1.0 and load.imbalance >= 1.0
    assert load.imbalance <= load.routed_imbalance
    assert 0.0 <= load.dropped_fraction <= 1.0
    if cf is None:
        assert load.dropped_fraction == 0.0 and load.imbalance == load.routed_imbalance
    else:
        assert load.imbalance <= max(cf, 1.0)
        more = moe.moe_load(MIXTRAL, ParallelConfig(dp=8, ep=ep, moe_capacity_factor=cf * 1.5,
                                                    moe_imbalance=given_imb), tokens)
        assert more.dropped_fraction <= load.dropped_fraction + 1e-12
    if given_imb is not None:
        assert load.routed_imbalance == given_imb


def test_default_imbalance_falls_with_tokens_and_rises_with_ep() -> None:
    few = moe.moe_load(DSV3, ParallelConfig(dp=64, ep=64), 512).imbalance
    many = moe.moe_load(DSV3, ParallelConfig(dp=64, ep=64), 8192).imbalance
    assert few > many > 1.0
    assert moe.moe_load(DSV3, ParallelConfig(dp=64, ep=8), 512).imbalance < few
    assert moe.moe_load(DSV3, ParallelConfig(dp=64, ep=1), 512).imbalance == 1.0


@given(comm=st.floats(0.0, 10.0), compute=st.floats(0.0, 10.0))
def test_dualpipe_hides_up_to_the_compute_and_pays_the_sm_share(comm: float,
                                                                 compute: float) -> None:
    none = moe.ep_exposed_s(comm, compute, EPOverlap.NONE)
    dual = moe.ep_exposed_s(comm, compute, EPOverlap.DUALPIPE)
    assert none == comm
    assert dual <= comm + 1e-12
    assert dual >= moe.DUALPIPE_COMM_SM_FRACTION * comm - 1e-12
    assert dual >= comm - compute - 1e-12


def test_dualpipe_exposes_the_sm_share_when_compute_is_long() -> None:
    assert moe.ep_exposed_s(1.0, 100.0, "dualpipe") == pytest.approx(20 / 132)
    assert moe.ep_exposed_s(1.0, 0.25, "dualpipe") == pytest.approx(0.75)


def test_expert_grid_follows_megatron_when_expert_tp_differs() -> None:
    # 16 ranks per stage: tp 2, dp 8; experts tp 1 x ep 4 x edp 4 over them, etp innermost
    g = pipeline_groups(ParallelConfig(tp=2, dp=8, ep=4, expert_tp=1,
                                       sequence_parallel=True))[0]
    assert g.ep_group == (0, 1, 2, 3)
    assert g.expert_dp_group == (0, 4, 8, 12)
    assert g.expert_tp_group == (0,)
    same = pipeline_groups(ParallelConfig(tp=2, dp=8, ep=4))[0]
    assert same.ep_group == (0, 2, 4, 6) and same.expert_tp_group == same.tp_group == (0, 1)
    wide = pipeline_groups(ParallelConfig(tp=2, dp=8, ep=2, expert_tp=4,
                                          sequence_parallel=True))[0]
    assert wide.expert_tp_group == (0, 1, 2, 3) and wide.ep_group == (0, 4)
    assert wide.expert_dp_group == (0, 8)


def test_expert_params_and_memory_follow_expert_tp() -> None:
    base = dict(tp=4, pp=4, dp=8, ep=8, zero=1, sequence_parallel=True)
    at_tp = stage_params(MIXTRAL, ParallelConfig(**base), 1)
    at_one = stage_params(MIXTRAL, ParallelConfig(expert_tp=1, **base), 1)
    assert at_one.expert == pytest.approx(4 * at_tp.expert)
    assert at_one.dense == pytest.approx(at_tp.dense)
    training = TrainingConfig(seq_len=4096, global_batch=64)
    mem_tp = training_memory(MIXTRAL, training, ParallelConfig(**base), stage=1)
    mem_one = training_memory(MIXTRAL, training, ParallelConfig(expert_tp=1, **base), stage=1)
    assert mem_one.total_bytes > mem_tp.total_bytes


def _check(n: int = 64, model=MIXTRAL, global_batch: int = 128, **plan) -> None:
    check_plan(model, build_cluster("h100-sxm", n), TrainingConfig(seq_len=4096,
               global_batch=global_batch), ParallelConfig(**plan))


@pytest.mark.parametrize(("plan", "key", "match"), [
    (dict(tp=1, pp=1, dp=64, ep_overlap=EPOverlap.DUALPIPE), "parallelism.ep_overlap",
     "needs ep > 1"),
    (dict(tp=1, pp=1, dp=64, ep=8, ep_overlap=EPOverlap.DUALPIPE, recompute=Recompute.FULL),
     "parallelism.ep_overlap", "recompute: full"),
    (dict(model=DSV3, tp=2, pp=1, dp=32, ep=64, expert_tp=2, sequence_parallel=True),
     "parallelism.expert_tp", "must divide tp\\*cp\\*dp"),
    (dict(tp=2, pp=1, dp=32, ep=8, expert_tp=1), "parallelism.expert_tp",
     "sequence_parallel"),
    (dict(tp=1, pp=1, dp=64, ep=8, expert_tp=3), "parallelism.expert_tp",
     "must divide|does not divide"),
])
def test_bad_moe_plans_are_one_line_config_errors(plan: dict, key: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        _check(**plan)
    assert err.value.key == key and "\n" not in str(err.value)


def test_dualpipe_needs_two_microbatches() -> None:
    with pytest.raises(ConfigError, match=">= 2 microbatches"):
        _check(global_batch=64, tp=1, pp=1, dp=64, ep=8, ep_overlap=EPOverlap.DUALPIPE)
    _check(global_batch=128, tp=1, pp=1, dp=64, ep=8, ep_overlap=EPOverlap.DUALPIPE)


def test_moe_knobs_on_a_dense_model_are_rejected() -> None:
    dense = load_model("llama3-8b")
    for knob in (dict(moe_capacity_factor=1.0), dict(moe_imbalance=1.2), dict(expert_tp=1)):
        with pytest.raises(ConfigError, match="needs an MoE model"):
            _check(model=dense, tp=1, pp=1, dp=64, **knob)


def test_expert_tp_rule_is_megatrons() -> None:
    # expert_tp * ep must divide tp * cp * dp (world / pp): tp 8 dp 8 -> etp 1 x ep 64 is fine
    _check(model=DSV3, tp=8, pp=1, dp=8, ep=64, expert_tp=1, sequence_parallel=True)
    with pytest.raises(ConfigError, match="ep 64 must divide dp\\*cp = 8"):
        _check(model=DSV3, tp=8, pp=1, dp=8, ep=64, sequence_parallel=True)
