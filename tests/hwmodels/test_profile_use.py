"""Every part of a v2 profile reaches the one cost path: per-kind elementwise curves, the
memory-bound GEMM curve, measured collectives and engine overheads (and catalog defaults stay
what they were: the goldens pin those numbers)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodels import layers, ops
from hwmodels.catalog import load_device, load_model
from hwmodels.cluster import build_cluster, group_info
from hwmodels.collectives import CollectiveOp, bus_factor, collective_time, measured_world
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap
from hwmodels.parallel import ParallelConfig, TrainingConfig
from hwmodels.profile import CATALOG_DEFAULTS, Curve, DeviceProfile, ElementwiseKind
from hwmodels.step import BREAKDOWN_KEYS, STEP_OVERHEAD_S, StepCostModel, estimate_step
from hwmodels.training.comm import CommModel
from hwmodels.training.estimate import estimate_iteration
from hwmodels.training.gradsync import adam_launches, stage_params

A100 = load_device("a100-80gb")
H100 = load_device("h100-sxm")
LLAMA3_8B = load_model("llama3-8b")
LLAMA2_70B = load_model("llama2-70b")
GPT_7B = load_model("gpt-7.5b")
MIXTRAL = load_model("mixtral-8x7b")
NORM = ElementwiseKind.NORM


def _with(device, **parts) -> DeviceProfile:  # type: ignore[no-untyped-def]
    """The device's catalog defaults with some parts replaced (a complete, 'measured' profile)."""
    base = ops.default_profile(device)
    return dataclasses.replace(base, name="test", source="test-profile",
                               measured=frozenset(parts), **parts)


def _scaled(curve: Curve, factor: float) -> Curve:
    return Curve(curve.xs, tuple(y * factor for y in curve.ys))


def _slow_norm(device) -> DeviceProfile:  # type: ignore[no-untyped-def]
    memory = ops.default_profile(device).memory
    assert memory is not None
    return _with(device, elementwise=FrozenMap({NORM: _scaled(memory, 0.5)}))


# ---------------------------------------------------------------- elementwise kinds


@pytest.mark.parametrize(("model", "kw"), [
    (LLAMA3_8B, dict(micro_batch=1, seq_len=4096, tp=1)),
    (GPT_7B, dict(micro_batch=2, seq_len=2048, tp=2, sequence_parallel=True)),
    (MIXTRAL, dict(micro_batch=1, seq_len=2048, tp=2, moe=True)),
])
def test_slow_norm_curve_adds_exactly_the_norm_kernels_time(model, kw) -> None:  # type: ignore
    slow = _slow_norm(A100)
    tokens = kw["micro_batch"] * kw["seq_len"]
    kernels = layers.layer_elementwise(
        model, tokens, kw["tp"], moe=kw.get("moe", False),
        sequence_parallel=kw.get("sequence_parallel", False),
        dropout=not model.gated_mlp, dtype=DType.BF16)
    norms = [b for kind, b in kernels if kind is NORM]
    assert len(norms) == 2
    for fn, scale in ((layers.layer_forward_time, 1.0),
                      (layers.layer_backward_time, layers.ELEMENTWISE_BACKWARD_RATIO)):
        base = fn(model, A100, profile=CATALOG_DEFAULTS, **kw)
        new = fn(model, A100, profile=slow, **kw)
        extra = sum(ops.memory_time(A100, b * scale, slow, kind=NORM)
                    - ops.memory_time(A100, b * scale, CATALOG_DEFAULTS) for b in norms)
        assert extra > 0
        assert new.elementwise_s - base.elementwise_s == pytest.approx(extra, rel=1e-9)
        assert (new.gemm_s, new.attention_s, new.flops) == \
            (base.gemm_s, base.attention_s, base.flops)


