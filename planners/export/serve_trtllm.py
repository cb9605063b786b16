"""`trtllm-serve MODEL` lines plus their `--extra_llm_api_options` YAML for a ServingPlan, one
per pool; flags tested against the pinned click options (tensorrt_llm/commands/serve.py@00209af1)
and YAML keys against the pinned LlmArgs fields (tensorrt_llm/llmapi/llm_args.py, see
tests/data/launchers/trtllm.json)."""

from __future__ import annotations

import yaml

from hwmodels.dtypes import DType
from hwmodels.engine_profiles import Admission, load_engine
from planners.export import serve_common as sc
from planners.export.base import EXPORTERS, Artefact, ArtefactFile, ExportTarget
from simulator.serving.cluster_config import Role
from simulator.serving.plan import ServingPlan
from simulator.serving.schedulers import SchedulerKind

TRTLLM_VERSION = "tensorrt_llm@00209af1 (trtllm-serve click options; LlmArgs of llm_args.py)"
BACKEND = "pytorch"  # trtllm-serve's default --backend in the pinned serve.py
TRTLLM_DTYPE = {DType.BF16: "bfloat16", DType.FP16: "float16", DType.FP32: "float32",
                DType.TF32: "float32", DType.FP8: "auto"}
TRTLLM_KV_DTYPE = {DType.FP8: "fp8", DType.BF16: "bfloat16", DType.FP16: "float16"}
# CapacitySchedulerPolicy: no-evict reserves KV for the whole output; MAX_UTILIZATION admits
# more and pauses requests when KV runs out (the recompute/swap admission of the simulator)
CAPACITY_POLICY = {Admission.NO_EVICT: "GUARANTEED_NO_EVICT",
                   Admission.RECOMPUTE: "MAX_UTILIZATION", Admission.SWAP: "MAX_UTILIZATION"}
TRANSCEIVER_BACKEND = "DEFAULT"  # CacheTransceiverConfig.backend Literal


def free_gpu_memory_fraction(pool: sc.Pool) -> float:
    """TRT-LLM's KV fraction of the memory left after the weights, giving the KV bytes fleetsim
    simulated (its activation workspace comes out of the rest), floored to 3 decimals."""
    frac = pool.kv_bytes / (pool.device_memory_bytes - pool.weight_bytes)
    return int(frac * 1000) / 1000


def llm_api_options(plan: ServingPlan, pool: sc.Pool) -> dict[str, object]:
    """The extra_llm_api_options mapping of one pool (LlmArgs field names)."""
    sv = plan.serving
    kv: dict[str, object] = {"free_gpu_memory_fraction": free_gpu_memory_fraction(pool),
                             "enable_block_reuse": bool(sv.prefix_caching),
                             "tokens_per_block": sv.kv_block_size}
    kv_dt = sc.kv_dtype(plan)
    kv["dtype"] = TRTLLM_KV_DTYPE[kv_dt] if kv_dt is not None else "auto"
    out: dict[str, object] = {
        "dtype": TRTLLM_DTYPE[sc.weight_dtype(plan)], "kv_cache_config": kv,
        "enable_chunked_prefill": sv.scheduler is SchedulerKind.SARATHI,
        "scheduler_config": {"capacity_scheduler_policy": CAPACITY_POLICY[sv.admission]}}
    if sv.dp_attention:
        out["enable_attention_dp"] = True
    eng = load_engine(plan.serving.engine)
    if eng.cuda_graphs and eng.cuda_graph_max_seqs > 0:  # as simulated: graphs up to that batch
        out["cuda_graph_config"] = {"max_batch_size": min(sv.max_num_seqs,
                                                          eng.cuda_graph_max_seqs)}
    if pool.role is not Role.BOTH:
        out["cache_transceiver_config"] = {"backend": TRANSCEIVER_BACKEND}
    if pool.role is Role.PREFILL:  # TRT-LLM disaggregated docs: context servers run without it
        out["disable_overlap_scheduler"] = True
    return out


def options_file(pool: sc.Pool) -> str:
    """The YAML file name of a pool's extra options."""
    return f"trtllm-{pool.name}.yaml"


def serve_args(plan: ServingPlan, pool: sc.Pool, *, model: str, port: int) -> list[str]:
    """The trtllm-serve argv of one pool's replica."""
    sv = plan.serving
    tokens = sv.chunk_size if sv.scheduler is SchedulerKind.SARATHI else sv.max_batch_tokens
    argv = ["trtllm-serve", model, "--host", "0.0.0.0", "--port", str(port), "--backend",
            BACKEND, "--tp_size", str(pool.tp), "--pp_size", str(pool.pp)]
    if sv.ep > 1:
        argv += ["--ep_size", str(sv.ep)]
    argv += ["--max_batch_size", str(sv.max_num_seqs), "--max_num_tokens", str(tokens),
             "--max_seq_len", str(sc.max_model_len(plan)),
             "--kv_cache_free_gpu_memory_fraction", f"{free_gpu_memory_fraction(pool):g}"]
    if sv.scheduler is SchedulerKind.SARATHI:
        argv.append("--enable_chunked_prefill")
    argv += ["--extra_llm_api_options", options_file(pool)]
    return argv


