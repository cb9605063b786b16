"""Setups of the published Intel Gaudi training rows (simulator/data/training_published_gaudi.csv).

Registered through validation.ACCEL_MODULES (TABLE_SETUPS by the rows' `source`). Validation
only: no catalog constant is set from these rows.

Assumptions for DATABRICKS-GAUDI2 (Databricks blog, 2024-01-04, MPT-7B on 8x Gaudi 2 with LLM
Foundry):
- One HLS-Gaudi2 server: 8 cards on the 21-port RoCE all-to-all (gaudi2-roce mesh, 3 x 100 GbE
  per peer); a multi-node row would use the 3 scale-out ports per card (nics_per_node 24 of
  roce-100g).
- LLM Foundry's plan as in the FOUNDRY-H100 rows: PyTorch FSDP1 FULL_SHARD (zero 3), no
  activation checkpointing unless the notes say AC, bf16; the batch sizes are those of the
  H100 benchmarking table (the blog gives none). On HPU the graph compiler fuses elementwise
  ops (lazy mode), so kernels are `compiled` rather than llm-foundry's eager CUDA kernels.

Assumptions for MLPERF31-GAUDI2 (MLCommons Training v3.1, Intel-HabanaLabs GPT-3 175B on 256 /
384 Gaudi 2): the submission's plan (TP8, PP8 / PP6, DP4 / DP8, micro batch 2, global batch
2048, FP8 GEMMs, sequence parallel, selective recompute, ZeRO 0, DeepSpeed's 1F1B pipeline,
fused SDPA), the catalog gpt3-175b (vocab 51200), TP collectives not overlapped (Megatron-
DeepSpeed on HPU has no fused TP communication); 3 scale-out ports of 100 GbE per card.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pandas as pd

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.dtypes import DType
from hwmodels.parallel import (
    AttentionImpl,
    FSDPImpl,
    KernelStack,
    ParallelConfig,
    PipelineSchedule,
    Recompute,
    TPOverlapImpl,
    TrainingConfig,
)
from hwmodels.specs import ClusterSpec
from simulator.training.validation import RowSetup, _mpt

DATA_FILE = "training_published_gaudi.csv"
CARDS_PER_NODE = 8  # HLS-Gaudi2 / HLS-Gaudi3 server
SCALE_OUT_PORTS_PER_CARD = 3  # of the 24 on-chip RoCE ports (Gaudi 2 / Gaudi 3 white papers)


@functools.lru_cache(maxsize=8)
def hls_cluster(device: str, n: int) -> ClusterSpec:
    """HLS servers of 8 cards: the on-chip RoCE mesh inside, 3 scale-out ports per card."""
    out = {"gaudi2": "roce-100g", "gaudi3": "roce-200g"}[device]
    return build_cluster(device, n, devices_per_node=CARDS_PER_NODE,
                         intra_node=f"{device}-roce", inter_node=out,
                         nics_per_node=CARDS_PER_NODE * SCALE_OUT_PORTS_PER_CARD)


def _foundry_gaudi2_setup(row: pd.Series) -> RowSetup:
    """One LLM Foundry row on Gaudi 2 (module docstring)."""
    notes = str(row.notes)
    recompute = Recompute.FULL if "; AC" in notes else Recompute.NONE
    dp, micro = int(row.dp), int(row.microbatch)
    plan = ParallelConfig(tp=int(row.tp), pp=int(row.pp), dp=dp, zero=3, recompute=recompute,
                          overlap_grad_reduce=True, fsdp_impl=FSDPImpl.FSDP1)
    training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                              micro_batch=micro, dtype=DType.BF16,
                              attention_impl=AttentionImpl.AUTO, kernels=KernelStack.COMPILED)
    return RowSetup(model=_mpt(row), cluster=hls_cluster("gaudi2", int(row.n_devices)),
                    training=training, parallel=plan, flash_attention=True,
                    config=f"FSDP dp{dp} mb{micro} {recompute}")


def _mlperf_gaudi2_setup(row: pd.Series) -> RowSetup:
    """One MLPerf Training v3.1 GPT-3 175B row on Gaudi 2 (module docstring)."""
    tp, pp, dp, micro = int(row.tp), int(row.pp), int(row.dp), int(row.microbatch)
    plan = ParallelConfig(tp=tp, pp=pp, dp=dp, zero=0, sequence_parallel=tp > 1,
                          recompute=Recompute.SELECTIVE,
                          schedule=PipelineSchedule.ONE_F_ONE_B, overlap_grad_reduce=True,
                          tp_comm_overlap_impl=TPOverlapImpl.NONE)
    training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                              micro_batch=micro, dtype=DType.FP8,
                              attention_impl=AttentionImpl.AUTO, kernels=KernelStack.COMPILED)
    return RowSetup(model=load_model(str(row.model)),
                    cluster=hls_cluster("gaudi2", int(row.n_devices)), training=training,
                    parallel=plan, flash_attention=True,
                    config=f"tp{tp} pp{pp} dp{dp} mb{micro} sp fp8 selective")


TABLE_SETUPS: dict[str, Callable[[pd.Series], RowSetup]] = {
    "DATABRICKS-GAUDI2": _foundry_gaudi2_setup,
    "MLPERF31-GAUDI2": _mlperf_gaudi2_setup,
}
