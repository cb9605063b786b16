"""Predicted vs published training performance for every row of the bundled validation data.

Each row's model is built from its dims, its cluster from its hardware, its plan from its
parallel columns plus what the source paper states (documented per table below). Nothing is
fitted per row, but two constants were chosen against these tables themselves (see "Fitted to
these rows" at the end), so the tables they touch are not independent checks of them.
The efficiency source is an argument (`profiles`: device -> DeviceProfile / path /
CATALOG_DEFAULTS / None = bundled); a device it does not name uses the catalog defaults.

Data: every simulator/data/training_published*.csv (comment lines cite the sources). Rows whose
source starts with "MOE-" are set up by simulator.training.validation_moe.row_setup_moe; where
that module is absent they are left out.

Assumptions per source:
- SC21-T1/T2 (Narayanan et al. SC'21): fp16 mixed precision; full activation recomputation
  (the paper's FLOP count, eq. 3, 96*B*s*l*h^2*(1 + s/6h + V/16lh), counts the recomputed
  forward, and Sec. 5 says all runs checkpoint activations); no sequence parallelism (it came
  with Korthikanti et al.); Megatron's unfused softmax attention (pre-FlashAttention); gradient
  all-reduce after the backward, not overlapped (Megatron 2021); interleaved schedule with the
  layers per virtual stage the notes give, vpp = 1 where the sc21 scripts set no vpp flag.
  The metric is hardware TFLOP/s per GPU (the 96-factor count). ZeRO-3 rows: DeepSpeed ZeRO-3
  (zero=3) with the same recompute; the paper's TFLOP/s use the same formula. They run with
  fsdp_impl = deepspeed-2021, whose framework constants (costs.FSDP_TRAITS) are: gathers per
  sub-module (6 per layer), a re-gather for the checkpointed recompute (3 gathers + 1
  reduce-scatter per layer per microbatch), and one NCCL channel (one HDR NIC, ~22 GB/s per
  rank) instead of NCCL's 8-NIC multi-ring ideal. The last is inferred from this table (its
  768- and 1536-GPU iterations both take ~67 s: fixed per-rank traffic at ~21 GB/s), so the
  Table 2 ZeRO-3 rows check the shape of the collapse, not an independent prediction. With
  NCCL's multi-channel bandwidth the collapse disappears (~210 TFLOP/s flat). The smallest
  scale of each model (384 / 640 GPUs) is over-predicted by ~26-31%: the prefetch model
  (gather hidden behind the previous layer's compute) overlaps more than DeepSpeed did.
  Per-sub-module latency of 1536/2240-rank rings (~2.4/3.4 ms per gather) costs ~2-5%.
- KORTH-* (Korthikanti et al. MLSys'23): fp16, unfused attention, "full" rows = full recompute
  without SP, "selective" rows = SP + selective recompute; schedules as in the notes; no
  gradient-reduce overlap (Sec. 6.3 states it); the Sec. 6.3 row is Table 5's 530B setting
  (interleaved, 3 virtual stages) with DP = 8. T4 rows: one 22B layer fwd+bwd on TP8, micro
  batch 4, including its exposed TP collectives.
- FOUNDRY-H100 (llm-foundry): bf16, FSDP FULL_SHARD = ZeRO-3 over all GPUs (fsdp_impl fsdp1,
  PyTorch FSDP1 as llm-foundry ran it), AC = full recompute, eager kernels, no dropout, grads
  reduced in fp32 ('DEFAULT' mixed precision; 'PURE' rows in bf16); MPT's Triton
  FlashAttention priced as FA2 (row_setup says why); MosaicML H100 nodes: 8x H100-SXM,
  NVLink4, 8x 400 Gb/s NDR NICs (3.2 Tb/s per node, MosaicML/Databricks cluster
  description). FOUNDRY-A100: the same stack and sweep on A100-80GB nodes.
- LLAMA3-T4 (Dubey et al. 2024, Table 4; uneven split): llama3.1-405b from the catalog, bf16;
  Grand Teton nodes (8x H100-80GB SXM, NVLink4) on RoCE 400 Gb/s per GPU (roce-400g); TP8 with
  sequence parallelism; PP16 with the interleaved schedule at vpp = 2 (the paper says
  interleaved with a tunable number of microbatches, not the vpp: 2 is our assumption) and
  the balanced split, which is the paper's Sec. 3.3.2 rule (first and last stage one layer
  fewer: 7+8x14+7, first and last virtual stage 3 of 4 layers); micro batch 1; global batch
  2048 sequences (16M tokens; 128 of 131,072 for the CP16 row); the paper's FSDP that shards
  optimizer state and gradients but does not reshard weights after the forward = zero 1
  (distributed optimizer) with overlapped reduce and gather; no activation recompute (none
  is stated); CP: ring (Meta's CP all-gathers K/V, the same volume); attention auto (the
  Hopper default), fused kernels. Metric: model TFLOP/s per GPU with our count (full s x s
  attention, no causal halving). The paper does not give its FLOP convention; for the
  131,072-token CP16 row the attention term is ~57% of the full-square count, so a causal
  count would put the published figure ~30% lower in our units: that row is +-30% uncertain.
- BLOOM-176B (Le Scao et al. 2022; uneven split): inline bloom dims (70 layers, hidden 14336,
  112 heads, vocab 250880 padded, ALiBi, tied embeddings, 176.247B parameters as published);
  384 A100-80GB on Jean Zay: NVLink3 in a node, 4x Omni-Path 100 Gb/s per node (OMNIPATH_100G
  below: the bandwidth is the published link rate; latency and collective efficiency are
  ib-hdr's, as no NCCL-over-OPA measurement was found); TP4 PP12 DP8, 1F1B, Megatron-
  DeepSpeed's partition 'type:transformer|embedding' = 72 units over 12 stages, i.e. the
  balanced split 5+6x10+5; micro batch 2, global batch 2048; bf16; full recompute
  (--checkpoint-activations); bf16 optimizer with its own ZeRO-1 = zero 1; no SP (not in
  Megatron-DeepSpeed 2022); fused softmax, not FlashAttention (2022); gradient reduce after
  the pipeline flush (DeepSpeed's pipeline engine), not overlapped. The training script
  sets CUDA_LAUNCH_BLOCKING=1 (not modelled). Metric: hardware TFLOP/s with Megatron-
  DeepSpeed's recompute-counting formula (= SC'21's), 156 = the paper's fastest configuration
  (~150 typical).
Held-out H100 tables (HELDOUT_H100_TABLES; validation only, no constant was set from them):
- MEGATRON-H100 (Megatron-LM README weak-scaling table, Megatron-Core r0.8.0, July 2024): GPT
  dims from the table, ffn 4h, vocab 131072, seq 4096, untied embeddings (the parameter
  counts need them: 1.7B = 24 layers of 2048 + 2 x 131072 x 2048), learned positions, GELU;
  DGX H100 nodes (NVLink4, 8x NDR 400G: ib-ndr); bf16 (the MFU column is against 989 TFLOP/s);
  distributed optimizer (zero 1, which --overlap-param-gather requires) with overlapped
  grad reduce and param gather; SP and overlapped TP comm where TP > 1 (--tp-comm-overlap
  needs SP); vpp = 1 and micro batch 1 (the README gives neither: the same rule as SC21's "no
  VPP flag"), no recompute (none stated); attention auto (Transformer Engine's fused
  attention on Hopper), fused kernels. Metric: model TFLOP/s per GPU (Megatron's count, full
  s x s attention: our count).
- TITAN-H100 (torchtitan docs/performance.md, Jan 2025): llama3.1-8b from the catalog, seq
  8192 (the llama3_8b.toml default), local batch 2, FSDP2 over all GPUs (zero 3, fsdp_impl
  fsdp2), recompute selective-op for "selective AC" (torchtitan's per-op policy: the
  llama3_8b.toml of 9dec370, the torchtitan the tables ran, sets selective_ac_option = 'op';
  hwmodels.sac), bf16 (Float8 rows left out);
  attention fa2 (PyTorch SDPA's flash backend is FlashAttention-2); kernels eager, or
  compiled for the torch.compile rows; Grand Teton H100 with the source's own memory: 96 GB
  HBM2e at 2.4 TB/s (the catalog h100-sxm's memory and bandwidth replaced) and its "default
  500W power limit" (cluster power_cap_w 500 of the 700 W TDP: hwmodels.power.power_capped
  runs compute-bound kernels at 0.81 x the uncapped SM clock, from the power model calibrated
  on Splitwise's DGX-H100 capping runs; no measurement of H100 GEMM rate at 500 W was found,
  so that factor is the model's, not measured); RoCE 400 Gb/s per GPU (roce-400g) across
  nodes.
- NEMO-H100 (Megatron-Bridge performance summary, 25.09 container, DGX-H100): catalog llama
  models; dtype fp8 for "FP8-CS" (Transformer Engine FP8 GEMMs; fleetsim's fp8 runs every
  GEMM at the catalog fp8 rate and keeps no bf16 master-weight traffic distinction, a
  simplification); TP/PP/CP/VP/GBS/MBS as published; distributed optimizer (zero 1) or
  Megatron-FSDP (zero 3, fsdp_impl megatron) for the "FSDP 8" row; SP and TP-comm overlap
  where TP > 1; no recompute (none stated); the 405B row's 126 layers on PP8 x VP8 use the
  balanced split (NeMo's account_for_embedding/loss_in_pipeline_split: 1+2x62+1 per virtual
  stage). Metric: tokens/s per GPU.
- FOUNDRY-H100 rows are held out too (reported, never tuned; see below).
Clusters: Selene DGX A100 nodes (8x A100-80GB, NVLink3, 8x 200 Gb/s HDR InfiniBand).
Fitted to these rows (end-to-end rows are meant for validation only; both are defects of the
catalog kept because changing them moves the goldens, and a profile fitted to kernel timings
replaces the first):
- A100 bf16/fp16 gemm_efficiency 0.72 (devices.yaml, a100-40gb/a100-80gb) was chosen as the
  value that makes SC21-T1 + KORTH-* fit (TARGET MAPE 4.6%; 12.5% at 0.82). The kernel-level
  measurement says otherwise: Vidur's A100 mlp_up_proj at 4096 tokens (58 shapes of 8 models,
  TP 1-8, ../shared/calibration-data/vidur) runs at a median 0.764 of the 312 TFLOP/s peak
  (0.70-0.86). With 0.764 as the plateau the TARGET MAPE is 7.4% (worst row 17.5%, SC21-T1).
  So the TARGET tables at catalog defaults validate a constant tuned on them, and the A100
  BLOOM-176B row shares that constant (it is not an independent check of it either).
- FSDP_TRAITS[deepspeed-2021].channels = 1 (hwmodels/training/costs.py) is inferred from
  SC21-T2's own ZeRO-3 rows (their 768/1536-GPU iterations): those rows check the shape of
  the collapse, not an independent prediction.
Not fitted to any row: every H100 constant (devices.yaml h100-sxm: gemm_efficiency 0.72 is
Vidur's isolated-GEMM median, attention 0.55, memory 0.85), the links' bandwidths and
efficiencies, and every assumption above, which were written before the rows were run.
FOUNDRY-H100 rows are reported, not tuned: over-predicted by 22-54% (predicted MFU 0.51-0.64 vs
published 0.37-0.46) with almost no exposed communication, i.e. the gap is in compute
efficiency, not in FSDP traffic. It is not the GEMM plateau: Vidur's H100 mlp_up_proj at 4096
tokens runs at a median 0.724 of 989 TFLOP/s, the catalog's 0.72 (an isolated-GEMM figure, not
fitted to these rows); FA3-level attention 0.55 and no eager-PyTorch elementwise overhead are
the untested suspects. No principled constant was found for it.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from hwmodels.catalog import load_device, load_model
from hwmodels.cluster import build_cluster
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.layers import ProfileArg
from hwmodels.ops import resolve_profile
from hwmodels.parallel import (
    AttentionImpl,
    FSDPImpl,
    KernelStack,
    LossImpl,
    ParallelConfig,
    PipelineSchedule,
    Recompute,
    TrainingConfig,
    describe_split,
    stage_layer_counts,
)
from hwmodels.profile import CATALOG_DEFAULTS, DeviceProfile
from hwmodels.specs import ClusterSpec, LinkKind, LinkSpec, ModelSpec, Topology
from hwmodels.training.comm import CommModel
from hwmodels.training.costs import ChunkCostModel
from hwmodels.training.placement import pipeline_groups
from simulator.training.simulate import simulate_iteration

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
DATA_FILE = "training_published.csv"  # the main file; every training_published*.csv is read
DATA_GLOB = "training_published*.csv"
# The tables whose MAPE is the fidelity target of issue 3 (and of the validation test).
TARGET_TABLES = ("SC21-T1", "KORTH-T3T5", "KORTH-s6.3", "KORTH-T4")
MAPE_TARGET_PCT = 10.0
MAX_ROW_ERROR_PCT = 20.0
# H100 rows no constant was set from (issue 15): reported by benchmarks/training_heldout.py.
HELDOUT_H100_TABLES = ("FOUNDRY-H100", "LLAMA3-T4", "MEGATRON-H100", "TITAN-H100", "NEMO-H100")
# A100 rows no constant was set from: the same llm-foundry stack as FOUNDRY-H100, on A100.
HELDOUT_A100_TABLES = ("FOUNDRY-A100",)
# Tables that run a published plan whose pp (x vpp) does not divide the layers (issue 15).
UNEVEN_SPLIT_TABLES = ("LLAMA3-T4", "BLOOM-176B")
MOE_PREFIX = "MOE-"  # rows set up by simulator.training.validation_moe.row_setup_moe
MOE_MODULE = "simulator.training.validation_moe"

# Jean Zay's scale-out fabric (BLOOM): Intel Omni-Path 100 Gb/s, 4 links per 8-GPU node (Le
# Scao et al. 2022, Sec. 3.4.1). Bandwidth = the link rate; latency and NCCL bus-bandwidth
# efficiency are ib-hdr's (links.yaml), as no NCCL-over-OPA measurement was found.
OMNIPATH_100G = LinkSpec(name="omnipath-100g", kind=LinkKind.SCALE_OUT, bandwidth_Bps=12.5e9,
                         latency_s=5e-6, efficiency=0.88,
                         source="Intel Omni-Path 100 Series (2015) link rate; BLOOM paper "
                                "Sec. 3.4.1; latency/efficiency borrowed from ib-hdr")
# torchtitan's Grand Teton H100 (docs/performance.md): 96 GB HBM2e at 2.4 TB/s per GPU.
GRAND_TETON_HBM2E_BYTES = 96e9
GRAND_TETON_HBM2E_BW_BPS = 2.4e12
# ... run at "the default 500W power limit" (same page; the H100 SXM's TDP is 700 W)
GRAND_TETON_POWER_LIMIT_W = 500.0


def _grad_reduce(dtype: str) -> dict[str, str]:
    """{'grad_reduce_dtype': dtype} where ParallelConfig has the field: benchmarks/
    training_heldout.py --ref runs today's row setups on older models, which reduce as their
    stacks did."""
    return {"grad_reduce_dtype": dtype} if "grad_reduce_dtype" in ParallelConfig.__dataclass_fields__ \
        else {}


def _moe_row_setup() -> Callable[[pd.Series], RowSetup] | None:
    """validation_moe.row_setup_moe where that module exists (helper moe's branch), else None."""
    try:
        module = importlib.import_module(MOE_MODULE)
    except ModuleNotFoundError as err:
        if err.name != MOE_MODULE:
            raise
        return None
    return module.row_setup_moe


def load_published(data_dir: Path | None = None) -> pd.DataFrame:
    """Every bundled validation CSV (training_published*.csv, the main file first; comment
    lines cite the sources), one frame; MOE- rows only where their setup module exists."""
    folder = DATA_DIR if data_dir is None else Path(data_dir)
    files = sorted(folder.glob(DATA_GLOB), key=lambda f: (f.name != DATA_FILE, f.name))
    frames = [pd.read_csv(f, comment="#") for f in files]
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(data) and _moe_row_setup() is None:
        data = data[~data.source.astype(str).str.startswith(MOE_PREFIX)].reset_index(drop=True)
    return data


@dataclass(frozen=True, slots=True, kw_only=True)
class RowSetup:
    model: ModelSpec
    cluster: ClusterSpec
    training: TrainingConfig
    parallel: ParallelConfig
    flash_attention: bool
    config: str


def _gpt(row: pd.Series, *, tied: bool = True) -> ModelSpec:
    vocab = int(row.vocab) if pd.notna(row.vocab) else 51200
    return load_model({
        "name": str(row.model), "model_type": "gpt2", "n_layer": int(row.layers),
        "n_embd": int(row.hidden), "n_head": int(row.heads), "n_inner": int(row.ffn),
        "n_positions": int(row.seq_len), "vocab_size": vocab, "tie_word_embeddings": tied})


def _mpt(row: pd.Series) -> ModelSpec:
    return load_model({
        "name": str(row.model), "model_type": "mpt", "n_layers": int(row.layers),
        "d_model": int(row.hidden), "n_heads": int(row.heads),
        "expansion_ratio": int(row.ffn) // int(row.hidden), "max_seq_len": int(row.seq_len),
        "vocab_size": 50368, "no_bias": True, "learned_pos_emb": True})


def _bloom(row: pd.Series) -> ModelSpec:
    return load_model({
        "name": str(row.model), "model_type": "bloom", "n_layer": int(row.layers),
        "hidden_size": int(row.hidden), "n_head": int(row.heads),
        "vocab_size": int(row.vocab), "seq_length": int(row.seq_len)})


@functools.lru_cache(maxsize=8)
def _selene(n: int) -> ClusterSpec:
    return build_cluster("a100-80gb", n, devices_per_node=8, intra_node="nvlink3",
                         inter_node="ib-hdr")


@functools.lru_cache(maxsize=8)
def _mosaic_h100(n: int) -> ClusterSpec:
    return build_cluster("h100-sxm", n, devices_per_node=8, intra_node="nvlink4",
                         inter_node="ib-ndr")


@functools.lru_cache(maxsize=8)
def _mosaic_a100(n: int) -> ClusterSpec:
    """llm-foundry's A100 table: 8x A100-80GB SXM, NVLink3, "1600 Gbps node-node interconnect
    (RoCE)" = 8 x 200 GbE RoCE per node."""
    return build_cluster("a100-80gb", n, devices_per_node=8, intra_node="nvlink3",
                         inter_node="roce-200g")


@functools.lru_cache(maxsize=8)
def _dgx_h100(n: int) -> ClusterSpec:
    """NVIDIA's DGX H100 clusters (Megatron-LM, NeMo tables): NVLink4, 8x NDR 400G per node."""
    return build_cluster("h100-sxm", n, devices_per_node=8, intra_node="nvlink4",
                         inter_node="ib-ndr")


@functools.lru_cache(maxsize=8)
def _meta_roce_h100(n: int) -> ClusterSpec:
    """Meta's Llama 3 cluster (Dubey et al. Sec. 3.3.1): Grand Teton, RoCE 400 Gb/s per GPU."""
    return build_cluster("h100-sxm", n, devices_per_node=8, intra_node="nvlink4",
                         inter_node="roce-400g")


@functools.lru_cache(maxsize=8)
def _titan_h100(n: int) -> ClusterSpec:
    """torchtitan's Grand Teton H100s: the source's 96 GB HBM2e at 2.4 TB/s and 500 W power
    limit, RoCE 400G."""
    device = replace(load_device("h100-sxm"), memory_bytes=GRAND_TETON_HBM2E_BYTES,
                     memory_bw_Bps=GRAND_TETON_HBM2E_BW_BPS)
    return build_cluster(device, n, devices_per_node=8, intra_node="nvlink4",
                         inter_node="roce-400g", power_cap_w=GRAND_TETON_POWER_LIMIT_W)


@functools.lru_cache(maxsize=8)
def _jean_zay(n: int) -> ClusterSpec:
    """BLOOM's Jean Zay A100 partition: NVLink3, 4x Omni-Path 100 Gb/s per node, fat tree."""
    return build_cluster("a100-80gb", n, devices_per_node=8, intra_node="nvlink3",
                         inter_node=OMNIPATH_100G, nics_per_node=4, topology=Topology.FAT_TREE)


def _vpp(row: pd.Series) -> int:
    """Virtual stages from the notes' "N layers/virtual stage" or "N virtual stages"; Sec. 6.3
    of Korthikanti et al. reruns its Table 5 530B setting (3 virtual stages) with DP = 8."""
    notes = str(row.notes)
    if str(row.source) == "KORTH-s6.3":
        return 3
    layers_per_stage = int(row.layers) // int(row.pp)
    if "layers/virtual stage" in notes or "layer/virtual stage" in notes:
        per_virtual = int(notes.split("(")[1].split(" ")[0])
        return layers_per_stage // per_virtual
    if "virtual stages" in notes:
        return int(notes.split("interleaved ")[1].split(" ")[0])
    return 1


def _describe(p: ParallelConfig, model: ModelSpec, recompute: Recompute, *,
              extra: str = "") -> str:
    """The plan as a short string; an uneven pipeline split is appended as [describe_split]."""
    parts = [f"tp{p.tp}"] + ([f"cp{p.cp}"] if p.cp > 1 else []) + [f"pp{p.pp}", f"dp{p.dp}"]
    parts += [f"vpp{p.vpp}"] if p.vpp > 1 else []
    parts += [f"zero{p.zero}"] if p.zero else []
    parts += ["sp"] if p.sequence_parallel else []
    parts += [extra] if extra else []
    parts.append(str(recompute))
    counts = stage_layer_counts(model.num_layers, p)
    if len(set(counts)) > 1:
        parts.append(f"[{describe_split(counts, p)}]")
    return " ".join(parts)


def _schedule(vpp: int) -> PipelineSchedule:
    return PipelineSchedule.INTERLEAVED if vpp > 1 else PipelineSchedule.ONE_F_ONE_B


def _llama3_setup(row: pd.Series) -> RowSetup:
    """Dubey et al. Table 4 (assumptions in the module docstring)."""
    tp, pp, dp, cp = int(row.tp), int(row.pp), int(row.dp), int(row.cp)
    vpp = 2  # "interleaved" (Sec. 3.3.2) without the number: our assumption
    plan = ParallelConfig(tp=tp, pp=pp, dp=dp, cp=cp, vpp=vpp, schedule=_schedule(vpp), zero=1,
                          sequence_parallel=tp > 1, recompute=Recompute.NONE,
                          overlap_grad_reduce=True, overlap_param_gather=True)
    training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                              micro_batch=int(row.microbatch), dtype=DType.BF16,
                              attention_impl=AttentionImpl.AUTO, kernels=KernelStack.FUSED)
    model = load_model(str(row.model))
    return RowSetup(model=model, cluster=_meta_roce_h100(int(row.n_devices)),
                    training=training, parallel=plan, flash_attention=True,
                    config=_describe(plan, model, plan.recompute))