def test_slow_norm_in_a_serving_step_moves_only_elementwise_and_the_final_norm() -> None:
    slow = _slow_norm(H100)
    kw = dict(prefill_lens=[512], decode_context_lens=[1024] * 8)
    base = estimate_step(LLAMA3_8B, H100, profile=CATALOG_DEFAULTS, **kw).breakdown
    new = estimate_step(LLAMA3_8B, H100, profile=slow, **kw).breakdown
    tokens = 512 + 8
    hidden = tokens * LLAMA3_8B.hidden_size * 2.0

    def norm_extra(nbytes: float) -> float:
        return ops.memory_time(H100, nbytes, slow, kind=NORM) - \
            ops.memory_time(H100, nbytes, CATALOG_DEFAULTS)

    # two norms per layer (elementwise_s) and the final norm (logits_s)
    assert new["elementwise_s"] - base["elementwise_s"] == pytest.approx(
        LLAMA3_8B.num_layers * 2 * norm_extra(2.0 * hidden), rel=1e-9)
    assert new["logits_s"] - base["logits_s"] == pytest.approx(norm_extra(2.0 * hidden),
                                                               rel=1e-9)
    for key in set(BREAKDOWN_KEYS) - {"elementwise_s", "logits_s"}:
        assert new[key] == base[key], key


def test_each_kind_reaches_its_kernels() -> None:
    """A slow curve for one kind changes the layer/ends whose kernels are of that kind."""
    memory = ops.default_profile(A100).memory
    kw = dict(micro_batch=1, seq_len=2048, tp=1)
    for kind in ElementwiseKind:
        prof = _with(A100, elementwise=FrozenMap({kind: _scaled(memory, 0.25)}))  # type: ignore
        moved = []
        for name, fn, model, extra in (
                ("layer", layers.layer_forward_time, LLAMA3_8B, {}),
                ("moe", layers.layer_forward_time, MIXTRAL, {"moe": True}),
                ("unfused", layers.layer_forward_time, GPT_7B, {"flash": False}),
                ("embedding", layers.embedding_forward_time, LLAMA3_8B, {}),
                ("logits", layers.logits_forward_time, LLAMA3_8B, {})):
            a = fn(model, A100, profile=CATALOG_DEFAULTS, **kw, **extra).total_s
            b = fn(model, A100, profile=prof, **kw, **extra).total_s
            assert b >= a
            if b > a:
                moved.append(name)
        expected = {
            ElementwiseKind.NORM: ["layer", "moe", "unfused", "logits"],
            ElementwiseKind.ROPE: ["layer", "moe"],  # gpt-7.5b has learned positions
            ElementwiseKind.ACTIVATION: ["layer", "moe", "unfused"],
            ElementwiseKind.RESIDUAL: ["layer", "moe", "unfused"],
            ElementwiseKind.EMBEDDING: ["embedding"],
            ElementwiseKind.SOFTMAX: ["unfused", "logits"],  # scores; vocab cross entropy
            ElementwiseKind.COPY: ["moe"],  # MoE permutes
            ElementwiseKind.OPTIMIZER: [],
        }[kind]
        assert moved == expected, kind


def test_optimizer_curve_drives_the_adam_step() -> None:
    cluster = build_cluster("a100-80gb", 16, inter_node="ib-hdr")
    training = TrainingConfig(seq_len=2048, global_batch=64, micro_batch=1)
    plan = ParallelConfig(tp=2, dp=8)
    memory = ops.default_profile(A100).memory
    slow = _with(A100, elementwise=FrozenMap({ElementwiseKind.OPTIMIZER: _scaled(memory, 0.5)}))
    base = estimate_iteration(GPT_7B, training, plan, CommModel(cluster, CATALOG_DEFAULTS))
    new = estimate_iteration(GPT_7B, training, plan, CommModel(cluster, slow))
    # every launch of the multi-tensor Adam step pays the kernel overhead (gradsync)
    overhead = A100.kernel_overhead_s * adam_launches(stage_params(GPT_7B, plan, 0).dense)
    assert new.optimizer_s - overhead == pytest.approx(2 * (base.optimizer_s - overhead))
    assert (new.compute_s, new.exposed_comm_s) == (base.compute_s, base.exposed_comm_s)


