"""What every serving exporter reads off a ServingPlan: its pools (prefill / decode / colocated
replica groups with their KV budget), the model path, the context length, and the checks that a
plan's scheduler, dtypes and expert layout exist on the target engine (ConfigError otherwise).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

from hwmodels.dtypes import DType, kv_cache_dtype, parse_dtype
from hwmodels.engine_profiles import describe_engine, load_engine
from hwmodels.errors import ConfigError
from hwmodels.memory import kv_cache_capacity, serving_weight_bytes
from planners.export.base import ExportTarget
from simulator.serving.cluster_config import Role
from simulator.serving.plan import ServingPlan

# The hwmodels.engine_profiles preset each launcher's engine is modelled by; its
# supported_schedulers (hwmodels/catalog/engines.yaml, with their sources) say which simulated
# batching policies the real engine has: one source of truth for the simulator and the exporters.
TARGET_ENGINE: dict[ExportTarget, str] = {
    ExportTarget.VLLM: "vllm-0.6",
    ExportTarget.SGLANG: "sglang",
    ExportTarget.TRTLLM: "trtllm",
}
ENGINE_TARGETS = tuple(TARGET_ENGINE)
DEFAULT_PORT = 8000  # assumption: the launchers' own default HTTP port (vLLM/SGLang/trtllm-serve)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pool:
    """One replica group as a launcher sees it: `replicas` engine instances of tp x pp GPUs."""

    name: str
    role: Role
    replicas: int
    tp: int
    pp: int
    device: str
    gpus_per_node: int
    device_memory_bytes: float
    weight_bytes: float  # per device
    kv_bytes: float  # KV cache per device fleetsim simulated

    @property
    def gpus(self) -> int:
        """GPUs of one replica."""
        return self.tp * self.pp

    @property
    def nodes(self) -> int:
        """Nodes one replica spans (1 when it fits in a node)."""
        return max(1, math.ceil(self.gpus / self.gpus_per_node))


def pools_of(plan: ServingPlan) -> tuple[Pool, ...]:
    """The plan's replica groups with their per-device weight and KV bytes (same call as
    simulator.serving.assemble, so the launched KV budget is the simulated one)."""
    sv = plan.serving
    out = []
    for g in plan.replica_groups():
        if g.count == 0:
            continue
        cap = kv_cache_capacity(plan.model, g.device, tp=g.tp, pp=g.pp, dtype=sv.dtype,
                                kv_dtype=sv.kv_dtype,
                                gpu_memory_utilization=sv.gpu_memory_utilization,
                                block_size=sv.kv_block_size, dp_attention=sv.dp_attention)
        weights = serving_weight_bytes(plan.model, parse_dtype(sv.dtype), tp=g.tp, pp=g.pp,
                                       dp_attention=sv.dp_attention)
        per_node = plan.devices_per_node or g.device.devices_per_node
        out.append(Pool(name=g.name, role=g.role, replicas=g.count, tp=g.tp, pp=g.pp,
                        device=g.device.name, gpus_per_node=per_node,
                        device_memory_bytes=g.device.memory_bytes, weight_bytes=weights,
                        kv_bytes=cap.bytes))
    if not out:
        raise ConfigError("the plan has no replicas to launch", file=plan.file,
                          key="serving.replicas", allowed="at least one replica")
    return tuple(out)


def model_path(plan: ServingPlan, override: str | None = None) -> tuple[str, str | None]:
    """The Hugging Face id to serve (the catalog source's 'org/name config.json', else the
    fleetsim model name) and, when guessed, the assumption to report."""
    if override:
        return override, None
    first = plan.model.source.split()[0] if plan.model.source else ""
    if first.count("/") == 1 and "config.json" in plan.model.source:
        return first, f"model path {first} taken from the catalog's source note; pass " \
                      "model_path= for a local checkpoint"
    return plan.model.name, (f"model path '{plan.model.name}' is fleetsim's catalog name, not "
                             "a Hugging Face id: replace it with the checkpoint path")


def max_model_len(plan: ServingPlan) -> int:
    """The context length the simulation allowed (serving.max_model_len, else the model's)."""
    return plan.serving.max_model_len or plan.model.max_seq_len


def require_serving(plan: object, target: ExportTarget) -> None:
    """ConfigError unless `plan` is a ServingPlan (a training scenario is not one)."""
    if not isinstance(plan, ServingPlan):
        raise ConfigError(f"{target} launches serving, got a {type(plan).__name__}",
                          file=getattr(plan, "file", None), key="--to",
                          allowed="a serving scenario or ServingPlan")


def check_scheduler(plan: ServingPlan, target: ExportTarget, *, via: str | None = None) -> None:
    """ConfigError (exit 2) when the target engine has no batching policy like the plan's
    scheduler, naming the targets that do (or when `plan` is not a serving plan at all)."""
    require_serving(plan, target)
    sched = str(plan.serving.scheduler)
    if sched in load_engine(TARGET_ENGINE[target]).supported_schedulers:
        return
    allowed = [str(t) for t in ENGINE_TARGETS
               if sched in load_engine(TARGET_ENGINE[t]).supported_schedulers]
    if allowed:
        allowed.append(str(ExportTarget.DYNAMO_K8S))
    name = via or str(target)
    raise ConfigError(f"{name} has no '{sched}' batching (its engine "
                      f"{TARGET_ENGINE[target]} runs {', '.join(load_engine(TARGET_ENGINE[target]).supported_schedulers)})",
                      file=plan.file, key="--to",
                      allowed=", ".join(allowed) or "none: change serving.scheduler")


def engine_notes(plan: ServingPlan, target: ExportTarget) -> list[str]:
    """Assumptions when the simulated engine is not the target's (allowed, but said)."""
    engines = {plan.engine_of(g) for g in plan.replica_groups()}
    want = TARGET_ENGINE[target]
    notes = []
    for eng in sorted(engines, key=str):
        if eng is None:
            notes.append(f"the plan was simulated with {describe_engine(None)} step costs, "
                         f"not a {target} engine profile: expect the real engine's overheads "
                         "to differ")
        elif not (eng == want or (target is ExportTarget.VLLM and eng.startswith("vllm"))):
            notes.append(f"simulated engine {eng} differs from the target {target}: its "
                         "latency figures are for the simulated engine, not this launcher")
    if plan.autoscale is not None:
        notes.append("the plan's autoscale policy is not exported: replica counts are its "
                     "starting counts")
    return notes


def weight_dtype(plan: ServingPlan) -> DType:
    """The weight dtype; int8/int4 depend on the checkpoint's quantization format, which a plan
    does not record, so they are refused (ConfigError naming the exportable dtypes)."""
    dt = parse_dtype(plan.serving.dtype)
    if dt in (DType.INT8, DType.INT4):
        raise ConfigError(f"{dt} weights need a checkpoint-specific quantization method "
                          "(awq, gptq, ...) the plan does not record", file=plan.file,
                          key="serving.dtype", allowed="bf16, fp16, fp32, tf32, fp8")
    return dt


def kv_dtype(plan: ServingPlan) -> DType | None:
    """The KV cache dtype when it differs from the engine default ('auto': the activation
    dtype), else None; int8 KV has no launcher equivalent here (ConfigError)."""
    sv = plan.serving
    if sv.kv_dtype is None:
        return None
    kv = kv_cache_dtype(sv.dtype, sv.kv_dtype)
    if kv is kv_cache_dtype(sv.dtype, None):
        return None
    if kv not in (DType.FP8, DType.BF16, DType.FP16):
        raise ConfigError(f"{kv} KV cache has no launcher setting", file=plan.file,
                          key="serving.kv_dtype", allowed="bf16, fp16, fp8 (or unset)")
    return kv


def check_expert_layout(plan: ServingPlan, target: ExportTarget) -> None:
    """vLLM's --enable-expert-parallel shards experts over all TP x DP ranks of a replica: an
    ep smaller than tp has no vLLM form (SGLang --ep-size / TRT-LLM --ep_size have one)."""
    sv = plan.serving
    if target is ExportTarget.VLLM and sv.ep > 1:
        bad = [g.tp for g in plan.replica_groups() if g.tp != sv.ep]
        if bad:
            raise ConfigError(f"vllm shards experts over every rank of a replica (ep = tp), "
                              f"got ep {sv.ep} with tp {bad[0]}", file=plan.file,
                              key="serving.ep", allowed="ep = tp for vllm; or --to sglang, "
                                                        "trtllm, dynamo-k8s")


def role_label(pool: Pool) -> str:
    """'prefill' / 'decode' / 'colocated'."""
    return "colocated" if pool.role is Role.BOTH else str(pool.role)


def join(argv: list[str]) -> str:
    """A shell line for argv (shlex-quoted, so tests can shlex.split it back)."""
    return shlex.join(argv)


def pool_header(pool: Pool) -> str:
    """The launch.sh comment above a pool's command: what to run where."""
    span = f", {pool.nodes} nodes each" if pool.nodes > 1 else ""
    return (f"# {role_label(pool)} pool '{pool.name}': {pool.replicas} replica(s) x "
            f"{pool.gpus} {pool.device} GPU(s){span} = {pool.replicas * pool.gpus} GPUs; run "
            "the line below once per replica")


def pools_extra(pools: tuple[Pool, ...], argvs: list[list[str]]) -> list[dict[str, object]]:
    """The per-pool part of Artefact.extra (JSON output): replicas, GPUs, command."""
    return [{"name": p.name, "role": role_label(p), "replicas": p.replicas,
             "gpus_per_replica": p.gpus, "nodes_per_replica": p.nodes, "device": p.device,
             "args": list(a), "command": join(a)} for p, a in zip(pools, argvs, strict=True)]


def multi_pool_command(pools: tuple[Pool, ...], argvs: list[list[str]]) -> str:
    """launch.sh body: each pool's line under its header (one line when colocated)."""
    if len(pools) == 1 and pools[0].replicas == 1 and pools[0].nodes == 1:
        return join(argvs[0])
    return "\n".join(f"{pool_header(p)}\n{join(a)}" for p, a in zip(pools, argvs, strict=True))
