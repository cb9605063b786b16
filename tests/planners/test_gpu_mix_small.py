"""plan gpu-mix on a Mélange-like small-request workload under a TPOT-only SLO (issue 16):
small GPUs win the small requests when they are cheaper per request, and bad SLO input exits
with the reason."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hwmodels.errors import ConfigError
from planners.buckets import BucketGrid
from planners.gpu_mix import plan_gpu_mix
from planners.mix_profile import ProfileTask, check_slo, max_rate_within_slo
from simulator.profiles import ProfileChoice

DEFAULTS = ProfileChoice(no_profile=True)
DEVICES = ["l4", "a10g", "a100-80gb", "h100-sxm"]
# H100 at AWS p5.48xlarge on-demand $98.32/h / 8 GPUs (us-east-1, 2024), Mélange's
# hyperscaler setting; L4, A10G, A100 at their catalog (AWS g6 / g5 / p4de) prices
PRICES = {"h100-sxm": 12.29}
TPOT_SLO_S = 0.12  # Mélange's loose TPOT SLO (120 ms)


def _short_requests(rate_rps: float = 30.0, duration_s: float = 60.0,
                    seed: int = 0) -> pd.DataFrame:
    """Chat-like short requests: prompts 20-200 tokens, outputs 10-120 tokens, Poisson."""
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate_rps * duration_s)
    return pd.DataFrame({"arrival_time_s": np.sort(rng.uniform(0, duration_s, n)),
                         "input_tokens": rng.integers(20, 200, n),
                         "output_tokens": rng.integers(10, 120, n)})


def _capacity(device: str, df: pd.DataFrame, engine: str | None = None) -> float:
    task = ProfileTask(model="llama2-7b", device=device, tp=1,
                       inputs=tuple(df.input_tokens[:64].tolist()),
                       outputs=tuple(df.output_tokens[:64].tolist()),
                       slo_ttft_s=None, slo_tpot_s=TPOT_SLO_S, profiles=DEFAULTS,
                       serving=() if engine is None else (("engine", engine),))
    return max_rate_within_slo(task)


def test_tpot_only_capacity_is_bounded_by_queueing() -> None:
    df = _short_requests()
    a10g, a100 = _capacity("a10g", df), _capacity("a100-80gb", df)
    # finite: a TPOT-only SLO still counts queueing (e2e / output tokens), so an overloaded
    # replica fails instead of the bisection running off to MAX_DOUBLINGS
    assert 0 < a10g < a100 < 1e3
    # A100 has ~5x A10G's dense FLOPs and ~3.4x its memory bandwidth, yet on small requests
    # its capacity per dollar is lower (the 3.7-10.5x capacity band at 5x the price)
    assert a10g / 1.01 > a100 / 5.12


def test_per_step_engine_costs_favour_the_small_gpu() -> None:
    # a fixed per-step host cost is a larger share of the fast GPU's short steps: with the
    # 2023 vLLM preset (eager launches, serial Python loop) A100's capacity edge over A10G
    # on small requests shrinks (measured here: 3.84x kernel-only -> 3.58x)
    df = _short_requests()
    kernel = _capacity("a100-80gb", df) / _capacity("a10g", df)
    engine = _capacity("a100-80gb", df, "vllm-0.2") / _capacity("a10g", df, "vllm-0.2")
    assert engine < kernel


def test_small_requests_go_to_small_gpus() -> None:
    df = _short_requests()
    grid = BucketGrid(input_edges=(1, 1024), output_edges=(1, 1024))
    plan = plan_gpu_mix("llama2-7b", df, devices=DEVICES, prices=PRICES,
                        slo_tpot_s=TPOT_SLO_S, buckets=grid, time_varying=False,
                        profiles=DEFAULTS)
    assert plan.slo_ttft_s is None and plan.slo_tpot_s == TPOT_SLO_S
    assert plan.meets_slo and plan.slo_attainment >= 0.95
    used = {name for name, c in plan.counts.items() if c}
    assert used and used <= {"l4x1", "a10gx1"}, plan.counts
    big = [plan.single_type_cost_usd_per_hour[n] for n in ("a100-80gbx1", "h100-sxmx1")]
    assert all(c is None or plan.cost_usd_per_hour < c for c in big)
    assert plan.to_dict()["slo"] == {"ttft_s": None, "tpot_s": TPOT_SLO_S, "target": 0.95}


def test_slo_input_checks() -> None:
    check_slo(None, 0.1)  # TPOT-only: accepted
    check_slo(1.0, None)  # TTFT-only: accepted
    with pytest.raises(ConfigError, match="give a latency SLO") as err:
        check_slo(None, None)
    assert err.value.key == "gpu_mix.slo"
    for bad in (0.0, -1.0, True):
        with pytest.raises(ConfigError, match="must be > 0"):
            check_slo(None, bad)
    with pytest.raises(ConfigError, match="give a latency SLO"):
        plan_gpu_mix("llama2-7b", _short_requests(duration_s=1.0), devices=["a10g"])


def test_cli_tpot_only_accepted_and_no_slo_exits_2(tmp_path, cli) -> None:
    trace = tmp_path / "short.csv"
    _short_requests(rate_rps=5.0, duration_s=10.0).to_csv(trace, index=False)
    base = ["plan", "gpu-mix", "--model", "llama2-7b", "--trace", str(trace),
            "--devices", "l4,a10g", "--no-profile", "--json"]
    code, out, err = cli(*base)
    assert code == 2 and out == ""
    assert "give a latency SLO" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    code, out, err = cli(*base, "--slo-tpot", "0.12")
    assert code == 0, err
    assert json.loads(out)["slo"]["ttft_s"] is None
