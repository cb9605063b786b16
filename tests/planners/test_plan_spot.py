"""plan_spot: interval chosen from simulated candidates, spot vs on-demand, break-even."""

from __future__ import annotations

import pytest
import yaml

from hwmodels.errors import ConfigError
from planners.spot import plan_spot
from simulator.longrun import JobShape, read_run

JOB = JobShape(num_gpus=64, gpus_per_node=8, dp=8, gpus_per_replica=8,
               tokens_per_iteration=1e6, state_bytes=1e12)


def _cfg(rate: float, *, budget: float | None = 1e9):
    raw = {"failures": False, "on_shortage": "elastic", "min_dp": 2,
           "checkpoint": {"interval_s": 600, "write_s": 30, "read_s": 20},
           "spot": {"preemptions_per_node_hour": rate, "warning_s": 10,
                    "price_usd_per_gpu_hour": 2.0, "on_demand_price_usd_per_gpu_hour": 5.0}}
    raw["token_budget" if budget else "duration"] = budget or 86400
    return read_run(raw).resolve(JOB)


def _it(dp: int) -> float:
    return 10.0 * 8 / dp


def test_spot_cheaper_but_slower_and_break_even_above_the_rate():
    plan = plan_spot(_cfg(0.02), JOB, _it, seeds=1,
                     sweep_factors=(0.0, 1.0, 10.0, 100.0, 1000.0))
    assert plan.spot["cost_usd"] < plan.on_demand["cost_usd"]
    assert plan.spot["time_to_train_s"] >= plan.on_demand["time_to_train_s"]
    assert plan.checkpoint.best_interval_s in {r["interval_s"] for r in plan.checkpoint.rows}
    be = plan.break_even_preemptions_per_node_hour
    assert be is not None and be > 0.02
    costs = [r["cost_usd"] for r in plan.sweep]
    assert costs[0] <= costs[-1]


def test_needs_a_token_budget():
    with pytest.raises(ConfigError, match="token_budget"):
        plan_spot(_cfg(0.02, budget=None), JOB, _it, seeds=1)


def test_plan_spot_chooses_the_shortage_policy_by_cost_per_token():
    """Elastic re-planning: wait vs shrink data parallelism while preempted slots are away,
    both simulated on the same seeds; the chosen one is the cheapest per trained token."""
    from simulator.longrun.simulate import default_iteration_time_fn, run_config
    from simulator.training import apply_overrides, load_training_scenario

    path = "simulator/scenarios/llama3-70b-h100-spot.yaml"
    raw = yaml.safe_load(open(path).read())
    sc = load_training_scenario(apply_overrides(raw, ["run.spot.preemptions_per_node_hour=0.05"]),
                                file=path)
    cfg, job = run_config(sc)
    plan = plan_spot(cfg, job, default_iteration_time_fn(sc), seeds=1, sweep_factors=(1.0,))
    figs = plan.by_shortage
    assert set(figs) == {"wait", "elastic", "replan"}
    costs = {k: f["cost_per_million_tokens_usd"] for k, f in figs.items() if "error" not in f}
    assert str(plan.shortage) == min(costs, key=costs.get)
    assert plan.spot == figs[str(plan.shortage)]
    assert plan.to_dict()["shortage"] == str(plan.shortage)
