"""Launcher configs -> training scenario mappings: Megatron-LM pretrain_gpt.py arguments and
torchtitan TOML job configs (the inverse of train_megatron / train_torchtitan)."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import Any

from hwmodels.catalog import list_models, load_model
from hwmodels.errors import ConfigError
from hwmodels.parallel import ParallelConfig, PipelineSchedule, stage_layer_counts
from hwmodels.specs import ModelSpec

# pretrain_gpt.py flags that do not change the simulated plan (data, tokenizer, optimizer
# hyper-parameters, checkpoints, logging); names from Megatron-LM@d98e8a64 arguments.py.
MEGATRON_SKIP_VALUE = frozenset({
    "--data-path", "--train-data-path", "--valid-data-path", "--test-data-path", "--split",
    "--save", "--load", "--save-interval", "--eval-interval", "--eval-iters", "--log-interval",
    "--lr", "--min-lr", "--lr-decay-style", "--lr-warmup-iters", "--lr-decay-iters",
    "--lr-warmup-fraction", "--weight-decay", "--clip-grad", "--adam-beta1", "--adam-beta2",
    "--adam-eps", "--init-method-std", "--train-iters", "--train-samples", "--seed",
    "--tokenizer-type", "--tokenizer-model", "--vocab-file", "--merge-file",
    "--tensorboard-dir", "--wandb-project", "--wandb-exp-name", "--ckpt-format",
    "--distributed-backend", "--distributed-timeout-minutes", "--attention-dropout",
    "--hidden-dropout", "--rotary-base", "--norm-epsilon", "--make-vocab-size-divisible-by",
    "--max-position-embeddings", "--position-embedding-type", "--normalization",
    "--attention-backend", "--transformer-impl", "--data-cache-path", "--num-workers",
    "--data-parallel-sharding-strategy", "--recompute-method", "--recompute-num-layers",
})
MEGATRON_SKIP_BOOL = frozenset({
    "--use-mcore-models", "--use-flash-attn", "--untie-embeddings-and-output-weights",
    "--disable-add-bias-linear", "--no-masked-softmax-fusion", "--use-rotary-position-embeddings",
    "--no-gradient-accumulation-fusion", "--log-throughput", "--tp-comm-overlap",
    "--no-async-tensor-model-parallel-allreduce", "--mock-data", "--overlap-param-gather",
    "--swiglu", "--group-query-attention", "--account-for-embedding-in-pipeline-split",
    "--account-for-loss-in-pipeline-split",
})
# flags that carry a plan value: flag -> type
MEGATRON_VALUE = {
    "--tensor-model-parallel-size": int, "--pipeline-model-parallel-size": int,
    "--num-layers-per-virtual-pipeline-stage": int, "--num-virtual-stages-per-pipeline-rank": int,
    "--decoder-first-pipeline-num-layers": int, "--decoder-last-pipeline-num-layers": int,
    "--pipeline-model-parallel-layout": str, "--context-parallel-size": int,
    "--expert-model-parallel-size": int, "--expert-tensor-parallel-size": int,
    "--recompute-granularity": str, "--micro-batch-size": int, "--global-batch-size": int,
    "--seq-length": int, "--num-layers": int, "--hidden-size": int, "--ffn-hidden-size": int,
    "--num-attention-heads": int, "--num-query-groups": int, "--kv-channels": int,
    "--num-experts": int, "--moe-router-topk": int, "--moe-ffn-hidden-size": int,
    "--vocab-size": int, "--fp8-format": str,
    "--num-distributed-optimizer-instances": int, "--outer-dp-sharding-strategy": str,
}
MEGATRON_BOOL = frozenset({"--sequence-parallel", "--use-distributed-optimizer", "--bf16",
                           "--fp16", "--use-torch-fsdp2", "--use-megatron-fsdp",
                           "--optimizer-cpu-offload", "--overlap-grad-reduce",
                           "--grad-reduce-in-bf16"})
_CHOICES = {"--recompute-granularity": ("full", "selective"), "--fp8-format": ("e4m3", "hybrid"),
            "--outer-dp-sharding-strategy": ("no_shard", "optim")}


def megatron_tokens(text: str) -> list[str]:
    """The pretrain_gpt.py arguments of a shell/torchrun line or a bare argument list."""
    tokens = shlex.split(text.replace("\\\n", " "), comments=True)
    for i, tok in enumerate(tokens):
        if tok.endswith("pretrain_gpt.py"):
            return tokens[i + 1:]
    return tokens


def _launcher_devices(text: str) -> int | None:
    """nnodes x nproc-per-node of a torchrun line, when both are literal integers."""
    tokens = shlex.split(text.replace("\\\n", " "), comments=True)
    found: dict[str, int] = {}
    for i, tok in enumerate(tokens[:-1]):
        key = tok.replace("_", "-")
        if key in ("--nnodes", "--nproc-per-node") and tokens[i + 1].isdigit():
            found[key] = int(tokens[i + 1])
    return found["--nnodes"] * found["--nproc-per-node"] if len(found) == 2 else None


def parse_megatron(tokens: list[str], *, file: str | None = None) -> dict[str, Any]:
    """{flag: value} of the plan flags (ConfigError for an unknown flag or a bad value)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        flag, _, inline = tokens[i].partition("=")
        if flag in MEGATRON_BOOL or flag in MEGATRON_SKIP_BOOL:
            out[flag] = True
            i += 1
            continue
        if flag not in MEGATRON_VALUE and flag not in MEGATRON_SKIP_VALUE:
            raise ConfigError(f"unknown or unsupported Megatron flag {tokens[i]!r}", file=file,
                              key=flag, allowed="the flags of fleetsim's Megatron exporter "
                              "or the skip list planners.export.importers.MEGATRON_SKIP_*")
        if inline:
            values, i = [inline], i + 1
        else:
            j = i + 1
            while j < len(tokens) and not tokens[j].startswith("--"):
                j += 1
            values, i = tokens[i + 1:j], j
        if flag in MEGATRON_SKIP_VALUE:
            continue
        kind = MEGATRON_VALUE[flag]
        if len(values) != 1:
            raise ConfigError(f"{flag} takes one {kind.__name__} value, got {values}",
                              file=file, key=flag)
        try:
            value = kind(values[0])
        except ValueError:
            raise ConfigError(f"{flag} takes a {kind.__name__}, got {values[0]!r}", file=file,
                              key=flag) from None
        if flag in _CHOICES and value not in _CHOICES[flag]:
            raise ConfigError(f"{flag} {value!r}", file=file, key=flag,
                              allowed=", ".join(_CHOICES[flag]))
        out[flag] = value
    return out


