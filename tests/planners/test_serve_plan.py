"""plan_serve: never an infeasible unit, monotone in budget, exact bisection on a D/D/1 case,
disaggregation where it pays, and the JSON / plot outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from hwmodels.catalog import load_device, load_model
from hwmodels.errors import ConfigError
from hwmodels.memory import kv_cache_capacity
from planners.executors import LocalExecutor
from planners.serve import SimCache, pareto_front, plan_serve
from planners.serve_eval import (
    SLO,
    BisectTask,
    bisect_task,
    find_max_rate,
    parse_percentile,
    simulate_unit,
)
from planners.serve_space import ServeCandidate
from traces.readers import read_trace
from traces.synth import synthesize


@pytest.fixture(scope="module")
def azure() -> pd.DataFrame:
    return read_trace("azure-conv-2023-sample").iloc[:600].reset_index(drop=True)


def _inline() -> LocalExecutor:
    return LocalExecutor(max_workers=1)


def test_never_returns_infeasible_units(azure: pd.DataFrame) -> None:
    model = load_model("llama2-70b")
    result = plan_serve(model, azure, slo_ttft_s=2.0, slo_tpot_s=0.1,
                        devices=["a100-40gb", "a100-80gb", "h100-sxm"], tp=(1, 2, 3, 4, 8, 16),
                        schedulers=["vllm"], max_num_seqs=(256,), window_requests=200,
                        rate_tolerance=0.1, executor=_inline())
    assert not result.plans.empty
    longest = int((azure["input_tokens"] + azure["output_tokens"]).max())
    for _, row in result.plans.iterrows():
        tp = int(row["tp"])
        assert model.num_heads % tp == 0
        assert model.num_kv_heads % tp == 0 or tp % model.num_kv_heads == 0
        device = load_device(str(row["device"]))
        assert tp <= device.devices_per_node
        cap = kv_cache_capacity(model, device, tp=tp, pp=int(row["pp"]))  # raises if no fit
        assert cap.tokens >= longest
    pruned = result.pruned

    def reasons(device: str, tp: int) -> list[str]:
        return list(pruned.loc[(pruned["device"] == device) & (pruned["tp"] == tp), "reason"])

    assert reasons("h100-sxm", 3) and all(r.startswith("divisibility")
                                          for r in reasons("h100-sxm", 3))
    assert reasons("h100-sxm", 16) and all("per node" in r for r in reasons("h100-sxm", 16))
    # 64 GiB of weights per GPU at TP2 does not fit 0.9 x 40 GiB
    assert reasons("a100-40gb", 2) and all(r.startswith("memory")
                                           for r in reasons("a100-40gb", 2))
    shapes = set(zip(result.plans["device"], result.plans["tp"], strict=True))
    assert not shapes & {("a100-40gb", 1), ("a100-40gb", 2), ("h100-sxm", 1), ("h100-sxm", 3)}


def test_more_budget_never_worse(azure: pd.DataFrame) -> None:
    cache = SimCache()
    kwargs = {"slo_ttft_s": 2.0, "slo_tpot_s": 0.1, "devices": ["a100-80gb", "h100-sxm"],
              "tp": (4, 8), "schedulers": ["sarathi"], "chunk_sizes": (512,),
              "max_num_seqs": (256,), "window_requests": 200, "rate_tolerance": 0.1,
              "target_rate_rps": 25.0, "cache": cache, "executor": _inline()}
    best = []
    for budget in (10.0, 15.0, 30.0, 60.0, 120.0, None):
        res = plan_serve("llama2-70b", azure, budget_usd_per_hour=budget, **kwargs)
        assert (res.plans["cost_usd_per_hour"] <= (budget or math.inf) + 1e-9).all()
        best.append(float(res.plans["goodput_rps"].max()) if not res.plans.empty else 0.0)
    assert all(b2 >= b1 - 1e-12 for b1, b2 in zip(best, best[1:], strict=False)), best
    assert best[0] < 25.0 <= best[-1] + 1e-9  # the budget binds at first, not at the end
    assert res.cache_hits > 0 and res.simulations == 0  # repeated probes all came from cache


def test_bisection_threshold_function() -> None:
    for threshold in (0.37, 3.7, 370.0):
        found = find_max_rate(lambda r, t=threshold: r <= t, 5.0, rel_tol=0.05)
        assert threshold / 1.05 <= found.rate <= threshold
        assert len(found.probes) <= 16
    assert find_max_rate(lambda r: False, 5.0).rate == 0.0


def test_bisection_matches_dd1_queue() -> None:
    """Evenly spaced 1024-token prompts, one output token, one sequence per step: a D/D/1 queue
    with service time T, so TTFT_k = T + k (T - gap). The p90 TTFT of N requests is within
    1.5 T exactly when gap >= T (1 - 0.5 / (0.9 (N - 1))): the bisection must land within
    its tolerance below that rate."""
    model = load_model("llama3-8b")
    cand = ServeCandidate(device="h100-sxm", tp=1, scheduler="vllm", token_budget=1024,
                          max_num_seqs=1)
    probe = SLO(ttft_s=1.0, tpot_s=None, target=0.9, mode="percentile")
    one = pd.DataFrame({"arrival_time_s": [0.0], "input_tokens": [1024], "output_tokens": [1]})
    rec = simulate_unit(model, cand, one, probe).records
    service_s = float(rec["first_token_s"].iloc[0] - rec["arrival_s"].iloc[0])
    n, tol = 100, 0.02
    window = pd.DataFrame({"arrival_time_s": np.arange(n) * 2.0 * service_s,
                           "input_tokens": 1024, "output_tokens": 1})
    slo = SLO(ttft_s=1.5 * service_s, tpot_s=None, target=0.9, mode="percentile")
    out = bisect_task(BisectTask(model=model, candidate=cand, window=window, slo=slo,
                                 estimate_rps=0.3 / service_s, rel_tol=tol))
    exact = 1.0 / (service_s * (1.0 - 0.5 / (0.9 * (n - 1))))
    assert exact / (1.0 + tol) <= out.rate_rps <= exact
    assert out.simulations <= 12


def test_outputs_json_plot_and_pareto(azure: pd.DataFrame, tmp_path) -> None:
    res = plan_serve("llama2-70b", azure, slo_ttft_s=2.0, slo_tpot_s=0.1, slo_percentile="p90",
                     devices=["h100-sxm", "h200"], tp=(4,), schedulers=["vllm"],
                     max_num_seqs=(256,), window_requests=200, rate_tolerance=0.1,
                     confirm_top=1, executor=_inline())
    d = json.loads(json.dumps(res.to_dict()))
    assert d["plans"] and d["pareto"] and d["simulations"] > 0
    assert res.plans["confirmed"].iloc[0]  # the best plan was simulated whole and holds
    assert res.plans["meets_workload"].iloc[0]
    assert res.plans["confirmed_attainment"].iloc[0] >= 0.9
    front = res.pareto
    assert (np.diff(front["cost_usd_per_hour"]) > 0).all()
    assert (np.diff(front["goodput_rps"]) > 0).all()
    out = tmp_path / "front.png"
    res.plot(out)
    assert out.stat().st_size > 1000
    assert res.scenario(0)["serving"]["replicas"] == int(res.plans["units"].iloc[0])


def test_pareto_front_drops_dominated() -> None:
    pts = pd.DataFrame({"cost_usd_per_hour": [1.0, 2.0, 2.0, 3.0, 4.0],
                        "goodput_rps": [1.0, 0.5, 3.0, 2.0, 4.0]})
    front = pareto_front(pts)
    assert list(zip(front["cost_usd_per_hour"], front["goodput_rps"], strict=True)) == [
        (1.0, 1.0), (2.0, 3.0), (4.0, 4.0)]


def test_bad_input_raises_config_error(azure: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="slo_percentile"):
        parse_percentile("p100")
    with pytest.raises(ConfigError, match="scheduler"):
        plan_serve("llama3-8b", azure, slo_ttft_s=1.0, slo_tpot_s=0.1, schedulers=["fifo"])
    with pytest.raises(ConfigError, match="rank_by"):
        plan_serve("llama3-8b", azure, slo_ttft_s=1.0, slo_tpot_s=0.1, rank_by="speed")
    with pytest.raises(ConfigError, match="disaggregation"):
        plan_serve("llama3-8b", azure, slo_ttft_s=1.0, slo_tpot_s=0.1, disaggregation=["1-1"])


def _pd_workload(input_tokens: int, output_tokens: int) -> pd.DataFrame:
    return synthesize({"num_requests": 300, "arrival": {"process": "poisson", "rate": 8.0},
                       "input": {"dist": "fixed", "value": input_tokens},
                       "output": {"dist": "fixed", "value": output_tokens}}, seed=1)


@pytest.mark.parametrize(("input_tokens", "output_tokens", "ttft_s", "tpot_s", "ratios", "want"), [
    # prefill-heavy, tight TTFT: long prompts stall co-located decodes (or, chunked, queue
    # behind them); a 3:1 prefill:decode unit keeps both SLOs (DistServe, OSDI'24)
    (3000, 32, 0.4, 0.04, ["1:1", "2:1", "3:1"], "disaggregated"),
    # decode-heavy: a disaggregated unit idles its prefill GPUs; co-location packs them
    (128, 512, 5.0, 0.05, ["1:1", "1:2", "1:3"], "colocated"),
])
def test_picks_disaggregation_only_where_it_pays(input_tokens: int, output_tokens: int,
                                                 ttft_s: float, tpot_s: float,
                                                 ratios: list[str], want: str) -> None:
    res = plan_serve("llama3-8b", _pd_workload(input_tokens, output_tokens), slo_ttft_s=ttft_s,
                     slo_tpot_s=tpot_s, devices=["h100-sxm"], tp=(1,),
                     schedulers=["vllm", "sarathi"], chunk_sizes=(512, 2048),
                     max_num_seqs=(256,), disaggregation=ratios, window_requests=300,
                     rate_tolerance=0.1, rank_by="gpu", target_rate_rps=500.0,
                     executor=_inline())
    assert not res.failures
    placements = set(res.plans["placement"])
    assert placements == {"colocated", "disaggregated"}  # both were searched and feasible
    assert res.best["placement"] == want
    other = res.plans[res.plans["placement"] != want]["goodput_rps_per_gpu"].max()
    assert res.best["goodput_rps_per_gpu"] > 1.15 * other  # a clear win, not a tie
