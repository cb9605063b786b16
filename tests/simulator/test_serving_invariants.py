"""The end-of-run invariants (simulator/serving/invariants.py): planted violations are caught,
named and mapped to exit 4; clean runs of the bundled scenarios pass them."""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwmodels.errors import InvariantError
from simulator.serving import load_serving_scenario, simulate_serving
from simulator.serving.invariants import check_requests, check_summary
from simulator.serving.kv_pool import KVPool
from simulator.serving.lane_state import LaneState
from simulator.serving.replica import Lane
from traces.synth import synthesize

SCEN = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
SPEC = {"num_requests": 60, "arrival": {"process": "poisson", "rate": 20.0},
        "input": {"dist": "uniform", "min": 64, "max": 512},
        "output": {"dist": "uniform", "min": 8, "max": 64}}


def _scenario(**serving: object):  # type: ignore[no-untyped-def]
    return load_serving_scenario({"name": "planted", "model": "llama3-8b",
                                  "cluster": {"device": "h100-sxm"},
                                  "serving": {"replicas": 2, "tp": 1, **serving},
                                  "workload": {"synthetic": SPEC}})


def _requests() -> pd.DataFrame:
    return synthesize(SPEC, seed=0)


def test_clean_run_passes() -> None:
    r = simulate_serving(_scenario(), _requests())
    assert (r.records["status"] == "completed").all()


def test_leaked_block_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lane that keeps one block of every finished request: the pools do not return to
    zero, so the run raises instead of reporting numbers."""
    orig = LaneState._release

    def leaky(self: LaneState, seq):  # type: ignore[no-untyped-def]
        held = orig(self, seq)
        self.kv.used += 1
        return held

    monkeypatch.setattr(LaneState, "_release", leaky)
    with pytest.raises(InvariantError) as info:
        simulate_serving(_scenario(), _requests())
    assert info.value.invariant == "kv_leak"
    assert info.value.scenario == "planted"
    assert "planted" in str(info.value)


def test_lost_request_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lane that swallows one submitted request: it never ends."""
    orig = Lane.submit
    seen: list[int] = []

    def lossy(self: Lane, seq):  # type: ignore[no-untyped-def]
        if seq.rid == 7:
            seen.append(seq.rid)
            return
        orig(self, seq)

    monkeypatch.setattr(Lane, "submit", lossy)
    with pytest.raises(InvariantError) as info:
        simulate_serving(_scenario(), _requests())
    assert seen == [7]
    assert info.value.invariant == "request_ends_once"
    assert "never ended" in info.value.detail


def test_double_ending_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request completed twice is refused as it happens, with the scenario named."""
    from simulator.serving.engine import ServingEngine

    orig = ServingEngine._on_finish

    def twice(self, seq, now):  # type: ignore[no-untyped-def]
        orig(self, seq, now)
        if seq.rid == 3:
            self.requests.complete(seq.rid, now, generated=seq.output, preemptions=0,
                                   cached_tokens=0)

    monkeypatch.setattr(ServingEngine, "_on_finish", twice)
    with pytest.raises(InvariantError) as info:
        simulate_serving(_scenario(), _requests())
    assert info.value.invariant == "request_ends_once"
    assert info.value.scenario == "planted"


def test_over_allocation_is_caught() -> None:
    pool = KVPool(10, 16, None)
    pool.alloc(8)
    with pytest.raises(InvariantError, match="kv_capacity"):
        pool.alloc(3)
    with pytest.raises(InvariantError, match="kv_capacity"):
        pool.free(9)


def test_time_backwards_is_caught() -> None:
    rec = pd.DataFrame({"request_id": [0, 1], "arrival_s": [1.0, 2.0],
                        "first_token_s": [1.5, 1.0], "finish_s": [2.0, 3.0],
                        "status": ["completed", "completed"], "drop_reason": ["", ""]})
    with pytest.raises(InvariantError, match="time_forward"):
        check_requests(rec, 2, cut=False)
    rec.loc[1, "first_token_s"] = 2.5
    check_requests(rec, 2, cut=False)
    rec.loc[1, "finish_s"] = 2.4
    with pytest.raises(InvariantError, match="time_forward"):
        check_requests(rec, 2, cut=False)


def test_dropped_without_reason_is_caught() -> None:
    rec = pd.DataFrame({"request_id": [0], "arrival_s": [1.0], "first_token_s": [np.nan],
                        "finish_s": [np.nan], "status": ["dropped"], "drop_reason": [""]})
    with pytest.raises(InvariantError, match="drop_reason"):
        check_requests(rec, 1, cut=False)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_summary_numbers_are_finite(bad: float) -> None:
    check_summary({"a": 1.0, "b": None, "c": {"p99": None, "n": 3}, "g": {"x": "name"}})
    with pytest.raises(InvariantError, match="summary_finite") as info:
        check_summary({"a": 1.0, "ttft_s": {"p99": bad}}, scenario="s")
    assert "ttft_s.p99" in info.value.detail


def test_cli_exit_4_on_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetsim.cli.app import main

    orig = LaneState._release

    def leaky(self: LaneState, seq):  # type: ignore[no-untyped-def]
        held = orig(self, seq)
        self.kv.used += 1
        return held

    monkeypatch.setattr(LaneState, "_release", leaky)
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["simulate", "serve", str(SCEN / "llama2-70b-h100-azure.yaml"),
                     "--set", "workload.window.end_s=30", "--json", "--no-progress"])
    assert code == 4


@pytest.mark.parametrize("scheduler", ["vllm", "sarathi", "orca", "static"])
def test_every_router_and_scheduler_keeps_the_invariants(scheduler: str) -> None:
    """A small self-fuzz (the full grid over scenarios, seeds, migration and autoscaling is in
    the issue-13 report): every registered router with each scheduler, migration on, ends
    every request (simulate_serving runs check_run itself)."""
    from simulator.serving.routers import RouterKind

    df = _requests()
    for router in RouterKind:
        sc = _scenario(router=str(router), scheduler=scheduler,
                       migration={"interval_s": 0.5, "threshold": 1})
        r = simulate_serving(sc, df, seed=1)
        assert set(r.records["status"]) <= {"completed", "dropped"}, router
