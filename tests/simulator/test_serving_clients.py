"""Closed-loop clients (workload.clients) and the capacity search / load sweep."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hwmodels.errors import ConfigError, InfeasibleError
from simulator.serving import load_serving_scenario, load_workload, simulate_serving
from simulator.serving.capacity import find_capacity, run_probe, sweep_loads
from traces.closed_loop import ClientsSpec


def scenario(workload: dict[str, Any], **serving: Any) -> Any:
    return load_serving_scenario({
        "model": "llama3-8b", "cluster": {"device": "h100-sxm", "num_devices": 1},
        "serving": {"tp": 1, "scheduler": "vllm", "max_num_seqs": 256, **serving},
        "workload": workload, "slo": {"ttft_s": 1.0, "tpot_s": 0.05}})


def closed(count: int = 16, **extra: Any) -> dict[str, Any]:
    return {"clients": count, "input": 512, "output": 64, "duration_s": 60, **extra}


def run(workload: dict[str, Any], **serving: Any) -> Any:
    sc = scenario(workload, **serving)
    return simulate_serving(sc, load_workload(sc))


def in_system(records: Any, t: np.ndarray) -> np.ndarray:
    a = records["arrival_s"].to_numpy()
    f = records["finish_s"].to_numpy()
    return ((a[None, :] <= t[:, None]) & (f[None, :] > t[:, None])).sum(axis=1)


def test_concurrency_never_exceeds_clients_and_fills_them_with_zero_think() -> None:
    res = run(closed(16))
    rec = res.records
    assert (rec["status"] == "completed").all()
    t = np.linspace(0.5, 59.5, 200)
    n = in_system(rec, t)
    assert n.max() <= 16
    assert n.min() == 16  # zero think: a client's next request arrives as its last ends
    loop = res.summary()["closed_loop"]
    assert loop["clients"] == 16
    assert 15.0 < loop["mean_concurrency"] <= 16.0


def test_littles_law_with_think_time() -> None:
    res = run(closed(8, think_time_s=2.0))
    s = res.summary()
    e2e = (res.records["finish_s"] - res.records["arrival_s"]).mean()
    # each client cycles e2e + think: rate = clients / (e2e + think), within the edge effects
    expected = 8 / (e2e + 2.0)
    assert s["closed_loop"]["request_rate_rps"] == pytest.approx(expected, rel=0.1)
    assert s["closed_loop"]["mean_concurrency"] < 8 * e2e / (e2e + 2.0) * 1.15


def test_more_clients_more_throughput_until_saturation_and_higher_latency() -> None:
    few, many = run(closed(4)).summary(), run(closed(64)).summary()
    assert many["throughput_tokens_per_s"] > few["throughput_tokens_per_s"]
    assert many["ttft_s"]["p50"] > few["ttft_s"]["p50"]


def test_num_requests_issues_exactly_that_many() -> None:
    wl = {"clients": {"count": 5, "input": 256, "output": 32, "num_requests": 23}}
    res = run(wl)
    assert len(res.records) == 23
    assert (res.records["status"] == "completed").all()
    assert res.records["arrival_s"].is_monotonic_increasing


def test_same_seed_same_run_and_lengths_from_distributions() -> None:
    wl = closed(6, input={"dist": "uniform", "min": 100, "max": 900},
                output={"dist": "lognormal", "mean": 64, "sigma": 0.5, "min": 1, "max": 256},
                think_time_s=0.5, think="exponential")
    a, b = run(wl).records, run(wl).records
    assert a.equals(b)
    assert a["input_tokens"].nunique() > 10
    assert a["input_tokens"].between(100, 900).all()


def test_fast_forward_unchanged_for_closed_loop() -> None:
    """Decode fast-forward is exact for open loop; closed-loop arrivals come at step boundaries
    or through the same poke path, so both modes give the same run."""
    wl = closed(12, think_time_s=0.3, duration_s=20)
    on = run(wl).records
    off = run(wl, fast_forward=False).records
    assert len(on) == len(off)
    np.testing.assert_allclose(on["finish_s"], off["finish_s"], rtol=1e-9)


def test_drops_free_the_client() -> None:
    # prompts longer than max_model_len are refused; the client goes on with the next one
    wl = closed(2, input={"dist": "uniform", "min": 100, "max": 3000}, duration_s=30)
    res = run(wl, max_model_len=2048)
    st = res.records["status"]
    assert (st == "dropped").any() and (st == "completed").any()
    assert len(res.records) > 4


@pytest.mark.parametrize(("workload", "key"), [
    ({"clients": 0, "input": 1, "output": 1, "duration_s": 1}, "workload.clients.count"),
    ({"clients": -3, "input": 1, "output": 1, "duration_s": 1}, "workload.clients.count"),
    ({"clients": 4, "think_time_s": -1, "input": 1, "output": 1, "duration_s": 1},
     "workload.clients.think_time_s"),
    ({"clients": 4, "input": 1, "output": 1}, "workload.clients"),
    ({"clients": 4, "output": 1, "duration_s": 1}, "workload.clients.input"),
    ({"clients": 4, "input": 1, "output": 1, "duration_s": 1, "rate_scale": 2},
     "workload.rate_scale"),
    ({"clients": {"count": 4, "bogus": 1}, "input": 1}, "workload.clients.bogus"),
    ({"trace": "azure-conv-2023-sample", "think_time_s": 1}, "workload.think_time_s"),
    ({"clients": 4, "think": "gamma", "input": 1, "output": 1, "duration_s": 1},
     "workload.clients.think"),
])
def test_bad_clients_input(workload: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        scenario(workload)
    assert info.value.key == key


def test_sweep_shows_the_knee_and_overload() -> None:
    sc = scenario({"synthetic": {"num_requests": 10, "arrival": {"process": "poisson",
                                                                  "rate": 1.0},
                                 "input": 1024, "output": 128}})
    probes = sweep_loads(sc, [2, 60], probe_s=120)
    low, high = probes
    assert low.passed and not low.overloaded
    assert high.overloaded and not high.passed
    assert high.ttft_last_third_s > low.ttft_last_third_s


def test_find_capacity_brackets_the_slo() -> None:
    sc = scenario({"synthetic": {"duration_s": 10, "arrival": {"process": "poisson",
                                                                "rate": 1.0},
                                 "input": 1024, "output": 128}})
    cap = find_capacity(sc, probe_s=120, rel_tol=0.1)
    assert cap.best.passed
    assert cap.first_failing is not None and cap.first_failing > cap.capacity
    assert cap.first_failing <= cap.capacity * 1.1 + 1e-9
    failing = [p for p in cap.probes if p.load == cap.first_failing]
    assert failing and not failing[0].passed
    # every passing probe is at or below the capacity found
    assert all(p.load <= cap.capacity for p in cap.probes if p.passed)


def test_find_capacity_clients_integer() -> None:
    sc = scenario(closed(4, duration_s=30))
    cap = find_capacity(sc, probe_s=60)
    assert cap.load_kind == "clients" and cap.capacity == int(cap.capacity)
    assert cap.first_failing == cap.capacity + 1


def test_probe_duration_is_what_was_asked() -> None:
    sc = scenario({"trace": "azure-conv-2023-sample"})
    p = run_probe(sc, 1.0, probe_s=900)
    assert p.requests > 2000  # the 2,000-request sample tiled to cover 900 s


def test_capacity_needs_an_slo_and_a_feasible_load() -> None:
    sc = load_serving_scenario({"model": "llama3-8b", "cluster": {"device": "h100-sxm"},
                                "serving": {"tp": 1}, "workload": closed(4)})
    with pytest.raises(ConfigError) as info:
        find_capacity(sc, probe_s=30)
    assert info.value.key == "slo"
    tight = load_serving_scenario({"model": "llama3-8b", "cluster": {"device": "h100-sxm"},
                                   "serving": {"tp": 1}, "workload": closed(4),
                                   "slo": {"ttft_s": 1e-6}})
    with pytest.raises(InfeasibleError):
        find_capacity(tight, probe_s=30)


def test_clients_spec_is_what_load_workload_returns() -> None:
    spec = load_workload(scenario(closed(3, think_time_s="2s")))
    assert isinstance(spec, ClientsSpec)
    assert spec.count == 3 and spec.think_time_s == 2.0
