"""A Dynamo DynamoGraphDeployment (nvidia.com/v1alpha1) for a ServingPlan: a Frontend and one
worker service per pool (subComponentType prefill / decode when disaggregated) with its replicas,
GPUs and the worker's engine arguments from the vLLM / SGLang / TensorRT-LLM exporters. Keys are
tested against the pinned CRD and examples of ai-dynamo/dynamo (tests/data/launchers/dynamo.json).
"""

from __future__ import annotations

import json
import re

import yaml

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from planners.export import serve_common as sc
from planners.export import serve_sglang, serve_trtllm, serve_vllm
from planners.export.base import EXPORTERS, Artefact, ArtefactFile, ExportTarget
from simulator.serving.cluster_config import Role
from simulator.serving.plan import ServingPlan
from simulator.serving.schedulers import SchedulerKind

DYNAMO_VERSION = "dynamo@04521f47 (DynamoGraphDeployment v1alpha1, runtime images 1.3.1)"
API_VERSION = "nvidia.com/v1alpha1"
KIND = "DynamoGraphDeployment"
GRAPH_FILE = "dynamo-graph.yaml"
CONFIG_MOUNT = "/config"  # where the TensorRT-LLM engine YAMLs are mounted (assumption)
HF_SECRET = "hf-token-secret"  # the secret name Dynamo's examples read HF_TOKEN from


class Backend(StrEnum):
    """The worker engine of a Dynamo graph (spec.backendFramework enum of the CRD)."""

    VLLM = "vllm"
    SGLANG = "sglang"
    TRTLLM = "trtllm"


BACKEND_TARGET = {Backend.VLLM: ExportTarget.VLLM, Backend.SGLANG: ExportTarget.SGLANG,
                  Backend.TRTLLM: ExportTarget.TRTLLM}
# examples/backends/<backend>/deploy/disagg.yaml @04521f47: runtime image per backend
IMAGE = {Backend.VLLM: "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.3.1",
         Backend.SGLANG: "nvcr.io/nvidia/ai-dynamo/sglang-runtime:1.3.1",
         Backend.TRTLLM: "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:1.3.1"}
MODULE = {Backend.VLLM: "dynamo.vllm", Backend.SGLANG: "dynamo.sglang",
          Backend.TRTLLM: "dynamo.trtllm"}
# the examples' KV transfer between pools: NIXL for all three backends
VLLM_KV_BOTH = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"},
                          separators=(",", ":"))
SGLANG_TRANSFER = "nixl"
# launcher-level flags the operator's multinode setup replaces (ranks, head address)
_MULTINODE_FLAGS = {"--data-parallel-size-local", "--data-parallel-address", "--nnodes",
                    "--node-rank", "--dist-init-addr"}


def backend_of(plan: ServingPlan, backend: str | Backend | None) -> Backend:
    """The given backend, else the plan's simulated engine (sglang / trtllm), else vLLM."""
    if backend is not None:
        try:
            return Backend(str(backend))
        except ValueError:
            raise ConfigError(f"unknown Dynamo backend '{backend}'", key="backend",
                              allowed=[b.value for b in Backend]) from None
    eng = plan.serving.engine or ""
    return Backend.SGLANG if eng == "sglang" else Backend.TRTLLM if eng == "trtllm" \
        else Backend.VLLM


def _drop(argv: list[str], flags: set[str]) -> list[str]:
    """argv without `flags` and their values (every dropped flag takes one)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in flags:
            skip = True
        else:
            out.append(a)
    return out


def _set(argv: list[str], flag: str, value: str) -> list[str]:
    """argv with flag's value replaced (or appended)."""
    if flag in argv:
        i = argv.index(flag)
        return [*argv[:i + 1], value, *argv[i + 2:]]
    return [*argv, flag, value]


def worker_args(plan: ServingPlan, pool: sc.Pool, backend: Backend, *, model: str) -> list[str]:
    """The worker container's args: the engine's own arguments plus Dynamo's role flag."""
    mode = ["--disaggregation-mode", str(pool.role)] if pool.role is not Role.BOTH else []
    if backend is Backend.VLLM:
        argv = _drop(serve_vllm.engine_args(plan, pool, model=model),
                     _MULTINODE_FLAGS | {"--kv-transfer-config"})
        kv = ["--kv-transfer-config", VLLM_KV_BOTH] if pool.role is Role.PREFILL else []
        return [*argv, *mode, *kv]
    if backend is Backend.SGLANG:
        argv = _drop(serve_sglang.engine_args(plan, pool, model=model), _MULTINODE_FLAGS)
        if pool.role is not Role.BOTH:
            argv = _set(argv, "--disaggregation-transfer-backend", SGLANG_TRANSFER)
        return ["--served-model-name", model, *argv]
    return ["--model-path", model, "--served-model-name", model, "--extra-engine-args",
            f"{CONFIG_MOUNT}/{serve_trtllm.options_file(pool)}", *mode]


def trtllm_engine_config(plan: ServingPlan, pool: sc.Pool) -> dict[str, object]:
    """dynamo.trtllm's --extra-engine-args: the LlmArgs of the trtllm-serve export, with the
    parallel sizes and limits trtllm-serve took as flags."""
    sv = plan.serving
    tokens = sv.chunk_size if sv.scheduler is SchedulerKind.SARATHI else sv.max_batch_tokens
    out: dict[str, object] = {"tensor_parallel_size": pool.tp,
                              "pipeline_parallel_size": pool.pp}
    if sv.ep > 1:
        out["moe_expert_parallel_size"] = sv.ep
    out.update(max_batch_size=sv.max_num_seqs, max_num_tokens=tokens,
               max_seq_len=sc.max_model_len(plan))
    out.update(serve_trtllm.llm_api_options(plan, pool))
    return out


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", name) if p)


