"""Megatron-LM `pretrain_gpt.py` arguments, a torchrun line and an sbatch file for a TrainingPlan.

Flag names follow NVIDIA/Megatron-LM commit d98e8a64 (2026-08-22), megatron/training/arguments.py
and the config dataclasses it turns into flags (pinned in tests/data/launchers/megatron.json).
"""

from __future__ import annotations

import shlex

from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.parallel import (
    FSDPImpl,
    GradReduceDType,
    OffloadTarget,
    PipelineSchedule,
    Recompute,
    replica_count,
)
from planners.export.base import EXPORTERS, Artefact, ArtefactFile, ExportTarget
from planners.export.train_common import (
    check_dtype,
    offloads,
    per_stage_layers,
    require_offloads,
    sbatch_script,
    torchrun_line,
)
from simulator.training.plan import TrainingPlan

MEGATRON_VERSION = "NVIDIA/Megatron-LM@d98e8a64 (2026-08-22)"
SCRIPT = "pretrain_gpt.py"


def layout_string(counts: tuple[int, ...]) -> str:
    """--pipeline-model-parallel-layout: virtual stages chunk-major split by '|', 'E' (embedding)
    first, 't' per decoder layer, 'L' (loss) last (megatron/core/transformer/
    pipeline_parallel_layer_layout.py parse_str_to_list)."""
    stages = ["t" * n for n in counts]
    stages[0] = "E" + stages[0]
    stages[-1] = stages[-1] + "L"
    return "|".join(stages)


def _split_args(plan: TrainingPlan) -> list[str]:
    p = plan.parallel
    counts = per_stage_layers(plan)
    if p.account_for_embedding_in_split or p.account_for_loss_in_split:
        out = ["--num-layers-per-virtual-pipeline-stage", str(counts[1])] if p.vpp > 1 else []
        out += ["--account-for-embedding-in-pipeline-split"] * p.account_for_embedding_in_split
        return out + ["--account-for-loss-in-pipeline-split"] * p.account_for_loss_in_split
    if len(set(counts)) == 1:
        return ["--num-layers-per-virtual-pipeline-stage", str(counts[0])] if p.vpp > 1 else []
    explicit_ends = p.first_stage_layers is not None or p.last_stage_layers is not None
    if explicit_ends and all(n % p.vpp == 0 for n in (p.first_stage_layers or 0,
                                                      p.last_stage_layers or 0)):
        out = []
        if p.first_stage_layers is not None:
            out += ["--decoder-first-pipeline-num-layers", str(p.first_stage_layers)]
        if p.last_stage_layers is not None:
            out += ["--decoder-last-pipeline-num-layers", str(p.last_stage_layers)]
        out += ["--num-virtual-stages-per-pipeline-rank", str(p.vpp)] if p.vpp > 1 else []
        return out
    # a balanced or explicit uneven split Megatron's first/last flags cannot say
    return ["--pipeline-model-parallel-layout", layout_string(counts)]


def _zero_args(plan: TrainingPlan) -> list[str]:
    p, m = plan.parallel, plan.model
    # Megatron offloads optimizer state to host DRAM only (--optimizer-cpu-offload)
    require_offloads(plan, "Megatron-LM", optimizer=(OffloadTarget.NONE, OffloadTarget.CPU),
                     params=(OffloadTarget.NONE,), others="deepspeed")
    offload = offloads(plan)[0] is OffloadTarget.CPU
    if p.zero == 2:
        # the distributed optimizer reduce-scatters grads but keeps the full fp32 main-grad
        # buffer (ZeRO-1's memory): a ZeRO-2 plan would need more HBM than was simulated
        raise ConfigError("Megatron-LM has no ZeRO-2: its distributed optimizer keeps full fp32 "
                          "gradients (zero 1's memory)", key="parallelism.zero",
                          allowed="zero 0, 1 or 3 for megatron; zero 2 (pp 1): deepspeed")
    if p.zero == 1:  # Megatron's distributed optimizer shards optimizer state (and the step)
        out = ["--use-distributed-optimizer"]
        out += ["--overlap-param-gather"] if p.overlap_param_gather else []
        return out + (["--optimizer-cpu-offload"] if offload else [])
    if p.zero == 3:
        impl = FSDPImpl(str(p.fsdp_impl))
        if impl is FSDPImpl.MEGATRON:
            out = ["--use-megatron-fsdp", "--data-parallel-sharding-strategy",
                   "optim_grads_params"]
            if p.fsdp_shard_size is not None:
                # Megatron-FSDP HSDP (megatron/core/distributed/fsdp README): the outer DP
                # (replica) size and no sharding across it; the inner (shard) DP is deduced
                out += ["--num-distributed-optimizer-instances", str(replica_count(p)),
                        "--outer-dp-sharding-strategy", "no_shard"]
            return out
        if p.fsdp_shard_size is not None:
            raise ConfigError("Megatron-LM's --use-torch-fsdp2 shards over all of DP (no "
                              "hybrid sharding)", key="parallelism.fsdp_shard_size",
                              allowed="fsdp_impl megatron, or --to torchtitan / deepspeed")
        # arguments.py validate_args: --use-torch-fsdp2 refuses pp > 1, ep > 1, fp16, tied
        # embeddings and CPU offload of the optimizer
        if impl is FSDPImpl.FSDP2 and p.pp == 1 and p.ep == 1 and not m.tie_embeddings \
                and not offload and str(plan.training.dtype) != "fp16":
            return ["--use-torch-fsdp2"]
        raise ConfigError(f"Megatron-LM cannot launch this ZeRO-3 plan (fsdp_impl {impl}, pp "
                          f"{p.pp}, ep {p.ep}): --use-torch-fsdp2 needs fsdp2, pp 1, ep 1, "
                          "untied embeddings, no optimizer offload; --use-megatron-fsdp needs "
                          "fsdp_impl megatron", key="--to",
                          allowed="torchtitan, deepspeed")
    if offload:
        raise ConfigError("Megatron's --optimizer-cpu-offload needs the distributed optimizer",
                          key="parallelism.offload_optimizer", allowed="zero >= 1")
    return []


