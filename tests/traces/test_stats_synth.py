"""Trace statistics against published numbers, replay transforms, synthetic generators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwmodels.errors import ConfigError
from traces.readers import read_trace
from traces.stats import index_of_dispersion, scale_trace, trace_stats, window_trace
from traces.synth import synthesize

# shared/ lies beside the checkout (CI clones main with shared/ next to it).
SHARED = Path(__file__).resolve().parents[3] / "shared" / "traces"
AZURE_FULL = SHARED / "azure_llm_2023_conv.csv"
MOONCAKE_FULL = SHARED / "mooncake_conversation.jsonl"


@pytest.mark.skipif(not AZURE_FULL.exists(), reason="requires ../shared: traces/azure_llm_2023_conv.csv is missing")
def test_azure_conv_matches_published_stats() -> None:
    s = trace_stats(read_trace(AZURE_FULL))
    # ../shared/README-data.md: 5.5 req/s, input 1155/1020/4142, output 211/129/601, CV 1.09
    assert s["requests"] == 19366
    assert s["rate_rps"] == pytest.approx(5.5, rel=0.02)
    assert s["input_tokens"]["mean"] == pytest.approx(1155, rel=0.005)
    assert s["input_tokens"]["p50"] == pytest.approx(1020, rel=0.005)
    assert s["input_tokens"]["p99"] == pytest.approx(4142, rel=0.005)
    assert s["output_tokens"]["mean"] == pytest.approx(211, rel=0.005)
    assert s["output_tokens"]["p50"] == pytest.approx(129, rel=0.005)
    assert s["output_tokens"]["p99"] == pytest.approx(601, rel=0.005)
    assert s["interarrival_cv"] == pytest.approx(1.09, abs=0.01)


@pytest.mark.skipif(not MOONCAKE_FULL.exists(), reason="requires ../shared: traces/mooncake_conversation.jsonl is missing")
def test_mooncake_prefix_reuse_matches_published() -> None:
    s = trace_stats(read_trace(MOONCAKE_FULL))
    assert s["prefix_reuse"] == pytest.approx(0.366, abs=0.002)  # published 36.6%
    assert s["input_tokens"]["mean"] == pytest.approx(12035, rel=0.005)
    assert s["output_tokens"]["mean"] == pytest.approx(343, rel=0.005)


def test_sample_stats_close_to_full_trace_figures() -> None:
    s = trace_stats(read_trace("azure-conv-2023-sample"))
    assert s["input_tokens"]["p50"] == pytest.approx(1020, rel=0.05)
    assert 0.9 < s["interarrival_cv"] < 1.3
    assert s["index_of_dispersion"]["60s"] > s["index_of_dispersion"]["1s"] > 1.0


def test_index_of_dispersion_of_regular_arrivals_is_zero() -> None:
    assert index_of_dispersion(np.arange(0, 100, 0.25), 1.0) == pytest.approx(0.0, abs=1e-12)


def test_scale_and_window() -> None:
    df = read_trace("azure-conv-2023-sample")
    fast = scale_trace(df, 4.0)
    assert trace_stats(fast)["rate_rps"] == pytest.approx(4 * trace_stats(df)["rate_rps"])
    win = window_trace(df, 60.0, 120.0)
    rel = df["arrival_time_s"]
    assert len(win) == int(((rel >= 60) & (rel < 120)).sum())
    assert win["arrival_time_s"].min() >= 0 and win["arrival_time_s"].max() < 60
    with pytest.raises(ConfigError):
        scale_trace(df, 0)
    with pytest.raises(ConfigError):
        window_trace(df, 10, 5)


LENGTHS = {"input": {"dist": "lognormal", "mean": 1000, "sigma": 1.0},
           "output": {"dist": "uniform", "min": 10, "max": 30}}


@pytest.mark.parametrize("arrival, cv_range", [
    ({"process": "poisson", "rate": 10.0}, (0.95, 1.05)),
    ({"process": "gamma", "rate": 10.0, "cv": 3.0}, (2.7, 3.3)),
    ({"process": "mmpp", "rate_on": 40, "rate_off": 1, "mean_on_s": 5, "mean_off_s": 15},
     (1.5, 6.0)),
])
def test_synthetic_arrivals(arrival: dict, cv_range: tuple[float, float]) -> None:
    df = synthesize({"num_requests": 20000, "arrival": arrival, **LENGTHS}, seed=3)
    s = trace_stats(df)
    assert len(df) == 20000
    assert cv_range[0] < s["interarrival_cv"] < cv_range[1]
    if arrival["process"] != "mmpp":
        assert s["rate_rps"] == pytest.approx(10.0, rel=0.05)
    assert s["input_tokens"]["mean"] == pytest.approx(1000, rel=0.05)
    assert 10 <= s["output_tokens"]["p50"] <= 30


def test_synthetic_diurnal_duration_and_determinism() -> None:
    spec = {"duration_s": 600, "arrival": {"process": "diurnal", "rate": 5, "amplitude": 0.8,
                                           "period_s": 600},
            "input": {"dist": "zipf", "a": 1.5, "min": 16, "max": 4096},
            "output": {"dist": "trace", "path": "azure-conv-2023-sample"},
            "prefix": {"num_prompts": 3, "tokens": 256}}
    a, b = synthesize(spec, seed=7), synthesize(spec, seed=7)
    assert a.equals(b)
    assert not a.equals(synthesize(spec, seed=8))
    assert a["arrival_time_s"].max() < 600
    assert len(a) == pytest.approx(3000, rel=0.1)
    first_half = (a["arrival_time_s"] < 300).sum()  # sin > 0 in the first half period
    assert first_half > 1.5 * (len(a) - first_half)
    assert trace_stats(a)["prefix_reuse"] > 0.99
    assert (a["input_tokens"] >= 256 + 16).all()


def test_synthetic_bad_spec() -> None:
    with pytest.raises(ConfigError, match="workload.synthetic.arrival.process"):
        synthesize({"num_requests": 5, "arrival": {"process": "hawkes"}, **LENGTHS})
    with pytest.raises(ConfigError, match="exactly one of"):
        synthesize({"arrival": {"process": "poisson", "rate": 1}, **LENGTHS})
    with pytest.raises(ConfigError, match="rate"):
        synthesize({"num_requests": 5, "arrival": {"process": "poisson", "rate": -1}, **LENGTHS})
