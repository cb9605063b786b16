"""MoE serving: expert parallelism, the dispatch/combine all-to-all, expert load imbalance and
data-parallel attention (hwmodels.serving_moe and its use by StepCostModel / KV sizing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import serving_moe as sm
from hwmodels.catalog import load_device, load_model
from hwmodels.cluster import build_cluster, group_info
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.memory import kv_cache_capacity, serving_weight_bytes
from hwmodels.ops import resolve_profile
from hwmodels.step import StepCostModel
from simulator.serving.plan import ServingConfig

SCENARIOS = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
DSV3, MIXTRAL = load_model("deepseek-v3"), load_model("mixtral-8x7b")
H200, H100 = load_device("h200"), load_device("h100-sxm")
DECODE = (0, 0, 256, 256 * 2048)  # 256 sequences decoding at 2k context
PREFILL = (8192, 8192 * 4096, 0, 0)


def test_all_to_all_bytes_formula() -> None:
    h, k = DSV3.hidden_size, DSV3.experts_per_token
    dp = sm.EPLayout(tp=16, ep=16, dp_attention=True)  # each GPU dispatches its own tokens
    assert sm.all_to_all_bytes(DSV3, dp, 512, act_bytes=2) == 512 * k * h * 2
    tp_attn = sm.EPLayout(tp=8, ep=8)  # the TP group's 800 replicated tokens split 8 ways
    assert sm.all_to_all_bytes(DSV3, tp_attn, 800, act_bytes=2) == 100 * k * h * 2
    etp = sm.EPLayout(tp=8, ep=4)  # expert TP 2: each token goes to both ranks of its group
    assert sm.all_to_all_bytes(DSV3, etp, 800, act_bytes=2) == 2 * 100 * k * h * 2
    assert sm.all_to_all_bytes(DSV3, dp, 512, act_bytes=1, imbalance=1.25) == \
        pytest.approx(1.25 * 512 * k * h)


def test_layout_degrees() -> None:
    lay = sm.EPLayout(tp=16, ep=8, dp_attention=True)
    assert (lay.attn_tp, lay.attn_dp, lay.expert_tp, lay.active) == (1, 16, 2, True)
    assert not sm.EPLayout(tp=1, ep=1, dp_attention=True).active
    assert not sm.EPLayout(tp=8).active


def test_balls_in_bins_imbalance_shrinks_with_tokens() -> None:
    lay = sm.EPLayout(tp=16, ep=16, dp_attention=True)
    few, many = sm.ep_imbalance(DSV3, lay, 4), sm.ep_imbalance(DSV3, lay, 4096)
    assert few > many > 1.0
    assert sm.ep_imbalance(DSV3, lay, 64, imbalance=1.7) == pytest.approx(1.7)
    assert sm.ep_imbalance(DSV3, sm.EPLayout(tp=8), 64) == 1.0


@settings(max_examples=25, deadline=None)
@given(st.floats(min_value=1.0, max_value=3.0), st.floats(min_value=1.0, max_value=3.0))
def test_imbalance_raises_the_step_time(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    t = [_cost(DSV3, H200, tp=16, ep=16, dp_attention=True, moe_imbalance=x).time_s(*PREFILL)
         for x in (lo, hi)]
    assert t[1] >= t[0]
    if hi - lo > 0.05:
        assert t[1] > t[0]


_COSTS: dict[tuple, StepCostModel] = {}


def _cost(model, device, **kw) -> StepCostModel:  # type: ignore[no-untyped-def]
    key = (model.name, device.name, tuple(sorted(kw.items())))
    if key not in _COSTS:
        _COSTS[key] = StepCostModel(model, device, dtype=kw.pop("dtype", "fp8"), **kw)
    return _COSTS[key]


def test_given_imbalance_above_default_is_slower() -> None:
    base = _cost(DSV3, H200, tp=16, ep=16, dp_attention=True).breakdown(*PREFILL)
    skew = _cost(DSV3, H200, tp=16, ep=16, dp_attention=True,
                 moe_imbalance=2.0).breakdown(*PREFILL)
    assert skew["gemm_s"] > base["gemm_s"] and skew["tp_comm_s"] > base["tp_comm_s"]


def _a2a_s(devices_per_node: int) -> float:
    cluster = build_cluster(H200, 8, devices_per_node=devices_per_node, intra_node="nvlink4",
                            inter_node="ib-ndr")
    lay = sm.EPLayout(tp=8, ep=8, dp_attention=True)
    c = sm.moe_layer_cost(DSV3, H200, lay, 1024, dtype=DType.FP8, act_bytes=2,
                          profile=resolve_profile(H200, None), cluster=cluster,
                          ep_group=group_info(cluster, range(8)), tp_group=None)
    return c.all_to_all_s


def test_ep_across_nodes_slower_than_within() -> None:
    within, across = _a2a_s(8), _a2a_s(4)
    assert across > 2 * within > 0


def test_step_ep_over_two_nodes_pays_more_all_to_all_than_one() -> None:
    one = _cost(DSV3, H200, tp=8, ep=8, dp_attention=True).breakdown(*PREFILL)
    two = _cost(DSV3, H200, tp=16, ep=16, dp_attention=True).breakdown(*PREFILL)
    # half the tokens per GPU, but half the peers sit behind the NICs
    assert two["tp_comm_s"] > one["tp_comm_s"]


def test_dp_attention_cuts_per_gpu_attention_and_tp_all_reduce() -> None:
    tp = _cost(DSV3, H200, tp=8, ep=8).breakdown(*DECODE)
    dp = _cost(DSV3, H200, tp=8, ep=8, dp_attention=True).breakdown(*DECODE)
    # MLA's latent is replicated on every TP rank; DP attention reads each sequence once
    assert dp["attention_decode_s"] < tp["attention_decode_s"] / 4
    assert dp["time_s"] < tp["time_s"]
    assert dp["flops"] == pytest.approx(tp["flops"], rel=1e-9)  # same work, other layout


def test_dp_attention_raises_kv_capacity() -> None:
    kw = dict(tp=8, dtype="fp8", gpu_memory_utilization=0.9)
    tp = kv_cache_capacity(DSV3, H200, **kw)
    dp = kv_cache_capacity(DSV3, H200, dp_attention=True, **kw)
    assert dp.tokens > 4 * tp.tokens
    assert dp.blocks % 8 == 0 and dp.bytes < H200.memory_bytes
    assert serving_weight_bytes(DSV3, "fp8", tp=8, dp_attention=True) > \
        serving_weight_bytes(DSV3, "fp8", tp=8)  # attention replicated, experts still split


def test_ep_keeps_dense_and_default_paths_unchanged() -> None:
    llama = load_model("llama3-8b")
    a = StepCostModel(llama, H100, tp=2).breakdown(*DECODE)
    b = StepCostModel(llama, H100, tp=2, ep=1, dp_attention=False).breakdown(*DECODE)
    assert a == b
    m1 = StepCostModel(MIXTRAL, H100, tp=1).breakdown(*PREFILL)
    m2 = StepCostModel(MIXTRAL, H100, tp=1, dp_attention=True).breakdown(*PREFILL)
    assert m1 == m2  # one device: DP attention changes nothing


def test_mixtral_ep2_moves_expert_gemms_not_weights() -> None:
    tp = StepCostModel(MIXTRAL, H100, tp=2).breakdown(*DECODE)
    ep = StepCostModel(MIXTRAL, H100, tp=2, ep=2).breakdown(*DECODE)
    assert ep["gemm_s"] != tp["gemm_s"] and ep["tp_comm_s"] > 0
    assert ep["attention_decode_s"] == tp["attention_decode_s"]


@pytest.mark.parametrize(("kw", "key"), [
    (dict(model=load_model("llama3-8b"), tp=2, ep=2), "serving.ep"),
    (dict(model=load_model("llama3-8b"), tp=2, dp_attention=True), "serving.dp_attention"),
    (dict(model=MIXTRAL, tp=16, ep=16), "serving.ep"),  # 8 experts
    (dict(model=MIXTRAL, tp=4, ep=3), "serving.ep"),  # 3 does not divide 4 devices
])
def test_bad_layouts(kw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        sm.check_layout(kw.pop("model"), **kw)
    assert err.value.key == key


def test_serving_config_validates_ep() -> None:
    with pytest.raises(ConfigError) as err:
        ServingConfig(tp=2, ep=4)
    assert err.value.key == "serving.ep" and err.value.allowed == "1, 2"
    with pytest.raises(ConfigError):
        ServingConfig(tp=2, ep=0)
    assert ServingConfig(tp=16, ep=16, dp_attention=True).ep == 16


@pytest.mark.parametrize(("scenario", "sets", "needle"), [
    ("llama2-70b-h100-azure.yaml", ["serving.ep=2"], "needs an MoE model"),
    ("mixtral-8x7b-h100-tp2-ep2-serve.yaml", ["serving.ep=3"], "must divide"),
    ("deepseek-v3-h200-ep16-serve.yaml", ["serving.dp_attention=3"], "true or false"),
])
def test_cli_bad_input_is_one_line_exit_2(cli, scenario: str, sets: list[str],  # type: ignore[no-untyped-def]
                                          needle: str) -> None:
    args = [a for s in sets for a in ("--set", s)]
    code, _, err = cli("simulate", "serve", str(SCENARIOS / scenario), *args)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("scenario", ["deepseek-v3-h200-ep16-serve.yaml",
                                      "mixtral-8x7b-h100-tp2-ep2-serve.yaml"])
def test_moe_serving_scenarios_run(cli_json, scenario: str) -> None:  # type: ignore[no-untyped-def]
    out = cli_json("simulate", "serve", str(SCENARIOS / scenario))
    assert out["completed"] == out["requests"] > 0 and out["dropped"] == 0
    assert out["throughput_tokens_per_s"] > 0


def test_dsv3_ep16_dp_attention_beats_tp16_attention(cli_json) -> None:  # type: ignore[no-untyped-def]
    path = str(SCENARIOS / "deepseek-v3-h200-ep16-serve.yaml")
    dp = cli_json("simulate", "serve", path)
    tp = cli_json("simulate", "serve", path, "--set", "serving.dp_attention=false")
    assert dp["tpot_s"]["p50"] < tp["tpot_s"]["p50"]