def _bloom_setup(row: pd.Series) -> RowSetup:
    """BLOOM-176B on Jean Zay (assumptions in the module docstring)."""
    tp, pp, dp = int(row.tp), int(row.pp), int(row.dp)
    plan = ParallelConfig(tp=tp, pp=pp, dp=dp, zero=1, recompute=Recompute.FULL,
                          schedule=PipelineSchedule.ONE_F_ONE_B, overlap_grad_reduce=False)
    training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                              micro_batch=int(row.microbatch), dtype=DType.BF16,
                              attention_impl=AttentionImpl.UNFUSED, kernels=KernelStack.FUSED)
    model = _bloom(row)
    return RowSetup(model=model, cluster=_jean_zay(int(row.n_devices)), training=training,
                    parallel=plan, flash_attention=False,
                    config=_describe(plan, model, plan.recompute))


def _megatron_h100_setup(row: pd.Series) -> RowSetup:
    """Megatron-LM README H100 weak scaling (assumptions in the module docstring)."""
    tp, pp, dp = int(row.tp), int(row.pp), int(row.dp)
    plan = ParallelConfig(tp=tp, pp=pp, dp=dp, zero=1, sequence_parallel=tp > 1,
                          overlap_tp_comm=tp > 1, recompute=Recompute.NONE,
                          overlap_grad_reduce=True, overlap_param_gather=True)
    training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                              micro_batch=int(row.microbatch), dtype=DType.BF16,
                              attention_impl=AttentionImpl.AUTO, kernels=KernelStack.FUSED)
    model = _gpt(row, tied=False)
    return RowSetup(model=model, cluster=_dgx_h100(int(row.n_devices)), training=training,
                    parallel=plan, flash_attention=True,
                    config=_describe(plan, model, plan.recompute))


