"""Planted violations of the training and long-run end-of-run invariants raise InvariantError."""

from __future__ import annotations

import dataclasses
import math

import pytest

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import InvariantError
from hwmodels.parallel import ParallelConfig, TrainingConfig
from simulator.longrun.invariants import check_run_result
from simulator.longrun.results import diagnose
from simulator.training.engine import TraceEvent
from simulator.training.invariants import check_timeline, check_training_result
from simulator.training.simulate import simulate_iteration


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    return simulate_iteration(load_model("gpt-1.7b"), build_cluster("a100-80gb", 8),
                              TrainingConfig(seq_len=2048, global_batch=16),
                              ParallelConfig(tp=2, pp=2, dp=2), timeline=True)


def test_a_real_iteration_passes(result) -> None:
    check_training_result(result, scenario="ok")
    assert result.timeline


@pytest.mark.parametrize(("change", "invariant"), [
    (dict(mfu=math.nan), "finite non-negative summary"),
    (dict(tokens_per_s=-1.0), "finite non-negative summary"),
    (dict(hfu=1.5, mfu=1.2), "MFU <= HFU <= 1"),
    (dict(iteration_time_s=0.0), "time moves forward"),
])
def test_planted_training_violation(result, change, invariant) -> None:
    with pytest.raises(InvariantError, match="scenario 'planted'") as exc:
        check_training_result(dataclasses.replace(result, **change), scenario="planted")
    assert exc.value.invariant == invariant


def test_planted_timeline_violations() -> None:
    ok = [TraceEvent(track="stage 0", name="F0", start_s=0.0, duration_s=1.0, category="compute"),
          TraceEvent(track="stage 0", name="F1", start_s=1.0, duration_s=1.0, category="compute")]
    check_timeline(ok)
    overlap = ok + [TraceEvent(track="stage 0", name="B0", start_s=1.5, duration_s=1.0,
                               category="compute")]
    with pytest.raises(InvariantError, match="one op at a time"):
        check_timeline(overlap, scenario="s")
    backwards = [TraceEvent(track="stage 1", name="F0", start_s=2.0, duration_s=-1.0,
                            category="compute")]
    with pytest.raises(InvariantError, match="time moves forward"):
        check_timeline(backwards, scenario="s")


def _run_result():  # type: ignore[no-untyped-def]
    from longrun_helpers import job, kokolis_run

    from simulator.longrun.engine import simulate_longrun

    j = job(8)
    return simulate_longrun(kokolis_run(j, interval_s=1800, days=3), j, lambda dp: 10.0, seed=1)


@pytest.mark.parametrize(("change", "invariant"), [
    ("ettr_high", "ETTR in [0, 1]"),
    ("wall_short", "wall time >= productive time"),
    ("goodput", "goodput <= throughput"),
    ("nan", "finite non-negative summary"),
    ("ledger", "productive + lost time == wall time"),
    ("clock", "time moves forward"),
])
def test_planted_long_run_violation(change, invariant) -> None:
    r = _run_result()
    check_run_result(r, scenario="ok")
    bad = {
        "ettr_high": dict(ettr=1.5),
        "wall_short": dict(wall_s=r.productive_s / 2),
        "goodput": dict(goodput_tokens_per_s=2 * r.ideal_tokens_per_s),
        "nan": dict(tokens=math.nan),
        "ledger": dict(productive_s=r.productive_s * 0.5),
        "clock": dict(progress_t_s=(0.0, 10.0, 5.0)),
    }[change]
    with pytest.raises(InvariantError) as exc:
        check_run_result(dataclasses.replace(r, **bad), scenario="planted")
    assert exc.value.invariant == invariant and exc.value.scenario == "planted"


def test_diagnose_names_the_dominant_loss_and_a_zero_ettr() -> None:
    lost = {"restart": 10.0, "rework": 5.0, "checkpoint": 1.0, "stragglers": 0.0,
            "waiting_spare": 940.0, "elastic": 0.0}
    hint = diagnose(ettr=0.04, wall_s=1000.0, iterations=4, time_lost_s=lost)
    assert hint is not None and hint.startswith("94% of wall time waiting for repairs")
    assert "run.spares" in hint
    zero = diagnose(ettr=0.0, wall_s=1000.0, iterations=0, time_lost_s=lost)
    assert zero is not None and zero.startswith("ETTR is 0: no iteration completed")
    small = {k: 0.01 * v for k, v in lost.items()}
    assert diagnose(ettr=0.99, wall_s=1000.0, iterations=100, time_lost_s=small) is None