def test_kind_curves_equal_to_the_memory_curve_change_nothing() -> None:
    """Tagging is pure plumbing: per-kind curves identical to the generic one give the same
    numbers, bit for bit, as the catalog defaults."""
    memory = ops.default_profile(H100).memory
    same = _with(H100, elementwise=FrozenMap({k: memory for k in ElementwiseKind}),
                 gemm_memory=memory)
    kw = dict(tp=2, prefill_lens=[300, 17], decode_context_lens=[5, 900, 4000])
    assert estimate_step(MIXTRAL, H100, profile=same, **kw) == \
        estimate_step(MIXTRAL, H100, profile=CATALOG_DEFAULTS, **kw)
    lkw = dict(micro_batch=2, seq_len=1024, tp=2)
    for fn in (layers.layer_forward_time, layers.layer_backward_time,
               layers.logits_backward_time, layers.embedding_backward_time):
        assert fn(LLAMA3_8B, H100, profile=same, **lkw) == \
            fn(LLAMA3_8B, H100, profile=CATALOG_DEFAULTS, **lkw)


# ---------------------------------------------------------------- memory-bound GEMMs


def test_gemm_memory_curve_moves_small_batch_decode_gemms_only() -> None:
    memory = ops.default_profile(H100).memory
    slow = _with(H100, gemm_memory=_scaled(memory, 0.5))  # type: ignore[arg-type]
    decode = dict(decode_context_lens=[512])
    base = estimate_step(LLAMA3_8B, H100, profile=CATALOG_DEFAULTS, **decode).breakdown
    new = estimate_step(LLAMA3_8B, H100, profile=slow, **decode).breakdown
    launches = 4 * LLAMA3_8B.num_layers * H100.kernel_overhead_s
    # batch-1 decode GEMMs read weights at half the rate: their weight-read time doubles
    assert new["gemm_s"] - launches == pytest.approx(2 * (base["gemm_s"] - launches), rel=1e-9)
    for key in ("attention_decode_s", "elementwise_s", "overhead_s"):
        assert new[key] == base[key]
    prefill = dict(prefill_lens=[4096])
    big_base = estimate_step(LLAMA3_8B, H100, profile=CATALOG_DEFAULTS, **prefill).breakdown
    big_new = estimate_step(LLAMA3_8B, H100, profile=slow, **prefill).breakdown
    assert big_new["gemm_s"] == big_base["gemm_s"]  # compute-bound: the memory term never binds


# ---------------------------------------------------------------- collectives


def _coll_profile(curves: dict[str, dict[int, Curve]], link: str | None = None
                  ) -> DeviceProfile:
    return _with(H100, collectives=FrozenMap({op: FrozenMap(w) for op, w in curves.items()}),
                 collectives_link=link)


AR = Curve((1e4, 1e6, 1e8), (2e9, 80e9, 300e9))


def test_latency_floor_below_the_smallest_measured_size() -> None:
    prof = _coll_profile({"all_reduce": {8: AR}})
    c = build_cluster(H100, 8)
    floor = 1e4 * bus_factor(CollectiveOp.ALL_REDUCE, 8) / 2e9  # measured time at 10 kB
    for size in (1.0, 512.0, 4096.0, 1e4):
        cost = collective_time(c, range(8), "all_reduce", size, profile=prof)
        assert cost.time_s == pytest.approx(floor, rel=1e-12)
        assert cost.latency_s == pytest.approx(floor, rel=1e-12)
    # inside: size x bus factor / interpolated busbw; above: the plateau
    mid = collective_time(c, range(8), "all_reduce", 1e6, profile=prof)
    assert mid.time_s == pytest.approx(1e6 * 1.75 / 80e9) and mid.bus_bw_Bps == \
        pytest.approx(80e9)
    # above the largest measured size: its measured time + the model's time for the extra bytes
    big = collective_time(c, range(8), "all_reduce", 1e10, profile=prof)
    top = AR.xs[-1]
    model = [collective_time(c, range(8), "all_reduce", x, profile=CATALOG_DEFAULTS).time_s
             for x in (top, 1e10)]
    assert big.time_s == pytest.approx(top * 1.75 / AR.ys[-1] + model[1] - model[0])
    times = [collective_time(c, range(8), "all_reduce", s, profile=prof).time_s
             for s in (1, 1e3, 1e4, 3e4, 1e5, 1e6, 1e7, 1e8, 1e9)]
    assert times == sorted(times)


