"""Setups of the published Ascend 910B training rows (simulator/data/training_published_ascend.csv).

Registered through validation.ACCEL_MODULES: TABLE_SETUPS maps the rows' `source` to the
function that builds model, cluster, training and plan. Validation only: no constant of the
catalog or of the TP-overlap model is set from these rows.

Assumptions for MINDSPEED-A2 (MindSpeed-LLM README @1ee58a55, 2024-10-12, Atlas 900 A2 PODc):
- Device: `ascend-910b` (the 910B2 bin, 24 cube cores at 1800 MHz); the README does not name
  the bin. Nodes of 8 NPUs on the HCCS full mesh (7 x 28 GB/s per direction), one 200GE RoCE
  port per NPU between nodes (roce-200g).
- Plan exactly as the row's script: TP/PP/DP, virtual stages from
  --num-layers-per-virtual-pipeline-stage (interleaved schedule when > 1 chunk), micro and
  global batch, sequence parallelism with TP, ZeRO-1 where --use-distributed-optimizer, no
  recompute, bf16, flash attention, fused kernels (fused RMSNorm/SwiGLU/RoPE).
- --use-mc2 with TP > 1: tp_comm_overlap_impl mindspeed-mc2 (hwmodels.training.tp_overlap).
- Catalog models (llama2-7b/13b/70b, llama3-8b, qwen2-7b/72b); each row's layers and hidden
  size are checked against the catalog entry.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import pandas as pd

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.parallel import (
    AttentionImpl,
    KernelStack,
    ParallelConfig,
    PipelineSchedule,
    Recompute,
    TPOverlapImpl,
    TrainingConfig,
)
from hwmodels.specs import ClusterSpec
from simulator.training.validation import RowSetup

DATA_FILE = "training_published_ascend.csv"
DEVICE = "ascend-910b"
NPUS_PER_NODE = 8  # Atlas 800T A2 / 900 A2 PoD node


@functools.lru_cache(maxsize=8)
def atlas_a2_cluster(n: int, device: str = DEVICE) -> ClusterSpec:
    """Atlas 800T A2 / 900 A2 PoD nodes: 8 NPUs on the HCCS mesh, roce-200g per NPU."""
    return build_cluster(device, n, devices_per_node=NPUS_PER_NODE, intra_node="hccs",
                         inter_node="roce-200g")


def _vpp(notes: str) -> int:
    found = re.search(r"VP (\d+)", notes)
    return int(found.group(1)) if found else 1


def _mindspeed_setup(row: pd.Series) -> RowSetup:
    """One MindSpeed-LLM README row (module docstring)."""
    notes = str(row.notes)
    model = load_model(str(row.model))
    if (model.num_layers, model.hidden_size) != (int(row.layers), int(row.hidden)):
        raise ConfigError(f"{row.model}: row dims {int(row.layers)} layers x {int(row.hidden)} "
                          f"do not match the catalog entry", key="model")
    tp, pp, dp = int(row.tp), int(row.pp), int(row.dp)
    vpp = _vpp(notes)
    zero = 1 if "distributed optimizer" in notes else 0
    mc2 = tp > 1 and "mc2" in notes
    plan = ParallelConfig(
        tp=tp, pp=pp, dp=dp, vpp=vpp, zero=zero,
        schedule=PipelineSchedule.INTERLEAVED if vpp > 1 else PipelineSchedule.ONE_F_ONE_B,
        sequence_parallel=tp > 1, recompute=Recompute.NONE,
        overlap_grad_reduce="overlap grad reduce" in notes,
        tp_comm_overlap_impl=TPOverlapImpl.MINDSPEED_MC2 if mc2 else TPOverlapImpl.NONE)
    training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                              micro_batch=int(row.microbatch), dtype=DType.BF16,
                              attention_impl=AttentionImpl.AUTO, kernels=KernelStack.FUSED)
    parts = [f"tp{tp}", f"pp{pp}", f"dp{dp}"] + ([f"vpp{vpp}"] if vpp > 1 else [])
    parts += [f"zero{zero}"] if zero else []
    parts += ["sp mc2"] if mc2 else []
    return RowSetup(model=model, cluster=atlas_a2_cluster(int(row.n_devices)),
                    training=training, parallel=plan, flash_attention=True,
                    config=" ".join(parts))


TABLE_SETUPS: dict[str, Callable[[pd.Series], RowSetup]] = {
    "MINDSPEED-A2": _mindspeed_setup,
}
