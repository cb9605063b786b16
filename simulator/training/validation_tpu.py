"""Setups of the published TPU training rows (simulator/data/training_published_tpu.csv).

validation.row_setup hands a row here when its source is one of TABLE_SETUPS. The rows are
MaxText's own performance tables; each row's model, slices and plan are rebuilt from the
config scripts that produced them (MaxText commit 76bd53b0f, 2023-12-15, the commit that
published both READMEs with their scripts).

MAXTEXT-V6E rows are the Trillium recipes of AI-Hypercomputer/tpu-recipes (MaxText tag
tpu-recipes-v0.1.4): catalog Llama 3.1 8B / 70B, ZeRO-3 over one v6e slice, the log line's
Tokens/s/device as the value; their remat_policy custom (decoder input and q/k/v projections
offloaded to host memory, the MLP recomputed) runs as full recompute (2-3% more recompute than
MaxText does) and the host-offload PCIe traffic is not modelled.

Assumptions (the CSV comment lines cite the sources):
- Model: MaxText's default decoder at that commit (MaxText/configs/base.yml + pyconfig.py):
  base_emb_dim 2560, base_num_heads 8, base_mlp_dim 8192, base_num_decoder_layers 16,
  head_dim 256 (so heads x head_dim differs from emb_dim), vocab 32768, one ReLU MLP (two
  matrices, no gate), no biases, RMSNorm, tied embeddings (logits_via_embedding), MHA.
  global_parameter_scale = 2^k doubles, in turn, heads and mlp_dim, emb_dim, layers
  (pyconfig.get_individual_scales: with k = 3b + r, heads/mlp x 2^(b + (r > 0)), emb x
  2^(b + (r > 1)), layers x 2^b). MaxText's decoder layer runs attention and MLP in parallel
  from one norm (PaLM style); fleetsim prices a sequential block, which has the same FLOPs
  but charges tensor-parallel layers two TP collective pairs per layer where the parallel block
  needs one (an over-count on the TP rows, not corrected).
- Metric: the tables give TFLOP/sec/chip in MaxText's count (train.calculate_training_tflops:
  6 x parameters x tokens + causal attention 6 x heads x layers x head_dim x seq per token,
  no recompute). The CSV value is that figure converted to tokens/s/chip with the same count
  (maxtext_flops_per_token); the notes give the published TFLOP/s, and the test recomputes
  the conversion. Percent errors are the same in either unit.
- Plan: ici_fsdp_parallelism -1 = ZeRO-3 over the slice, dcn_data_parallelism -1 = data
  parallel across slices = hybrid sharding (fsdp_shard_size = the slice's DP ranks) with the
  cross-slice gradient all-reduce on the DCN; ici_tensor_parallelism = tp, whose activations
  are sharded on embed between blocks (MaxText's 'activation_embed' -> 'tensor' rule), i.e.
  the all-gather / reduce-scatter pattern of sequence parallelism. per_device_batch_size x
  chips = global batch, one microbatch (no gradient accumulation). remat_policy full ->
  full recompute; minimal (jax checkpoint_dots_with_no_batch_dims: weight matmul outputs
  saved, attention and elementwise recomputed) -> selective. bf16 activations (dtype); the
  fp32 parameters and AdamW state are what fleetsim's mixed-precision memory model counts.
- XLA as MaxText's scripts configure it (LIBTPU_INIT_ARGS: async collective fusion, fused
  all-gathers, overlap of compute and collectives): FSDP gathers and reduce-scatters run
  asynchronously beside the layer's compute, prefetched by the scan -> fsdp_impl ideal (a
  gather is exposed only when longer than its layer's compute; no regather for the recompute,
  which runs inside the same backward scan step); TP collectives overlap their matmuls ->
  tp_comm_overlap_impl xla-collective-matmul (helper npu's traits); the kernel stack is fused
  (XLA fusions), attention the catalog's Pallas flash attention efficiency.
- Slices: v5e-256 = one 16x16 pod with wraparound on both axes; v5p-N = N/2 chips (N
  TensorCores, 2 per chip) in the GCP slice shape with the short axes first (4x4x4, 4x4x8,
  4x8x8, 8x8x8), so tensor parallelism lies along a full, wrapped axis as MaxText's
  device-mesh builder places it. Slices talk over the DCN (links.yaml): v5e slices have one
  100 Gbps NIC per 4 chips (dcn-v5e), v5p chips their 50 Gbps share each (dcn-v5p).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from hwmodels.cluster import build_cluster
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.parallel import (
    AttentionImpl,
    FSDPImpl,
    KernelStack,
    ParallelConfig,
    Recompute,
    TPOverlapImpl,
    TrainingConfig,
)
from hwmodels.specs import ClusterSpec, ModelSpec
from simulator.training.validation import RowSetup

DATA_FILE = "training_published_tpu.csv"
V5E_SOURCE = "MAXTEXT-V5E"
V5P_SOURCE = "MAXTEXT-V5P"
V6E_SOURCE = "MAXTEXT-V6E"

# MaxText base.yml at 76bd53b0f (2023-12-15): the scale-1 decoder
BASE_EMB_DIM = 2560
BASE_NUM_HEADS = 8
BASE_MLP_DIM = 8192
BASE_NUM_LAYERS = 16
HEAD_DIM = 256
VOCAB = 32768

# GCP slice names count TensorCores: v5e has 1 per chip, v5p 2 (GCP TPU v5e / v5p docs).
CORES_PER_CHIP = {"tpu-v5e": 1, "tpu-v5p": 2}
# Slice shapes by chips, short axes first (GCP v5p docs' topology table; v5e-256 = 16x16).
SLICE_SHAPES: dict[str, dict[int, tuple[int, ...]]] = {
    "tpu-v5e": {256: (16, 16)},
    "tpu-v5p": {64: (4, 4, 4), 128: (4, 4, 8), 256: (4, 8, 8), 512: (8, 8, 8),
                1024: (8, 8, 16), 2048: (8, 16, 16)},
    "tpu-v6e": {128: (8, 16), 256: (16, 16)},  # tpu-recipes: v6e-128 = 8x16 topology
}
DCN_LINK = {"tpu-v5e": "dcn-v5e", "tpu-v5p": "dcn-v5p", "tpu-v6e": "dcn-v6e"}
# Chips per DCN NIC: v5e hosts have 8 chips and 2 x 100 Gbps NICs (GCP TPU v6e docs' v5e column);
# dcn-v5p is already the per-chip share (links.yaml).
CHIPS_PER_NIC = {"tpu-v5e": 4, "tpu-v5p": 1, "tpu-v6e": 2}  # v6e: 4 x 200 Gbps per 8-chip host
# custom (tpu-recipes v6e rows): decoder input and q/k/v (+ out_proj) offloaded to host, the
# MLP recomputed -> full (recomputes q/k/v/out too: ~2-3% more work than MaxText does)
REMAT = {"full": Recompute.FULL, "minimal": Recompute.SELECTIVE, "custom": Recompute.FULL}


@dataclass(frozen=True, slots=True, kw_only=True)
class MaxTextDims:
    """The decoder of one global_parameter_scale (pyconfig.get_individual_scales)."""

    emb_dim: int
    num_heads: int
    mlp_dim: int
    num_layers: int
    head_dim: int = HEAD_DIM
    vocab: int = VOCAB

    @property
    def params(self) -> int:
        """MaxText's parameter count (every leaf of the param tree): per layer q, k, v, out
        (emb x heads x head_dim each), MLP in/out (emb x mlp each), one RMSNorm scale; the tied
        embedding and the final norm."""
        attn = 4 * self.emb_dim * self.num_heads * self.head_dim
        layer = attn + 2 * self.emb_dim * self.mlp_dim + self.emb_dim
        return self.num_layers * layer + self.vocab * self.emb_dim + self.emb_dim


def maxtext_dims(scale: int) -> MaxTextDims:
    """Decoder dims for global_parameter_scale `scale` (a power of 2)."""
    if scale < 1 or scale & (scale - 1):
        raise ConfigError(f"global_parameter_scale must be a power of 2, got {scale}",
                          key="notes.global_parameter_scale")
    base, rem = divmod(int(math.log2(scale)), 3)
    heads_mlp = 2 ** (base + int(rem > 0))
    return MaxTextDims(emb_dim=BASE_EMB_DIM * 2 ** (base + int(rem > 1)),
                       num_heads=BASE_NUM_HEADS * heads_mlp, mlp_dim=BASE_MLP_DIM * heads_mlp,
                       num_layers=BASE_NUM_LAYERS * 2 ** base)


def maxtext_flops_per_token(dims: MaxTextDims, seq_len: int) -> float:
    """Training FLOPs per token as MaxText reports them (train.calculate_training_tflops):
    6 x params + causal attention 12 x heads x layers x head_dim x seq / 2."""
    return 6.0 * dims.params + 6.0 * dims.num_heads * dims.num_layers * dims.head_dim * seq_len


def tokens_per_s_from_tflops(tflops_per_chip: float, dims: MaxTextDims, seq_len: int) -> float:
    """A table's TFLOP/sec/chip as tokens/s/chip (the CSV's value)."""
    return tflops_per_chip * 1e12 / maxtext_flops_per_token(dims, seq_len)


def maxtext_model(dims: MaxTextDims, seq_len: int, name: str) -> ModelSpec:
    """The MaxText default decoder as a ModelSpec (assumptions in the module docstring)."""
    return ModelSpec(name=name, model_type="maxtext", num_layers=dims.num_layers,
                     hidden_size=dims.emb_dim, num_heads=dims.num_heads,
                     num_kv_heads=dims.num_heads, head_dim=dims.head_dim,
                     ffn_hidden_size=dims.mlp_dim, vocab_size=dims.vocab, gated_mlp=False,
                     tie_embeddings=True, max_seq_len=seq_len,
                     source="MaxText base.yml + pyconfig.py at 76bd53b0f (2023-12-15)")


@functools.lru_cache(maxsize=16)
def tpu_slices(device: str, num_chips: int, slices: int) -> ClusterSpec:
    """`slices` ICI slices of the device over its DCN link (one slice = one node)."""
    per_slice = num_chips // slices
    shape = SLICE_SHAPES[device].get(per_slice)
    if shape is None or per_slice * slices != num_chips:
        raise ConfigError(f"{num_chips} chips in {slices} slices of {device}",
                          key="n_devices", allowed=sorted(SLICE_SHAPES[device]))
    return build_cluster(device, num_chips, devices_per_node=per_slice, intra_node="ici",
                         inter_node=DCN_LINK[device], slice_shape=list(shape),
                         nics_per_node=per_slice // CHIPS_PER_NIC[device])


def _note(notes: str, key: str) -> str:
    found = re.search(rf"\b{key}=(\S+?)[;,]?(\s|$)", notes)
    if found is None:
        raise ConfigError(f"row notes lack {key}=...", key="notes")
    return found.group(1)


def _slices(notes: str) -> int:
    found = re.search(r"\b(\d+)x v5[ep]-\d+", notes)
    if found is None:
        raise ConfigError("row notes lack the slice count ('Nx v5e-256')", key="notes")
    return int(found.group(1))


def row_dims(row: pd.Series) -> MaxTextDims:
    """The row's decoder from its notes' global_parameter_scale, checked against its columns."""
    dims = maxtext_dims(int(_note(str(row.notes), "global_parameter_scale")))
    got = (int(row.layers), int(row.hidden), int(row.heads), int(row.ffn), int(row.vocab))
    want = (dims.num_layers, dims.emb_dim, dims.num_heads, dims.mlp_dim, dims.vocab)
    if got != want:
        raise ConfigError(f"{row.model}: columns {got} differ from the scale's dims {want}",
                          key="layers/hidden/heads/ffn/vocab")
    return dims


def maxtext_setup(row: pd.Series) -> RowSetup:
    """One MaxText table row on its slices (assumptions in the module docstring)."""
    notes = str(row.notes)
    device = "tpu-v5e" if str(row.source) == V5E_SOURCE else "tpu-v5p"
    dims = row_dims(row)
    n, tp, dp = int(row.n_devices), int(row.tp), int(row.dp)
    slices = _slices(notes)
    remat = _note(notes, "remat_policy")
    if remat not in REMAT:
        raise ConfigError(f"unknown remat_policy {remat!r}", key="notes.remat_policy",
                          allowed=sorted(REMAT))
    shard = dp // slices
    plan = ParallelConfig(
        tp=tp, dp=dp, zero=3, fsdp_impl=FSDPImpl.IDEAL,
        fsdp_shard_size=shard if slices > 1 else None,
        sequence_parallel=tp > 1, overlap_tp_comm=tp > 1,
        tp_comm_overlap_impl=TPOverlapImpl.XLA_COLLECTIVE_MATMUL if tp > 1 else None,
        recompute=REMAT[remat], overlap_grad_reduce=True, overlap_param_gather=True)
    seq = int(row.seq_len)
    training = TrainingConfig(seq_len=seq, global_batch=int(row.global_batch),
                              micro_batch=int(row.microbatch), dtype=DType.BF16,
                              attention_impl=AttentionImpl.AUTO, kernels=KernelStack.FUSED)
    cores = n * CORES_PER_CHIP[device] // slices
    config = (f"{slices}x {device.removeprefix('tpu-')}-{cores} "
              f"{'x'.join(map(str, SLICE_SHAPES[device][n // slices]))} "
              + (f"tp{tp} " if tp > 1 else "") + f"fsdp{shard}"
              + (f" dcn-dp{slices}" if slices > 1 else "") + f" {plan.recompute}")
    return RowSetup(model=maxtext_model(dims, seq, str(row.model)),
                    cluster=tpu_slices(device, n, slices), training=training, parallel=plan,
                    flash_attention=True, config=config)


def recipe_setup(row: pd.Series) -> RowSetup:
    """One tpu-recipes Trillium row: a catalog Llama on one v6e slice, ZeRO-3 over the slice
    (assumptions in the module docstring)."""
    from hwmodels.catalog import load_model

    notes = str(row.notes)
    device = "tpu-v6e"
    n, dp = int(row.n_devices), int(row.dp)
    remat = _note(notes, "remat_policy")
    if remat not in REMAT:
        raise ConfigError(f"unknown remat_policy {remat!r}", key="notes.remat_policy",
                          allowed=sorted(REMAT))
    if int(row.tp) != 1 or dp != n:
        raise ConfigError("the v6e recipes run FSDP over the slice (tp 1, dp = chips)",
                          key="tp/dp")
    plan = ParallelConfig(dp=dp, zero=3, fsdp_impl=FSDPImpl.IDEAL, recompute=REMAT[remat],
                          overlap_grad_reduce=True, overlap_param_gather=True)
    training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                              micro_batch=int(row.microbatch), dtype=DType.BF16,
                              attention_impl=AttentionImpl.AUTO, kernels=KernelStack.FUSED)
    model = load_model(str(row.model))
    got = (int(row.layers), int(row.hidden), int(row.heads), int(row.ffn), int(row.vocab))
    want = (model.num_layers, model.hidden_size, model.num_heads, model.ffn_hidden_size,
            model.vocab_size)
    if got != want:
        raise ConfigError(f"{row.model}: columns {got} differ from the catalog's {want}",
                          key="layers/hidden/heads/ffn/vocab")
    shape = SLICE_SHAPES[device][n]
    config = f"1x v6e-{n} {'x'.join(map(str, shape))} fsdp{dp} {plan.recompute} (custom)"
    return RowSetup(model=model, cluster=tpu_slices(device, n, 1), training=training,
                    parallel=plan, flash_attention=True, config=config)


TABLE_SETUPS: dict[str, Callable[[pd.Series], RowSetup]] = {
    V5E_SOURCE: maxtext_setup,
    V5P_SOURCE: maxtext_setup,
    V6E_SOURCE: recipe_setup,
}
