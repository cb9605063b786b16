"""Serving-engine (software-stack) profiles: the work an engine adds around the kernels.

An EngineProfile says how much host (CPU) work one iteration costs and how much of it hides
behind the GPU step (async output processing, multi-step / overlapped scheduling), what kernel
launches cost with and without CUDA graphs, how fused its element-wise kernels are, which decode
attention kernel and TP all-reduce it uses, its worker transport, its admission / eviction
policy and its batch-limit defaults, and for fixed-shape engines (JetStream on TPU) which
shapes it really runs: decode attention over the whole preallocated cache (kv_attention,
max_cache_len), decode padded to every slot (fixed_decode_batch), prompts padded up to a
bucket and prefilled one at a time. Presets live in hwmodels/catalog/engines.yaml, each with a
`source:`; `serving.engine` selects one (unset: DEFAULT_ENGINE = kernel-only, exactly the step
model before engine profiles: kernels + STEP_OVERHEAD_S). hwmodels.step.StepCostModel applies it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwmodels._compat import StrEnum
from hwmodels.catalog import CATALOG_DIR, read_yaml
from hwmodels.errors import ConfigError

ENGINES_FILE = CATALOG_DIR / "engines.yaml"
ENGINE_KEY = "serving.engine"


class EngineName(StrEnum):
    """The `serving.engine` presets (hwmodels/catalog/engines.yaml)."""

    KERNEL_ONLY = "kernel-only"
    VLLM_2023 = "vllm-0.2"
    VLLM = "vllm-0.6"
    SGLANG = "sglang"
    TRTLLM = "trtllm"


# Unset serving.engine: today's kernels + flat STEP_OVERHEAD_S, so results and goldens stay put.
DEFAULT_ENGINE = EngineName.KERNEL_ONLY


class AllReduceImpl(StrEnum):
    """TP all-reduce implementation: NCCL (the profile's measured curve) or a one-shot custom
    kernel with a lower small-message latency."""

    NCCL = "nccl"
    CUSTOM = "custom"


class KVAttention(StrEnum):
    """What a decode step's attention reads: the live context of each sequence (paged /
    ragged kernels), or every slot's whole preallocated cache of max_cache_len tokens
    (fixed-shape XLA engines: JetStream's einsum over the cache with a mask)."""

    PAGED = "paged"
    PREALLOCATED = "preallocated"


class Sampler(StrEnum):
    """How the next token is picked: gather the vocab-parallel logits and run softmax /
    top-k / top-p over them (vLLM's Sampler), or greedy argmax on each TP rank's vocab shard
    with a (max, index) all-reduce per row (JetStream's jnp.argmax under XLA SPMD)."""

    FULL = "full"
    GREEDY_SHARDED = "greedy-sharded"


class Transport(StrEnum):
    """How the engine drives its TP workers each step."""

    RAY = "ray"
    INPROC = "inproc"


class Admission(StrEnum):
    """Admission / eviction: reserve KV for the whole output (TensorRT-LLM GUARANTEED_NO_EVICT),
    or admit on the prompt and preempt by recompute or swap (vLLM)."""

    NO_EVICT = "no-evict"
    RECOMPUTE = "recompute"
    SWAP = "swap"


SCHEDULER_NAMES = ("vllm", "sarathi", "orca", "static")  # simulator.serving SchedulerKind values


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineProfile:
    """One engine preset (see engines.yaml for every field's source)."""

    name: str
    source: str
    year: int
    description: str = ""
    kernel_only: bool = False  # True: exactly the pre-engine step model (overhead_s = cpu_fixed_s)
    cpu_fixed_s: float = 0.0  # host work per step: schedule, prepare inputs, sample, output
    cpu_per_seq_s: float = 0.0  # ... per sequence in the step
    cpu_overlap: float = 0.0  # 0..1 of the host work hidden behind the GPU step
    cuda_graphs: bool = False  # decode-only steps up to cuda_graph_max_seqs replay a graph
    cuda_graph_max_seqs: int = 0
    graph_launch_s: float = 0.0  # host cost of one graph replay
    launch_s_per_kernel: float = 0.0  # eager host cost of one kernel launch
    kernels_per_layer: int = 0  # eager launches per layer (+2 all-reduces at TP > 1)
    fused_elementwise: float = 1.0  # factor on the element-wise kernels' time
    decode_attention: str = "kernel-curve"
    decode_attention_efficiency: float = 1.0  # decode attention time / this factor
    tp_allreduce: AllReduceImpl = AllReduceImpl.NCCL
    allreduce_latency_s: float = 0.0  # custom all-reduce small-message latency
    custom_allreduce_max_bytes: float = 0.0  # larger messages fall back to NCCL
    transport: Transport = Transport.INPROC
    transport_step_s: float = 0.0  # per step at TP x PP > 1
    transport_per_seq_s: float = 0.0
    admission: Admission = Admission.RECOMPUTE
    prefix_caching: bool = False
    max_num_seqs: int = 256
    max_batch_tokens: int = 8192
    default_scheduler: str = "vllm"
    supported_schedulers: tuple[str, ...] = SCHEDULER_NAMES
    # fixed-shape engines (JetStream): decode attention over the preallocated cache, decode
    # steps padded to all max_num_seqs slots, prompts padded up to a bucket and prefilled
    # one at a time (hwmodels.step applies them)
    kv_attention: KVAttention = KVAttention.PAGED
    max_cache_len: int = 0  # preallocated cache per slot (tokens) when max_model_len is unset
    fixed_decode_batch: bool = False
    prefill_buckets: tuple[int, ...] = ()  # ascending; a prompt is padded to the first >= it
    prefill_sequential: bool = False
    sampler: Sampler = Sampler.FULL

    def __post_init__(self) -> None:
        key = f"engines.{self.name}"
        self._check_shapes(key)
        for f in ("cpu_fixed_s", "cpu_per_seq_s", "graph_launch_s", "launch_s_per_kernel",
                  "allreduce_latency_s", "custom_allreduce_max_bytes", "transport_step_s",
                  "transport_per_seq_s"):
            value = getattr(self, f)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not 0 <= value < float("inf"):
                raise ConfigError(f"must be a finite number >= 0, got {value!r}",
                                  key=f"{key}.{f}")
            object.__setattr__(self, f, float(value))
        for f in ("cuda_graph_max_seqs", "kernels_per_layer", "max_num_seqs",
                  "max_batch_tokens", "year"):
            value = getattr(self, f)
            low = 1 if f in ("max_num_seqs", "max_batch_tokens") else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"must be an integer >= {low}, got {value!r}",
                                  key=f"{key}.{f}")
        if not 0.0 <= self.cpu_overlap <= 1.0:
            raise ConfigError(f"must be in [0, 1], got {self.cpu_overlap!r}",
                              key=f"{key}.cpu_overlap")
        for f in ("fused_elementwise", "decode_attention_efficiency"):
            value = getattr(self, f)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not 0 < value <= 4:
                raise ConfigError(f"must be a factor in (0, 4], got {value!r}",
                                  key=f"{key}.{f}")
            object.__setattr__(self, f, float(value))
        for f, kinds in (("tp_allreduce", AllReduceImpl), ("transport", Transport),
                         ("admission", Admission), ("kv_attention", KVAttention),
                         ("sampler", Sampler)):
            try:
                object.__setattr__(self, f, kinds(str(getattr(self, f))))
            except ValueError:
                raise ConfigError(f"unknown value {getattr(self, f)!r}", key=f"{key}.{f}",
                                  allowed=[str(k) for k in kinds]) from None
        scheds = tuple(str(s) for s in self.supported_schedulers)
        bad = [s for s in (*scheds, self.default_scheduler) if s not in SCHEDULER_NAMES]
        if bad or not scheds or self.default_scheduler not in scheds:
            raise ConfigError(f"schedulers {bad or scheds} (default {self.default_scheduler}) "
                              "must be known and include the default",
                              key=f"{key}.supported_schedulers", allowed=SCHEDULER_NAMES)
        object.__setattr__(self, "supported_schedulers", scheds)
        if not isinstance(self.source, str) or not self.source.strip():
            raise ConfigError("every engine preset names its source", key=f"{key}.source")

    def _check_shapes(self, key: str) -> None:
        """The fixed-shape fields: integers, ascending buckets, a cache length when
        preallocated."""
        for f in ("fixed_decode_batch", "prefill_sequential"):
            if not isinstance(getattr(self, f), bool):
                raise ConfigError(f"must be true or false, got {getattr(self, f)!r}",
                                  key=f"{key}.{f}")
        cache = self.max_cache_len
        if isinstance(cache, bool) or not isinstance(cache, int) or cache < 0:
            raise ConfigError(f"must be an integer >= 0, got {cache!r}",
                              key=f"{key}.max_cache_len")
        if str(self.kv_attention) == KVAttention.PREALLOCATED and cache < 1:
            raise ConfigError("a preallocated cache needs max_cache_len >= 1 (tokens per "
                              "slot)", key=f"{key}.max_cache_len")
        raw = self.prefill_buckets
        buckets = tuple(raw) if isinstance(raw, (list, tuple)) else None
        if buckets is None or any(isinstance(b, bool) or not isinstance(b, int) or b < 1
                                  for b in buckets) \
                or any(a >= b for a, b in zip(buckets, buckets[1:], strict=False)):
            raise ConfigError(f"must be ascending integers >= 1, got {raw!r}",
                              key=f"{key}.prefill_buckets")
        object.__setattr__(self, "prefill_buckets", buckets)

    @property
    def reshapes_batch(self) -> bool:
        """True when the engine runs other shapes than the live batch (fixed-shape engines)."""
        return (self.kv_attention is KVAttention.PREALLOCATED or self.fixed_decode_batch
                or bool(self.prefill_buckets) or self.prefill_sequential)

    def padded_prompt_len(self, tokens: float) -> float:
        """A prompt of `tokens` padded up to the first bucket >= it (none: unchanged; longer
        than the last bucket: unchanged, JetStream truncates instead - not modelled)."""
        for b in self.prefill_buckets:
            if b >= tokens:
                return float(b)
        return float(tokens)

    def check_scheduler(self, scheduler: object, *, file: str | None = None,
                        key: str = "serving.scheduler") -> None:
        """ConfigError (exit 2) when this engine has no such batching policy."""
        if str(scheduler) not in self.supported_schedulers:
            raise ConfigError(f"engine {self.name} does not support scheduler {scheduler}",
                              file=file, key=key, allowed=self.supported_schedulers)


