"""DeepSpeed ds_config.json + `deepspeed` launcher line for a (data-parallel) TrainingPlan.

Keys follow deepspeedai/DeepSpeed edaa7221 (2026-08-22): deepspeed/runtime/constants.py,
runtime/zero/config.py (stage3_* aliases), zero/offload_config.py, precision_config.py,
communication_data_type (runtime/config.py) (pinned in tests/data/launchers/deepspeed.json).
"""

from __future__ import annotations

import json

from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.parallel import OffloadTarget
from hwmodels.training.fsdp import grad_wire_bytes
from hwmodels.training.gradsync import grad_reduce_bytes
from planners.export.base import EXPORTERS, Artefact, ArtefactFile, ExportTarget
from planners.export.train_common import check_dtype, offloads
from simulator.training.plan import TrainingPlan

DEEPSPEED_VERSION = "deepspeedai/DeepSpeed@edaa7221 (2026-08-22)"
# DeepSpeedZeroConfig defaults: reduce/allgather 5e8, stage3_prefetch 5e7 elements
DEFAULT_BUCKET = 500_000_000


# assumption: where the node's NVMe array is mounted; the user edits it
NVME_PATH = "/local_nvme"


def ds_config(plan: TrainingPlan) -> dict[str, object]:
    """The ds_config mapping; tp/pp/cp/ep need Megatron-DeepSpeed, not plain DeepSpeed."""
    p, t = plan.parallel, plan.training
    if p.tp > 1 or p.pp > 1 or p.cp > 1 or p.ep > 1:
        raise ConfigError(f"plain DeepSpeed launches data-parallel ZeRO plans, this one has tp "
                          f"{p.tp} pp {p.pp} cp {p.cp} ep {p.ep}", key="--to",
                          allowed="megatron, torchtitan")
    dtype = check_dtype(plan, "DeepSpeed", (DType.BF16, DType.FP16))
    zero: dict[str, object] = {"stage": p.zero, "overlap_comm": p.overlap_grad_reduce,
                               "contiguous_gradients": True,
                               "reduce_bucket_size": DEFAULT_BUCKET,
                               "allgather_bucket_size": DEFAULT_BUCKET}
    if p.zero == 3 and p.fsdp_bucket_mb is not None:  # DeepSpeed counts elements
        zero["stage3_prefetch_bucket_size"] = int(p.fsdp_bucket_mb * 2**20 /
                                                  (2 if dtype is DType.BF16 else 2))
    opt, par = offloads(plan)
    if p.fsdp_shard_size is not None:
        # hybrid sharding = MiCS: model states partitioned over mics_shard_size ranks and
        # replicated across the groups, grads all-reduced across them at the accumulation
        # boundary (deepspeed/runtime/zero/mics.py). Not ZeRO++ hpZ (zero_hpz_partition_size:
        # a secondary copy of the weights per node, states still sharded over all of DP).
        # MiCS refuses offload ("Local sharding has no support for CPU offloading").
        if (opt, par) != (OffloadTarget.NONE, OffloadTarget.NONE):
            raise ConfigError("DeepSpeed MiCS (hybrid sharding) does not offload",
                              key="parallelism.fsdp_shard_size",
                              allowed="no offload, or fsdp_shard_size null")
        zero["mics_shard_size"] = p.fsdp_shard_size
        zero["mics_hierarchical_params_gather"] = False
    for key, target in (("offload_optimizer", opt), ("offload_param", par)):
        if target is not OffloadTarget.NONE:
            zero[key] = {"device": str(target), "pin_memory": True}
            if target is OffloadTarget.NVME:
                zero[key]["nvme_path"] = NVME_PATH
    accum = t.global_batch // (t.micro_batch * p.dp)
    return {"train_batch_size": t.global_batch, "train_micro_batch_size_per_gpu": t.micro_batch,
            "gradient_accumulation_steps": accum, "zero_optimization": zero,
            "communication_data_type": _communication_dtype(plan, dtype),
            "bf16": {"enabled": dtype is DType.BF16}, "fp16": {"enabled": dtype is DType.FP16}}


def _communication_dtype(plan: TrainingPlan, dtype: DType) -> str:
    """The gradient reduction's dtype the plan was costed with, as DeepSpeed names it
    (runtime/config.py get_communication_data_type: fp16 | bf16 | fp32). Written always: left
    unset, DeepSpeed would pick the model dtype, which is not what fleetsim charges for a
    ZeRO-1/2 plan (Megatron's fp32 main grads, parallelism.grad_reduce_dtype)."""
    p = plan.parallel
    nbytes = (grad_wire_bytes(p) if p.zero == 3
              else grad_reduce_bytes(plan.training.dtype, p))
    if nbytes == 4.0:
        return "fp32"
    return "bf16" if dtype is DType.BF16 else "fp16"


@EXPORTERS.register(ExportTarget.DEEPSPEED)
def export_deepspeed(plan: TrainingPlan) -> Artefact:
    """ds_config.json + `deepspeed --num_nodes N --num_gpus G train.py --deepspeed_config`."""
    cfg = ds_config(plan)
    c = plan.cluster
    args = ("--deepspeed", "--deepspeed_config", "ds_config.json")
    command = (f"deepspeed --num_nodes {c.num_nodes} --num_gpus "
               f"{min(c.devices_per_node, c.num_devices)} --hostfile hostfile train.py "
               + " ".join(args))
    notes = ("train.py is the user's script calling deepspeed.initialize",
             "hostfile lists the nodes ('host slots=G' per line)")
    if plan.parallel.fsdp_shard_size is not None:
        notes += ("mics_shard_size: train.py must build the model under "
                  "deepspeed.zero.MiCS_Init (not deepspeed.zero.Init) for MiCS sharding",)
    return Artefact(target=ExportTarget.DEEPSPEED, target_version=DEEPSPEED_VERSION,
                    command=command, args=args, assumptions=notes,
                    files=(ArtefactFile(name="ds_config.json",
                                        text=json.dumps(cfg, indent=2) + "\n"),))
