"""Serving step model vs published TensorRT-LLM throughput and first-token latency, and
end-to-end engine runs.

The TRT-LLM tolerances below were set for the kernel-only step model and are asserted on its
column (`error_kernel_only_pct`, unchanged numbers); the rows' `trtllm` preset (engine seam,
issue 16) describes the 2024 C++ executor, not the v0.5/v0.6.1 gptSessionBenchmark that
measured them, and is bounded separately. Tolerances (stated, fail past them): first-token latency MAPE <= 20% per device table;
throughput of the MHA models (GPT-J 6B, Llama-2-7B) MAPE <= 10%, every row within 15%;
all 49 TRT-LLM rows MAPE <= 25%. The GQA long-output rows are known to be over-predicted (see
simulator/serving/validation.py) and are bounded, not excused: each within +100%.

End-to-end rows (SGL-BENCH060, 20 rows added with issue 16: SGLang v0.3.0 / vLLM v0.6.0 runs,
simulated whole): offline throughput and online median TPOT each within 40% per row; the
per-engine table reports preset and kernel-only MAPE for every engine named by a row.
With the presets: TRT-LLM rows MAPE <= 25%, end-to-end throughput/TPOT rows within 60% (the
sglang preset's max_num_seqs 1024 over-predicts Llama-3.1-70B offline throughput by ~54%).

Fixed-concurrency rows (NIM-LLAMA33-CONC, 12 rows added with issue 16: NIM 1.8.0,
Llama-3.3-70B fp8 TP2 on 2 x H100, 5000/500 tokens, concurrency 1/5/25/50, closed-loop
clients): with the trtllm preset ITL and throughput rows within 30%, TTFT rows up to
concurrency 25 within 35%; concurrency 50's TTFT is a known miss (> 3x: 50 x 5500-token
contexts overflow the bf16 KV cache we assume, so requests queue; the table does not state
the KV dtype) and is asserted as such so a change in KV capacity shows up here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from simulator.serving import validation
from simulator.serving.validation import validate_serving


@pytest.fixture(scope="module")
def result() -> tuple[pd.DataFrame, dict[str, dict]]:
    out = validate_serving()
    return pd.DataFrame(out["rows"]), {r["table"]: r for r in out["summary"]}


def test_first_token_latency_within_20pct(result) -> None:
    df, _ = result
    for table in ("TRTLLM-TTFT-H100", "TRTLLM-TTFT-A100", "TRTLLM-TTFT-L40S"):
        part = df[df.source == table]
        assert part.error_kernel_only_pct.abs().mean() <= 20.0, table


def test_mha_model_throughput_within_10pct(result) -> None:
    df, _ = result
    mha = df[(df.metric == "out_tokens_per_s_per_gpu") & df.model.isin(["gpt-j-6b", "llama2-7b"])]
    assert len(mha) == 16
    assert mha.error_kernel_only_pct.abs().mean() <= 10.0
    assert mha.error_kernel_only_pct.abs().max() <= 15.0


def test_all_rows_mape_and_known_gqa_bound(result) -> None:
    df, summary = result
    # 81 rows in serving_published.csv; per-accelerator plug-in files (issue 18) add theirs
    data = Path(validation.__file__).parents[1] / "data"
    plugin_rows = sum(len(validation._read_rows(f))
                      for f in data.glob("serving_published_*.csv"))
    assert summary["ALL"]["rows"] == 81 + plugin_rows
    trt = df[df.source.str.startswith("TRTLLM")]
    assert len(trt) == 49
    err = trt.error_kernel_only_pct
    assert err.abs().mean() <= 25.0
    assert err.max() <= 100.0 and err.min() >= -40.0
    assert trt.error_pct.abs().mean() <= 25.0  # with the trtllm preset


def test_end_to_end_rows_within_bounds(result) -> None:
    df, summary = result
    e2e = df[df.source == "SGL-BENCH060"]
    assert len(e2e) == 20 and summary["SGL-BENCH060"]["rows"] == 20
    thr = e2e[e2e.metric.isin(["out_tokens_per_s", "median_tpot_ms"])]
    assert len(thr) == 12
    assert (thr.error_kernel_only_pct.abs() <= 40.0).all(), \
        thr[["model", "engine", "config", "error_kernel_only_pct"]]
    assert (thr.error_pct.abs() <= 60.0).all(), thr[["model", "engine", "config", "error_pct"]]


def test_engine_table_has_preset_and_kernel_only() -> None:
    out = validate_serving(devices=["a100-80gb"])
    engines = {e["engine"]: e for e in out["engines"]}
    assert {"trtllm", "sglang", "vllm-0.6", "ALL"} <= set(engines)
    for name in ("sglang", "vllm-0.6"):
        e = engines[name]
        assert e["rows"] == 5 and e["tables"] == ["SGL-BENCH060"]
        assert e["mape_preset_pct"] >= 0.0 and e["mape_kernel_only_pct"] >= 0.0
        # the preset is applied (engine seam merged): it changes the predictions
        assert e["mape_preset_pct"] != e["mape_kernel_only_pct"]
    assert engines["ALL"]["rows"] == sum(e["rows"] for n, e in engines.items() if n != "ALL")


def test_long_context_prefill_tracks_published(result) -> None:
    df, _ = result
    long = df[(df.metric == "ttft_ms") & df.config.str.contains("2048/1")
              & df.device.isin(["h100-sxm", "a100-80gb"])]
    assert (long.error_kernel_only_pct.abs() <= 25.0).all(), \
        long[["model", "config", "error_kernel_only_pct"]]


def test_fixed_concurrency_rows(result) -> None:
    df, summary = result
    conc = df[df.source == "NIM-LLAMA33-CONC"].copy()
    assert len(conc) == 12 and summary["NIM-LLAMA33-CONC"]["rows"] == 12
    conc["clients"] = conc.config.str.extract(r"c(\d+) ")[0].astype(int)
    assert sorted(set(conc.clients)) == [1, 5, 25, 50]
    steady = conc[conc.metric != "ttft_ms_at_conc"]
    assert (steady.error_pct.abs() <= 30.0).all(), steady[["config", "metric", "error_pct"]]
    ttft = conc[conc.metric == "ttft_ms_at_conc"].set_index("clients")
    assert (ttft.loc[[1, 5, 25]].error_pct.abs() <= 35.0).all()
    assert ttft.loc[50].error_pct > 200.0  # known: KV-cache queueing (module docstring)
    # the trtllm preset's engine costs help here: kernel-only's prefill-limited TTFT misses
    assert conc.error_pct.abs().mean() < conc.error_kernel_only_pct.abs().mean()


def test_fixed_concurrency_metrics_are_consistent(result) -> None:
    """Means are linear: e2e = TTFT + (output - 1) x ITL per request, so the predicted
    throughput (Little's law) must equal clients x output / (TTFT + 499 x ITL)."""
    df, _ = result
    conc = df[df.source == "NIM-LLAMA33-CONC"]
    for config, part in conc.groupby("config"):
        p = part.set_index("metric").predicted
        clients = int(config.split(" c")[1].split()[0])
        e2e_s = (p["ttft_ms_at_conc"] + 499 * p["itl_ms_at_conc"]) / 1e3
        assert p["out_tokens_per_s_at_conc"] == pytest.approx(clients * 500 / e2e_s, rel=1e-9)