def _titan_setup(row: pd.Series) -> RowSetup:
    """torchtitan Llama 3.1 8B FSDP2 rows (assumptions in the module docstring)."""
    compiled = "torch.compile" in str(row.notes)
    kernels = KernelStack.COMPILED if compiled else KernelStack.EAGER
    plan = ParallelConfig(tp=int(row.tp), pp=int(row.pp), dp=int(row.dp), zero=3,
                          fsdp_impl=FSDPImpl.FSDP2, recompute=Recompute.SELECTIVE_OP,
                          overlap_grad_reduce=True)
    training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                              micro_batch=int(row.microbatch), dtype=DType.BF16,
                              attention_impl=AttentionImpl.FA2, kernels=kernels,
                              loss_impl=LossImpl.EAGER_FP32)
    model = load_model(str(row.model))
    return RowSetup(model=model, cluster=_titan_h100(int(row.n_devices)), training=training,
                    parallel=plan, flash_attention=True,
                    config=_describe(plan, model, plan.recompute,
                                     extra=f"fsdp2 {kernels.value}"))


def _nemo_setup(row: pd.Series) -> RowSetup:
    """Megatron-Bridge / NeMo 25.09 DGX-H100 dense rows (assumptions in the module docstring)."""
    notes = str(row.notes)
    tp, pp, dp, cp = int(row.tp), int(row.pp), int(row.dp), int(row.cp)
    found = re.search(r"VP (\d+)", notes)
    vpp = int(found.group(1)) if found else 1
    fsdp = "FSDP" in notes
    plan = ParallelConfig(tp=tp, pp=pp, dp=dp, cp=cp, vpp=vpp, schedule=_schedule(vpp),
                          zero=3 if fsdp else 1,
                          fsdp_impl=FSDPImpl.MEGATRON if fsdp else FSDPImpl.NCCL,
                          sequence_parallel=tp > 1, overlap_tp_comm=tp > 1,
                          recompute=Recompute.NONE, overlap_grad_reduce=True,
                          overlap_param_gather=True)
    dtype = DType.FP8 if "FP8" in notes else DType.BF16
    training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                              micro_batch=int(row.microbatch), dtype=dtype,
                              attention_impl=AttentionImpl.AUTO, kernels=KernelStack.FUSED)
    model = load_model(str(row.model))
    return RowSetup(model=model, cluster=_dgx_h100(int(row.n_devices)), training=training,
                    parallel=plan, flash_attention=True,
                    config=_describe(plan, model, plan.recompute, extra=str(dtype)))