def notes(plan: ServingPlan, pools: tuple[sc.Pool, ...]) -> list[str]:
    """The choices this export makes that the plan does not pin down."""
    sv = plan.serving
    out = sc.engine_notes(plan, ExportTarget.TRTLLM)
    out.append("--kv_cache_free_gpu_memory_fraction is the simulated KV bytes over (GPU memory "
               "- weights); TRT-LLM takes it of the memory free after its own buffers too")
    if sc.weight_dtype(plan) is DType.FP8:
        out.append("fp8 weights: point MODEL at an FP8 (ModelOpt) checkpoint; dtype auto")
    if plan.serving.engine in (None, "kernel-only") or not load_engine(sv.engine).cuda_graphs:
        out.append("no cuda_graph_config: the simulated engine ran without CUDA graphs, the "
                   "pytorch backend's own default applies")
    if sc.max_model_len(plan) > plan.model.max_seq_len:
        out.append(f"--max_seq_len {sc.max_model_len(plan)} exceeds the model's "
                   f"{plan.model.max_seq_len} positions: the checkpoint must support it")
    for p in pools:
        if p.nodes > 1:
            out.append(f"pool '{p.name}' spans {p.nodes} nodes: launch it under MPI/Slurm "
                       "(trtllm-llmapi-launch) across them")
    if plan.disaggregated:
        out.append(f"the orchestrator (`trtllm-serve disaggregated --config_file {DISAGG_FILE}`) lists "
                   "every context (prefill) and generation (decode) server as "
                   "<POOL>_HOST_<i>:port: replace them with the hosts each replica runs on; "
                   "prefill pools set disable_overlap_scheduler")
    if any(p.replicas > 1 for p in pools):
        out.append(f"each replica is its own server behind a router (fleetsim: {sv.router})")
    return out


# `trtllm-serve disaggregated -c FILE` orchestrator config: hostname, port, backend and the
# context/generation servers' num_instances + urls (TensorRT-LLM examples/disaggregated/
# README.md @c3c3d76e, pinned in tests/data/launchers/trtllm.json "disaggregated_config")
DISAGG_FILE = "trtllm-disaggregated.yaml"


def disaggregated_config(plan: ServingPlan, pools: tuple[sc.Pool, ...], *, port: int
                         ) -> dict[str, object]:
    """The orchestrator's YAML: one URL per replica of each prefill / decode pool."""
    def servers(role: Role) -> dict[str, object]:
        urls = [f"{p.name.upper()}_HOST_{i}:{port}" for p in pools if p.role is role
                for i in range(p.replicas)]
        return {"num_instances": len(urls), "urls": urls}

    return {"hostname": "0.0.0.0", "port": port, "backend": "pytorch",
            "context_servers": servers(Role.PREFILL),
            "generation_servers": servers(Role.DECODE)}


@EXPORTERS.register(ExportTarget.TRTLLM)
def export_trtllm(plan: ServingPlan, *, model_path: str | None = None,
                  port: int = sc.DEFAULT_PORT) -> Artefact:
    """trtllm-serve line(s) and extra_llm_api_options YAML per pool."""
    sc.check_scheduler(plan, ExportTarget.TRTLLM)
    pools = sc.pools_of(plan)
    model, guess = sc.model_path(plan, model_path)
    argvs = [serve_args(plan, p, model=model, port=port) for p in pools]
    files = tuple(ArtefactFile(name=options_file(p), text=yaml.safe_dump(
        llm_api_options(plan, p), sort_keys=False)) for p in pools)
    assumptions = [*([guess] if guess else []), *notes(plan, pools)]
    command = sc.multi_pool_command(pools, argvs)
    if plan.disaggregated:
        files += (ArtefactFile(name=DISAGG_FILE, text=yaml.safe_dump(
            disaggregated_config(plan, pools, port=port), sort_keys=False)),)
        command += ("\n# orchestrator (OpenAI endpoint), once the servers above are up\n"
                    + sc.join(["trtllm-serve", "disaggregated", "--config_file", DISAGG_FILE]))
    return Artefact(target=ExportTarget.TRTLLM, target_version=TRTLLM_VERSION,
                    command=command, args=tuple(argvs[0]),
                    files=files, assumptions=tuple(assumptions),
                    extra={"pools": sc.pools_extra(pools, argvs)})
