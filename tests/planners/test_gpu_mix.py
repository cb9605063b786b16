"""plan_gpu_mix: the ILP against brute force, and a short+long workload where a mix beats every
single GPU type and meets the SLO when simulated on the trace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwmodels.errors import ConfigError, InfeasibleError, UnknownNameError
from planners.buckets import BucketGrid, bucketize
from planners.gpu_mix import plan_gpu_mix, split_requests
from planners.mix_ilp import brute_force_mix, feasible, single_type_costs, solve_mix
from simulator.profiles import ProfileChoice


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_ilp_equals_brute_force(seed: int, solver: str) -> None:
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.0, 3.0, 5)
    cap = rng.uniform(0.5, 4.0, (5, 3))
    cap[rng.random((5, 3)) < 0.25] = 0.0  # some types cannot serve some buckets
    cap[:, 0] = np.maximum(cap[:, 0], 0.3)
    prices = rng.uniform(1.0, 5.0, 3)
    sol = solve_mix(rates, cap, prices, solver=solver)
    counts, cost = brute_force_mix(rates, cap, prices, max_count=8)
    assert sol.cost_usd_per_hour == pytest.approx(cost, rel=1e-9)
    assert feasible(sol.counts, rates, cap)
    np.testing.assert_allclose(sol.fractions[0][rates > 0].sum(axis=1), 1.0, atol=1e-6)
    assert np.all(sol.load[0] <= np.asarray(sol.counts) + 1e-6)
    # a mix never costs more than the cheapest single type
    assert sol.cost_usd_per_hour <= single_type_costs(rates, cap, prices).min() + 1e-9


def test_slicing_beats_whole_buckets() -> None:
    # one bucket: A alone needs 2 ($6), B alone 3 ($7.5); slicing: 1 A + 1 B ($5.5)
    rates = np.array([1.5])
    cap = np.array([[1.0, 0.5]])
    sol = solve_mix(rates, cap, [3.0, 2.5])
    assert sol.counts == (1, 1) and sol.cost_usd_per_hour == pytest.approx(5.5)
    assert sol.fractions[0, 0] == pytest.approx([2 / 3, 1 / 3], abs=1e-6)


def test_time_windows_share_one_fleet() -> None:
    # window 1 needs bucket 0 only, window 2 bucket 1 only: the peak fleet serves both
    cap = np.array([[1.0, 0.0], [0.0, 1.0]])
    sol = solve_mix(np.array([[2.0, 0.0], [0.0, 1.0]]), cap, [1.0, 1.0])
    assert sol.counts == (2, 1)


def test_bad_input() -> None:
    with pytest.raises(UnknownNameError):
        solve_mix([1.0], [[1.0]], [1.0], solver="gurobi")
    with pytest.raises(InfeasibleError, match="no instance type"):
        solve_mix([1.0, 1.0], [[1.0], [0.0]], [1.0])
    with pytest.raises(ConfigError, match="increasing"):
        BucketGrid(input_edges=(10, 5), output_edges=(1, 2))


def test_split_follows_fractions() -> None:
    bucket_of = np.zeros(1000, dtype=np.int64)
    type_of = split_requests(bucket_of, np.array([[0.7, 0.3]]))
    assert abs(np.mean(type_of == 1) - 0.3) < 0.002


def _short_long(seed: int = 0, duration_s: float = 60.0) -> pd.DataFrame:
    """Chat-like short requests (~60/s) plus long-prompt requests (~3/s)."""
    rng = np.random.default_rng(seed)
    n_s, n_l = rng.poisson(60 * duration_s), rng.poisson(3.0 * duration_s)
    t = np.concatenate([rng.uniform(0, duration_s, n_s), rng.uniform(0, duration_s, n_l)])
    inp = np.concatenate([rng.integers(100, 400, n_s), rng.integers(5000, 7000, n_l)])
    out = np.concatenate([rng.integers(20, 80, n_s), rng.integers(200, 400, n_l)])
    order = np.argsort(t)
    return pd.DataFrame({"arrival_time_s": t[order], "input_tokens": inp[order],
                         "output_tokens": out[order]})


def test_mix_beats_every_single_type_and_meets_slo() -> None:
    df = _short_long()
    grid = BucketGrid(input_edges=(1, 1024, 16384), output_edges=(1, 128, 1024))
    assert len(bucketize(df, grid)) == 2
    # H100 at AWS p5.48xlarge on-demand $98.32/h / 8 GPUs (us-east-1, 2024), as in Mélange's
    # hyperscaler setting; the other prices come from the catalog
    # on the catalog defaults: with the bundled H100 profile an all-H100 fleet ties the mix
    # at this price (the planner's mechanics, not the efficiency source, are under test)
    plan = plan_gpu_mix("llama3-8b", df, devices=["a10g", "l40s", "h100-sxm"],
                        prices={"h100-sxm": 12.29}, slo_ttft_s=1.0, slo_tpot_s=0.05,
                        buckets=grid, window_s=20.0, profiles=ProfileChoice(no_profile=True))
    # single-type baselines went through the same simulate/derate loop
    singles = [c for c in plan.single_type_cost_usd_per_hour.values() if c is not None]
    assert singles and plan.cost_usd_per_hour < min(singles) - 1e-9
    assert sum(1 for c in plan.counts.values() if c) >= 2  # a real mix
    assert plan.meets_slo and plan.slo_attainment >= 0.95
    assert plan.iterations >= 1 and len(plan.history) == plan.iterations
    # A10G cannot hold a 6k-token prompt within a 1 s TTFT: profiled capacity 0 there
    assert plan.capacity.loc[plan.capacity.index[1], "a10gx1"] == 0.0
    # following the load never costs more than one fleet for every window
    assert plan.follow_cost_usd <= plan.peak_cost_usd + 1e-9
    d = plan.to_dict()
    assert d["mix"] and d["savings_vs_best_single"] > 0 and "time_varying" in d


def test_requests_over_max_model_len_are_refused_and_counted() -> None:
    """No engine admits prompt + output > max_model_len: such requests leave the workload
    up front and are counted, instead of a bucket that no type can serve (issue 13)."""
    import pandas as pd

    from hwmodels.catalog import load_model
    from hwmodels.errors import InfeasibleError
    from planners.gpu_mix import _refuse_too_long

    limit = load_model("llama2-7b").max_seq_len
    df = pd.DataFrame({"arrival_time_s": [0.0, 1.0, 2.0],
                       "input_tokens": [100, limit, limit - 10],
                       "output_tokens": [10, 1, 20]})
    kept, refused, max_len = _refuse_too_long(df, "llama2-7b", None)
    assert (refused, max_len, len(kept)) == (2, limit, 1)
    assert kept["input_tokens"].tolist() == [100]
    # serving.max_model_len overrides the model's context
    kept_short, refused_short, _ = _refuse_too_long(df, "llama2-7b", {"max_model_len": 110})
    assert (refused_short, len(kept_short)) == (2, 1)
    with pytest.raises(InfeasibleError, match="max_model_len 100 "):
        _refuse_too_long(df, "llama2-7b", {"max_model_len": 100})
    with pytest.raises(InfeasibleError, match="every one of the 1 requests"):
        _refuse_too_long(df.iloc[[1]], "llama2-7b", None)