_TABLE_SETUPS: dict[str, Callable[[pd.Series], RowSetup]] = {
    "LLAMA3-T4": _llama3_setup,
    "BLOOM-176B": _bloom_setup,
    "MEGATRON-H100": _megatron_h100_setup,
    "TITAN-H100": _titan_setup,
    "NEMO-H100": _nemo_setup,
}


# Modules that set up rows of further accelerators (issue 18): each defines
# TABLE_SETUPS: dict[source -> (row -> RowSetup)] for the rows of its own CSV
# (simulator/data/training_published_<name>.csv). A module not present is skipped.
ACCEL_MODULES = ("simulator.training.validation_tpu", "simulator.training.validation_amd",
                 "simulator.training.validation_ascend", "simulator.training.validation_gaudi")


@functools.cache
def _accel_setups() -> dict[str, Callable[[pd.Series], RowSetup]]:
    """TABLE_SETUPS of every ACCEL_MODULES module that exists (one table per source)."""
    setups: dict[str, Callable[[pd.Series], RowSetup]] = {}
    for name in ACCEL_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        for source, setup in module.TABLE_SETUPS.items():
            if source in setups or source in _TABLE_SETUPS:
                raise ValueError(f"validation table {source} set up twice ({name})")
            setups[source] = setup
    return setups


