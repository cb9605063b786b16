"""Regression tests for the serving defects of issue 13 (each failed on the code before its fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetsim.cli.common import load_scenario_file
from simulator.serving import (
    apply_overrides,
    load_serving_scenario,
    load_workload,
    simulate_serving,
)

SCEN = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
DISAGG = SCEN / "llama3-70b-h100-disagg-mooncake.yaml"


def _plan(path: Path, sets: list[str]):  # type: ignore[no-untyped-def]
    raw = apply_overrides(load_scenario_file(str(path)), sets)
    return load_serving_scenario(raw, file=str(path))


def _run(path: Path, sets: list[str], seed: int | None = None):  # type: ignore[no-untyped-def]
    sc = _plan(path, sets)
    return simulate_serving(sc, load_workload(sc, seed=seed), seed=seed)


def test_disagg_tp2_every_request_ends() -> None:
    """Defect 1: a prompt whose private blocks fit but whose private + reused prefix blocks do
    not was never dropped: it waited at the head of a prefill lane forever (44 'running')."""
    r = _run(DISAGG, ["serving.tp=2"])
    status = r.records["status"].value_counts().to_dict()
    assert status.get("running", 0) == 0
    assert status.get("completed", 0) + status.get("dropped", 0) == len(r.records)
    dropped = r.records[r.records["status"] == "dropped"]
    assert (dropped["drop_reason"] != "").all()


def test_static_scheduler_with_disaggregation_is_config_error() -> None:
    """Defect 3: static batching on prefill/decode pools raised KeyError inside SimPy."""
    from hwmodels.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        _plan(DISAGG, ["serving.scheduler=static"])
    assert info.value.key == "serving.scheduler"
    assert "vllm" in str(info.value)


def _synthetic(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("model: llama3-8b\ncluster: {device: h100-sxm}\n"
                    "serving: {replicas: 1, tp: 1, max_model_len: 4096}\n" + body)
    return path


def test_output_beyond_max_model_len_is_dropped_not_shortened(tmp_path: Path) -> None:
    """Defect 4: 100M output tokens became max_model_len - prompt (3,996) and counted as a
    normal completion. Like vLLM, a request whose prompt + output exceeds max_model_len is
    refused (dropped with its reason); one that fits completes with its full output."""
    path = _synthetic(tmp_path, "workload:\n  synthetic:\n    num_requests: 2\n"
                      "    arrival: {process: poisson, rate: 1.0}\n"
                      "    input: {dist: fixed, value: 100}\n"
                      "    output: {dist: fixed, value: 100000000}\n")
    r = _run(path, [])
    rec = r.records
    assert (rec["status"] == "dropped").all()
    assert set(rec["drop_reason"]) == {"prompt_plus_output_exceeds_max_model_len"}
    s = r.summary()
    assert s["completed"] == 0 and s["dropped"] == 2
    ok = _run(path, ["workload.synthetic.output.value=3996"])
    assert (ok.records["status"] == "completed").all()
    assert (ok.records["output_tokens"] == 3996).all()


def test_epoch_trace_bills_the_workload_span(tmp_path: Path) -> None:
    """Defect 5: Unix-epoch arrival times (1.7e9 s) billed 3.78M GPU-hours for a 20 s
    workload because the clock started at 0. read_trace rebases to the first arrival and the
    summary says by how much."""
    t0 = 1_700_000_000.0
    rows = [f"{t0 + 0.5 * i},{200 + i},{20}" for i in range(40)]
    trace = tmp_path / "epoch.csv"
    trace.write_text("arrival_time_s,input_tokens,output_tokens\n" + "\n".join(rows) + "\n")
    path = tmp_path / "s.yaml"
    path.write_text("model: llama3-8b\ncluster: {device: h100-sxm}\nserving: {replicas: 1}\n"
                    f"workload: {{trace: {trace}}}\n")
    r = _run(path, [])
    s = r.summary()
    assert s["completed"] == 40
    assert s["trace_start_offset_s"] == pytest.approx(t0)
    assert r.duration_s < 60.0
    assert s["gpu_hours"] < 60.0 / 3600
    assert r.records["arrival_s"].iloc[0] == 0.0


@pytest.mark.parametrize("value", [-5, float("inf"), False, True, 2.5])
def test_num_devices_is_validated_with_groups(value: object) -> None:
    """Defect 6: cluster.num_devices was neither validated nor used when replica groups or
    disaggregation size the cluster (-5, inf, false accepted)."""
    from hwmodels.errors import ConfigError

    raw = apply_overrides(load_scenario_file(str(DISAGG)), [])
    raw["cluster"]["num_devices"] = value
    with pytest.raises(ConfigError) as info:
        load_serving_scenario(raw, file=str(DISAGG))
    assert info.value.key == "cluster.num_devices"


def test_num_devices_must_hold_the_groups() -> None:
    """Defect 6: with groups, num_devices is checked against the devices they need (64 here:
    16 replicas x TP4); fewer is an error naming both, enough is accepted."""
    from hwmodels.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        _plan(DISAGG, ["cluster.num_devices=3"])
    assert info.value.key == "cluster.num_devices"
    assert "serving.disaggregation" in str(info.value) and "64" in str(info.value)
    assert len(_plan(DISAGG, ["cluster.num_devices=64"]).replica_groups()) == 2


BURSTY4 = {"name": "bursty4", "model": "llama3-8b",
           "cluster": {"device": "h100-sxm", "devices_per_node": 8},
           "serving": {"replicas": 4, "tp": 1},
           "workload": {"synthetic": {
               "num_requests": 1500,
               "arrival": {"process": "mmpp", "rate_on": 80, "rate_off": 2, "mean_on_s": 20,
                           "mean_off_s": 30},
               "input": {"dist": "trace", "path": "azure-conv-2023-sample"},
               "output": {"dist": "trace", "path": "azure-conv-2023-sample"}}}}


@pytest.mark.parametrize(("router", "migration", "seed"),
                         [("llumnix", None, 2), ("llumnix", None, 3),
                          ("round_robin", {"interval_s": 1}, 0),
                          ("round_robin", {"interval_s": 1}, 2)])
def test_bursty_migration_never_interrupts_an_unprotected_wait(
        router: str, migration: dict | None, seed: int) -> None:
    """Defect 2: on a 4-replica bursty load, live migration (Llumnix, or a migration section)
    interrupted a lane a second time while it slept out the rest of a cut decode run, and the
    run died with simpy.exceptions.Interrupt. These exact cases crashed at 42e6eab; the one
    wake path (Lane._poke clears the cut flags before its single interrupt) fixed it; every
    request must now end."""
    import copy

    raw = copy.deepcopy(BURSTY4)
    raw["seed"] = seed
    raw["serving"]["router"] = router
    if migration is not None:
        raw["serving"]["migration"] = migration
    sc = load_serving_scenario(raw)
    r = simulate_serving(sc, load_workload(sc))
    assert set(r.records["status"]) <= {"completed", "dropped"}
    s = r.summary()
    assert s["requests"] == 1500
    assert s["migrations"] > 0  # the path that crashed ran