def parse_layout(layout: str, *, file: str | None = None) -> list[int]:
    """Decoder layers per virtual stage of a --pipeline-model-parallel-layout string
    ('x*n' and '(..)*n' repeats unrolled as Megatron's parse_str_to_list does)."""
    import re

    s = layout.replace(",", "")
    s = re.sub(r"\(([^)]+)\)\*(\d+)", lambda g: g.group(1) * int(g.group(2)), s)
    s = re.sub(r"(.)\*(\d+)", lambda g: g.group(1) * int(g.group(2)), s)
    if set(s) - set("EtL|"):
        raise ConfigError(f"layout {layout!r} has layer kinds fleetsim does not model",
                          file=file, key="--pipeline-model-parallel-layout",
                          allowed="E (embedding), t (decoder), L (loss), '|'")
    return [stage.count("t") for stage in s.split("|")]


def _model_entry(dims: Mapping[str, int], *, file: str | None) -> str | dict[str, Any]:
    """A catalog model name whose dimensions match `dims`, else inline HF config keys."""
    for name in list_models():
        try:
            m = load_model(name)
        except ConfigError:
            continue
        if _dims(m) == dict(dims):
            return name
    inline = {"model_type": "llama", "num_hidden_layers": dims["num_layers"],
              "hidden_size": dims["hidden_size"], "num_attention_heads": dims["num_heads"],
              "num_key_value_heads": dims["num_kv_heads"],
              "intermediate_size": dims["ffn_hidden_size"], "vocab_size": dims["vocab_size"],
              "head_dim": dims["head_dim"]}
    if dims.get("num_experts"):
        inline.update(num_local_experts=dims["num_experts"],
                      num_experts_per_tok=dims["experts_per_token"],
                      moe_intermediate_size=dims["moe_ffn_hidden_size"])
    return inline


def _dims(m: ModelSpec) -> dict[str, int]:
    d = {"num_layers": m.num_layers, "hidden_size": m.hidden_size, "num_heads": m.num_heads,
         "num_kv_heads": m.num_kv_heads, "head_dim": m.head_dim,
         "ffn_hidden_size": m.ffn_hidden_size, "vocab_size": m.vocab_size}
    if m.is_moe:
        d.update(num_experts=m.num_experts, experts_per_token=m.experts_per_token,
                 moe_ffn_hidden_size=m.moe_ffn_hidden_size)
    return d


