"""Trace time that cannot go wrong: Unix-epoch arrivals are rebased to start at 0 on every
path (readers, trace_stats, simulate_serving given a raw frame), so a 20 s workload bills 20 s."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from simulator.serving import load_serving_scenario, simulate_serving
from traces.readers import read_trace
from traces.stats import rebase_arrivals, trace_stats

EPOCH_S = 1.7e9  # 2023-11-14, the scale of the published Azure / BurstGPT stamps
N, GAP_S = 41, 0.5  # 41 requests over 20 s


def epoch_frame() -> pd.DataFrame:
    return pd.DataFrame({"arrival_time_s": [EPOCH_S + i * GAP_S for i in range(N)],
                         "input_tokens": [512] * N, "output_tokens": [64] * N})


def plan():  # type: ignore[no-untyped-def]
    return load_serving_scenario({
        "model": "llama3-8b", "cluster": {"device": "h100-sxm", "num_devices": 8},
        "serving": {"tp": 1, "replicas": 8}, "workload": {"trace": "x.csv"}})


def test_rebase_arrivals_starts_at_zero_and_keeps_the_offset() -> None:
    df = rebase_arrivals(epoch_frame())
    assert df["arrival_time_s"].iloc[0] == 0.0
    assert df["arrival_time_s"].iloc[-1] == pytest.approx(20.0)
    assert df.attrs["trace_start_offset_s"] == EPOCH_S
    assert trace_stats(epoch_frame())["duration_s"] == pytest.approx(20.0)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_epoch_trace_file_bills_twenty_seconds(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"epoch{suffix}"
    df = epoch_frame()
    if suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)
    frame = read_trace(path)
    assert frame["arrival_time_s"].iloc[-1] == pytest.approx(20.0)
    s = simulate_serving(plan(), frame).summary()
    _assert_twenty_seconds(s)


def test_raw_epoch_frame_given_to_simulate_serving_bills_twenty_seconds() -> None:
    """A DataFrame a user built (pd.read_csv of epoch stamps) used to bill ~54 years:
    3.78M GPU-hours for 8 GPUs, and a power frame of 1.7e8 bins."""
    s = simulate_serving(plan(), epoch_frame()).summary()
    _assert_twenty_seconds(s)
    assert s["trace_start_offset_s"] == EPOCH_S
    same = simulate_serving(plan(), rebase_arrivals(epoch_frame())).summary()
    assert s["gpu_hours"] == same["gpu_hours"] and s["cost_usd"] == same["cost_usd"]
    assert s["energy_kwh"] == same["energy_kwh"]


def _assert_twenty_seconds(s: dict) -> None:  # type: ignore[type-arg]
    span_s = s["replica_seconds"] / 8  # 8 single-GPU replicas, billed for the run
    assert 20.0 <= span_s < 25.0  # the 20 s of arrivals plus the last requests' service
    assert s["gpu_hours"] == pytest.approx(8 * span_s / 3600.0)
    assert s["cost_usd"] < 1.0
    assert s["energy_kwh"] < 8 * 0.7 * span_s / 3600.0 + 1e-9  # under 700 W per H100