def test_nearest_measured_world_at_or_above_else_below_via_bus_bandwidth() -> None:
    assert measured_world(CollectiveOp.ALL_REDUCE, 2, [4, 8]) == 4
    assert measured_world(CollectiveOp.ALL_REDUCE, 6, [2, 4, 8]) == 8
    assert measured_world(CollectiveOp.ALL_REDUCE, 16, [2, 4, 8]) == 8
    assert measured_world(CollectiveOp.SEND_RECV, 8, [2, 4]) == 2
    four = Curve((1e4, 1e8), (1e9, 100e9))
    prof = _coll_profile({"all_reduce": {4: four, 8: AR}})
    c = build_cluster(H100, 8)
    # 2 ranks: the 4-rank curve's bus bandwidth with the 2-rank bus factor (1.0 vs 1.5)
    two = collective_time(c, [0, 1], "all_reduce", 1e8, profile=prof)
    assert two.time_s == pytest.approx(1e8 * 1.0 / 100e9)
    assert two.bus_bw_Bps == pytest.approx(100e9)
    six = collective_time(c, range(6), "all_reduce", 1e8, profile=prof)
    assert six.time_s == pytest.approx(1e8 * bus_factor(CollectiveOp.ALL_REDUCE, 6) / 300e9)
    wide = build_cluster(H100, 16, devices_per_node=16)
    sixteen = collective_time(wide, range(16), "all_reduce", 1e8, profile=prof)
    assert sixteen.time_s == pytest.approx(1e8 * bus_factor(CollectiveOp.ALL_REDUCE, 16) / 300e9)


def test_send_recv_uses_the_world_two_curve() -> None:
    p2p = Curve((2048.0, 1e8), (0.2e9, 150e9))
    prof = _coll_profile({"send_recv": {2: p2p}})
    c = build_cluster(H100, 8)
    cost = collective_time(c, [0, 1], "send_recv", 1e8, profile=prof)
    assert cost.time_s == pytest.approx(1e8 / 150e9)
    assert collective_time(c, [0, 1], "send_recv", 16.0, profile=prof).time_s == \
        pytest.approx(2048.0 / 0.2e9)
    # the step model's PP sends and CommModel's send_recv ride the same curve
    comm = CommModel(c, prof)
    assert comm.send_recv(0, 1, 1e8) == cost.time_s
    step = StepCostModel(LLAMA3_8B, H100, tp=1, pp=2, profile=prof)
    ref = StepCostModel(LLAMA3_8B, H100, tp=1, pp=2, profile=CATALOG_DEFAULTS)
    hidden = 64 * LLAMA3_8B.hidden_size * 2.0
    assert step.breakdown(64, 64 * 32, 0, 0)["pp_comm_s"] == collective_time(
        c, [0, 1], "send_recv", hidden, profile=prof).time_s
    assert step.breakdown(64, 64 * 32, 0, 0)["pp_comm_s"] != \
        ref.breakdown(64, 64 * 32, 0, 0)["pp_comm_s"]


def test_measured_curves_only_on_their_link_and_inside_one_node() -> None:
    c = build_cluster(H100, 16)  # nvlink4 inside the node
    assert group_info(c, range(8)).intra_link == "nvlink4"
    model = collective_time(c, range(8), "all_reduce", 1e6, profile=CATALOG_DEFAULTS)
    for link, measured in ((None, True), ("nvlink4", True), ("NVLink4", True),
                           ("nvlink3", False), ("pcie5", False)):
        prof = _coll_profile({"all_reduce": {8: AR}}, link=link)
        cost = collective_time(c, range(8), "all_reduce", 1e6, profile=prof)
        assert (cost != model) is measured, link
        # across nodes, an op without a curve, or a forced algorithm: always the model
        assert collective_time(c, range(16), "all_reduce", 1e6, profile=prof) == \
            collective_time(c, range(16), "all_reduce", 1e6, profile=CATALOG_DEFAULTS)
        assert collective_time(c, range(8), "all_gather", 1e6, profile=prof) == \
            collective_time(c, range(8), "all_gather", 1e6, profile=CATALOG_DEFAULTS)
        assert collective_time(c, range(8), "all_reduce", 1e6, algorithm="ring",
                               profile=prof) == \
            collective_time(c, range(8), "all_reduce", 1e6, algorithm="ring")


