"""Shared pieces of the training exporters: the launcher line and the layer split per stage."""

from __future__ import annotations

import shlex

from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.parallel import OffloadTarget, stage_layer_counts
from simulator.training.plan import TrainingPlan

# assumption: the rendezvous endpoint and paths are the user's; fleetsim names placeholders
MASTER = "${MASTER_ADDR:-localhost}:${MASTER_PORT:-29500}"


def torchrun_line(plan: TrainingPlan, script: str, args: tuple[str, ...]) -> str:
    """`torchrun --nnodes N --nproc-per-node G ... script args` for the plan's cluster."""
    c = plan.cluster
    per_node = min(c.devices_per_node, c.num_devices)
    head = (f"torchrun --nnodes {c.num_nodes} --nproc-per-node {per_node} "
            f"--rdzv-backend c10d --rdzv-endpoint {MASTER} {script}")
    return " ".join([head, *(shlex.quote(a) for a in args)])


def sbatch_script(plan: TrainingPlan, command: str, *, job: str) -> str:
    """A Slurm batch file running `command` once per node (srun), one task per node."""
    c = plan.cluster
    return ("#!/usr/bin/env bash\n"
            f"#SBATCH --job-name={job}\n#SBATCH --nodes={c.num_nodes}\n"
            "#SBATCH --ntasks-per-node=1\n"
            f"#SBATCH --gpus-per-node={min(c.devices_per_node, c.num_devices)}\n"
            "set -euo pipefail\n"
            "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
            "export MASTER_PORT=29500\n"
            f"srun {command}\n")


def per_stage_layers(plan: TrainingPlan) -> tuple[int, ...]:
    """Layers per virtual stage, chunk-major (hwmodels.parallel.stage_layer_counts)."""
    return stage_layer_counts(plan.model.num_layers, plan.parallel)


def check_dtype(plan: TrainingPlan, target: str, allowed: tuple[DType, ...]) -> DType:
    """The plan's compute dtype, or ConfigError naming what `target` trains in."""
    dtype = DType(str(plan.training.dtype))
    if dtype not in allowed:
        raise ConfigError(f"{target} cannot train in {dtype}", key="training.dtype",
                          allowed=", ".join(str(d) for d in allowed))
    return dtype


def offloads(plan: TrainingPlan) -> tuple[OffloadTarget, OffloadTarget]:
    """(optimizer, params) offload targets of `plan` (ZeRO-Offload / ZeRO-Infinity)."""
    p = plan.parallel
    return OffloadTarget(str(p.offload_optimizer)), OffloadTarget(str(p.offload_params))


def require_offloads(plan: TrainingPlan, target: str, *, optimizer: tuple[OffloadTarget, ...],
                     params: tuple[OffloadTarget, ...], others: str) -> None:
    """ConfigError when `target` cannot express the plan's offload targets."""
    opt, par = offloads(plan)
    for name, value, allowed in (("offload_optimizer", opt, optimizer),
                                 ("offload_params", par, params)):
        if value not in allowed:
            raise ConfigError(f"{target} cannot offload {name.split('_')[1]} to {value}",
                              key=f"parallelism.{name}",
                              allowed=f"{', '.join(map(str, allowed))} (or export to {others})")
