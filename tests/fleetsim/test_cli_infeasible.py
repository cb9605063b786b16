"""CLI: an impossible plan or step is never a silent number (exit 3 unless --allow-infeasible)."""

from __future__ import annotations

import json

from hwmodels.catalog import load_device, load_model
from hwmodels.memory import serving_step_fit

STEP_405B_L4 = ("estimate", "step", "--model", "llama3.1-405b", "--device", "l4",
                "--decode-seqs", "1", "--context", "128")


def test_estimate_step_that_cannot_fit_exits_3(cli) -> None:
    code, out, err = cli(*STEP_405B_L4)
    assert code == 3, (out, err)
    assert "does not fit" in err and "--allow-infeasible" in err
    assert "ms" not in out  # no step time printed


def test_estimate_step_allow_infeasible_reports_it(cli) -> None:
    code, out, _ = cli(*STEP_405B_L4, "--allow-infeasible")
    assert code == 0
    assert "DOES NOT FIT" in out
    code, out, _ = cli(*STEP_405B_L4, "--allow-infeasible", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["fits_memory"] is False and data["time_s"] > 0
    assert data["memory_needed_gib"] > data["memory_capacity_gib"]


def test_estimate_step_kv_of_a_huge_batch_counts(cli) -> None:
    # 8B weights fit an H100, but 256 sequences of 8k context need ~256 GiB of KV
    code, _, err = cli("estimate", "step", "--model", "llama3-8b", "--device", "h100-sxm",
                       "--decode-seqs", "256", "--context", "8192")
    assert code == 3, err


def test_serving_step_fit_grows_with_kv_and_shrinks_with_tp() -> None:
    m, d = load_model("llama2-70b"), load_device("h100-sxm")
    small = serving_step_fit(m, d, tp=8, batch_tokens=8, batch_seqs=8, kv_tokens=8 * 1024)
    big = serving_step_fit(m, d, tp=8, batch_tokens=8, batch_seqs=8, kv_tokens=8 * 100_000)
    assert small.fits and big.needed_bytes > small.needed_bytes
    assert serving_step_fit(m, d, tp=1, batch_tokens=1, batch_seqs=1,
                            kv_tokens=1).needed_bytes > small.needed_bytes
    assert not serving_step_fit(m, d, tp=1, batch_tokens=1, batch_seqs=1, kv_tokens=1).fits