def test_tp_decode_all_reduces_take_the_measured_latency() -> None:
    prof = _coll_profile({"all_reduce": {8: AR}})
    kw = dict(tp=8, decode_context_lens=[256])
    base = estimate_step(LLAMA2_70B, H100, profile=CATALOG_DEFAULTS, **kw).breakdown
    new = estimate_step(LLAMA2_70B, H100, profile=prof, **kw).breakdown
    floor = 1e4 * bus_factor(CollectiveOp.ALL_REDUCE, 8) / 2e9
    # batch 1: 8 kB hidden state, below the smallest measured size -> 2 per layer + embedding
    assert new["tp_comm_s"] == pytest.approx((2 * LLAMA2_70B.num_layers + 1) * floor)
    assert new["gemm_s"] == base["gemm_s"]


# ---------------------------------------------------------------- engine overheads

ENGINES = FrozenMap({"vllm-test": FrozenMap({"fixed_s": 1.5e-3, "per_seq_s": 2e-5,
                                             "tp_fixed_s": 4e-4, "tp_per_seq_s": 3e-5})})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(new=st.lists(st.integers(1, 2048), max_size=4),
       ctx=st.lists(st.integers(1, 8192), max_size=40),
       tp=st.sampled_from([1, 2]))
def test_engine_overhead_coefficients_add_exactly(new, ctx, tp) -> None:  # type: ignore
    prof = _with(H100, engine_overheads=ENGINES)
    est = estimate_step(LLAMA3_8B, H100, tp=tp, prefill_lens=new, decode_context_lens=ctx,
                        profile=prof, engine_overhead="vllm-test")
    plain = estimate_step(LLAMA3_8B, H100, tp=tp, prefill_lens=new, decode_context_lens=ctx,
                          profile=prof)
    if not new and not ctx:
        assert est.time_s == 0.0
        return
    seqs = len(new) + len(ctx)
    expected = 1.5e-3 + 2e-5 * seqs + ((4e-4 + 3e-5 * seqs) if tp > 1 else 0.0)
    assert est.breakdown["overhead_s"] == pytest.approx(expected, rel=1e-12)
    assert plain.breakdown["overhead_s"] == STEP_OVERHEAD_S
    for key in set(BREAKDOWN_KEYS) - {"overhead_s"}:
        assert est.breakdown[key] == plain.breakdown[key]
    # the aggregated form agrees exactly (sequences in step = prefill_seqs + decode_seqs)
    cost = StepCostModel(LLAMA3_8B, H100, tp=tp, profile=prof, engine_overhead="vllm-test")
    t = cost.time_s(sum(new), sum(n * n / 2 for n in new), len(ctx), sum(ctx),
                    prefill_seqs=len(new))
    assert t == est.time_s


def test_unknown_engine_lists_the_profiles_engines() -> None:
    prof = _with(H100, engine_overheads=ENGINES)
    with pytest.raises(ConfigError) as err:
        StepCostModel(LLAMA3_8B, H100, profile=prof, engine_overhead="sglang")
    assert err.value.key == "serving.engine_overhead" and err.value.allowed == "vllm-test"
    with pytest.raises(ConfigError, match="has no engine overheads") as err:
        StepCostModel(LLAMA3_8B, H100, profile=CATALOG_DEFAULTS, engine_overhead="vllm-test")
    assert err.value.key == "serving.engine_overhead"
    odd = _with(H100, engine_overheads=FrozenMap({"e": FrozenMap({"per_token_s": 1e-6})}))
    with pytest.raises(ConfigError, match="per_token_s") as err:
        StepCostModel(LLAMA3_8B, H100, profile=odd, engine_overhead="e")
    assert err.value.key == "engine_overheads.e" and "fixed_s" in str(err.value)


# ---------------------------------------------------------------- every profile argument