def import_megatron(text: str, *, device: str, num_devices: int | None = None,
                    file: str | None = None) -> dict[str, Any]:
    """A training scenario mapping from Megatron-LM arguments (or a torchrun line of them)."""
    f = parse_megatron(megatron_tokens(text), file=file)
    num_devices = num_devices or _launcher_devices(text)
    if num_devices is None:
        raise ConfigError("give --num-devices (no literal torchrun --nnodes/--nproc-per-node)",
                          file=file, key="--num-devices")
    for need in ("--num-layers", "--hidden-size", "--num-attention-heads", "--seq-length",
                 "--global-batch-size", "--vocab-size"):
        if need not in f:
            raise ConfigError(f"missing {need}", file=file, key=need)
    heads, hidden = f["--num-attention-heads"], f["--hidden-size"]
    dims = {"num_layers": f["--num-layers"], "hidden_size": hidden, "num_heads": heads,
            "num_kv_heads": f.get("--num-query-groups", heads),
            "head_dim": f.get("--kv-channels", hidden // heads),
            "ffn_hidden_size": f.get("--ffn-hidden-size", 4 * hidden),
            "vocab_size": f["--vocab-size"]}
    if "--num-experts" in f:
        dims.update(num_experts=f["--num-experts"], experts_per_token=f.get("--moe-router-topk", 2),
                    moe_ffn_hidden_size=f.get("--moe-ffn-hidden-size", dims["ffn_hidden_size"]))
    dtype = "fp8" if "--fp8-format" in f else "fp16" if f.get("--fp16") else "bf16"
    par: dict[str, Any] = {"tp": f.get("--tensor-model-parallel-size", 1),
                           "pp": f.get("--pipeline-model-parallel-size", 1),
                           "cp": f.get("--context-parallel-size", 1), "dp": "auto"}
    _split(f, par, dims["num_layers"], file=file)
    if "--expert-model-parallel-size" in f:
        par["ep"] = f["--expert-model-parallel-size"]
    if "--expert-tensor-parallel-size" in f:
        par["expert_tp"] = f["--expert-tensor-parallel-size"]
    par["sequence_parallel"] = bool(f.get("--sequence-parallel"))
    par["recompute"] = f.get("--recompute-granularity", "none")
    par["zero"] = 1 if f.get("--use-distributed-optimizer") else 0
    if f.get("--use-torch-fsdp2") or f.get("--use-megatron-fsdp"):
        par.update(zero=3, fsdp_impl="fsdp2" if f.get("--use-torch-fsdp2") else "megatron")
    _megatron_hsdp(f, par, num_devices, file=file)
    par["offload_optimizer"] = "cpu" if f.get("--optimizer-cpu-offload") else "none"
    par["overlap_grad_reduce"] = bool(f.get("--overlap-grad-reduce"))
    if f.get("--grad-reduce-in-bf16"):
        par["grad_reduce_dtype"] = "bf16"
    if par["zero"] in (1, 2):
        par["overlap_param_gather"] = bool(f.get("--overlap-param-gather"))
    par["account_for_embedding_in_split"] = bool(f.get("--account-for-embedding-in-pipeline-split"))
    par["account_for_loss_in_split"] = bool(f.get("--account-for-loss-in-pipeline-split"))
    return {"model": _model_entry(dims, file=file),
            "cluster": {"device": device, "num_devices": num_devices},
            "training": {"seq_len": f["--seq-length"], "global_batch": f["--global-batch-size"],
                         "micro_batch": f.get("--micro-batch-size", 1), "dtype": dtype},
            "parallelism": par}


def _megatron_hsdp(f: Mapping[str, Any], par: dict[str, Any], num_devices: int, *,
                   file: str | None) -> None:
    """Megatron-FSDP HSDP (--num-distributed-optimizer-instances R > 1 with
    --outer-dp-sharding-strategy no_shard) -> fsdp_shard_size = dp / R; HFSDP (outer optim
    sharding) is not modelled."""
    instances = f.get("--num-distributed-optimizer-instances", 1)
    if instances <= 1:
        return
    if not f.get("--use-megatron-fsdp"):
        # the distributed optimizer replicated over instances (partial ZeRO-1): not modelled
        raise ConfigError(f"--num-distributed-optimizer-instances {instances} without "
                          "--use-megatron-fsdp is not modelled", file=file,
                          key="--num-distributed-optimizer-instances", allowed="1")
    outer = f.get("--outer-dp-sharding-strategy", "no_shard")
    if outer != "no_shard":
        raise ConfigError(f"--outer-dp-sharding-strategy {outer} (Hybrid-FSDP) is not modelled",
                          file=file, key="--outer-dp-sharding-strategy", allowed="no_shard")
    dp = num_devices // (par["tp"] * par["pp"] * par["cp"])
    if dp % instances:
        raise ConfigError(f"{instances} instances do not divide dp {dp}", file=file,
                          key="--num-distributed-optimizer-instances")
    par["fsdp_shard_size"] = dp // instances


def _split(f: Mapping[str, Any], par: dict[str, Any], layers: int, *, file: str | None) -> None:
    """vpp, schedule and the layer split of the Megatron flags into `par`."""
    slots_vpp = f.get("--num-virtual-stages-per-pipeline-rank")
    if "--num-layers-per-virtual-pipeline-stage" in f:
        per = f["--num-layers-per-virtual-pipeline-stage"]
        extra = int(bool(f.get("--account-for-embedding-in-pipeline-split"))) + \
            int(bool(f.get("--account-for-loss-in-pipeline-split")))
        slots_vpp = (layers + extra) // (per * par["pp"])
    if "--pipeline-model-parallel-layout" in f:
        counts = parse_layout(f["--pipeline-model-parallel-layout"], file=file)
        if len(counts) % par["pp"]:
            raise ConfigError(f"{len(counts)} layout stages for pp {par['pp']}", file=file,
                              key="--pipeline-model-parallel-layout")
        slots_vpp = len(counts) // par["pp"]
        balanced = stage_layer_counts(layers, ParallelConfig(
            pp=par["pp"], vpp=slots_vpp,
            schedule=PipelineSchedule.INTERLEAVED if slots_vpp > 1 else PipelineSchedule.ONE_F_ONE_B))
        if list(balanced) != counts:  # the balanced split needs no explicit list
            par["stage_layers"] = counts
    for flag, key in (("--decoder-first-pipeline-num-layers", "first_stage_layers"),
                      ("--decoder-last-pipeline-num-layers", "last_stage_layers")):
        if flag in f:
            par[key] = f[flag]
    vpp = slots_vpp or 1
    par["vpp"] = vpp
    par["schedule"] = "interleaved" if vpp > 1 else "1f1b"


# torch.distributed.pipelining schedule names (torchtitan v0.2.2) -> fleetsim schedules
_TITAN_SCHEDULES = {"gpipe": "gpipe", "1f1b": "1f1b", "interleaved1f1b": "interleaved",
                    "interleavedzerobubble": "zb-h1"}


def import_torchtitan(text: str, *, device: str, num_devices: int | None = None,
                      file: str | None = None) -> dict[str, Any]:
    """A training scenario mapping from a torchtitan (v0.2.2) TOML job config; [model] flavor
    must name a fleetsim catalog model."""
    import tomllib

    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not TOML: {err}", file=file) from None
    model = cfg.get("model", {}).get("flavor")
    if model not in list_models():
        raise ConfigError(f"[model] flavor {model!r} is not a fleetsim catalog model", file=file,
                          key="model.flavor", allowed="fleetsim models list")
    par_in, tr = cfg.get("parallelism", {}), cfg.get("training", {})
    ints = {k: v for k, v in par_in.items() if k.endswith(("_degree", "_layers", "_size",
                                                           "_per_stage"))}
    for key, value in ints.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"must be an integer, got {value!r}", file=file,
                              key=f"parallelism.{key}")
    rep = par_in.get("data_parallel_replicate_degree", 1)
    shard = par_in.get("data_parallel_shard_degree", 1)
    tp, pp, cp = (par_in.get(f"{k}_parallel_degree", 1) for k in ("tensor", "pipeline",
                                                                   "context"))
    if shard == -1:  # torchtitan: the rest of the world
        if num_devices is None:
            raise ConfigError("data_parallel_shard_degree -1 needs --num-devices", file=file,
                              key="--num-devices")
        shard = num_devices // (rep * tp * pp * cp)
    dp = rep * shard
    sched_name = str(par_in.get("pipeline_parallel_schedule", "1F1B")).lower()
    if sched_name not in _TITAN_SCHEDULES:
        raise ConfigError(f"pipeline schedule {sched_name!r}", file=file,
                          key="parallelism.pipeline_parallel_schedule",
                          allowed=", ".join(_TITAN_SCHEDULES))
    par: dict[str, Any] = {"tp": tp, "pp": pp, "cp": cp, "dp": dp,
                           "ep": par_in.get("expert_parallel_degree", 1),
                           "zero": 3 if shard > 1 else 0,
                           "schedule": _TITAN_SCHEDULES[sched_name], "vpp": 1,
                           # v0.2.2 parallelize_llama: TP shards norms/dropout over the
                           # sequence (SequenceParallel) whenever tp > 1
                           "sequence_parallel": tp > 1}
    if shard > 1 and rep > 1:  # HSDP: shard within dp_shard, replicate across dp_replicate
        par["fsdp_shard_size"] = shard
    if "expert_tensor_parallel_degree" in par_in:
        par["expert_tp"] = par_in["expert_tensor_parallel_degree"]
    layers = load_model(model).num_layers
    per = par_in.get("pipeline_parallel_layers_per_stage")
    if pp > 1 and per:
        first = per - par_in.get("pipeline_parallel_first_stage_less_layers", 1)
        last = per - par_in.get("pipeline_parallel_last_stage_less_layers", 1)
        slots = (layers - first - last) // per + 2
        par["vpp"] = max(1, slots // pp)
        counts = [first] + [per] * (slots - 2) + [last]
        balanced = stage_layer_counts(layers, ParallelConfig(
            pp=pp, vpp=par["vpp"], schedule=PipelineSchedule.INTERLEAVED if par["vpp"] > 1
            else PipelineSchedule.ONE_F_ONE_B))
        if list(balanced) != counts:
            par["stage_layers"] = counts
    ac_cfg = cfg.get("activation_checkpoint", {})
    ac = ac_cfg.get("mode", "selective")
    par["recompute"] = {"none": "none", "selective": "selective-op", "full": "full"}.get(ac)
    if par["recompute"] is None:
        raise ConfigError(f"activation_checkpoint mode {ac!r}", file=file,
                          key="activation_checkpoint.mode", allowed="none, selective, full")
    # v0.2.2 job_config.ActivationCheckpoint: selective_ac_option defaults to "2" (every
    # second layer fully checkpointed); "op" is the per-op policy (hwmodels.sac), "1" every
    # layer (= full); other layer frequencies are not modelled
    option = str(ac_cfg.get("selective_ac_option", "2"))
    if ac == "selective" and option == "1":
        par["recompute"] = "full"
    elif ac == "selective" and option != "op":
        raise ConfigError(f"selective_ac_option {option!r} (every n-th layer checkpointed) is "
                          "not modelled", file=file,
                          key="activation_checkpoint.selective_ac_option", allowed="op, 1")
    reduce = tr.get("mixed_precision_reduce", "float32")
    if reduce != "float32":  # v0.2.2 allows only float32, fsdp2's own reduce dtype
        raise ConfigError(f"mixed_precision_reduce {reduce!r}", file=file,
                          key="training.mixed_precision_reduce", allowed="float32")
    cpu = bool(tr.get("enable_cpu_offload", False))  # FSDP2 CPUOffloadPolicy: both
    par["offload_optimizer"] = par["offload_params"] = "cpu" if cpu else "none"
    converters = cfg.get("model", {}).get("converters", [])
    local = tr.get("local_batch_size", 8)
    n = num_devices or dp * tp * pp * cp
    return {"model": model, "cluster": {"device": device, "num_devices": n},
            "training": {"seq_len": tr.get("seq_len", 2048),
                         "global_batch": tr.get("global_batch_size", -1) if
                         tr.get("global_batch_size", -1) > 0 else local * dp,
                         "micro_batch": par_in.get("pipeline_parallel_microbatch_size", 1),
                         "dtype": "fp8" if "float8" in converters else "bf16",
                         **_titan_compile(cfg.get("compile", {}), file)},
            "parallelism": par}


def _titan_compile(section: Mapping[str, Any], file: str | None) -> dict[str, str]:
    """kernels and loss_impl from torchtitan's [compile] (v0.2.2 CompileConfig: enable false,
    components ["model", "loss"] by default): an uncompiled model runs eager kernels, an
    uncompiled loss is F.cross_entropy(logits.float()) (eager-fp32); SDPA's flash backend is
    the attention (attention_impl auto resolves to FA2 for eager and compiled stacks)."""
    enable = section.get("enable", False)
    components = section.get("components", ["model", "loss"])
    if not isinstance(enable, bool):
        raise ConfigError(f"must be true or false, got {enable!r}", file=file,
                          key="compile.enable", allowed="true, false")
    if isinstance(components, str) or not isinstance(components, list) or \
            any(c not in ("model", "loss") for c in components):
        raise ConfigError(f"unknown components {components!r}", file=file,
                          key="compile.components", allowed="model, loss")
    on = set(components) if enable else set()
    return {"kernels": "compiled" if "model" in on else "eager",
            "loss_impl": "fused" if "loss" in on else "eager-fp32"}


IMPORTERS: dict[str, Callable[..., dict[str, Any]]] = {"megatron": import_megatron,
                                                      "torchtitan": import_torchtitan}
