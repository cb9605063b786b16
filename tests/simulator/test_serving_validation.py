"""Serving step model vs published TensorRT-LLM throughput and first-token latency.

Tolerances (stated, fail past them): first-token latency MAPE <= 20% per device table;
throughput of the MHA models (GPT-J 6B, Llama-2-7B) MAPE <= 10%, every row within 15%;
all 49 rows MAPE <= 25%. The GQA long-output rows are known to be over-predicted (see
simulator/serving/validation.py) and are bounded, not excused: each within +100%.
"""

from __future__ import annotations

import pandas as pd
import pytest

from simulator.serving.validation import validate_serving


@pytest.fixture(scope="module")
def result() -> tuple[pd.DataFrame, dict[str, dict]]:
    out = validate_serving()
    return pd.DataFrame(out["rows"]), {r["table"]: r for r in out["summary"]}


def test_first_token_latency_within_20pct(result) -> None:
    _, summary = result
    for table in ("TRTLLM-TTFT-H100", "TRTLLM-TTFT-A100", "TRTLLM-TTFT-L40S"):
        assert summary[table]["mape_pct"] <= 20.0, (table, summary[table])


def test_mha_model_throughput_within_10pct(result) -> None:
    df, _ = result
    mha = df[(df.metric == "out_tokens_per_s_per_gpu") & df.model.isin(["gpt-j-6b", "llama2-7b"])]
    assert len(mha) == 16
    assert mha.error_pct.abs().mean() <= 10.0
    assert mha.error_pct.abs().max() <= 15.0


def test_all_rows_mape_and_known_gqa_bound(result) -> None:
    df, summary = result
    assert summary["ALL"]["rows"] == 49
    assert summary["ALL"]["mape_pct"] <= 25.0
    assert df.error_pct.max() <= 100.0 and df.error_pct.min() >= -40.0


def test_long_context_prefill_tracks_published(result) -> None:
    df, _ = result
    long = df[(df.metric == "ttft_ms") & df.config.str.contains("2048/1")
              & df.device.isin(["h100-sxm", "a100-80gb"])]
    assert (long.error_pct.abs() <= 25.0).all(), long[["model", "config", "error_pct"]]