def test_every_cost_takes_a_profile_a_path_the_defaults_or_none(tmp_path: Path) -> None:
    path = tmp_path / "h100-sxm.json"
    path.write_text(json.dumps({
        "format": "fleetsim-profile", "version": 2, "device": "h100-sxm",
        "source": {"description": "hand-written test profile"},
        "elementwise": {"norm": {"x": [1e4, 1e9], "eff": [0.05, 0.4]}},
        "collectives": {"all_reduce": {"8": {"x": [1e4, 1e8], "busbw_Bps": [2e9, 3e11]}}},
        "engine_overheads": {"vllm-test": {"fixed_s": 1e-3}}}))
    loaded = ops.resolve_profile(H100, path)
    c = build_cluster(H100, 8)
    by_path = collective_time(c, range(8), "all_reduce", 1e6, profile=str(path))
    assert by_path == collective_time(c, range(8), "all_reduce", 1e6, profile=loaded)
    assert by_path != collective_time(c, range(8), "all_reduce", 1e6, profile=CATALOG_DEFAULTS)
    assert CommModel(c, path).profile == loaded
    assert CommModel(c, None).profile is ops.resolve_profile(H100, None)
    est = estimate_step(LLAMA3_8B, H100, tp=8, decode_context_lens=[100], profile=path,
                        engine_overhead="vllm-test")
    assert est.breakdown["overhead_s"] == 1e-3
    assert est == estimate_step(LLAMA3_8B, H100, tp=8, decode_context_lens=[100],
                                profile=loaded, engine_overhead="vllm-test")
    wrong = _with(A100)
    with pytest.raises(ConfigError, match="not 'h100-sxm'"):
        collective_time(c, range(8), "all_reduce", 1e6, profile=wrong)


def test_a_resolved_profile_is_passed_through_not_rebuilt() -> None:
    slow = _slow_norm(H100)
    assert ops.resolve_profile(H100, slow) is slow
    partial = dataclasses.replace(slow, memory=None)
    full = ops.resolve_profile(H100, partial)
    assert full is not partial and full.memory == ops.default_profile(H100).memory


# ---------------------------------------------------------------- monotone profiles


@st.composite
def monotone_curves(draw, lo: float = 1e3, hi: float = 1e10):  # type: ignore[no-untyped-def]
    """Random efficiency curves that satisfy ops.curve_is_monotone (never faster when bigger)."""
    n = draw(st.integers(1, 6))
    logs = sorted(draw(st.lists(st.floats(math.log(lo), math.log(hi)), min_size=n,
                                max_size=n, unique=True)))
    xs = [math.exp(v) for v in logs]
    ys = [draw(st.floats(0.01, 1.0))]
    for x0, x1 in zip(xs, xs[1:], strict=False):
        top = ys[-1] * (1.0 + math.log(x1 / x0))
        ys.append(min(1.0, draw(st.floats(0.2, 1.0)) * top))
    curve = Curve(tuple(xs), tuple(ys))
    assert ops.curve_is_monotone(curve)
    return curve


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(norm=monotone_curves(), act=monotone_curves(), gemm_memory=monotone_curves(),
       mb=st.integers(1, 4), s=st.sampled_from([256, 512, 1024, 2048]),
       sizes=st.lists(st.floats(1.0, 1e11), min_size=2, max_size=8))
def test_monotone_profiles_are_never_faster_for_more_work(norm, act, gemm_memory, mb, s,
                                                          sizes) -> None:  # type: ignore
    prof = _with(A100, elementwise=FrozenMap({NORM: norm, ElementwiseKind.ACTIVATION: act}),
                 gemm_memory=gemm_memory)
    ordered = sorted(sizes)
    for kind in (NORM, ElementwiseKind.ACTIVATION, None):
        times = [ops.memory_time(A100, b, prof, kind=kind) for b in ordered]
        assert all(t1 >= t0 * (1 - 1e-12) for t0, t1 in zip(times, times[1:], strict=False))
    gemms = [ops.gemm_time(A100, m, 4096, 4096, DType.BF16, prof) for m in (1, 2, 8, 64, 512)]
    assert all(t1 >= t0 * (1 - 1e-12) for t0, t1 in zip(gemms, gemms[1:], strict=False))
    kw = dict(micro_batch=mb, tp=1, profile=prof)
    a = layers.layer_forward_time(LLAMA3_8B, A100, seq_len=s, **kw).total_s
    b = layers.layer_forward_time(LLAMA3_8B, A100, seq_len=2 * s, **kw).total_s
    assert b >= a
    d1 = estimate_step(LLAMA3_8B, A100, decode_context_lens=[512] * mb, profile=prof).time_s
    d2 = estimate_step(LLAMA3_8B, A100, decode_context_lens=[512] * (2 * mb),
                       profile=prof).time_s
    assert d2 >= d1
