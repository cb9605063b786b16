"""torchtitan TOML job config (+ torchrun line) for a TrainingPlan.

Keys follow pytorch/torchtitan v0.2.2 (73a0e697, 2026-02-20), torchtitan/config/job_config.py,
the last release with TOML job configs (pinned in tests/data/launchers/torchtitan.json).
"""

from __future__ import annotations

from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.parallel import (
    GradReduceDType,
    KernelStack,
    LossImpl,
    OffloadTarget,
    PipelineSchedule,
    Recompute,
    replica_count,
    shard_group_size,
)
from planners.export.base import EXPORTERS, Artefact, ArtefactFile, ExportTarget
from planners.export.train_common import (
    check_dtype,
    offloads,
    per_stage_layers,
    torchrun_line,
)
from simulator.training.plan import TrainingPlan

TORCHTITAN_VERSION = "pytorch/torchtitan v0.2.2 (73a0e697, 2026-02-20)"
# torch.distributed.pipelining schedule class names torchtitan looks up by name
SCHEDULES = {PipelineSchedule.GPIPE: "GPipe", PipelineSchedule.ONE_F_ONE_B: "1F1B",
             PipelineSchedule.INTERLEAVED: "Interleaved1F1B",
             PipelineSchedule.ZB_H1: "InterleavedZeroBubble"}


def torchtitan_config(plan: TrainingPlan) -> dict[str, dict[str, object]]:
    """{section: {key: value}} of the job config; ZeRO 0-2 replicate, ZeRO 3 shards (FSDP2)."""
    p, t = plan.parallel, plan.training
    check_dtype(plan, "torchtitan", (DType.BF16, DType.FP8))
    if p.zero in (1, 2):
        raise ConfigError(f"torchtitan has no ZeRO-{p.zero}: it shards with FSDP2 (zero 3) or "
                          "replicates (zero 0)", key="parallelism.zero", allowed="0, 3")
    if offloads(plan) not in ((OffloadTarget.NONE,) * 2, (OffloadTarget.CPU,) * 2):
        # training.enable_cpu_offload is FSDP2's CPUOffloadPolicy: parameters, gradients and
        # the optimizer step move to the host together
        raise ConfigError("torchtitan offloads parameters and optimizer to the CPU together "
                          f"(enable_cpu_offload), this plan has optimizer {offloads(plan)[0]}, "
                          f"params {offloads(plan)[1]}", key="parallelism.offload_params",
                          allowed="both none or both cpu (or export to deepspeed)")
    # zero 3 shards over dp_shard (x cp, torchtitan's dp_shard_cp mesh) and, with hybrid
    # sharding, replicates over dp_replicate, the outer mesh dim (HSDP); zero 0 replicates
    shard, replicate = (shard_group_size(p), replica_count(p)) if p.zero == 3 else (1, p.dp)
    par: dict[str, object] = {
        "data_parallel_replicate_degree": replicate, "data_parallel_shard_degree": shard,
        "tensor_parallel_degree": p.tp, "pipeline_parallel_degree": p.pp,
        "context_parallel_degree": p.cp, "expert_parallel_degree": p.ep,
        "pipeline_parallel_schedule": SCHEDULES[PipelineSchedule(str(p.schedule))],
        "pipeline_parallel_microbatch_size": t.micro_batch,
    }
    if p.pp > 1:
        counts = per_stage_layers(plan)
        if len(set(counts[1:-1] or counts)) != 1:
            raise ConfigError("torchtitan splits layers evenly except for fewer on the first "
                              f"and last stages; this plan has {list(counts)}",
                              key="parallelism.stage_layers", allowed="megatron")
        middle = counts[1] if len(counts) > 2 else counts[0]
        par.update(pipeline_parallel_layers_per_stage=middle,
                   pipeline_parallel_first_stage_less_layers=middle - counts[0],
                   pipeline_parallel_last_stage_less_layers=middle - counts[-1])
    if p.expert_tp is not None:
        par["expert_tensor_parallel_degree"] = p.expert_tp
    local = t.global_batch // p.dp
    if p.grad_reduce_dtype is GradReduceDType.BF16:
        raise ConfigError("torchtitan reduces gradients in float32 only (mixed_precision_reduce)"
                          ", this plan reduces in bf16", key="parallelism.grad_reduce_dtype",
                          allowed="fp32 or unset (or export to megatron: --grad-reduce-in-bf16)")
    training = {"local_batch_size": local, "global_batch_size": t.global_batch,
                "seq_len": t.seq_len, "mixed_precision_param": "bfloat16",
                "mixed_precision_reduce": "float32",
                "enable_cpu_offload": offloads(plan)[1] is OffloadTarget.CPU}
    rec = Recompute(str(p.recompute))
    if rec is Recompute.SELECTIVE:
        # Megatron's selective (core attention only) is not one of torchtitan's policies: its
        # "selective" is per-op (what selective-op models) or every n-th layer
        raise ConfigError("torchtitan has no core-attention-only recompute (Megatron's "
                          "selective); its per-op selective AC is recompute selective-op",
                          key="parallelism.recompute", allowed="none, selective-op, full")
    ac = {"mode": {Recompute.NONE: "none", Recompute.SELECTIVE_OP: "selective",
                   Recompute.FULL: "full"}[rec]}
    if rec is Recompute.SELECTIVE_OP:
        ac["selective_ac_option"] = "op"
    cfg = {"model": {"name": "llama3", "flavor": plan.model.name}, "training": training,
           "parallelism": par, "activation_checkpoint": ac, "compile": compile_section(plan)}
    if str(t.dtype) == "fp8":
        cfg["model"]["converters"] = ["float8"]
    return cfg


