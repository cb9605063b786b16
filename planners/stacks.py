"""Named training stacks for `plan train --stack`: what each framework can launch and how it
runs its kernels, as TrainConstraints defaults (explicit options still win).

A plan is for one framework. Without a stack the planner searches every ZeRO stage, recompute
mode and schedule and costs Megatron's fused kernels; with one it searches only what that
framework launches (the exporters refuse the rest) and costs its kernels, attention, loss and
gradient reduction. Each value names its source; where a default is the common setting rather
than the only one (torchtitan's compile, llm-foundry's attention), it says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from hwmodels.parallel import (
    AttentionImpl,
    FSDPImpl,
    GradReduceDType,
    KernelStack,
    LossImpl,
    PipelineSchedule,
    Recompute,
)


class TrainStack(StrEnum):
    """Frameworks `plan train --stack` knows."""

    MEGATRON = "megatron"
    TORCHTITAN = "torchtitan"
    LLM_FOUNDRY = "llm-foundry"
    DEEPSPEED = "deepspeed"


_STACKS: dict[TrainStack, Mapping[str, Any]] = {
    # Megatron-LM (the exporter's d98e8a64): DDP, distributed optimizer (ZeRO-1) or FSDP
    # (--use-torch-fsdp2 / --use-megatron-fsdp); no ZeRO-2 (its distributed optimizer keeps full
    # fp32 main grads); selective = core attention; 1F1B or interleaved; Transformer Engine
    # fused kernels and vocab-parallel cross-entropy; fp32 main-grad reduction with --bf16.
    TrainStack.MEGATRON: MappingProxyType({
        "zero": (0, 1, 3), "fsdp_impl": (FSDPImpl.MEGATRON, FSDPImpl.FSDP2),
        "recompute": (Recompute.NONE, Recompute.SELECTIVE, Recompute.FULL),
        "schedules": (PipelineSchedule.ONE_F_ONE_B, PipelineSchedule.INTERLEAVED),
        "kernels": KernelStack.FUSED, "attention_impl": AttentionImpl.AUTO,
        "loss_impl": LossImpl.FUSED}),
    # torchtitan v0.2.2 (73a0e697, job_config.py pinned in tests/data/launchers): FSDP2 or
    # replication (no ZeRO-1/2); activation_checkpoint none | selective 'op' | full;
    # torch.distributed.pipelining schedules; [compile] enable defaults to false (eager
    # kernels; --kernels compiled for a compiled run); the loss is
    # F.cross_entropy(pred.float()) (train.py at 9dec370); mixed_precision_reduce float32.
    TrainStack.TORCHTITAN: MappingProxyType({
        "zero": (0, 3), "fsdp_impl": (FSDPImpl.FSDP2,),
        "recompute": (Recompute.NONE, Recompute.SELECTIVE_OP, Recompute.FULL),
        "schedules": (PipelineSchedule.ONE_F_ONE_B, PipelineSchedule.INTERLEAVED,
                      PipelineSchedule.ZB_H1),
        "kernels": KernelStack.EAGER, "attention_impl": AttentionImpl.AUTO,
        "loss_impl": LossImpl.EAGER_FP32, "grad_reduce_dtype": GradReduceDType.FP32}),
    # llm-foundry with Composer (b2a43a147, mosaicml 0.16.4): FSDP1 FULL_SHARD only, no
    # tensor or pipeline parallelism; activation checkpointing on or off; eager PyTorch;
    # flash-attn's fused cross-entropy (loss_fn fused_crossentropy); attention priced as FA2
    # (its benchmarks ran the Triton kernel, simulator.training.validation says why);
    # 'DEFAULT' mixed precision reduces in fp32.
    TrainStack.LLM_FOUNDRY: MappingProxyType({
        "tp": (1,), "pp": (1,), "zero": (3,), "fsdp_impl": (FSDPImpl.FSDP1,),
        "recompute": (Recompute.NONE, Recompute.FULL),
        "schedules": (PipelineSchedule.ONE_F_ONE_B,), "kernels": KernelStack.EAGER,
        "attention_impl": AttentionImpl.FA2, "loss_impl": LossImpl.FUSED,
        "grad_reduce_dtype": GradReduceDType.FP32}),
    # Plain DeepSpeed (the exporter's edaa7221) around the user's train.py: data parallel
    # ZeRO 0-3 only (tensor/pipeline parallelism need Megatron-DeepSpeed); gradients reduced in
    # the model dtype (runtime/engine.py communication_data_type: bf16 when bf16 is enabled);
    # activation checkpointing on or off. Assumptions for the model code, a Hugging Face
    # transformers causal LM (the common train.py): eager PyTorch kernels, SDPA/flash
    # attention (auto: FA2), the loss on logits upcast to fp32 (eager-fp32).
    TrainStack.DEEPSPEED: MappingProxyType({
        "tp": (1,), "pp": (1,), "zero": (0, 1, 2, 3), "fsdp_impl": (FSDPImpl.DEEPSPEED,),
        "recompute": (Recompute.NONE, Recompute.FULL),
        "schedules": (PipelineSchedule.ONE_F_ONE_B,), "kernels": KernelStack.EAGER,
        "attention_impl": AttentionImpl.AUTO, "loss_impl": LossImpl.EAGER_FP32,
        "grad_reduce_dtype": GradReduceDType.BF16}),
}


def stack_constraints(name: TrainStack | str, *, key: str = "stack") -> Mapping[str, Any]:
    """The TrainConstraints keyword defaults of stack `name` (ConfigError if unknown)."""
    try:
        return _STACKS[TrainStack(str(name))]
    except ValueError:
        raise ConfigError(f"unknown training stack {name!r}", key=key,
                          allowed=[s.value for s in TrainStack]) from None
