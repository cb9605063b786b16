"""`vllm serve` lines for a ServingPlan: one per pool (prefill / decode pools get a NixlConnector
--kv-transfer-config), flag names and types tested against vLLM's pinned EngineArgs.add_cli_args
(tests/data/launchers/vllm.json: vllm-project/vllm@99d7eb5d vllm/engine/arg_utils.py)."""

from __future__ import annotations

import json

from hwmodels.dtypes import DType
from hwmodels.engine_profiles import Admission
from hwmodels.errors import ConfigError
from planners.export import serve_common as sc
from planners.export.base import EXPORTERS, Artefact, ExportTarget
from simulator.serving.cluster_config import Role
from simulator.serving.plan import ServingPlan
from simulator.serving.schedulers import SchedulerKind

VLLM_VERSION = "vllm@99d7eb5d (EngineArgs.add_cli_args, v0.11-era V1 engine)"
# --dtype choices of ModelDType (vllm/config/model.py); fp8 weights are --quantization fp8
VLLM_DTYPE = {DType.BF16: "bfloat16", DType.FP16: "float16", DType.FP32: "float32",
              DType.TF32: "float32", DType.FP8: "bfloat16"}
VLLM_KV_DTYPE = {DType.FP8: "fp8", DType.BF16: "bfloat16", DType.FP16: "float16"}  # CacheDType
# KVTransferConfig.kv_role (vllm/config/kv_transfer.py@007c643b): prefill produces KV, decode
# consumes it; the connector name is vLLM's NIXL connector (docs/features/nixl_connector_usage)
KV_ROLE = {Role.PREFILL: "kv_producer", Role.DECODE: "kv_consumer"}
KV_CONNECTOR = "NixlConnector"
HEAD_NODE = "HEAD_NODE_IP"  # placeholder the user replaces (a multi-node replica's first node)


def check(plan: ServingPlan) -> None:
    """What this vLLM cannot run: another batching policy, multi-step scheduling, ep < tp."""
    sc.check_scheduler(plan, ExportTarget.VLLM)
    if plan.serving.num_scheduler_steps > 1:
        raise ConfigError("multi-step scheduling was removed from vLLM (arg_utils.py@99d7eb5d: "
                          "'multi-step scheduling has been removed')", file=plan.file,
                          key="serving.num_scheduler_steps", allowed="1")
    sc.check_expert_layout(plan, ExportTarget.VLLM)


def engine_args(plan: ServingPlan, pool: sc.Pool, *, model: str) -> list[str]:
    """vLLM engine arguments of one pool's replica (shared with the Dynamo exporter)."""
    sv = plan.serving
    argv = ["--model", model]
    if sv.dp_attention:  # attention data-parallel over the replica's GPUs (serving_moe)
        argv += ["--tensor-parallel-size", "1", "--data-parallel-size", str(pool.tp)]
    else:
        argv += ["--tensor-parallel-size", str(pool.tp)]
    argv += ["--pipeline-parallel-size", str(pool.pp)]
    if sv.ep > 1:
        argv.append("--enable-expert-parallel")
    if sv.scheduler is SchedulerKind.SARATHI:  # chunked prefill: chunk_size tokens per step
        argv += ["--enable-chunked-prefill", "--max-num-batched-tokens", str(sv.chunk_size)]
    else:  # whole prompts within max_batch_tokens
        argv += ["--no-enable-chunked-prefill", "--max-num-batched-tokens",
                 str(sv.max_batch_tokens)]
    argv += ["--max-num-seqs", str(sv.max_num_seqs), "--max-model-len",
             str(sc.max_model_len(plan)), "--block-size", str(sv.kv_block_size),
             "--gpu-memory-utilization", f"{sv.gpu_memory_utilization:g}",
             "--enable-prefix-caching" if sv.prefix_caching else "--no-enable-prefix-caching"]
    wdt = sc.weight_dtype(plan)
    argv += ["--dtype", VLLM_DTYPE[wdt]]
    if wdt is DType.FP8:
        argv += ["--quantization", "fp8"]
    kv = sc.kv_dtype(plan)
    if kv is not None:
        argv += ["--kv-cache-dtype", VLLM_KV_DTYPE[kv]]
    if pool.role in KV_ROLE:
        argv += ["--kv-transfer-config", json.dumps(
            {"kv_connector": KV_CONNECTOR, "kv_role": KV_ROLE[pool.role]},
            separators=(",", ":"))]
    if pool.nodes > 1 and sv.dp_attention:
        argv += ["--data-parallel-size-local", str(pool.gpus_per_node),
                 "--data-parallel-address", HEAD_NODE]
    return argv


def notes(plan: ServingPlan, pools: tuple[sc.Pool, ...]) -> list[str]:
    """The choices this export makes that the plan does not pin down."""
    sv = plan.serving
    out = sc.engine_notes(plan, ExportTarget.VLLM)
    if sv.admission is Admission.NO_EVICT:
        out.append("the plan reserves KV for whole outputs (no-evict admission); vLLM admits "
                   "on the prompt and preempts by recompute")
    if sv.admission is Admission.SWAP:
        out.append("the plan swaps preempted KV to host; the V1 engine preempts by recompute")
    if sv.scheduler is not SchedulerKind.SARATHI and sv.max_batch_tokens < sc.max_model_len(plan):
        out.append(f"without chunked prefill vLLM rejects prompts longer than "
                   f"--max-num-batched-tokens {sv.max_batch_tokens} (< max_model_len)")
    if sc.max_model_len(plan) > plan.model.max_seq_len:
        out.append(f"--max-model-len {sc.max_model_len(plan)} exceeds the model's "
                   f"{plan.model.max_seq_len} positions: the checkpoint must support it")
    for p in pools:
        if p.nodes > 1 and sv.dp_attention:
            out.append(f"pool '{p.name}' spans {p.nodes} nodes: run the line on the first node "
                       f"and, on node k, add --headless --data-parallel-start-rank "
                       f"{p.gpus_per_node}*k; replace {HEAD_NODE}")
        elif p.nodes > 1:
            out.append(f"pool '{p.name}' spans {p.nodes} nodes: vLLM runs it on a Ray cluster "
                       "(--distributed-executor-backend ray) started across those nodes")
    if plan.disaggregated:
        out.append("prefill and decode instances need a router that sends each request to a "
                   "prefill then a decode instance (vLLM's disagg proxy, or --to dynamo-k8s)")
    if any(p.replicas > 1 for p in pools):
        out.append("each replica is its own `vllm serve` behind a load balancer "
                   f"(fleetsim router: {sv.router})")
    return out


@EXPORTERS.register(ExportTarget.VLLM)
def export_vllm(plan: ServingPlan, *, model_path: str | None = None,
                port: int = sc.DEFAULT_PORT) -> Artefact:
    """The `vllm serve` line(s) of a serving plan, per pool with its replica count."""
    check(plan)
    pools = sc.pools_of(plan)
    model, guess = sc.model_path(plan, model_path)
    argvs = [["vllm", "serve", model, "--host", "0.0.0.0", "--port", str(port),
              *engine_args(plan, p, model=model)[2:]] for p in pools]
    assumptions = [*([guess] if guess else []), *notes(plan, pools)]
    return Artefact(target=ExportTarget.VLLM, target_version=VLLM_VERSION,
                    command=sc.multi_pool_command(pools, argvs), args=tuple(argvs[0]),
                    assumptions=tuple(assumptions),
                    extra={"pools": sc.pools_extra(pools, argvs)})