def megatron_args(plan: TrainingPlan) -> tuple[str, ...]:
    """The pretrain_gpt.py argument list of `plan` (ConfigError when Megatron cannot say it)."""
    p, m, t = plan.parallel, plan.model, plan.training
    sched = PipelineSchedule(str(p.schedule))
    if p.pp > 1 and sched in (PipelineSchedule.GPIPE, PipelineSchedule.ZB_H1):
        raise ConfigError(f"Megatron-LM has no {sched} schedule flag", key="parallelism.schedule",
                          allowed="1f1b, interleaved")
    dtype = check_dtype(plan, "Megatron-LM", (DType.BF16, DType.FP16, DType.FP8))
    a = ["--tensor-model-parallel-size", str(p.tp), "--pipeline-model-parallel-size", str(p.pp)]
    a += _split_args(plan)
    a += ["--context-parallel-size", str(p.cp)] if p.cp > 1 else []
    if p.ep > 1 or p.expert_tp is not None:
        a += ["--expert-model-parallel-size", str(p.ep)]
        a += ["--expert-tensor-parallel-size", str(p.expert_tp)] if p.expert_tp else []
    a += ["--sequence-parallel"] if p.sequence_parallel else []
    rec = Recompute(str(p.recompute))
    if rec is Recompute.SELECTIVE_OP:
        raise ConfigError("Megatron-LM has no per-op selective recompute (torchtitan's "
                          "selective-op)", key="parallelism.recompute",
                          allowed="none, selective, full (or export to torchtitan)")
    if rec is Recompute.FULL:  # every layer stores only its input (recompute_num_layers 1)
        a += ["--recompute-granularity", "full", "--recompute-method", "uniform",
              "--recompute-num-layers", "1"]
    elif rec is Recompute.SELECTIVE:
        a += ["--recompute-granularity", "selective"]
    a += _zero_args(plan)
    a += ["--overlap-grad-reduce"] if p.overlap_grad_reduce else []
    # Megatron reduces fp32 main grads with --bf16 (its default = grad_reduce_dtype fp32)
    a += ["--grad-reduce-in-bf16"] if p.grad_reduce_dtype is GradReduceDType.BF16 else []
    a += ["--micro-batch-size", str(t.micro_batch), "--global-batch-size", str(t.global_batch),
          "--seq-length", str(t.seq_len), "--max-position-embeddings", str(t.seq_len)]
    a += ["--num-layers", str(m.num_layers), "--hidden-size", str(m.hidden_size),
          "--ffn-hidden-size", str(m.ffn_hidden_size),
          "--num-attention-heads", str(m.num_heads)]
    if m.head_dim * m.num_heads != m.hidden_size:
        a += ["--kv-channels", str(m.head_dim)]
    if m.num_kv_heads != m.num_heads:
        a += ["--group-query-attention", "--num-query-groups", str(m.num_kv_heads)]
    a += ["--swiglu"] if m.gated_mlp else []
    a += ["--normalization", "LayerNorm" if m.norm_bias else "RMSNorm"]
    a += ["--position-embedding-type", "learned_absolute" if m.learned_pos_emb else "rope"]
    a += [] if m.tie_embeddings else ["--untie-embeddings-and-output-weights"]
    a += [] if m.linear_bias else ["--disable-add-bias-linear"]
    if m.is_moe:
        a += ["--num-experts", str(m.num_experts), "--moe-router-topk", str(m.experts_per_token),
              "--moe-ffn-hidden-size", str(m.moe_ffn_hidden_size)]
    a += ["--vocab-size", str(m.vocab_size), "--make-vocab-size-divisible-by", "1"]
    a += {DType.BF16: ["--bf16"], DType.FP16: ["--fp16"],
          DType.FP8: ["--bf16", "--fp8-format", "hybrid"]}[dtype]
    return tuple(a)


@EXPORTERS.register(ExportTarget.MEGATRON)
def export_megatron(plan: TrainingPlan) -> Artefact:
    """pretrain_gpt.py arguments + torchrun line + sbatch file for `plan`."""
    args = megatron_args(plan)
    command = torchrun_line(plan, SCRIPT, args)
    files = (ArtefactFile(name="megatron_args.txt", text=" \\\n  ".join(shlex.quote(a) for a in args) + "\n"),
             ArtefactFile(name="sbatch.sh", text=sbatch_script(plan, command, job="fleetsim")))
    notes = ("data, tokenizer, optimizer and checkpoint flags (--data-path, --tokenizer-type, "
             "--lr, --save) are left to the user",
             "--vocab-size with --make-vocab-size-divisible-by 1 keeps the model's vocabulary")
    return Artefact(target=ExportTarget.MEGATRON, target_version=MEGATRON_VERSION,
                    command=command, files=files, assumptions=notes, args=args)
