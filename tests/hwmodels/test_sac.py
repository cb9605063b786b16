"""torchtitan's per-op selective AC (Recompute.SELECTIVE_OP, hwmodels.sac): which matmuls it
saves and re-runs, what a block keeps, and how its memory and compute sit between none and
full recompute."""

from __future__ import annotations

import pytest

from hwmodels import flops, sac
from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError
from hwmodels.memory import activation_bytes_per_layer, training_memory
from hwmodels.parallel import FSDPImpl, ParallelConfig, Recompute, TrainingConfig, check_plan
from simulator.training.simulate import simulate_iteration

LLAMA8 = load_model("llama3-8b")


def test_llama_block_recomputes_wk_wo_w3() -> None:
    """torchtitan's llama3 block runs wq wk wv wo w1 w3 w2; every second mm is recomputed."""
    assert [m.name for m in sac.block_matmuls(LLAMA8, 1)] == \
        ["wq", "wk", "wv", "wo", "w1", "w3", "w2"]
    assert [m.name for m in sac.recomputed_matmuls(LLAMA8, 1)] == ["wk", "wo", "w3"]
    assert [m.name for m in sac.saved_matmuls(LLAMA8, 1)] == ["wq", "wv", "w1", "w2"]
    gpt = load_model("gpt-7.5b")  # non-gated MLP: fc1 saved, fc2 recomputed
    assert [m.name for m in sac.recomputed_matmuls(gpt, 1)] == ["wk", "wo", "fc2"]


def test_saved_bytes_by_hand() -> None:
    """Llama 3 8B, tp 1: input 4096 + wq 4096 + wv 1024 + w1 14336 + w2 4096 bf16 values,
    the attention output (32 x 128 bf16) and its log-sum-exp (32 fp32) per token."""
    expected = 2 * (4096 + 4096 + 1024 + 14336 + 4096) + 2 * 32 * 128 + 4 * 32
    assert sac.saved_bytes_per_token(LLAMA8, tp=1, sequence_parallel=False) == expected
    # tp 2 + SP: input and the two reduce-scatter outputs sequence-sharded, column outputs
    # split, w2's row-parallel output the full-width partial sum
    tp2 = (2 * 4096 / 2 + 2 * (2048 + 512 + 7168 + 4096) + 2 * 16 * 128 + 4 * 16
           + 2 * 2 * 4096 / 2)
    assert sac.saved_bytes_per_token(LLAMA8, tp=2, sequence_parallel=True) == tp2


@pytest.mark.parametrize("model", ["llama3-8b", "llama3-70b", "gpt-7.5b"])
@pytest.mark.parametrize("tp", [1, 2, 8])
def test_memory_between_full_and_none(model: str, tp: int) -> None:
    m = load_model(model)
    kw = dict(seq_len=4096, micro_batch=1, tp=tp, sequence_parallel=tp > 1)
    full, op, none = (activation_bytes_per_layer(m, recompute=r, **kw)
                      for r in (Recompute.FULL, Recompute.SELECTIVE_OP, Recompute.NONE))
    assert full < op < none


def test_hardware_flops_add_the_recomputed_matmuls() -> None:
    model_flops = flops.model_flops_per_iteration(LLAMA8, batch=2, seq_len=8192)
    hw = flops.hardware_flops_per_iteration(LLAMA8, batch=2, seq_len=8192,
                                            recompute=Recompute.SELECTIVE_OP)
    per_token = 2 * 4096 * (1024 + 4096 + 14336)  # wk, wo, w3
    assert hw - model_flops == pytest.approx(32 * 2 * 8192 * per_token)


def _run(recompute: Recompute):
    cluster = build_cluster("h100-sxm", 8)
    training = TrainingConfig(seq_len=8192, global_batch=16, micro_batch=2)
    plan = ParallelConfig(dp=8, zero=3, fsdp_impl=FSDPImpl.FSDP2, recompute=recompute)
    return simulate_iteration(LLAMA8, cluster, training, plan)


def test_iteration_and_peak_memory_between_none_and_full() -> None:
    none, op, full = (_run(r) for r in (Recompute.NONE, Recompute.SELECTIVE_OP,
                                        Recompute.FULL))
    assert none.iteration_time_s < op.iteration_time_s < full.iteration_time_s
    assert full.peak_memory_gib < op.peak_memory_gib < none.peak_memory_gib
    # the extra backward work is the recomputed matmuls plus the forward's memory-bound ops
    assert op.breakdown.compute_terms["elementwise_s"] > none.breakdown.compute_terms[
        "elementwise_s"]
    assert op.hfu > op.mfu


@pytest.mark.parametrize("name", ["mixtral-8x7b", "deepseek-v3"])
def test_moe_and_mla_models_are_refused(name: str) -> None:
    model = load_model(name)
    cluster = build_cluster("h100-sxm", 64)
    training = TrainingConfig(seq_len=4096, global_batch=64, micro_batch=1)
    plan = ParallelConfig(tp=8, dp=8, recompute=Recompute.SELECTIVE_OP)
    with pytest.raises(ConfigError, match="parallelism.recompute"):
        check_plan(model, cluster, training, plan)
    with pytest.raises(ConfigError, match="dense GQA/MHA"):
        training_memory(model, training, plan)