def _profile_from_entry(name: str, entry: Mapping[str, Any], file: Path) -> EngineProfile:
    fields = set(EngineProfile.__dataclass_fields__) - {"name"}
    unknown = sorted(set(entry) - fields)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}", file=str(file),
                          key=f"{name}", allowed=sorted(fields))
    kwargs = dict(entry)
    if "supported_schedulers" in kwargs:
        kwargs["supported_schedulers"] = tuple(kwargs["supported_schedulers"] or ())
    if isinstance(kwargs.get("prefill_buckets"), list):
        kwargs["prefill_buckets"] = tuple(kwargs["prefill_buckets"])
    try:
        return EngineProfile(name=name, **kwargs)
    except ConfigError as err:
        raise err.with_context(file=str(file)) from None
    except TypeError as err:
        raise ConfigError(str(err), file=str(file), key=name) from None


@functools.lru_cache(maxsize=1)
def engine_profiles() -> dict[str, EngineProfile]:
    """All presets of engines.yaml by name (every EngineName must be there)."""
    data = read_yaml(ENGINES_FILE) or {}
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping of name -> engine", file=str(ENGINES_FILE))
    out = {str(n): _profile_from_entry(str(n), e, ENGINES_FILE) for n, e in data.items()}
    missing = [str(n) for n in EngineName if str(n) not in out]
    if missing:
        raise ConfigError(f"presets {missing} missing", file=str(ENGINES_FILE))
    return out


def list_engines() -> list[str]:
    """Preset names, in EngineName order first."""
    names = list(engine_profiles())
    return [str(n) for n in EngineName] + [n for n in names if n not in set(map(str, EngineName))]


def load_engine(name: str | EngineName | EngineProfile | None = None, *,
                file: str | None = None, key: str = ENGINE_KEY) -> EngineProfile:
    """The preset `name` (None: DEFAULT_ENGINE); unknown names list the valid ones."""
    if isinstance(name, EngineProfile):
        return name
    name = str(DEFAULT_ENGINE if name is None else name)
    profiles = engine_profiles()
    if name not in profiles:
        raise ConfigError(f"unknown engine '{name}'", file=file, key=key,
                          allowed=list_engines())
    return profiles[name]


def describe_engine(name: str | None) -> str:
    """'vllm-0.6' or 'kernel-only (default)': how outputs name the engine."""
    return f"{DEFAULT_ENGINE} (default)" if name is None else str(name)


__all__ = ["DEFAULT_ENGINE", "Admission", "AllReduceImpl", "EngineName", "EngineProfile",
           "KVAttention", "Sampler", "Transport", "describe_engine", "engine_profiles", "list_engines", "load_engine"]
