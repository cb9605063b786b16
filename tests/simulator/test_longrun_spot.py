"""run.spot: preemptions in the long-run engine (conservation, rate 0, monotonicity, bill)."""

from __future__ import annotations

import dataclasses

import pytest

from hwmodels.errors import ConfigError
from simulator.longrun import JobShape, read_run, simulate_longrun
from simulator.longrun.spot import SpotSpec

JOB = JobShape(num_gpus=64, gpus_per_node=8, dp=8, gpus_per_replica=8,
               tokens_per_iteration=1e6, state_bytes=1e12)


def _cfg(rate: float | None, *, warning_s: float = 120.0, write_s: float = 30.0,
         fraction: float = 1.0, spot: bool = True):
    raw = {"token_budget": 2e9, "failures": False, "restart_s": 300,
           "on_shortage": "elastic", "min_dp": 2,
           "checkpoint": {"interval_s": 600, "mode": "sync", "write_s": write_s, "read_s": 20}}
    if spot:
        raw["spot"] = {"preemptions_per_node_hour": rate, "warning_s": warning_s,
                       "replacement_s": 1200, "price_usd_per_gpu_hour": 2.0,
                       "on_demand_price_usd_per_gpu_hour": 5.0, "fraction": fraction}
    return read_run(raw).resolve(JOB)


def _it(dp: int) -> float:
    return 10.0 * 8 / dp


def _run(cfg, seed: int = 3):
    return simulate_longrun(cfg, JOB, _it, seed=seed)


def test_rate_zero_is_the_run_without_spot_bit_for_bit():
    with_spot, without = _run(_cfg(0.0)), _run(_cfg(None, spot=False))
    assert dataclasses.replace(with_spot, spot=None) == without
    assert with_spot.spot.preemptions == 0


def test_conservation_and_cost_identity():
    r = _run(_cfg(0.05))
    assert r.interruptions["preemption"] > 0
    assert r.productive_s + sum(r.time_lost_s.values()) == pytest.approx(r.wall_s, rel=1e-9)
    s = r.spot
    assert s.cost_usd == pytest.approx(s.spot_gpu_hours * 2.0 + s.on_demand_gpu_hours * 5.0)
    assert s.spot_gpu_hours < JOB.num_gpus * r.wall_s / 3600  # preempted slots not billed
    assert s.cost_per_million_tokens_usd == pytest.approx(s.cost_usd / (r.tokens / 1e6))


def test_more_preemptions_never_finish_sooner():
    times = [_run(_cfg(rate)).time_to_train_s for rate in (0.0, 0.01, 0.05, 0.2)]
    assert all(a <= b for a, b in zip(times, times[1:], strict=False)), times
    assert times[-1] > times[0]


def test_emergency_checkpoint_only_when_warning_covers_the_save():
    covered = _run(_cfg(0.05, warning_s=120.0, write_s=30.0)).spot
    short = _run(_cfg(0.05, warning_s=10.0, write_s=30.0)).spot
    assert covered.emergency_checkpoints == covered.preemptions > 0
    assert covered.lost_work_s == 0.0
    assert short.emergency_checkpoints == 0 and short.lost_work_s > 0


def test_fraction_zero_bills_on_demand_only():
    r = _run(_cfg(0.5, fraction=0.0))
    assert r.spot.preemptions == 0 and r.spot.spot_gpu_hours == 0.0
    assert r.spot.cost_usd == pytest.approx(JOB.num_gpus * r.wall_s / 3600 * 5.0)


@pytest.mark.parametrize("bad", [
    {"preemptions_per_node_hour": -1.0},
    {"warning_s": -1.0},
    {"fraction": 1.5},
    {"price_usd_per_gpu_hour": None},
    {"on_demand_price_usd_per_gpu_hour": None},
])
def test_bad_input_is_a_config_error(bad):
    base = {"preemptions_per_node_hour": 0.1, "price_usd_per_gpu_hour": 2.0,
            "on_demand_price_usd_per_gpu_hour": 5.0}
    with pytest.raises(ConfigError, match="run.spot"):
        SpotSpec(**{**base, **bad})


def test_trace_preempts_the_named_nodes(tmp_path):
    trace = tmp_path / "p.csv"
    trace.write_text("time_s,node\n3600,0\n7200,1\n")
    scenario = tmp_path / "s.yaml"
    raw = {"token_budget": 2e9, "failures": False, "on_shortage": "elastic",
           "checkpoint": {"interval_s": 600, "write_s": 30},
           "spot": {"trace": "p.csv", "price_usd_per_gpu_hour": 2.0,
                    "on_demand_price_usd_per_gpu_hour": 5.0}}
    r = _run(read_run(raw, file=str(scenario)).resolve(JOB, file=str(scenario)))
    assert r.interruptions["preemption"] == 2 and r.spot.emergency_checkpoints == 2