def row_setup(row: pd.Series) -> RowSetup:
    """Model, cluster, training and plan of one published row (assumptions in the docstring)."""
    notes = str(row.notes)
    source = str(row.source)
    accel = _accel_setups()
    if source in accel:
        return accel[source](row)
    if source.startswith(MOE_PREFIX):
        setup_moe = _moe_row_setup()
        if setup_moe is None:
            raise ConfigError(f"{source} rows need {MOE_MODULE}, which is not installed",
                              key="source")
        return setup_moe(row)
    if source in _TABLE_SETUPS:
        return _TABLE_SETUPS[source](row)
    n, tp, pp, dp = int(row.n_devices), int(row.tp), int(row.pp), int(row.dp)
    micro = int(row.microbatch)
    if source.startswith("FOUNDRY"):
        recompute = Recompute.FULL if "; AC" in notes else Recompute.NONE
        # llm-foundry: PyTorch FSDP1 (FullyShardedDataParallel FULL_SHARD), eager PyTorch
        # kernels (no torch.compile in its benchmarking YAMLs). Both tables were measured in
        # llm-foundry b2a43a147 (2023-10-19, mosaicml>=0.16.4,<0.17, image
        # mosaicml/pytorch:2.1.0_cu121); Composer 0.16.4 get_mixed_precision: 'DEFAULT' (the
        # tables' MP Mode for every amp_bf16 row) gathers bf16 params and reduces grads in
        # fp32, 'PURE' (the A100 70B rows) reduces in bf16. Attention: sweep.sh leaves
        # submit_benchmarks.py's --attn_impl default, 'triton' (MPT's triton_flash_attn_fn,
        # the Triton FlashAttention kernel built with triton-pre-mlir, sm90 branch), not
        # flash-attn's CUDA FA2; no kernel-level timing of that kernel is in our sources, so
        # it is priced as FA2 (an assumption that flatters H100, where FA2 itself reaches
        # ~35% of peak)
        reduce = "bf16" if "PURE" in notes else "fp32"
        plan = ParallelConfig(tp=tp, pp=pp, dp=dp, zero=3, recompute=recompute,
                              overlap_grad_reduce=True, fsdp_impl=FSDPImpl.FSDP1,
                              **_grad_reduce(reduce))
        training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                                  micro_batch=micro, dtype=DType.BF16,
                                  attention_impl=AttentionImpl.FA2, kernels=KernelStack.EAGER)
        cluster = _mosaic_a100(n) if source == "FOUNDRY-A100" else _mosaic_h100(n)
        return RowSetup(model=_mpt(row), cluster=cluster, training=training,
                        parallel=plan, flash_attention=True,
                        config=f"FSDP dp{dp} mb{micro} {recompute}")
    if source == "KORTH-T4":
        sp = "sequence parallel" in notes
        recompute = (Recompute.FULL if "full recompute" in notes else
                     Recompute.SELECTIVE if "selective" in notes else Recompute.NONE)
        model = _gpt(row)  # the table times one layer; the layer count does not enter
        plan = ParallelConfig(tp=tp, sequence_parallel=sp, recompute=recompute)
        training = TrainingConfig(seq_len=int(row.seq_len), global_batch=micro,
                                  micro_batch=micro, dtype=DType.FP16)
        return RowSetup(model=model, cluster=_selene(n), training=training, parallel=plan,
                        flash_attention=False, config=f"tp{tp} sp={sp} {recompute}")
    vpp = _vpp(row)
    if source.startswith("KORTH"):
        selective = "selective" in notes
        recompute = Recompute.SELECTIVE if selective else Recompute.FULL
        sp = selective and tp > 1
    else:
        recompute, sp = Recompute.FULL, False
    zero = 3 if "ZeRO-3" in notes else 0
    schedule = PipelineSchedule.INTERLEAVED if vpp > 1 else PipelineSchedule.ONE_F_ONE_B
    plan = ParallelConfig(tp=tp, pp=pp, dp=dp, vpp=vpp, zero=zero, sequence_parallel=sp,
                          recompute=recompute, schedule=schedule, overlap_grad_reduce=False,
                          fsdp_impl=FSDPImpl.DEEPSPEED_2021 if zero == 3 else FSDPImpl.NCCL)
    training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                              micro_batch=micro, dtype=DType.FP16)
    config = (f"tp{tp} pp{pp} dp{dp}" + (f" vpp{vpp}" if vpp > 1 else "")
              + (" zero3" if zero else "") + (" sp" if sp else "") + f" {recompute}")
    return RowSetup(model=_gpt(row), cluster=_selene(n), training=training, parallel=plan,
                    flash_attention=False, config=config)


