"""Setups of the published MoE training rows (simulator/data/training_published_moe.csv).

validation.row_setup knows the dense tables; MoE rows need the catalog model (router, experts,
MLA), the EP plan and the source's MoE choices (all-to-all overlap, precision). Dispatch: a row
whose source is in MOE_SOURCES goes to row_setup_moe (import this module inside the function,
validation_moe imports validation). predict_row_moe also covers the metric these rows add,
model_TFLOPs_per_GPU (Megatron's model FLOPs, no recompute: TrainingResult.tflops_per_gpu).

Assumptions per source (the CSV comments cite them):
- MOE-DSV3 (DeepSeek-V3 report, arXiv 2412.19437): 2,048 H800, 8 per node, one 400 Gb/s IB
  NIC per GPU (ib-ndr); tp 1, PP16 with the balanced split of 61 layers, EP64, ZeRO-1, fp8
  GEMMs, ep_overlap dualpipe, selective recompute (Sec. 3.2.3 recomputes RMSNorm and the MLA
  up-projections), 1F1B bubble (the DualPipe schedule's own smaller bubble is not modelled),
  micro batch 1 (not published), router imbalance from the balls-in-bins default, dropless (the
  report's aux-loss-free balancing drops no tokens in training). Node-limited routing (each
  token to <= 4 nodes) and the fp8 dispatch are not modelled: cross-node all-to-all bytes are
  higher than DeepSeek's.
- MOE-MCORE (Megatron-Core 0.14 release notes, 468 TFLOP/s for Mixtral 8x7B bf16 on H100): the
  plan is not published; TP1 PP4 EP8 on 64 H100 (DGX, ib-ndr), seq 4096, GBS 256, micro batch
  1, ZeRO-1, selective recompute, no a2a overlap are assumptions (the CSV says so).
"""

from __future__ import annotations

import functools

import pandas as pd

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.layers import ProfileArg
from hwmodels.ops import resolve_profile
from hwmodels.parallel import EPOverlap, ParallelConfig, PipelineSchedule, Recompute, TrainingConfig
from hwmodels.profile import CATALOG_DEFAULTS
from hwmodels.specs import ClusterSpec
from simulator.training.simulate import simulate_iteration
from simulator.training.validation import RowSetup

DATA_FILE = "training_published_moe.csv"
MOE_SOURCES = ("MOE-DSV3", "MOE-MCORE")
# catalog name of each row's model; the row's dims are checked against it
_MODELS = {"DeepSeek-V3": "deepseek-v3", "Mixtral-8x7B": "mixtral-8x7b",
           "Mixtral-8x22B": "mixtral-8x22b"}
_DEVICES = {"H800": "h800", "H100-SXM": "h100-sxm"}


@functools.lru_cache(maxsize=8)
def _cluster(device: str, n: int) -> ClusterSpec:
    return build_cluster(device, n, devices_per_node=8, intra_node="nvlink4",
                         inter_node="ib-ndr")


def row_setup_moe(row: pd.Series) -> RowSetup:
    """Model, cluster, training and plan of one published MoE row (module docstring)."""
    source = str(row.source)
    if source not in MOE_SOURCES:
        raise ConfigError(f"unknown MoE source {source!r}", key="source",
                          allowed=list(MOE_SOURCES))
    name = _MODELS.get(str(row.model))
    if name is None:
        raise ConfigError(f"no catalog model for {row.model!r}", key="model",
                          allowed=sorted(_MODELS))
    model = load_model(name)
    if (model.num_layers, model.hidden_size) != (int(row.layers), int(row.hidden)):
        raise ConfigError(f"{row.model}: row dims {int(row.layers)} layers x {int(row.hidden)} "
                          f"do not match catalog {name}", key="model")
    device = _DEVICES[str(row.hardware)]
    n, tp, pp, dp, ep = (int(row.n_devices), int(row.tp), int(row.pp), int(row.dp),
                         int(row.ep))
    micro = int(row.microbatch)
    if source == "MOE-DSV3":
        dtype, overlap = DType.FP8, EPOverlap.DUALPIPE
    else:
        dtype, overlap = DType.BF16, EPOverlap.NONE
    plan = ParallelConfig(tp=tp, pp=pp, dp=dp, cp=int(row.cp), ep=ep, zero=1,
                          sequence_parallel=tp > 1, recompute=Recompute.SELECTIVE,
                          schedule=PipelineSchedule.ONE_F_ONE_B, ep_overlap=overlap)
    training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                              micro_batch=micro, dtype=dtype)
    config = f"tp{tp} pp{pp} dp{dp} ep{ep} zero1 {dtype} ep_overlap={overlap}"
    return RowSetup(model=model, cluster=_cluster(device, n), training=training, parallel=plan,
                    flash_attention=True, config=config)


def predict_row_moe(row: pd.Series, profile: ProfileArg = CATALOG_DEFAULTS) -> tuple[str, float]:
    """(config, predicted value of the row's metric) for a published MoE row."""
    setup = row_setup_moe(row)
    prof = resolve_profile(setup.cluster.device, profile)
    result = simulate_iteration(setup.model, setup.cluster, setup.training, setup.parallel,
                                profile=prof, flash_attention=setup.flash_attention)
    metric = str(row.metric)
    if metric == "tokens_per_s_per_GPU":
        return setup.config, result.tokens_per_s / setup.cluster.num_devices
    if metric == "model_TFLOPs_per_GPU":
        return setup.config, result.tflops_per_gpu
    if metric == "achieved_TFLOPs_per_GPU":
        return setup.config, result.hardware_tflops_per_gpu
    if metric == "iteration_time_s":
        return setup.config, result.iteration_time_s
    raise ConfigError(f"unknown metric {metric!r}", key="metric",
                      allowed=["tokens_per_s_per_GPU", "model_TFLOPs_per_GPU",
                               "achieved_TFLOPs_per_GPU", "iteration_time_s"])