def compile_section(plan: TrainingPlan) -> dict[str, object]:
    """[compile] as the plan was costed: kernels compiled (or fused, which fleetsim prices the
    same, hwmodels.kernel_stack) compile the model; a fused loss is the compiled loss, the
    eager-fp32 loss is torchtitan's uncompiled F.cross_entropy(logits.float())."""
    t = plan.training
    components = ([] if KernelStack(str(t.kernels)) is KernelStack.EAGER else ["model"]) + \
        ([] if LossImpl(str(t.loss_impl)) is LossImpl.EAGER_FP32 else ["loss"])
    return {"enable": bool(components), "components": components or ["model", "loss"]}


def to_toml(cfg: dict[str, dict[str, object]]) -> str:
    """TOML text of a two-level mapping (strings, ints, floats, bools, lists of strings)."""
    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "\n".join(f"[{sec}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in body.items())
                     for sec, body in cfg.items())


@EXPORTERS.register(ExportTarget.TORCHTITAN)
def export_torchtitan(plan: TrainingPlan) -> Artefact:
    """job.toml + `torchrun ... -m torchtitan.train --job.config_file job.toml`."""
    text = to_toml(torchtitan_config(plan))
    command = torchrun_line(plan, "-m torchtitan.train", ("--job.config_file", "job.toml"))
    notes = (f"[model] flavor names the fleetsim model {plan.model.name!r}; map it to a "
             "torchtitan flavor (e.g. 70B) and set the tokenizer path",
             "local_batch_size = global_batch / dp; torchtitan accumulates gradients to "
             "global_batch_size")
    if KernelStack(str(plan.training.kernels)) is KernelStack.FUSED:
        notes += ("fleetsim costed fused (Megatron / Transformer Engine) kernels; torchtitan's "
                  "nearest is torch.compile, priced the same, so [compile] is enabled; cost it "
                  "as torchtitan runs it with plan train --kernels compiled|eager",)
    if plan.parallel.tp > 1 and not plan.parallel.sequence_parallel:
        notes += ("torchtitan's tensor parallelism always shards the sequence (SequenceParallel"
                  "); this plan has sequence_parallel false",)
    return Artefact(target=ExportTarget.TORCHTITAN, target_version=TORCHTITAN_VERSION,
                    command=command, files=(ArtefactFile(name="job.toml", text=text),),
                    assumptions=notes, args=("--job.config_file", "job.toml"))
