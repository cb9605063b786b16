"""The critical stage's compute split (breakdown.compute_terms) and the kernel choice in results."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError
from hwmodels.parallel import ParallelConfig, PipelineSchedule, TrainingConfig
from hwmodels.profile import CATALOG_DEFAULTS
from simulator.training.simulate import simulate_iteration

LLAMA8B = load_model("llama3-8b")
H100 = build_cluster("h100-sxm", 16, inter_node="ib-ndr")


def _run(plan: ParallelConfig, **training: object):  # type: ignore[no-untyped-def]
    t = TrainingConfig(seq_len=4096, global_batch=32, micro_batch=1, **training)
    return simulate_iteration(LLAMA8B, H100, t, plan, profile=CATALOG_DEFAULTS)


@pytest.mark.parametrize("plan", [
    ParallelConfig(tp=2, dp=8),
    ParallelConfig(tp=2, pp=2, dp=4, recompute="full"),
    ParallelConfig(tp=2, pp=2, dp=4, schedule=PipelineSchedule.ZB_H1, recompute="selective"),
])
def test_terms_sum_to_compute(plan: ParallelConfig) -> None:
    r = _run(plan)
    terms = r.breakdown.compute_terms
    assert set(terms) == {"gemm_s", "attention_s", "elementwise_s", "launch_s"}
    assert sum(terms.values()) == pytest.approx(r.breakdown.compute_s, rel=1e-9)
    assert all(v > 0 for v in terms.values())
    d = r.to_dict()
    assert d["breakdown"]["compute_terms"] == terms
    for key in ("compute_s", "exposed_comm_s", "bubble_s", "optimizer_s"):
        assert key in d["breakdown"]


def test_attention_kernel_is_reported_and_moves_the_attention_term() -> None:
    plan = ParallelConfig(tp=2, dp=8)
    fa2, fa3 = _run(plan, attention_impl="fa2"), _run(plan, attention_impl="fa3")
    assert (fa2.attention_kernel, fa3.attention_kernel) == ("fa2", "fa3")
    assert _run(plan).attention_kernel == "cudnn"  # auto, fused stack, Hopper
    assert fa3.breakdown.compute_terms["attention_s"] < fa2.breakdown.compute_terms["attention_s"]
    assert fa3.breakdown.compute_terms["gemm_s"] == pytest.approx(
        fa2.breakdown.compute_terms["gemm_s"])
    assert fa3.iteration_time_s < fa2.iteration_time_s


def test_eager_stack_is_slower_in_memory_bound_kernels() -> None:
    plan = ParallelConfig(tp=2, dp=8)
    fused, eager = _run(plan), _run(plan, kernels="eager", attention_impl="cudnn")
    assert eager.kernel_stack == "eager"
    assert eager.breakdown.compute_terms["elementwise_s"] > \
        2 * fused.breakdown.compute_terms["elementwise_s"]
    assert eager.breakdown.compute_terms["launch_s"] > fused.breakdown.compute_terms["launch_s"]
    assert eager.iteration_time_s > fused.iteration_time_s


def test_unfused_attention_impl_counts_the_score_memory() -> None:
    plan = ParallelConfig(tp=2, dp=8)
    assert _run(plan, attention_impl="unfused").peak_memory_gib > _run(plan).peak_memory_gib


def test_fa3_on_a100_is_a_config_error() -> None:
    a100 = build_cluster("a100-80gb", 16, inter_node="ib-hdr")
    t = TrainingConfig(seq_len=2048, global_batch=16, micro_batch=1, attention_impl="fa3")
    with pytest.raises(ConfigError, match="Hopper"):
        simulate_iteration(LLAMA8B, a100, t, ParallelConfig(tp=2, dp=8))


def test_cli_prints_the_rows_and_rejects_fa3_on_a100() -> None:
    base = [sys.executable, "-m", "fleetsim", "simulate", "train",
            "simulator/scenarios/gpt3-175b-a100.yaml"]
    out = subprocess.run(base, capture_output=True, text=True, check=True).stdout
    for row in ("GEMMs", "attention", "memory-bound kernels", "kernel launch gaps", "kernels"):
        assert row in out
    js = json.loads(subprocess.run(base + ["--json"], capture_output=True, text=True,
                                   check=True).stdout)
    assert js["attention_kernel"] == "fa2" and "compute_terms" in js["breakdown"]
    bad = subprocess.run(base + ["--set", "training.attention_impl=fa3"], capture_output=True,
                         text=True)
    assert bad.returncode == 2
    assert "attention_impl" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
