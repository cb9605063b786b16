"""plan_train: never returns an impossible or out-of-memory plan; finds the published Megatron
plans (or faster ones, as the simulator sees them); validates its input."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError, InfeasibleError
from hwmodels.memory import training_memory
from hwmodels.parallel import (
    FSDPImpl,
    ParallelConfig,
    PipelineSchedule,
    Recompute,
    TrainingConfig,
    check_plan,
)
from planners.executors import LocalExecutor
from planners.train import TrainEstimator, plan_train, plan_train_on
from planners.train_space import Candidate, TrainConstraints, enumerate_candidates, launchable
from simulator.training.simulate import simulate_iteration
from simulator.training.validation import load_published, row_setup

# Rows whose plan is a full Megatron/DeepSpeed parallel config (the acceptance set).
PUBLISHED_TABLES = ("SC21-T1", "SC21-T2", "KORTH-T3T5", "KORTH-s6.3")
# The published plan must rank in the planner's top 10 or be within 5% of the best plan found.
TOP_RANK = 10
NEAR_BEST = 0.05
# Published plans our memory model says do not fit 80 GiB (with the 5% head-room), so no
# planner may return them: SC'21 Table 2's 530B ZeRO-3 run on 640 GPUs (89.6 GiB predicted;
# the paper notes it "needed 640 GPUs & GBS 2560 to fit", i.e. it ran at the edge).
OVER_MEMORY = {("SC21-T2", "GPT-529.6B", 640)}


def _small_model(layers: int, heads: int, kv_heads: int, head_dim: int, vocab: int):
    return load_model({"name": "tiny", "model_type": "llama", "num_hidden_layers": layers,
                       "hidden_size": heads * head_dim, "num_attention_heads": heads,
                       "num_key_value_heads": kv_heads, "intermediate_size": 4 * heads * head_dim,
                       "vocab_size": vocab})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers=st.sampled_from([2, 3, 4, 6, 8, 12, 32]),
       heads=st.sampled_from([4, 6, 8, 12, 16, 32]),
       kv_div=st.sampled_from([1, 2, 4]), head_dim=st.sampled_from([64, 128]),
       n=st.sampled_from([1, 2, 4, 6, 8, 12, 16, 24, 32]),
       batch=st.sampled_from([1, 4, 6, 16, 32, 64]), seq=st.sampled_from([512, 2048, 8192]),
       device=st.sampled_from(["a100-40gb", "l4", "h100-sxm"]),
       headroom=st.sampled_from([0.0, 0.05, 0.3]))
def test_never_returns_invalid_or_oom_plan(layers, heads, kv_div, head_dim, n, batch, seq,
                                           device, headroom):
    kv = max(1, heads // kv_div) if heads % kv_div == 0 else heads
    model = _small_model(layers, heads, kv, head_dim, vocab=32000)
    per_node = 8 if n % 8 == 0 else (n if n < 8 else 4)
    cluster = build_cluster(device, n, devices_per_node=per_node)
    c = TrainConstraints(memory_headroom=headroom, micro_batches=(1, 2, 4))
    res = plan_train_on(model, cluster, seq_len=seq, global_batch=batch, constraints=c,
                        top_k=5, simulate_top=6)
    capacity = cluster.device.memory_bytes * (1 - headroom)
    assert res.considered == (res.pruned_divisibility + res.pruned_memory
                              + res.pruned_unlaunchable + res.estimated)
    assert all(not launchable(p) for p, _ in res.configs)
    assert len(res.plans) <= 5
    for parallel, training in res.configs:
        check_plan(model, cluster, training, parallel)  # raises on any divisibility breach
        assert parallel.world_size == n
        for stage in range(parallel.pp):
            assert training_memory(model, training, parallel, stage=stage).total_bytes <= capacity
    if len(res.plans) > 1:
        assert res.plans.tokens_per_s.is_monotonic_decreasing


def test_memory_pruning_rejects_what_would_oom():
    model = load_model("llama2-70b")
    cluster = build_cluster("a100-80gb", 8)
    # 70B on 8 GPUs: only sharded states with recompute could fit; no plan keeps full Adam
    # states replicated (zero 0 at tp*pp < 8 means > 80 GiB of states alone)
    cands, counts = enumerate_candidates(model, cluster, seq_len=4096, global_batch=64,
                                         constraints=TrainConstraints())
    assert counts.pruned_memory > 0
    for c in cands:
        assert not (c.parallel.zero == 0 and c.parallel.tp * c.parallel.pp < 8)


def test_estimate_tracks_simulation_on_other_schedules():
    """The closed form is within 5% of the simulator for ZB-H1, GPipe and overlapped DP."""
    setup = row_setup(load_published().query("source == 'SC21-T1'").iloc[6])  # 145.6B
    est = TrainEstimator(setup.model, setup.cluster, flash_attention=False)
    for schedule in (PipelineSchedule.ZB_H1, PipelineSchedule.GPIPE,
                     PipelineSchedule.ONE_F_ONE_B):
        for overlap in (False, True):
            from dataclasses import replace
            plan = replace(setup.parallel, schedule=schedule, vpp=1, overlap_grad_reduce=overlap)
            sim = simulate_iteration(setup.model, setup.cluster, setup.training, plan,
                                     flash_attention=False).iteration_time_s
            e = est.estimate([Candidate(parallel=plan, micro_batch=setup.training.micro_batch)],
                             seq_len=2048, global_batch=setup.training.global_batch,
                             dtype=setup.training.dtype).est_iteration_time_s.iloc[0]
            assert abs(e / sim - 1) < 0.05, (schedule, overlap, e, sim)


# The planner's closed form and the SimPy simulation share every cost (hwmodels.training); what
# only SimPy models is the pipeline itself: the exact bubble, stages waiting on each other, p2p
# link contention and the real windows gradient buckets overlap with. So pp = 1 agrees to
# rounding and deeper pipelines within PIPELINE_TOLERANCE (the closed-form bubble counts the
# last stage's logits in every fill/drain step; seen: +2.6% at pp 4).
PIPELINE_TOLERANCE = 0.04
_S = PipelineSchedule
AGREEMENT_PLANS = [
    *(dict(tp=2, pp=4, dp=8, vpp=vpp, schedule=sched, zero=zero, recompute="selective")
      for sched, vpp in ((_S.ONE_F_ONE_B, 1), (_S.INTERLEAVED, 3), (_S.ZB_H1, 1),
                         (_S.GPIPE, 1)) for zero in (0, 1, 3)),
    dict(tp=1, pp=1, dp=64, zero=3, fsdp_impl="deepspeed-2021", recompute="full"),
    dict(tp=2, pp=2, dp=16, zero=3, fsdp_impl="deepspeed-2021", recompute="full"),
    dict(tp=2, pp=1, dp=32, zero=3, overlap_grad_reduce=False),
    dict(tp=2, pp=1, dp=32, zero=1, overlap_grad_reduce=False, overlap_param_gather=False),
    dict(tp=1, pp=1, dp=64, zero=2, recompute="selective"),
]


@pytest.mark.parametrize("plan", AGREEMENT_PLANS, ids=lambda d: "-".join(map(str, d.values())))
def test_estimate_agrees_with_simulation(plan):
    """One cost path: estimate == simulation for pp = 1 (FSDP traits included), within the
    stated pipeline tolerance otherwise."""
    kw = dict(plan)
    kw["recompute"] = Recompute(kw.get("recompute", "none"))
    kw["fsdp_impl"] = FSDPImpl(kw.get("fsdp_impl", "nccl"))
    parallel = ParallelConfig(**kw)
    model = load_model("gpt-7.5b")
    cluster = build_cluster("a100-80gb", 64, inter_node="ib-hdr")
    training = TrainingConfig(seq_len=2048, global_batch=512, micro_batch=4)
    sim = simulate_iteration(model, cluster, training, parallel)
    est = TrainEstimator(model, cluster).estimate(
        [Candidate(parallel=parallel, micro_batch=4)], seq_len=2048, global_batch=512,
        dtype=training.dtype).iloc[0]
    if parallel.pp == 1:
        assert est.est_iteration_time_s == pytest.approx(sim.iteration_time_s, rel=1e-9)
        assert est.est_exposed_comm_s == pytest.approx(sim.breakdown.exposed_comm_s, rel=1e-9)
    else:
        assert abs(est.est_iteration_time_s / sim.iteration_time_s - 1) < PIPELINE_TOLERANCE


def test_estimate_honours_fsdp_traits():
    """Every FSDP stack costs the planner what it costs the simulator (pp = 1: exactly), and
    the stacks differ as their traits say: DeepSpeed-2021 (six gathers a layer, one ring,
    re-gather on recompute) > the scheduled stacks (prefetch-limited, contention) > ideal."""
    model = load_model("gpt-7.5b")
    cluster = build_cluster("a100-80gb", 64, inter_node="ib-hdr")
    est = TrainEstimator(model, cluster)
    training = TrainingConfig(seq_len=2048, global_batch=512, micro_batch=4)
    times = {}
    for impl in FSDPImpl:
        p = ParallelConfig(dp=64, zero=3, recompute=Recompute.FULL, fsdp_impl=impl)
        row = est.estimate([Candidate(parallel=p, micro_batch=4)], seq_len=2048,
                           global_batch=512, dtype=DType.BF16).iloc[0]
        sim = simulate_iteration(model, cluster, training, p)
        assert row.est_iteration_time_s == pytest.approx(sim.iteration_time_s, rel=1e-9), impl
        times[impl] = row.est_exposed_comm_s
    assert times[FSDPImpl.DEEPSPEED_2021] > 2 * times[FSDPImpl.NCCL] > 0
    for impl in (FSDPImpl.DEEPSPEED, FSDPImpl.FSDP1, FSDPImpl.FSDP2, FSDPImpl.MEGATRON):
        assert times[impl] > times[FSDPImpl.NCCL] > times[FSDPImpl.IDEAL] >= 0, impl
    # same per-layer units: Megatron reduces fp32 grads (FSDP1 bf16), FSDP2 adds its copy-out
    assert times[FSDPImpl.MEGATRON] > times[FSDPImpl.FSDP1]
    assert times[FSDPImpl.FSDP2] > times[FSDPImpl.FSDP1]


def _published_rows() -> list[pd.Series]:
    data = load_published()
    return [row for _, row in data.iterrows() if row.source in PUBLISHED_TABLES]


def _published_family(row: pd.Series, plans: pd.DataFrame) -> pd.DataFrame:
    """The estimated plans that match what the source publishes about its plan.

    Exact (tp, pp, dp, vpp) by default. Where the notes say the sc21 script set no vpp flag but
    the paper used the interleaved schedule, any vpp of the published (tp, pp, dp). Where the
    split was inferred from the paper's model-parallel size (SC'21 Table 2 PTD-P rows), any
    (tp, pp) with the published tp*pp and dp.
    """
    notes = str(row.notes)
    s = row_setup(row)
    p = s.parallel
    same_dp = plans.dp == p.dp
    if "inferred" in notes:
        return plans[same_dp & (plans.tp * plans.pp == p.tp * p.pp)]
    shape = same_dp & (plans.tp == p.tp) & (plans.pp == p.pp)
    if "no VPP flag" in notes:
        return plans[shape]
    return plans[shape & (plans.vpp == p.vpp)]


@pytest.fixture(scope="module")
def executor():
    with LocalExecutor(max_workers=2) as ex:
        yield ex


def test_finds_published_megatron_plans(executor):
    """For every published full parallel config (SC'21 Tables 1-2, Korthikanti Tables 3/5 and
    Sec. 6.3): the planner's best plan is at least as fast as the published plan (same
    simulator, same framework settings), and the published plan ranks in the top 10 (by the
    planner's estimate over the whole space) or is within 5% of the best (simulated).
    Search space: the published micro-batch, global batch, recompute, SP and ZeRO stage; TP,
    PP, vpp, DP and the schedule (1F1B or interleaved) are searched."""
    checked, report, over = 0, [], set()
    for row in _published_rows():
        s = row_setup(row)
        pub = simulate_iteration(s.model, s.cluster, s.training, s.parallel,
                                 flash_attention=s.flash_attention)
        if not pub.fits_memory:
            over.add((row.source, row.model, int(row.n_devices)))
            continue
        p = s.parallel
        c = TrainConstraints(
            micro_batches=(s.training.micro_batch,), recompute=(p.recompute,),
            sequence_parallel=(p.sequence_parallel,), zero=(p.zero,),
            schedules=(PipelineSchedule.ONE_F_ONE_B, PipelineSchedule.INTERLEAVED),
            overlap_grad_reduce=p.overlap_grad_reduce, flash_attention=s.flash_attention,
            # the published ZeRO-3 stack (SC'21 Table 2: deepspeed-2021), not the default one
            fsdp_impl=(p.fsdp_impl,) if p.zero == 3 else None)
        res = plan_train_on(s.model, s.cluster, seq_len=s.training.seq_len,
                            global_batch=s.training.global_batch, dtype=s.training.dtype,
                            constraints=c, top_k=TOP_RANK, simulate_top=3, executor=executor,
                            shape_probes=0)  # the ranked plans are what this checks
        best = res.best.tokens_per_s
        where = (row.source, row.model, s.config)
        assert best >= pub.tokens_per_s * (1 - 1e-9), (where, pub.tokens_per_s, best)
        family = _published_family(row, res.estimates)
        assert len(family), where  # the published plan is in the searched space
        top = family.iloc[0]  # estimates are sorted best first
        rank = int((res.estimates.est_tokens_per_s > top.est_tokens_per_s).sum()) + 1
        if rank > TOP_RANK:
            fam_plan, fam_training = _config_of(res, top, s)
            fam_tps = simulate_iteration(s.model, s.cluster, fam_training, fam_plan,
                                         flash_attention=s.flash_attention).tokens_per_s
            assert fam_tps >= (1 - NEAR_BEST) * best, (where, rank, fam_tps, best)
        report.append((where, rank))
        checked += 1
    assert over == OVER_MEMORY
    assert checked >= 30


def _config_of(res, row: pd.Series, setup):
    from dataclasses import replace

    plan = replace(setup.parallel, tp=int(row.tp), pp=int(row.pp), dp=int(row.dp),
                   vpp=int(row.vpp), schedule=PipelineSchedule(row.schedule))
    return plan, setup.training


def test_plan_train_list_of_counts_and_tokens():
    res = plan_train("llama3-8b", "h100-sxm", [8, 16], seq_len=4096,
                     global_batch_tokens=4096 * 64, top_k=3, simulate_top=3)
    assert set(res.plans.num_devices) <= {8, 16}
    assert len(res.plans) == 3
    assert res.plans.tokens_per_s.is_monotonic_decreasing
    d = res.to_dict()
    assert set(d["plans"][0]["breakdown"]) == {"compute_s", "exposed_comm_s", "bubble_s",
                                               "optimizer_s"}
    assert d["considered"] == res.considered > 0


@pytest.mark.parametrize("kwargs, key", [
    (dict(global_batch=None), "training.global_batch"),
    (dict(global_batch=64, global_batch_tokens=64 * 2048), "training.global_batch"),
    (dict(global_batch=64, constraints=TrainConstraints(max_tp=8), top_k=-1), "top_k"),
])
def test_bad_input_names_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        plan_train("llama3-8b", "h100-sxm", 8, seq_len=2048, **kwargs)


@pytest.mark.parametrize("kwargs, key", [
    (dict(recompute=("sometimes",)), "constraints.recompute"),
    (dict(schedules=("1f1b", "zigzag")), "constraints.schedules"),
    (dict(zero=(4,)), "constraints.zero"),
    (dict(memory_headroom=1.5), "constraints.memory_headroom"),
    (dict(tp=(0,)), "constraints.tp"),
])
def test_bad_constraints_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        TrainConstraints(**kwargs)


def test_no_plan_fits_is_a_clear_error():
    res = plan_train("llama3.1-405b", "l4", 8, seq_len=4096, global_batch=8, top_k=3)
    assert res.plans.empty and res.estimated == 0
    assert not res.feasible
    with pytest.raises(InfeasibleError, match="no plan fits: .* rejected .* by memory"):
        _ = res.best


# --- issue 15: uneven pipeline splits, credibility, every empty search a clear error ----------

from planners.credibility import best_published_mfu  # noqa: E402
from planners.executors import TaskResult  # noqa: E402
from planners.train_space import (  # noqa: E402
    UnevenPolicy,
    ends_minus_one,
    peak_memory_bytes,
    pipeline_splits,
)


def _shapes(model, cluster, policy, **kw):
    c = TrainConstraints(uneven=policy, micro_batches=(1,), zero=(1,), recompute=("selective",),
                         sequence_parallel=(True,), **kw)
    cands, _ = enumerate_candidates(model, cluster, seq_len=2048, global_batch=1024,
                                    constraints=c)
    return {(x.parallel.tp, x.parallel.pp, x.parallel.vpp, x.parallel.stage_layers)
            for x in cands}


def test_uneven_policy_decides_which_splits_are_searched():
    """40 layers (SC'21 GPT-18.4B) on 256 A100: pp4 vpp6 (1- and 2-layer chunks) only with
    uneven=any; the balanced pp16 split (3+2 layers, vpp 1) by default; none = v0.1's space."""
    row = load_published().query("source == 'SC21-T1' and model == 'GPT-18.4B'").iloc[0]
    s = row_setup(row)
    kw = dict(tp=(2,), pp=(4, 16), schedules=("1f1b", "interleaved"))
    default = _shapes(s.model, s.cluster, UnevenPolicy.MEGATRON, **kw)
    anything = _shapes(s.model, s.cluster, UnevenPolicy.ANY, **kw)
    even = _shapes(s.model, s.cluster, UnevenPolicy.NONE, **kw)
    assert (2, 4, 6, ()) in anything and (2, 4, 6, ()) not in default
    assert (2, 16, 1, ()) in default and (2, 16, 1, ()) not in even
    assert (2, 4, 5, ()) in even  # 40 = 4 x 5 x 2: even, always searched
    assert (2, 4, 1, (9, 11, 11, 9)) in default  # ends minus one
    assert even < default < anything
    for _, pp, vpp, _ in default:
        assert vpp == 1 or 40 % (pp * vpp) == 0  # no unequal interleaved chunks by default


@given(layers=st.integers(3, 200), pp=st.integers(3, 64))
def test_ends_minus_one_adds_up(layers, pp):
    if layers % pp or layers // pp < 2:
        assert not any(pipeline_splits(layers, pp, 1, UnevenPolicy.MEGATRON)[1:])
        return
    split = ends_minus_one(layers, pp)
    per = layers // pp
    assert sum(split) == layers and len(split) == pp and min(split) >= 1
    assert split[0] == split[-1] == per - 1
    assert max(split) <= per + (2 if pp == 3 else 1)


@settings(max_examples=15, deadline=None)
@given(split=st.sampled_from([(2, 9, 3, 2), (1, 2, 12, 1), (4, 4, 4, 4), (6, 3, 3, 4)]),
       mb=st.sampled_from([1, 2]), schedule=st.sampled_from(["1f1b", "zb-h1"]))
def test_memory_pruning_sees_the_heaviest_stage(split, mb, schedule):
    """The pre-simulation memory check equals the max over every stage for uneven splits."""
    model = _small_model(sum(split), 16, 16, 128, vocab=32000)
    p = ParallelConfig(pp=4, dp=2, stage_layers=split, schedule=PipelineSchedule(schedule))
    t = TrainingConfig(seq_len=2048, global_batch=16, micro_batch=mb)
    every = max(training_memory(model, t, p, stage=s).total_bytes for s in range(4))
    assert peak_memory_bytes(model, t, p) == every


def test_plans_name_their_pipeline_split():
    """Llama 3 405B on PP16 (126 layers) is searched and reported with its balanced split."""
    model = load_model("llama3.1-405b")
    cluster = build_cluster("h100-sxm", 1024, inter_node="ib-ndr")
    c = TrainConstraints(tp=(8,), pp=(16,), schedules=("1f1b",), micro_batches=(1,),
                         zero=(1,), recompute=("none",), sequence_parallel=(True,))
    res = plan_train_on(model, cluster, seq_len=8192, global_batch=64, constraints=c,
                        top_k=2, simulate_top=2)
    splits = set(res.plans.pipeline_split)
    assert "balanced 7+8x14+7" in splits
    d = res.to_dict()
    assert d["plans"][0]["pipeline_split"] in splits and "ib-ndr" in d["fabric"]


class _Fake:
    """An executor returning canned task results (no simulation)."""

    def __init__(self, make):
        self.make = make

    def map(self, fn, tasks):
        return [self.make(i) for i in range(len(tasks))]

    def close(self):
        pass


_OVER = {"iteration_time_s": 1.0, "tokens_per_s": 1.0, "mfu": 0.1, "hfu": 0.1,
         "tflops_per_gpu": 1.0, "peak_memory_gib": 1e6, "fits_memory": False,
         "compute_s": 1.0, "exposed_comm_s": 0.0, "bubble_s": 0.0, "optimizer_s": 0.0}


@pytest.mark.parametrize("executor, top_k, needle", [
    (_Fake(lambda i: TaskResult(index=i, ok=False, error="RuntimeError: boom")), 3,
     r"3 by simulation_failed.*; first failure: .*boom"),
    (_Fake(lambda i: TaskResult(index=i, ok=True, value=dict(_OVER))), 3, r"\d+ by memory"),
    (None, 0, r"\d+ by not_simulated"),
])
def test_every_empty_search_says_why(executor, top_k, needle):
    """All simulations failed / all over memory after simulation / nothing asked for: an
    empty result, an InfeasibleError naming the reason with its count."""
    res = plan_train("llama3-8b", "h100-sxm", 8, seq_len=2048, global_batch=16, top_k=top_k,
                     simulate_top=top_k, executor=executor,
                     constraints=TrainConstraints(micro_batches=(2,), zero=(1,)))
    assert not res.feasible and res.estimated > 0
    with pytest.raises(InfeasibleError, match=needle):
        _ = res.best
    assert res.to_dict()["credibility"] is None


# GPT-3 175B on 1,024 A100 (HDR 200G), seq 2048, batch 1536 (issue 15's must-show).
GPT3_A100 = dict(seq_len=2048, global_batch=1536)


@pytest.fixture(scope="module")
def gpt3_on_1024_a100():
    return plan_train("gpt3-175b", "a100-80gb", 1024, inter_node="ib-hdr", top_k=10,
                      **GPT3_A100)


def test_gpt3_175b_plan_is_flagged_and_not_pure_zero3(gpt3_on_1024_a100):
    """What this branch alone guarantees: no pure ZeRO-3 (tp1 pp1) plan in the top 10 on HDR,
    the fabric and every split named, and the credibility verdict agreeing with the bundled
    A100 ceilings: the class's best (llm-foundry's MPT-7b on 8 A100: MFU 64.2%) and the best
    on >= 256 GPUs (Korthikanti et al. 2022 Table 5, 1T on 512: MFU 56.3%)."""
    res = gpt3_on_1024_a100
    top = res.plans
    assert len(top) == 10
    assert not ((top.tp == 1) & (top.pp == 1) & (top.zero == 3)).any()
    assert "ib-hdr" in res.fabric
    ceiling = best_published_mfu("a100")
    assert ceiling is not None and ceiling.mfu == pytest.approx(0.6423)
    at_scale = best_published_mfu("a100", 256)
    assert at_scale is not None and at_scale.mfu == pytest.approx(0.563)
    cred = res.to_dict()["credibility"]
    assert cred["best_published_mfu"] == pytest.approx(0.6423)
    assert cred["min_devices_at_scale"] == 256
    assert cred["best_published_mfu_at_scale"] == pytest.approx(0.563)
    best = float(top.mfu.iloc[0])
    assert cred["exceeds"] == (best > 0.6423)
    assert cred["exceeds_at_scale"] == (best > 0.563)
    assert (res.credibility.warning() is not None) == cred["exceeds"]
    said = res.credibility.warning() or res.credibility.scale_note()
    assert (said is not None) == (cred["exceeds"] or cred["exceeds_at_scale"])


def test_gpt3_175b_megatron_shapes_lead_the_alternatives(gpt3_on_1024_a100):
    """The ranked table is one shape (tp4 pp8 / pp16) in ten variants; the best plan of each
    other shape is listed beside it: Megatron's TP8 shapes come first there (TP8 PP4 and
    TP8 PP8, within 6% of the best), each shape once, best first, every one simulated."""
    res = gpt3_on_1024_a100
    shapes = res.shapes
    key = ["num_devices", "tp", "pp", "cp", "ep"]
    assert len(shapes) == 10 and not shapes.duplicated(key).any()
    assert shapes.tokens_per_s.is_monotonic_decreasing
    assert float(shapes.tokens_per_s.iloc[0]) >= float(res.plans.tokens_per_s.iloc[0])
    shown = set(map(tuple, res.plans[key].to_numpy()))
    others = shapes[[tuple(r) not in shown for r in shapes[key].to_numpy()]]
    assert [(int(r.tp), int(r.pp)) for r in others.head(2).itertuples()] == [(8, 4), (8, 8)]
    tp8pp8 = others[(others.tp == 8) & (others.pp == 8)].iloc[0]
    assert float(tp8pp8.tokens_per_s) > 0.94 * float(res.plans.tokens_per_s.iloc[0])
    assert res.to_dict()["shapes"][0]["tp"] == int(shapes.tp.iloc[0])


@pytest.mark.xfail(strict=True, reason="unmet in part (issue 15 must-show 3): the best plan "
                   "(tp4 pp8 vpp6 dp32 zero1, FA2, no recompute) is predicted at 62.0% MFU, "
                   "within the published A100 range (llm-foundry MPT-7b on 8 GPUs: 64.2%, a "
                   "table the same model reproduces at 11.1% MAPE) but above every published "
                   "run on >= 256 A100 (56.3%); TP4 beats TP8 by ~3 points, so the best TP8 PP8 "
                   "plan (58.7%) ranks 22nd of the flat ranking, outside the top 10 (it is the "
                   "second alternative shape, see the test above). Not closed by a constant.")
def test_gpt3_175b_plan_is_within_published_reach(gpt3_on_1024_a100):
    """Issue 15 must-show: the best plan's MFU is within what published A100 runs reach and
    Megatron-style TP8 PP>=8 plans are among the top 10."""
    top = gpt3_on_1024_a100.plans
    assert top.mfu.iloc[0] <= best_published_mfu("a100").mfu
    assert ((top.tp == 8) & (top.pp >= 8)).any()


def _stack_plan(**stack: str):
    c = TrainConstraints(tp=(1,), pp=(1,), zero=(3,), recompute=(Recompute.FULL,),
                         micro_batches=(2,), **stack)
    return plan_train("llama3-8b", "h100-sxm", 8, seq_len=4096, global_batch=16, constraints=c,
                      top_k=1)


def test_plan_costs_the_constraints_stack_end_to_end():
    """The kernels and loss of the space reach the memory pruning, the estimate and the
    simulation alike, and the returned TrainingConfig carries them (what --export launches)."""
    fused, eager = _stack_plan(), _stack_plan(kernels="eager", loss_impl="eager-fp32")
    (_, t_fused), (p_eager, t_eager) = fused.configs[0], eager.configs[0]
    assert (str(t_fused.kernels), str(t_fused.loss_impl)) == ("fused", "fused")
    assert (str(t_eager.kernels), str(t_eager.loss_impl)) == ("eager", "eager-fp32")
    for column in ("est_iteration_time_s", "iteration_time_s", "peak_memory_gib"):
        assert eager.plans[column].iloc[0] > fused.plans[column].iloc[0], column
    model, cluster = load_model("llama3-8b"), build_cluster("h100-sxm", 8)
    again = simulate_iteration(model, cluster, t_eager, p_eager, profile=None)
    assert again.iteration_time_s == pytest.approx(float(eager.plans.iteration_time_s.iloc[0]))
    assert training_memory(model, t_eager, p_eager).total_bytes > \
        training_memory(model, replace(t_eager, loss_impl="fused"), p_eager).total_bytes


@pytest.mark.parametrize(("key", "value"), [("kernels", "triton"), ("attention_impl", "fa4"),
                                            ("loss_impl", "fp32")])
def test_constraints_refuse_an_unknown_stack(key, value):
    with pytest.raises(ConfigError) as err:
        TrainConstraints(**{key: value})
    assert err.value.key == f"constraints.{key}"


def test_unfused_attention_counts_the_scores_in_memory():
    """attention_impl unfused materializes s x s scores: the pruning's memory says so."""
    assert TrainConstraints().memory_flash_attention
    assert not TrainConstraints(attention_impl="unfused").memory_flash_attention


def test_shape_probes_cap_the_extra_simulations():
    """shape_probes=0 leaves the shapes to the ranked table's own plans; the default spends
    at most simulate_top more simulations; a negative count is refused."""
    kw = dict(seq_len=2048, global_batch=512, top_k=4, simulate_top=2,
              constraints=TrainConstraints(pp=(1, 2), micro_batches=(4,)))
    none = plan_train("gpt-7.5b", "a100-80gb", 64, shape_probes=0, **kw)
    some = plan_train("gpt-7.5b", "a100-80gb", 64, **kw)
    key = ["tp", "pp", "cp", "ep"]
    assert set(map(tuple, none.shapes[key].to_numpy())) <= set(map(tuple, none.plans[key]
                                                                   .to_numpy()))
    assert len(none.shapes) < len(some.shapes) <= len(none.shapes) + 2
    with pytest.raises(ConfigError) as err:
        plan_train("gpt-7.5b", "a100-80gb", 64, shape_probes=-1, **kw)
    assert err.value.key == "shape_probes"
