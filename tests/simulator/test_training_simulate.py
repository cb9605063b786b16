"""simulate_iteration on small plans: contract fields, plan errors, overlap flags, memory fit,
placement groups, timeline/plot files and scenario parsing."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import yaml

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError
from hwmodels.parallel import ParallelConfig, PipelineSchedule, Recompute, TrainingConfig
from hwmodels.training.placement import pipeline_groups
from simulator.training import (
    TrainingPlan,
    TrainingResult,
    apply_overrides,
    load_training_scenario,
    simulate_iteration,
    simulate_training,
)
from simulator.training.plot import plot_pipeline
from simulator.training.timeline import write_chrome_trace

SCENARIOS = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"


def _gpt(layers: int = 8, hidden: int = 2048, heads: int = 16):  # type: ignore[no-untyped-def]
    return load_model({"name": "tiny-gpt", "model_type": "gpt2", "n_layer": layers,
                       "n_embd": hidden, "n_head": heads, "n_positions": 2048,
                       "vocab_size": 51200})


def _run(n: int = 16, **plan):  # type: ignore[no-untyped-def]
    cluster = build_cluster("a100-80gb", n, inter_node="ib-hdr")
    training = TrainingConfig(seq_len=2048, global_batch=plan.pop("global_batch", 32),
                              micro_batch=plan.pop("micro_batch", 1))
    model = plan.pop("model", None) or _gpt()
    timeline = plan.pop("timeline", False)
    return simulate_iteration(model, cluster, training, ParallelConfig(**plan),
                              timeline=timeline)


def test_contract_fields_and_breakdown_sums_to_iteration_time() -> None:
    r = _run(tp=2, pp=2, dp=4)
    d = r.to_dict()
    for key in ("iteration_time_s", "tokens_per_s", "tflops_per_gpu", "mfu", "hfu",
                "peak_memory_gib", "fits_memory", "breakdown", "num_microbatches"):
        assert key in d
    b = r.breakdown
    assert b.compute_s + b.exposed_comm_s + b.bubble_s + b.optimizer_s == \
        pytest.approx(r.iteration_time_s)
    assert r.num_microbatches == 32 // 4
    assert r.tokens_per_s == pytest.approx(32 * 2048 / r.iteration_time_s)
    assert 0 < r.mfu <= r.hfu < 1
    json.dumps(d)


@pytest.mark.parametrize(("n", "plan", "match"), [
    (16, dict(tp=2, pp=2, dp=2), "!= num_devices"),
    (16, dict(tp=16, pp=1, dp=1), "num_heads 12 not divisible by tp 16"),
    (24, dict(tp=1, pp=3, dp=8, global_batch=24, stage_layers=(2, 2, 2)),
     "stage_layers \\[2, 2, 2\\] add up to 6"),
    (16, dict(tp=2, pp=2, dp=4, global_batch=30), "global_batch 30 not divisible"),
])
def test_impossible_plans_are_one_line_config_errors(n: int, plan: dict, match: str) -> None:
    model = _gpt(hidden=1536, heads=12) if plan.get("tp") == 16 else None
    with pytest.raises(ConfigError, match=match) as err:
        _run(n=n, model=model, **plan)
    assert "\n" not in str(err.value)


def test_ep_must_divide_experts() -> None:
    cluster = build_cluster("h100-sxm", 8)
    with pytest.raises(ConfigError, match="ep 3 does not divide num_experts 8"):
        simulate_iteration(load_model("mixtral-8x7b"), cluster,
                           TrainingConfig(seq_len=4096, global_batch=8),
                           ParallelConfig(tp=1, dp=8, ep=3))


def test_moe_plan_with_expert_parallelism_simulates() -> None:
    cluster = build_cluster("h100-sxm", 64, inter_node="ib-ndr")
    plan = dict(tp=2, pp=4, dp=8, sequence_parallel=True, recompute=Recompute.FULL, zero=1)
    training = TrainingConfig(seq_len=4096, global_batch=64)
    mixtral = load_model("mixtral-8x7b")
    r1 = simulate_iteration(mixtral, cluster, training, ParallelConfig(ep=1, **plan))
    r8 = simulate_iteration(mixtral, cluster, training, ParallelConfig(ep=8, **plan))
    assert r8.iteration_time_s > 0 and r1.iteration_time_s > 0
    assert r8.peak_memory_gib < r1.peak_memory_gib  # experts split 8 ways


def test_overlap_off_is_never_faster() -> None:
    for plan in (dict(tp=2, pp=2, dp=4), dict(tp=1, pp=1, dp=16, zero=1),
                 dict(tp=4, pp=1, dp=4, sequence_parallel=True)):
        on = _run(overlap_grad_reduce=True, overlap_tp_comm=True, **plan)
        off = _run(overlap_grad_reduce=False, overlap_tp_comm=False, **plan)
        assert off.iteration_time_s >= on.iteration_time_s
    on = _run(tp=1, pp=1, dp=16)
    off = _run(tp=1, pp=1, dp=16, overlap_grad_reduce=False)
    assert off.iteration_time_s > on.iteration_time_s


def test_gpipe_uses_more_memory_than_1f1b_at_similar_time() -> None:
    one = _run(tp=2, pp=4, dp=2, global_batch=32)
    gp = _run(tp=2, pp=4, dp=2, global_batch=32, schedule=PipelineSchedule.GPIPE)
    assert gp.iteration_time_s == pytest.approx(one.iteration_time_s, rel=0.02)
    assert gp.peak_memory_gib > one.peak_memory_gib


def test_interleaved_and_zero_bubble_shrink_the_bubble() -> None:
    base = _run(tp=2, pp=4, dp=2, global_batch=16)
    inter = _run(tp=2, pp=4, dp=2, vpp=2, global_batch=16,
                 schedule=PipelineSchedule.INTERLEAVED)
    zb = _run(tp=2, pp=4, dp=2, global_batch=16, schedule=PipelineSchedule.ZB_H1)
    assert inter.breakdown.bubble_s < 0.7 * base.breakdown.bubble_s
    assert zb.breakdown.bubble_s < base.breakdown.bubble_s
    assert zb.iteration_time_s < base.iteration_time_s


def test_plan_that_does_not_fit_reports_it() -> None:
    cluster = build_cluster("a100-80gb", 8)
    r = simulate_iteration(load_model("gpt3-175b"), cluster,
                           TrainingConfig(seq_len=2048, global_batch=8),
                           ParallelConfig(tp=8, pp=1, dp=1))
    assert not r.fits_memory
    assert r.memory_needed_gib > r.memory_capacity_gib
    assert r.message.startswith("does not fit: needs ")
    assert f"{r.memory_needed_gib:.1f} GiB of {r.memory_capacity_gib:.1f} GiB" in r.message
    assert r.iteration_time_s > 0


def test_placement_groups_follow_megatron_order() -> None:
    g = pipeline_groups(ParallelConfig(tp=8, pp=4, dp=4))
    assert g[0].tp_group == tuple(range(8))
    assert g[0].dp_group == (0, 8, 16, 24)
    assert g[1].rank == 32 and g[0].next_rank == 32 and g[1].prev_rank == 0
    flipped = pipeline_groups(ParallelConfig(tp=8, pp=4, dp=4,
                                             rank_order=("tp", "cp", "ep", "pp", "dp")))
    assert flipped[1].rank == 8 and flipped[0].dp_group == (0, 32, 64, 96)
    moe = pipeline_groups(ParallelConfig(tp=2, dp=8, ep=4))
    assert moe[0].ep_group == (0, 2, 4, 6) and moe[0].expert_dp_group == (0, 8)


def test_dp_across_nodes_costs_more_than_inside_a_node() -> None:
    # same plan, only the rank order changes: DP inside the node (TP outside) is slower for TP
    inner_tp = _run(n=16, tp=8, dp=2)
    outer_tp = _run(n=16, tp=8, dp=2, rank_order=("dp", "cp", "ep", "tp", "pp"))
    assert outer_tp.iteration_time_s > inner_tp.iteration_time_s


def test_timeline_and_plot_files(tmp_path: Path) -> None:
    r = _run(tp=2, pp=4, dp=2, global_batch=8, timeline=True)
    assert r.timeline
    trace = write_chrome_trace(r.timeline, tmp_path / "out" / "trace.json")
    data = json.loads(trace.read_text())
    names = {e["args"]["name"] for e in data["traceEvents"] if e["name"] == "thread_name"}
    assert {"stage 0", "stage 3", "link 0->1", "link 1->0"} <= names
    xs = [e for e in data["traceEvents"] if e["ph"] == "X"]
    assert len([e for e in xs if e["cat"] == "compute"]) == 4 * 2 * 4  # stages x (F, B) x m
    png = plot_pipeline(r.timeline, tmp_path / "gantt.png")
    assert png.stat().st_size > 1000
    assert not list(tmp_path.glob("**/*.tmp"))


KNOWN_MEMORY_GAPS = frozenset({"deepseek-v3-h800.yaml"})


def test_bundled_scenarios_load_and_simulate() -> None:
    training = [p for p in sorted(SCENARIOS.glob("*.yaml"))
                if "training" in yaml.safe_load(p.read_text())]
    assert len(training) >= 3
    for path in training:
        sc = load_training_scenario(yaml.safe_load(path.read_text()), file=str(path))
        r = simulate_iteration(sc.model, sc.cluster, sc.training, sc.parallel)
        # DeepSeek-V3 runs as published (PP16 EP64, 1F1B holding 16 microbatches): our memory
        # model has no FP8 activation caching or SwiGLU recompute (report Sec. 3.3.3, 3.2.3),
        # so it needs ~148 GiB of 80 (a known gap, tests/simulator/test_moe_training.py)
        if path.name not in KNOWN_MEMORY_GAPS:
            assert r.fits_memory, path.name
        assert 0.2 < r.mfu < 0.75, path.name


def test_scenario_errors_name_file_key_and_allowed_values() -> None:
    base = yaml.safe_load((SCENARIOS / "llama3-70b-h100.yaml").read_text())
    bad = apply_overrides(base, ["parallelism.schedule=pipedream"])
    with pytest.raises(ConfigError, match="s.yaml: key 'parallelism.schedule'.*allowed: gpipe"):
        load_training_scenario(bad, file="s.yaml")
    bad = apply_overrides(base, ["parallelism.tpp=2"])
    with pytest.raises(ConfigError, match="key 'parallelism.tpp'.*allowed: tp, pp"):
        load_training_scenario(bad, file="s.yaml")
    bad = apply_overrides(base, ["cluster.device=a200"])
    with pytest.raises(ConfigError, match="a200"):
        load_training_scenario(bad, file="s.yaml")
    with pytest.raises(ConfigError, match="key 'trainig'"):
        load_training_scenario({**base, "trainig": {}}, file="s.yaml")


def test_overrides_and_dp_auto() -> None:
    base = yaml.safe_load((SCENARIOS / "llama3-70b-h100.yaml").read_text())
    sc = load_training_scenario(apply_overrides(base, ["parallelism.pp=8",
                                                       "parallelism.sequence_parallel=false",
                                                       "run.duration=2h"]))
    assert sc.parallel.pp == 8 and sc.parallel.dp == 512 // (8 * 8)
    assert sc.parallel.sequence_parallel is False
    assert sc.run is not None and sc.run.duration_s == 7200.0
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides(base, ["parallelism.pp"])


def test_deepspeed_2021_zero3_is_slower_across_nodes_and_parses() -> None:
    # One NCCL channel per collective + per-sub-module gathers + a re-gather for the recompute
    # (costs.FSDP_TRAITS): more exposed traffic than NCCL's multi-ring FSDP on 4 nodes.
    plan = dict(n=32, dp=32, zero=3, recompute=Recompute.FULL, global_batch=32)
    nccl = _run(**plan)
    ds = _run(**plan, fsdp_impl="deepspeed-2021")
    assert ds.iteration_time_s > 1.2 * nccl.iteration_time_s
    assert ds.breakdown.exposed_comm_s > nccl.breakdown.exposed_comm_s
    base = yaml.safe_load((SCENARIOS / "llama3-70b-h100.yaml").read_text())
    sc = load_training_scenario(apply_overrides(base, ["parallelism.fsdp_impl=deepspeed-2021"]))
    assert sc.parallel.fsdp_impl == "deepspeed-2021"
    with pytest.raises(ConfigError, match="key 'parallelism.fsdp_impl'.*allowed: nccl"):
        load_training_scenario(apply_overrides(base, ["parallelism.fsdp_impl=fairscale"]),
                               file="s.yaml")
    with pytest.raises(ConfigError, match="parallelism.fsdp_impl"):
        ParallelConfig(zero=3, fsdp_impl="fairscale")  # type: ignore[arg-type]


def test_simulate_training_is_the_typed_seam_over_simulate_iteration() -> None:
    cluster = build_cluster("a100-80gb", 16, inter_node="ib-hdr")
    training = TrainingConfig(seq_len=2048, global_batch=32, micro_batch=1)
    parallel = ParallelConfig(tp=2, pp=2, dp=4)
    plan = TrainingPlan(model=_gpt(), cluster=cluster, training=training, parallel=parallel)
    r = simulate_training(plan)
    assert isinstance(r, TrainingResult) and r.timeline is None
    assert r.to_dict() == simulate_iteration(_gpt(), cluster, training, parallel).to_dict()
    assert pickle.loads(pickle.dumps(plan)) == plan  # executors ship plans to workers


def test_training_plan_rejects_wrong_types_naming_the_field() -> None:
    cluster = build_cluster("a100-80gb", 16, inter_node="ib-hdr")
    with pytest.raises(ConfigError, match="plan.training.*must be a TrainingConfig"):
        TrainingPlan(model=_gpt(), cluster=cluster, training={"seq_len": 2048},  # type: ignore[arg-type]
                     parallel=ParallelConfig())
    with pytest.raises(ConfigError, match="plan.profile"):
        TrainingPlan(model=_gpt(), cluster=cluster, training=TrainingConfig(
            seq_len=2048, global_batch=32), parallel=ParallelConfig(), profile=3)  # type: ignore[arg-type]


def test_bundled_serving_scenarios_load_and_build_their_replicas() -> None:
    """Every shipped serving scenario (MI300X xGMI, TPU v5e JetStream included) loads and
    builds each replica group's step cost and KV pool; a short window of each runs in
    tests/fuzz (shipped kind)."""
    from simulator.serving.assemble import build_group_setup
    from simulator.serving.scenario import load_serving_scenario

    serving = [p for p in sorted(SCENARIOS.glob("*.yaml"))
               if "serving" in yaml.safe_load(p.read_text())]
    assert {"mi300x-node-serve.yaml", "llama2-7b-tpu-v5e-jetstream-serve.yaml"} <= \
        {p.name for p in serving}
    for path in serving:
        sc = load_serving_scenario(yaml.safe_load(path.read_text()), file=str(path))
        for group in sc.groups:
            setup = build_group_setup(sc, group)
            assert setup.step_cost(0, 0.0, 8, 8 * 512, 0, 0.0) > 0, path.name