_MEMORY_NOTE = re.compile(r"\bmemory ([0-9]+(?:\.[0-9]+)?) GiB\b")


def published_memory_gib(row: pd.Series) -> float | None:
    """The peak memory per GPU a row's source measured ("memory 82.4 GiB" in its notes)."""
    found = _MEMORY_NOTE.search(str(row.notes))
    return float(found.group(1)) if found else None


def row_device(row: pd.Series) -> str:
    """Catalog name of the device a published row ran on (the cluster row_setup builds)."""
    return row_setup(row).cluster.device.name


def _layer_fwd_bwd_ms(setup: RowSetup, profile: DeviceProfile) -> float:
    """One layer's forward + backward (with recompute) incl. exposed TP comm, milliseconds."""
    groups = pipeline_groups(setup.parallel)
    costs = ChunkCostModel(setup.model, setup.training, setup.parallel,
                           CommModel(setup.cluster, profile), groups, profile=profile,
                           flash_attention=setup.flash_attention)
    fwd, bwd = costs.layer(0, False)
    return 1e3 * (fwd.compute_s + fwd.exposed_s + bwd.compute_s + bwd.exposed_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class RowPrediction:
    """What one row's simulation gives besides the metric: whether the published plan fits
    our memory model, and the pipeline split it ran with."""

    config: str
    predicted: float
    fits_memory: bool | None  # None: the metric times one layer, no full plan is run
    pipeline_split: str
    peak_memory_gib: float | None = None  # our peak per GPU (None for one-layer rows)


def predict_row_full(row: pd.Series, profile: ProfileArg = CATALOG_DEFAULTS) -> RowPrediction:
    """The row's metric as predicted with the efficiencies of `profile` (a profile of the
    row's device, a path, CATALOG_DEFAULTS, or None = bundled), with fit and split."""
    setup = row_setup(row)
    prof = resolve_profile(setup.cluster.device, profile)
    metric = str(row.metric)
    if metric == "layer_fwd_bwd_time_ms":
        return RowPrediction(config=setup.config, predicted=_layer_fwd_bwd_ms(setup, prof),
                             fits_memory=None, pipeline_split="")
    result = simulate_iteration(setup.model, setup.cluster, setup.training, setup.parallel,
                                profile=prof, flash_attention=setup.flash_attention)
    values = {"iteration_time_s": result.iteration_time_s,
              "achieved_TFLOPs_per_GPU": result.hardware_tflops_per_gpu,
              "model_TFLOPs_per_GPU": result.tflops_per_gpu,
              "tokens_per_s_per_GPU": result.tokens_per_s / setup.cluster.num_devices}
    if metric not in values:
        raise ValueError(f"unknown metric {metric}")
    return RowPrediction(config=setup.config, predicted=values[metric],
                         fits_memory=result.fits_memory, pipeline_split=result.pipeline_split,
                         peak_memory_gib=result.peak_memory_gib)


def predict_row(row: pd.Series, profile: ProfileArg = CATALOG_DEFAULTS) -> tuple[str, float]:
    """(config description, predicted value of the row's metric) with the efficiencies of
    `profile` (a profile of the row's device, a path, CATALOG_DEFAULTS, or None = bundled)."""
    out = predict_row_full(row, profile)
    return out.config, out.predicted


def validate_training(sources: tuple[str, ...] | None = None, *,
                      profiles: Mapping[str, ProfileArg] | None = None,
                      devices: Collection[str] | None = None) -> pd.DataFrame:
    """One row per published measurement: row (index in the CSV), source, model, device,
    config, metric, published, predicted, error_pct (signed, (predicted - published) /
    published), notes.

    `profiles` maps a device name to its efficiency source (DeviceProfile, path,
    CATALOG_DEFAULTS, None = the bundled profile); a device it does not name uses the catalog
    defaults, so a plain call reproduces the tolerances the validation tests pin. `devices`
    keeps only rows run on those devices.
    """
    data = load_published()
    chosen = {k.lower(): v for k, v in (profiles or {}).items()}
    wanted = None if devices is None else {d.lower() for d in devices}
    rows: list[dict[str, Any]] = []
    for index, row in data.iterrows():
        if sources is not None and row.source not in sources:
            continue
        device = row_device(row)
        if wanted is not None and device not in wanted:
            continue
        config, predicted = predict_row(row, chosen.get(device, CATALOG_DEFAULTS))
        published = float(row.value)
        rows.append({"row": int(index), "source": row.source, "model": row.model,
                     "device": device, "config": config, "metric": row.metric,
                     "published": published, "predicted": predicted,
                     "error_pct": 100.0 * (predicted - published) / published,
                     "notes": row.notes})
    return pd.DataFrame(rows, columns=["row", "source", "model", "device", "config", "metric",
                                       "published", "predicted", "error_pct", "notes"])


HELDOUT_SUMMARY = "HELDOUT-H100"  # summarize()'s row over every HELDOUT_H100_TABLES row


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """MAPE and worst row per table, plus the target set (TARGET_TABLES) as 'TARGET' and the
    held-out H100 rows (HELDOUT_H100_TABLES) as 'HELDOUT-H100'."""
    out = []
    groups = [(src, df[df.source == src]) for src in df.source.unique()]
    for name, tables in (("TARGET", TARGET_TABLES), (HELDOUT_SUMMARY, HELDOUT_H100_TABLES)):
        part = df[df.source.isin(tables)]
        if len(part):
            groups.append((name, part))
    for name, part in groups:
        err = part.error_pct.abs()
        out.append({"table": name, "rows": len(part), "mape_pct": err.mean(),
                    "max_abs_error_pct": err.max()})
    return pd.DataFrame(out, columns=["table", "rows", "mape_pct", "max_abs_error_pct"])
