"""Cluster-scale serving: the published directions of issue 7 as tests (DistServe goodput,
least-loaded vs round-robin tail, Splitwise power capping, crash conservation) and the
A100 power distribution against AcmeTrace's production CDFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.serving import load_serving_scenario, simulate_serving
from traces.readers import read_trace

ACME = Path(__file__).resolve().parents[3] / "shared" / "validation" / "power"


def frame(arrivals: np.ndarray, prompt: np.ndarray | int, output: np.ndarray | int
          ) -> pd.DataFrame:
    n = len(arrivals)
    return pd.DataFrame({"arrival_time_s": arrivals,
                         "input_tokens": np.broadcast_to(prompt, n).copy(),
                         "output_tokens": np.broadcast_to(output, n).copy()})


def poisson(n: int, rate: float, seed: int) -> np.ndarray:
    t = np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate, n))
    return t - t[0]


def test_disaggregation_raises_goodput_on_prefill_heavy_load() -> None:
    # DistServe (Zhong et al., OSDI'24, Fig. 1/8 direction): under tight TTFT + TPOT SLOs a
    # prefill-heavy workload gets more SLO-meeting requests per second from separate prefill
    # and decode pools than from co-located replicas of the same GPU count, because prompts
    # no longer stall running decodes.
    rng = np.random.default_rng(3)
    n = 1200
    df = frame(poisson(n, 13.0, 3), rng.integers(1500, 3000, n), rng.integers(64, 256, n))
    base = {"model": "llama3-8b",
            "cluster": {"device": "a100-80gb", "intra_node": "nvlink3", "inter_node": "ib-hdr"},
            "serving": {"tp": 1, "router": "least_loaded"},
            "slo": {"ttft_s": 0.6, "tpot_s": 0.025}, "workload": {"synthetic": {}}}
    coloc = simulate_serving(load_serving_scenario(
        {**base, "serving": {**base["serving"], "replicas": 4}}), df).summary()
    disagg = simulate_serving(load_serving_scenario(
        {**base, "serving": {**base["serving"], "disaggregation": {
            "prefill_replicas": 3, "decode_replicas": 1}}}), df).summary()
    assert disagg["gpu_hours"] == pytest.approx(coloc["gpu_hours"], rel=0.02)  # same GPUs
    assert disagg["completed"] == coloc["completed"] == n
    assert disagg["goodput_rps"] > 1.2 * coloc["goodput_rps"], (disagg, coloc)
    assert disagg["kv_transfer_s"]["p50"] > 0  # the KV really moved over the link


def test_least_loaded_beats_round_robin_p99_under_bursts() -> None:
    # Bursty (MMPP) arrivals, high-variance service (10% of requests generate 1500 tokens,
    # the rest 30) and few batch slots per replica: round-robin keeps feeding replicas whose
    # slots are held by long requests; least outstanding requests routes around them (the
    # tail argument behind Envoy's LEAST_REQUEST and vLLM production-stack's router).
    from traces.synth import synthesize

    spec = {"num_requests": 1500,
            "arrival": {"process": "mmpp", "rate_on": 16.0, "rate_off": 2.0,
                        "mean_on_s": 10.0, "mean_off_s": 10.0},
            "input": {"dist": "trace", "path": "azure-conv-2023-sample"},
            "output": {"dist": "trace", "path": "azure-conv-2023-sample"}}
    df = synthesize(spec, seed=4)
    rng = np.random.default_rng(1)
    df["output_tokens"] = np.where(rng.random(len(df)) < 0.1, 1500, 30)
    df["input_tokens"] = np.minimum(df["input_tokens"], 2000)
    p99 = {}
    for router in ("round_robin", "least_loaded", "power_of_two"):
        m = {"model": "llama3-8b", "cluster": {"device": "a100-80gb"},
             "serving": {"replicas": 4, "router": router, "max_num_seqs": 8},
             "workload": {"synthetic": {}}}
        s = simulate_serving(load_serving_scenario(m), df).summary()
        p99[router] = s["e2e_s"]["p99"]
    assert p99["least_loaded"] < 0.9 * p99["round_robin"], p99  # measured 31.3 vs 40.2 s
    assert p99["power_of_two"] < 0.9 * p99["round_robin"], p99  # measured 30.9 s


def test_power_cap_slows_prefill_not_decode() -> None:
    # Splitwise (Patel et al., ISCA'24, Sec. III-D, DGX-H100): capping to 70% of TDP slows
    # the prompt phase markedly (~1.2-1.3x) and the token phase barely (< 1.1x).
    base = {"model": "llama2-70b", "cluster": {"device": "h100-sxm", "intra_node": "nvlink4"},
            "serving": {"tp": 8}, "workload": {"synthetic": {}}}
    prompts = frame(np.arange(20.0), 2048, 1)  # one prompt at a time: TTFT = prefill
    decodes = frame(np.arange(8) * 20.0, 128, 400)  # one decode stream at a time
    out = {}
    for cap in (None, 0.7):
        power = {"bin_s": 1.0, **({"cap_fraction": cap, "cap_targets": "all"} if cap else {})}
        sc = load_serving_scenario({**base, "power": power})
        a = simulate_serving(sc, prompts).records
        b = simulate_serving(sc, decodes).records
        out[cap] = ((a.first_token_s - a.arrival_s).mean(),
                    ((b.finish_s - b.first_token_s) / (b.output_tokens - 1)).mean())
    prefill = out[0.7][0] / out[None][0]
    decode = out[0.7][1] / out[None][1]
    assert 1.15 <= prefill <= 1.35, prefill  # measured 1.236
    assert decode < 1.1, decode  # measured 1.000


def test_crash_with_retries_loses_no_request_silently() -> None:
    df = frame(poisson(600, 8.0, 7), 800, 200)
    # catalog defaults: the load is sized so crashes exhaust retries at those step times
    m = {"model": "llama3-8b", "cluster": {"device": "a100-80gb", "profile": "defaults"},
         "serving": {"replicas": 4, "router": "least_loaded"}, "workload": {"synthetic": {}},
         "failures": {"mtbf_s": 20, "repair_s": 5, "retry_budget": 1}, "seed": 2}
    result = simulate_serving(load_serving_scenario(m), df)
    rec, s = result.records, result.summary()
    assert len(rec) == 600 and set(rec.status) <= {"completed", "dropped"}
    assert s["completed"] + s["dropped"] == s["requests"]
    assert sum(s["dropped_by_reason"].values()) == s["dropped"]
    assert ((rec.status == "dropped") == (rec.drop_reason != "")).all()
    assert (result.events.kind == "crash").sum() >= 3  # the test exercises failures
    assert s["retries"] > 0
    assert s["dropped_by_reason"].get("replica_failure_retries_exhausted", 0) > 0
    done = rec[rec.status == "completed"]
    assert (done.output_tokens == 200).all()


def test_busy_a100_power_distribution_vs_acmetrace() -> None:
    # AcmeTrace (Hu et al., NSDI'24) A100 GPU power CDFs of production LLM clusters. Their
    # fleets idle much of the time (median ~100 W), so we compare a busy serving replica with
    # the active part of the CDFs (> 100 W): median 309-368 W, p90 409-413 W.
    active = []
    for name in ("kalos", "seren"):
        path = ACME / f"acme_gpu_power_{name}_cdf.csv"
        if not path.exists():
            pytest.skip(f"requires ../shared: validation/power/{path.name} is missing")
        cdf = pd.read_csv(path)
        c0 = float(np.interp(100.0, cdf.power_w, cdf.cdf_percent))
        active.append([float(np.interp(c0 + (100 - c0) * q, cdf.cdf_percent, cdf.power_w))
                       for q in (0.5, 0.9)])
    ref_median, ref_p90 = np.mean(active, axis=0)
    m = {"model": "llama2-13b", "cluster": {"device": "a100-80gb"}, "serving": {"tp": 1},
         "workload": {"synthetic": {}}, "power": {"bin_s": 1.0}}
    result = simulate_serving(load_serving_scenario(m), read_trace("azure-conv-2023-sample"))
    per_device = result.power.power_w / result.power.devices
    median, p90 = np.percentile(per_device, [50, 90])
    # the Azure sample's requests with prompt + output > 4096 are refused (as vLLM does, issue
    # 13) instead of completing short, so the replica is a little less busy than before
    assert abs(median / ref_median - 1) < 0.25, (median, ref_median)  # measured 281 vs 338 W
    assert abs(p90 / ref_p90 - 1) < 0.25, (p90, ref_p90)  # measured 323 vs 411 W (345 before)
    assert per_device.max() <= 400.0 + 1e-9  # never above the A100's TDP