def _dns(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63] or "fleetsim-plan"


def _gpus_per_pod(plan: ServingPlan, pool: sc.Pool) -> int:
    """GPUs one pod requests: the replica's, split evenly over its nodes."""
    if pool.gpus % pool.nodes:
        raise ConfigError(f"a replica of {pool.gpus} GPUs does not split evenly over "
                          f"{pool.nodes} nodes of {pool.gpus_per_node}", file=plan.file,
                          key="serving.tp", allowed="tp x pp a multiple of devices_per_node")
    return pool.gpus // pool.nodes


def _service(plan: ServingPlan, pool: sc.Pool, backend: Backend, *, model: str,
             config_map: str | None) -> dict[str, object]:
    """One worker service of the graph."""
    main: dict[str, object] = {"image": IMAGE[backend],
                               "command": ["python3", "-m", MODULE[backend]],
                               "args": worker_args(plan, pool, backend, model=model)}
    pod: dict[str, object] = {"mainContainer": main}
    if config_map is not None:
        main["volumeMounts"] = [{"name": "engine-configs", "mountPath": CONFIG_MOUNT}]
        pod["volumes"] = [{"name": "engine-configs", "configMap": {"name": config_map}}]
    svc: dict[str, object] = {"envFromSecret": HF_SECRET, "componentType": "worker"}
    if pool.role is not Role.BOTH:
        svc["subComponentType"] = str(pool.role)
    svc["replicas"] = pool.replicas
    if pool.nodes > 1:
        svc["multinode"] = {"nodeCount": pool.nodes}
    svc["resources"] = {"limits": {"gpu": str(_gpus_per_pod(plan, pool))}}
    svc["extraPodSpec"] = pod
    return svc


def graph(plan: ServingPlan, backend: Backend, *, model: str, name: str,
          config_map: str | None) -> dict[str, object]:
    """The DynamoGraphDeployment mapping."""
    services: dict[str, object] = {"Frontend": {
        "componentType": "frontend", "replicas": plan.serving.routers,
        "extraPodSpec": {"mainContainer": {"image": IMAGE[backend],
                                           "command": ["python3", "-m", "dynamo.frontend"],
                                           "args": ["--http-port", str(sc.DEFAULT_PORT)]}}}}
    for pool in sc.pools_of(plan):
        role = "" if pool.role is Role.BOTH else _camel(str(pool.role))
        key = f"{_camel(backend.value)}{role}Worker" if pool.name in ("default", "prefill",
                                                                     "decode") \
            else f"{_camel(pool.name)}Worker"
        services[key] = _service(plan, pool, backend, model=model, config_map=config_map)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
            "spec": {"backendFramework": backend.value, "services": services}}


@EXPORTERS.register(ExportTarget.DYNAMO_K8S)
def export_dynamo(plan: ServingPlan, *, backend: str | Backend | None = None,
                  model_path: str | None = None, name: str | None = None) -> Artefact:
    """The DynamoGraphDeployment YAML (plus a ConfigMap of engine YAMLs for TensorRT-LLM)."""
    sc.require_serving(plan, ExportTarget.DYNAMO_K8S)
    be = backend_of(plan, backend)
    target = BACKEND_TARGET[be]
    sc.check_scheduler(plan, target, via=f"dynamo-k8s with {be} workers")
    if be is Backend.VLLM:
        serve_vllm.check(plan)
    pools = sc.pools_of(plan)
    model, guess = sc.model_path(plan, model_path)
    name = _dns(name or getattr(plan, "name", "") or f"{plan.model.name}-serve")
    docs: list[dict[str, object]] = []
    config_map = None
    if be is Backend.TRTLLM:
        config_map = f"{name}-engine-configs"
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": config_map},
                     "data": {serve_trtllm.options_file(p): yaml.safe_dump(
                         trtllm_engine_config(plan, p), sort_keys=False) for p in pools}})
    docs.append(graph(plan, be, model=model, name=name, config_map=config_map))
    text = yaml.safe_dump_all(docs, sort_keys=False)
    notes = [*([guess] if guess else []), *sc.engine_notes(plan, target),
             f"workers run {be} ({MODULE[be]}) in image {IMAGE[be]}; set the HF token secret "
             f"'{HF_SECRET}' in the namespace",
             f"the Frontend ({plan.serving.routers} replica(s)) routes with Dynamo's own "
             f"router, not fleetsim's {plan.serving.router}"]
    if any(p.nodes > 1 for p in pools):
        notes.append("multi-node replicas use the operator's multinode.nodeCount (it sets "
                     "ranks and head address; the launcher's own multi-node flags are dropped)")
    if plan.disaggregated:
        notes.append("KV moves prefill -> decode over NIXL as in Dynamo's disagg examples")
    return Artefact(target=ExportTarget.DYNAMO_K8S, target_version=DYNAMO_VERSION,
                    command=f"kubectl apply -f {GRAPH_FILE}",
                    args=("kubectl", "apply", "-f", GRAPH_FILE),
                    files=(ArtefactFile(name=GRAPH_FILE, text=text),),
                    assumptions=tuple(notes),
                    extra={"backend": be.value, "graph": docs[-1],
                           "pools": [{"name": p.name, "role": sc.role_label(p),
                                      "replicas": p.replicas, "gpus_per_replica": p.gpus}
                                     for p in pools]})
