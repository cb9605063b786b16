"""`python -m sglang.launch_server` lines for a ServingPlan, one per pool (--disaggregation-mode
prefill|decode for disaggregated pools); flags tested against SGLang's pinned ServerArgs
(tests/data/launchers/sglang.json: sgl-project/sglang@001067ff python/sglang/srt/server_args.py)."""

from __future__ import annotations

from hwmodels.dtypes import DType
from hwmodels.engine_profiles import Admission
from hwmodels.errors import ConfigError
from planners.export import serve_common as sc
from planners.export.base import EXPORTERS, Artefact, ExportTarget
from simulator.serving.cluster_config import Role
from simulator.serving.plan import ServingPlan
from simulator.serving.schedulers import SchedulerKind

SGLANG_VERSION = "sglang@001067ff (ServerArgs dataclass fields -> --field-name flags)"
SGLANG_DTYPE = {DType.BF16: "bfloat16", DType.FP16: "float16", DType.FP32: "float32",
                DType.TF32: "float32", DType.FP8: "bfloat16"}
SGLANG_KV_DTYPE = {DType.FP8: "fp8_e4m3", DType.BF16: "bf16"}  # kv_cache_dtype choices
DISAGG_MODE = {Role.PREFILL: "prefill", Role.DECODE: "decode"}
TRANSFER_BACKEND = "mooncake"  # ServerArgs.disaggregation_transfer_backend's default
DIST_INIT_PORT = 5000  # assumption: any free port on the first node of a multi-node replica
HEAD_NODE = "HEAD_NODE_IP"


def mem_fraction_static(pool: sc.Pool) -> float:
    """SGLang's --mem-fraction-static (weights + KV pool / GPU memory) giving the KV bytes
    fleetsim simulated (hwmodels.memory.kv_cache_capacity), floored to 3 decimals."""
    frac = (pool.weight_bytes + pool.kv_bytes) / pool.device_memory_bytes
    return int(frac * 1000) / 1000


def engine_args(plan: ServingPlan, pool: sc.Pool, *, model: str) -> list[str]:
    """SGLang server arguments of one pool's replica (shared with the Dynamo exporter)."""
    sv = plan.serving
    argv = ["--model-path", model, "--tp-size", str(pool.tp), "--pp-size", str(pool.pp)]
    if sv.dp_attention:
        argv += ["--enable-dp-attention", "--dp-size", str(pool.tp)]
    if sv.ep > 1:
        argv += ["--ep-size", str(sv.ep)]
    if sv.scheduler is SchedulerKind.SARATHI:  # chunks mixed with decodes, chunk_size a step
        argv += ["--chunked-prefill-size", str(sv.chunk_size), "--enable-mixed-chunk"]
    else:  # whole prompts in prefill-only batches within max_batch_tokens
        argv += ["--chunked-prefill-size", "-1", "--max-prefill-tokens",
                 str(sv.max_batch_tokens)]
    argv += ["--max-running-requests", str(sv.max_num_seqs), "--context-length",
             str(sc.max_model_len(plan)), "--page-size", str(sv.kv_block_size),
             "--mem-fraction-static", f"{mem_fraction_static(pool):g}"]
    if not sv.prefix_caching:
        argv.append("--disable-radix-cache")
    if sv.num_scheduler_steps > 1:
        argv += ["--num-continuous-decode-steps", str(sv.num_scheduler_steps)]
    wdt = sc.weight_dtype(plan)
    argv += ["--dtype", SGLANG_DTYPE[wdt]]
    if wdt is DType.FP8:
        argv += ["--quantization", "fp8"]
    kv = sc.kv_dtype(plan)
    if kv is not None:
        if kv not in SGLANG_KV_DTYPE:
            raise ConfigError(f"SGLang has no {kv} KV cache", file=plan.file,
                              key="serving.kv_dtype", allowed="fp8, bf16 (or unset)")
        argv += ["--kv-cache-dtype", SGLANG_KV_DTYPE[kv]]
    if pool.role in DISAGG_MODE:
        argv += ["--disaggregation-mode", DISAGG_MODE[pool.role],
                 "--disaggregation-transfer-backend", TRANSFER_BACKEND]
    if pool.nodes > 1:
        argv += ["--nnodes", str(pool.nodes), "--node-rank", "0", "--dist-init-addr",
                 f"{HEAD_NODE}:{DIST_INIT_PORT}"]
    return argv


def notes(plan: ServingPlan, pools: tuple[sc.Pool, ...]) -> list[str]:
    """The choices this export makes that the plan does not pin down."""
    sv = plan.serving
    out = sc.engine_notes(plan, ExportTarget.SGLANG)
    out.append("--mem-fraction-static is set so weights + KV pool match the simulated KV "
               f"budget (serving.gpu_memory_utilization {sv.gpu_memory_utilization:g} minus "
               "fleetsim's activation and non-torch reserve)")
    if sv.admission is Admission.NO_EVICT:
        out.append("the plan reserves KV for whole outputs (no-evict); SGLang admits on the "
                   "prompt and retracts (recompute) when KV runs out")
    if sv.num_scheduler_steps > 1:
        out.append("serving.num_scheduler_steps maps to --num-continuous-decode-steps")
    if sc.max_model_len(plan) > plan.model.max_seq_len:
        out.append(f"--context-length {sc.max_model_len(plan)} exceeds the model's "
                   f"{plan.model.max_seq_len} positions: the checkpoint must support it")
    for p in pools:
        if p.nodes > 1:
            out.append(f"pool '{p.name}' spans {p.nodes} nodes: run the line on each with "
                       f"--node-rank 0..{p.nodes - 1}; replace {HEAD_NODE}")
    if plan.disaggregated:
        out.append("prefill and decode servers need SGLang's router in PD mode "
                   "(sglang_router --pd-disaggregation) or --to dynamo-k8s; transfer backend "
                   f"{TRANSFER_BACKEND} (SGLang's default)")
    if any(p.replicas > 1 for p in pools):
        out.append(f"each replica is its own server behind a router (fleetsim: {sv.router})")
    return out


@EXPORTERS.register(ExportTarget.SGLANG)
def export_sglang(plan: ServingPlan, *, model_path: str | None = None,
                  port: int = sc.DEFAULT_PORT) -> Artefact:
    """The SGLang launch_server line(s) of a serving plan, per pool with its replica count."""
    sc.check_scheduler(plan, ExportTarget.SGLANG)
    pools = sc.pools_of(plan)
    model, guess = sc.model_path(plan, model_path)
    argvs = []
    for p in pools:  # --model-path first, then host and port, then the engine's own flags
        args = engine_args(plan, p, model=model)
        argvs.append(["python", "-m", "sglang.launch_server", *args[:2], "--host", "0.0.0.0",
                      "--port", str(port), *args[2:]])
    assumptions = [*([guess] if guess else []), *notes(plan, pools)]
    return Artefact(target=ExportTarget.SGLANG, target_version=SGLANG_VERSION,
                    command=sc.multi_pool_command(pools, argvs), args=tuple(argvs[0]),
                    assumptions=tuple(assumptions),
                    extra={"pools": sc.pools_extra(pools, argvs)})
