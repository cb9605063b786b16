"""plan serve with mixed prefill/decode pools: mixed pairs are searched and confirmed by
simulation, each pool's memory is checked on its own device, the unit's cost sums its pools,
the export writes one command per pool, defaults are unchanged, and bad input is one line."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hwmodels.catalog import load_device, load_model
from hwmodels.errors import ConfigError
from planners.executors import LocalExecutor
from planners.export import export_plan
from planners.serve import plan_serve
from planners.serve_pd_mix import PoolMix, enumerate_mixed, pair_link
from planners.serve_space import ServeCandidate, feasibility
from simulator.serving.assemble import cluster_options
from simulator.serving.cluster_config import Role
from simulator.serving.scenario import load_serving_scenario
from traces.readers import read_trace

# a small search the golden case also uses (llama3-8b, TP1, vLLM, 1:1): seconds, not minutes
SMALL = {"slo_ttft_s": 2.0, "slo_tpot_s": 0.1, "devices": ["h100-sxm"], "tp": (1,),
         "schedulers": ["vllm"], "chunk_sizes": (512,), "max_num_seqs": (256,),
         "disaggregation": ["1:1"], "window_requests": 200, "rate_tolerance": 0.1,
         "prune_by_estimate": False}
MIX = PoolMix(prefill_devices=("h100-sxm",), decode_devices=("a100-80gb",), decode_tp=(1, 2))


@pytest.fixture(scope="module")
def azure() -> pd.DataFrame:
    return read_trace("azure-conv-2023-sample").iloc[:300].reset_index(drop=True)


@pytest.fixture(scope="module")
def mixed(azure: pd.DataFrame):  # type: ignore[no-untyped-def]
    return plan_serve("llama3-8b", azure, confirm_top=4, pool_mix=MIX,
                      executor=LocalExecutor(max_workers=1), **SMALL)


def _mixed_rows(plans: pd.DataFrame) -> pd.DataFrame:
    return plans[(plans["placement"] == "disaggregated")
                 & (plans["decode_device"] != plans["device"])]


def test_mixed_pairs_appear_and_are_confirmed_by_simulation(mixed) -> None:  # type: ignore[no-untyped-def]
    rows = _mixed_rows(mixed.plans)
    assert set(rows["decode_tp"]) == {1, 2}
    assert (rows["device"] == "h100-sxm").all() and (rows["decode_device"] == "a100-80gb").all()
    assert (rows["unit_rate_rps"] > 0).all()
    assert rows["confirmed"].all()  # confirm_top covers all 4 deployments
    assert rows["confirmed_attainment"].between(0.0, 1.0).all()


def test_serving_plan_of_a_mixed_pair_has_both_pools_and_exports_two_commands(mixed) -> None:  # type: ignore[no-untyped-def]
    rank = int(_mixed_rows(mixed.plans).index[0])
    row = mixed.plans.iloc[rank]
    plan = mixed.serving_plan(load_model("llama3-8b"), rank)
    groups = {g.role: g for g in plan.replica_groups()}
    assert set(groups) == {Role.PREFILL, Role.DECODE}
    units = int(row["units"])
    assert (groups[Role.PREFILL].device.name, groups[Role.PREFILL].tp) == ("h100-sxm", 1)
    assert (groups[Role.DECODE].device.name, groups[Role.DECODE].tp) == ("a100-80gb",
                                                                         int(row["decode_tp"]))
    assert groups[Role.PREFILL].count == units and groups[Role.DECODE].count == units
    assert plan.disagg_link == "ib-hdr"  # A100's HDR NIC is slower than H100's NDR
    intra, inter, _, _ = cluster_options(plan, plan.replica_groups()).transfer
    assert intra.bandwidth_Bps == inter.bandwidth_Bps == pytest.approx(22e9)  # never NVLink
    sc = load_serving_scenario(mixed.scenario(rank))  # `--export`'s mapping re-runs the same
    assert [(g.device.name, g.tp, g.count) for g in sc.groups] == [
        (g.device.name, g.tp, g.count) for g in plan.replica_groups()]
    art = export_plan(plan, "vllm")
    assert art.command.count("vllm serve") == 2
    pools = art.extra["pools"]
    assert [p["replicas"] for p in pools] == [units, units]


def test_unit_cost_sums_each_pool_at_its_device_price(azure: pd.DataFrame) -> None:
    c = ServeCandidate(device="h100-sxm", tp=2, prefill_replicas=1, decode_replicas=2,
                       decode_device="a100-80gb", decode_tp=4)
    price = {"h100-sxm": 3.0, "a100-80gb": 1.5}
    assert c.gpus == 2 + 8
    assert c.unit_cost_usd_per_hour(price) == pytest.approx(2 * 3.0 + 8 * 1.5)
    assert c.pools_label() == "P h100-sxm TP2 x1 : D a100-80gb TP4 x2"
    res = plan_serve("llama3-8b", azure, prices={"h100-sxm": 3.0, "a100-80gb": 1.5},
                     pool_mix=MIX, executor=LocalExecutor(max_workers=1), **SMALL)
    for _, r in _mixed_rows(res.plans).iterrows():
        expect = int(r["tp"]) * 3.0 + int(r["decode_tp"]) * 1.5  # 1:1, one replica per pool
        assert r["unit_cost_usd_per_hour"] == pytest.approx(expect)
        assert r["cost_usd_per_hour"] == pytest.approx(int(r["units"]) * expect)
        assert r["unit_gpus"] == int(r["tp"]) + int(r["decode_tp"])


def test_memory_is_checked_on_each_pools_device() -> None:
    model = load_model("llama3-70b")
    mix = PoolMix(prefill_devices=("h100-sxm",), decode_devices=("l40s", "a100-80gb"),
                  prefill_tp=(4,), decode_tp=(1, 4))
    keep, pruned = enumerate_mixed(model, mix, tp=(1,), pp=(1,), ratios=((1, 1),),
                                   max_num_seqs=(256,), min_kv_tokens=4096)
    kept = {(c.decode_device, c.decode_tp) for c in keep}
    for dev in ("l40s", "a100-80gb"):
        for t in (1, 4):
            fits = not feasibility(model, load_device(dev), t, 1, dtype="bf16",
                                   min_kv_tokens=4096)
            assert ((dev, t) in kept) == fits, (dev, t)
    assert ("a100-80gb", 4) in kept and ("l40s", 1) not in kept  # 141 GB of weights on 48 GB
    reasons = {(p.candidate.decode_device, p.candidate.decode_tp): p.reason for p in pruned}
    assert reasons[("l40s", 1)].startswith("memory: decode pool l40s tp1")
    # the prefill pool is checked on its own device too: H100 TP1 cannot hold 70B
    keep, pruned = enumerate_mixed(model, PoolMix(prefill_devices=("h100-sxm",),
                                                  decode_devices=("a100-80gb",),
                                                  prefill_tp=(1,), decode_tp=(4,)),
                                   tp=(1,), pp=(1,), ratios=((1, 1),), max_num_seqs=(256,))
    assert not keep and pruned[0].reason.startswith("memory: prefill pool h100-sxm tp1")


def test_pair_link_is_the_slower_nic() -> None:
    assert pair_link("h100-sxm", "h200") == "ib-ndr"
    assert pair_link("h100-sxm", "a100-80gb") == "ib-hdr"
    assert pair_link("h100-sxm", "l40s") == "eth-100g"


def test_defaults_unchanged(azure: pd.DataFrame, mixed) -> None:  # type: ignore[no-untyped-def]
    base = plan_serve("llama3-8b", azure, executor=LocalExecutor(max_workers=1), **SMALL)
    empty = plan_serve("llama3-8b", azure, pool_mix=PoolMix(),
                       executor=LocalExecutor(max_workers=1), **SMALL)
    assert "decode_device" not in base.plans.columns
    pd.testing.assert_frame_equal(base.plans, empty.plans)
    # the same-device rows of the mixed search are the default search's, figure for figure
    same = mixed.plans[~mixed.plans.index.isin(_mixed_rows(mixed.plans).index)]
    cols = ["device", "placement", "unit_rate_rps", "unit_cost_usd_per_hour"]
    key = ["device", "placement"]
    assert same[cols].sort_values(key).reset_index(drop=True).equals(
        base.plans[cols].sort_values(key).reset_index(drop=True))


def test_bad_mix_values_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="--decode-devices"):
        PoolMix(prefill_devices=("h100-sxm",), decode_devices=("h100-nope",))
    with pytest.raises(ConfigError, match="--prefill-devices"):
        PoolMix(decode_devices=("a100-80gb",))
    with pytest.raises(ConfigError, match="--decode-tp"):
        PoolMix(decode_tp=(2,))
    model = load_model("llama3-70b")
    with pytest.raises(ConfigError, match="--decode-tp"):
        enumerate_mixed(model, PoolMix(prefill_devices=("h100-sxm",),
                                       decode_devices=("a100-80gb",), decode_tp=(3,)),
                        tp=(4,), pp=(1,), ratios=((1, 1),), max_num_seqs=(256,))
    with pytest.raises(ConfigError, match="--disagg"):
        enumerate_mixed(model, MIX, tp=(4,), pp=(1,), ratios=(), max_num_seqs=(256,))


BASE = ("plan", "serve", "--model", "llama3-70b", "--devices", "h100-sxm", "--slo-ttft", "2",
        "--slo-tpot", "0.1", "--tp", "4", "--end-s", "10")


@pytest.mark.parametrize(("extra", "needle"), [
    (("--prefill-devices", "h100-sxm", "--decode-devices", "z100"), "--decode-devices"),
    (("--prefill-devices", "h100-sxm", "--decode-devices", "a100-80gb", "--decode-tp", "3"),
     "--decode-tp"),
    (("--decode-devices", "a100-80gb"), "--prefill-devices"),
    (("--prefill-tp", "2"), "--prefill-tp"),
])
def test_cli_bad_pools_are_one_line_exit_2(cli, extra, needle) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli(*BASE, *extra)
    assert code == 2, err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_table_shows_both_pools(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("plan", "serve", "--model", "llama3-8b", "--devices", "h100-sxm",
                         "--slo-ttft", "2", "--slo-tpot", "0.1", "--tp", "1",
                         "--schedulers", "vllm", "--max-num-seqs", "256", "--disagg", "1:1",
                         "--end-s", "30", "--confirm-top", "0", "--no-colocated",
                         "--prefill-devices", "h100-sxm", "--decode-devices", "a100-80gb",
                         "--decode-tp", "2", "--json")
    assert code == 0, err
    import json

    plans = json.loads(out)["plans"]
    mixed_ = [p for p in plans if p["decode_device"] == "a100-80gb"]
    assert mixed_ and all(p["decode_tp"] == 2 and math.isfinite(p["unit_rate_rps"])
                          for p in mixed_)
