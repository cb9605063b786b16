"""One serving iteration (continuous batching): prefill chunks and decode tokens in one forward.

A step on a TP x PP replica runs every linear layer once over all the batch's tokens (prefill
tokens + one per decoding sequence), so weights are read once per step and small-batch decode is
memory-bound. Attention runs as one varlen flash-attention kernel over the prefill chunks and one
paged decode kernel over the decoding sequences' KV caches (as vLLM/TensorRT-LLM launch them).
TP adds two all-reduces per layer (and one after the vocab-parallel embedding) over the
scale-up link; PP adds one activation send per stage boundary.

`StepCostModel` is the fast aggregated form used by the serving simulator. A batch enters only
through five sums, so `estimate_step` is computed by the same code and agrees exactly:
- prefill_tokens = sum of new tokens of the prefill chunks,
- prefill_attn_units = sum over prefill chunks of new * (cached + new / 2): the (query, key)
  pairs of causal attention of `new` tokens appended to `cached` context tokens,
- decode_seqs, decode_context_sum = number of decoding sequences and the sum of their context
  lengths (KV entries each decode query reads, its own new token included),
- keyword extras: prefill_seqs (sequences that sample a token after prefill; default: 1 if any
  prefill tokens) and prefill_cached_sum (cached prefix tokens the prefill kernel reads; 0).
The step's host overhead is STEP_OVERHEAD_S, or with `engine_overhead` the profile's fitted
engine coefficients, which count the sequences in the step (prefill_seqs + decode_seqs, the
rows the logits are computed for). Memory-bound kernels run on the profile's curve for their
ElementwiseKind; TP all-reduces and PP sends use its measured collectives where they apply.

`engine` (hwmodels.engine_profiles; None or kernel-only: all of the above unchanged) replaces
the flat overhead by the engine's software terms, each a function of the five sums:
- cpu_s: host work fixed + per_seq * sequences, of which cpu_overlap is hidden behind the GPU
  step (never more than the GPU time): max(cpu * (1 - overlap), cpu - gpu_s);
- launch_s: host kernel launches not hidden behind the GPU work: max(0, launches - gpu_s),
  launches = one graph replay for decode-only steps within cuda_graph_max_seqs when the engine
  captures CUDA graphs, else layers x kernels_per_layer (+2 all-reduces at TP > 1) eager;
- transport_s: the worker transport per step at TP x PP > 1 (Ray's, or a shared-memory one);
and scales the kernels it changes: element-wise time x fused_elementwise, decode attention /
decode_attention_efficiency, and with a custom all-reduce each TP all-reduce up to its size
limit costs its small-message latency plus NCCL's size-dependent part (never more than NCCL).
overhead_s is then 0 and the breakdown gains ENGINE_BREAKDOWN_KEYS (all parts sum to time_s).
With engine_overhead too, the profile's fitted coefficients replace the preset's CPU and
transport numbers (they were measured with the transport in them).

A fixed-shape engine (EngineProfile.reshapes_batch: JetStream's XLA engines) runs other shapes
than the live batch, and the step is priced as it runs them: a decode step covers all
`decode_slots` rows (default the preset's max_num_seqs; the serving simulator passes
serving.max_num_seqs) and, with kv_attention preallocated, each row's attention reads the whole
cache of `cache_len` tokens (default the preset's max_cache_len; serving.max_model_len) whatever
its live context; a prompt of the step is padded up to its bucket (the batch's mean prompt
when several share a step: exact for equal lengths), and with prefill_sequential k prompts cost
k single-prompt prefills (JetStream prefills one request per call).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hwmodels import layers, ops, serving_moe
from hwmodels.cluster import build_cluster, group_info
from hwmodels.collectives import CollectiveOp, collective_time_for_group
from hwmodels.dtypes import BYTES_PER_ELEMENT, DType, kv_cache_dtype, parse_dtype
from hwmodels.engine_profiles import (
    AllReduceImpl,
    EngineProfile,
    KVAttention,
    Sampler,
    load_engine,
)
from hwmodels.errors import ConfigError
from hwmodels.flops import attention_core_flops
from hwmodels.profile import DeviceProfile, ElementwiseKind
from hwmodels.specs import AttentionKind, DeviceSpec, LinkSpec, ModelSpec

# Per-step host work not hidden behind the GPU: scheduling, input preparation, sampling launch,
# output processing. vLLM's v0.6.0 performance update (Sep 2024) found CPU overhead dominated
# small-model steps before async output processing / multi-step scheduling; with them and CUDA
# graphs a residual of well under a millisecond remains. 0.5 ms is our assumption (cross-checked
# by the Llama-2-7B NeMo/TensorRT-LLM latency test); override per StepCostModel.
STEP_OVERHEAD_S = 0.5e-3
# Coefficients (seconds) of a profile's fitted engine overheads (profile.engine_overheads[name]):
# per-step host overhead = fixed_s + per_seq_s * sequences in the step
#                          + (tp_fixed_s + tp_per_seq_s * sequences in the step if tp > 1),
# the tp_* terms being the engine's worker communication (Ray in vLLM 2024), absent at TP 1.
ENGINE_OVERHEAD_COEFFS = ("fixed_s", "per_seq_s", "tp_fixed_s", "tp_per_seq_s")
# Sampler traffic per logit: read bf16 logits, write and re-read fp32 probabilities (softmax,
# top-k/top-p) - vLLM's Sampler on the gathered logits.
SAMPLER_BYTES_PER_LOGIT = 2.0 + 4.0 + 4.0
# Greedy sampling on vocab shards (engines with sampler greedy-sharded): each row's local
# (max value fp32, index int32) pair is all-reduced across the TP ranks.
GREEDY_BYTES_PER_ROW = 4.0 + 4.0
# Bounded memo sizes (entries); a full memo is cleared, not evicted one by one.
MEMO_MAX_ENTRIES = 1 << 18

BREAKDOWN_KEYS = ("gemm_s", "attention_prefill_s", "attention_decode_s", "elementwise_s",
                  "tp_comm_s", "pp_comm_s", "logits_s", "overhead_s")
# Extra parts of a step under an engine profile (overhead_s is 0 there).
ENGINE_BREAKDOWN_KEYS = ("cpu_s", "launch_s", "transport_s")
# Launches outside the layers: embedding, final norm, logits GEMM, gather, sampler (counted
# from vLLM's model runner; an eager step's fixed launches).
NON_LAYER_KERNELS = 5
# NCCL all-reduce size standing for its latency floor (the small-message plateau).
ALLREDUCE_FLOOR_BYTES = 4096.0


@dataclass(frozen=True, slots=True)
class _FixedShape:
    """What a fixed-shape engine (EngineProfile.reshapes_batch, e.g. JetStream) runs instead of
    the live batch: `slots` decode rows (0: the live ones), `cache_len` KV entries read per
    row (0: the live context)."""

    engine: EngineProfile
    slots: int
    cache_len: int

    @staticmethod
    def of(eng: EngineProfile | None, decode_slots: int | None,
           cache_len: int | None) -> _FixedShape | None:
        """None unless `eng` reshapes batches; slots / cache default to the preset's."""
        if eng is None or not eng.reshapes_batch:
            return None
        for key, value in (("decode_slots", decode_slots), ("cache_len", cache_len)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ConfigError(f"must be an integer >= 1, got {value!r}", key=key)
        slots = (decode_slots or eng.max_num_seqs) if eng.fixed_decode_batch else 0
        preallocated = eng.kv_attention is KVAttention.PREALLOCATED
        return _FixedShape(engine=eng, slots=slots,
                           cache_len=(cache_len or eng.max_cache_len) if preallocated else 0)

    def decode(self, seqs: float, context_sum: float) -> tuple[float, float]:
        """(decode rows, KV entries read) of a decode step of `seqs` live sequences."""
        if seqs == 0:
            return 0.0, 0.0
        rows = max(float(self.slots), seqs)
        if self.cache_len:
            return rows, rows * self.cache_len
        return rows, context_sum * rows / seqs  # padded rows: the live mean context


@dataclass(frozen=True, slots=True, kw_only=True)
class StepEstimate:
    """One serving step: time_s through all PP stages; breakdown parts sum to time_s (except
    stage_s, the slowest stage = the pipeline's issue interval, and flops, the step's FLOPs)."""

    time_s: float
    breakdown: dict[str, float] = field(default_factory=dict)


def engine_overhead_coefficients(profile: DeviceProfile, engine: str,
                                 tp: int) -> tuple[float, float]:
    """(fixed seconds, seconds per sequence) of one step of `engine` on a TP-`tp` replica, from
    the profile's fitted engine overheads (see ENGINE_OVERHEAD_COEFFS)."""
    engines = profile.engine_overheads
    if engine not in engines:
        if not engines:
            raise ConfigError(f"profile '{profile.name}' has no engine overheads to take "
                              f"'{engine}' from; leave it unset for the default "
                              f"{STEP_OVERHEAD_S * 1e3:g} ms per step",
                              key="serving.engine_overhead")
        raise ConfigError(f"unknown engine '{engine}' in profile '{profile.name}'",
                          key="serving.engine_overhead", allowed=sorted(engines))
    coeffs = engines[engine]
    unknown = sorted(set(coeffs) - set(ENGINE_OVERHEAD_COEFFS))
    if unknown:
        raise ConfigError(f"coefficient(s) {', '.join(unknown)} not used by the step model",
                          file=profile.source, key=f"engine_overheads.{engine}",
                          allowed=ENGINE_OVERHEAD_COEFFS)
    fixed = coeffs.get("fixed_s", 0.0) + (coeffs.get("tp_fixed_s", 0.0) if tp > 1 else 0.0)
    per_seq = coeffs.get("per_seq_s", 0.0) + (coeffs.get("tp_per_seq_s", 0.0) if tp > 1 else 0.0)
    return fixed, per_seq


def _stage_layer_counts(model: ModelSpec, pp: int) -> list[tuple[int, int]]:
    """(dense layers, MoE layers) per stage; same split as hwmodels.memory (round(i * L / pp))."""
    out = []
    per = model.num_layers / pp
    for stage in range(pp):
        lo, hi = round(stage * per), round((stage + 1) * per)
        dense = max(0, min(hi, model.first_dense_layers if model.is_moe else hi) - lo)
        out.append((dense, hi - lo - dense))
    return out


class StepCostModel:
    """Memoized step-time model of one replica (see the module docstring for the arguments).

    engine_overhead names an engine of the profile's engine_overheads: its fitted per-step
    host overhead replaces step_overhead_s (None: step_overhead_s, STEP_OVERHEAD_S default).
    ep / dp_attention / moe_imbalance: MoE expert parallelism over the stage's tp devices and
    data-parallel attention (hwmodels.serving_moe; the batch sums are the whole replica's).
    engine: an EngineProfile or preset name (None / kernel-only: today's model); see the module
    docstring. breakdown_keys lists the parts its breakdown sums to time_s.
    """

    def __init__(self, model: ModelSpec, device: DeviceSpec, *, tp: int = 1, pp: int = 1,
                 dtype: DType | str = DType.BF16, kv_dtype: DType | str | None = None,
                 profile: DeviceProfile | str | Path | None = None,
                 intra_link: str | LinkSpec | None = None,
                 inter_link: str | LinkSpec | None = None,
                 step_overhead_s: float = STEP_OVERHEAD_S,
                 engine_overhead: str | None = None, ep: int = 1, dp_attention: bool = False,
                 moe_imbalance: float | None = None,
                 engine: EngineProfile | str | None = None,
                 decode_slots: int | None = None, cache_len: int | None = None,
                 slice_shape: tuple[int, ...] | None = None) -> None:
        for key, value in (("tp", tp), ("pp", pp)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"must be an integer >= 1, got {value!r}", key=key)
        self.moe_layout = serving_moe.check_layout(model, tp=tp, ep=ep,
                                                   dp_attention=dp_attention)
        self.moe_imbalance, self.dp = moe_imbalance, self.moe_layout.attn_dp
        layers.check_tp(model, self.moe_layout.attn_tp)
        if pp > model.num_layers:
            raise ConfigError(f"pp {pp} exceeds num_layers {model.num_layers}", key="pp")
        # self.tp: the attention/dense layout's TP (1 with DP attention); tp: the stage's devices
        self.model, self.device, self.tp, self.pp = model, device, self.moe_layout.attn_tp, pp
        self.dtype = parse_dtype(dtype)
        device.peak(DType.BF16 if self.dtype is DType.INT4 else self.dtype)  # supported?
        self.kv_dtype = kv_cache_dtype(self.dtype, kv_dtype)
        if self.kv_dtype is DType.INT4:
            raise ConfigError("int4 KV cache is not supported", key="kv_dtype",
                              allowed=["bf16", "fp16", "fp8", "fp32"])
        if not (isinstance(step_overhead_s, (int, float)) and step_overhead_s >= 0):
            raise ConfigError(f"must be >= 0, got {step_overhead_s!r}", key="step_overhead_s")
        self.step_overhead_s = float(step_overhead_s)
        self.profile = ops.resolve_profile(device, profile)
        self.engine_overhead = engine_overhead
        # step overhead = _overhead_fixed_s + _overhead_per_seq_s * sequences in the step
        self._overhead_fixed_s, self._overhead_per_seq_s = self.step_overhead_s, 0.0
        if engine_overhead is not None:
            self._overhead_fixed_s, self._overhead_per_seq_s = engine_overhead_coefficients(
                self.profile, str(engine_overhead), tp)
        self.engine = None if engine is None else load_engine(engine)
        eng = self.engine if self.engine is not None and not self.engine.kernel_only else None
        self._eng = eng  # None: the flat-overhead model
        # kernel factors an engine changes (1: the kernels as the profile measured them)
        self._elt_factor = self._attn_d_factor = 1.0
        self._custom_ar = False
        self._greedy_sharded = eng is not None and eng.sampler is Sampler.GREEDY_SHARDED
        self.breakdown_keys = BREAKDOWN_KEYS + (ENGINE_BREAKDOWN_KEYS if eng else ())
        if eng is not None:
            self._setup_engine(eng, engine_overhead is not None)
        self._shape = _FixedShape.of(eng, decode_slots, cache_len)
        self.act_dtype = DType.FP32 if self.dtype in (DType.FP32, DType.TF32) else DType.BF16
        self.elt = BYTES_PER_ELEMENT[self.act_dtype]
        self.stages = _stage_layer_counts(model, pp)
        self.heads = model.num_heads // self.tp
        mla = model.attention is AttentionKind.MLA
        self.kv_heads = self.heads if mla else int(layers.kv_heads_per_rank(model, self.tp))
        self.decode_kv_heads = int(layers.kv_heads_per_rank(model, self.tp)) if not mla else 1
        self.latent_dim = model.kv_lora_rank + model.qk_rope_head_dim if mla else 0
        kv_row = (self.latent_dim if mla else 2 * self.decode_kv_heads * model.head_dim)
        self.kv_row_bytes = kv_row * BYTES_PER_ELEMENT[self.kv_dtype]
        self._tp_group = self._p2p_groups = self._ep_group = None
        if tp * pp > 1:
            # slice_shape: the torus slice one replica runs on (TPU), product tp x pp
            cluster = build_cluster(device, tp * pp, intra_node=intra_link, inter_node=inter_link,
                                    slice_shape=slice_shape)
            self._tp_group = group_info(cluster, range(tp)) if self.tp > 1 else None
            if self.moe_layout.active:
                self._ep_group = group_info(cluster, range(tp))
            self._p2p_groups = [group_info(cluster, (s * tp, (s + 1) * tp))
                                for s in range(pp - 1)]
            self._cluster = cluster
        self.num_dense, self.num_moe = model.num_dense_layers, model.num_moe_layers
        self.num_layers, self.v_head_dim = model.num_layers, model.value_head_dim
        self._attn_peak = ops._attention_compute_peak(device, self.act_dtype)
        self._decode_rate = ops.decode_compute_rate(device, self.profile)
        self.attn_flops_per_pair = attention_core_flops(model, query_tokens=1.0, key_tokens=1.0)
        self._time_memo: dict[tuple[float, ...], float] = {}
        self._linear_memo: dict[float, tuple[float, ...]] = {}
        self._rows_memo: dict[float, tuple[float, float]] = {}

    def _setup_engine(self, eng: EngineProfile, fitted: bool) -> None:
        """Per-step constants of the engine's software terms."""
        multi = self.tp * self.pp > 1
        if not fitted:
            self._overhead_fixed_s, self._overhead_per_seq_s = eng.cpu_fixed_s, eng.cpu_per_seq_s
        # fitted coefficients already hold the engine's worker communication
        self._transport = (0.0, 0.0) if fitted or not multi else (eng.transport_step_s,
                                                                   eng.transport_per_seq_s)
        per_layer = eng.kernels_per_layer + (2 if self.tp > 1 else 0)
        self._eager_launch_s = (self.model.num_layers * per_layer + NON_LAYER_KERNELS) \
            * eng.launch_s_per_kernel
        self._graph_max = eng.cuda_graph_max_seqs if eng.cuda_graphs else -1
        self._keep_cpu = 1.0 - eng.cpu_overlap
        self._elt_factor = eng.fused_elementwise
        self._attn_d_factor = 1.0 / eng.decode_attention_efficiency
        self._custom_ar = eng.tp_allreduce is AllReduceImpl.CUSTOM and self.tp > 1

    def _engine_terms(self, gpu_s: float, rows: float, prefill_tokens: float,
                      decode_seqs: float) -> tuple[float, float, float]:
        """(cpu_s, launch_s, transport_s) of one step under the engine (module docstring)."""
        cpu = self._overhead_fixed_s + self._overhead_per_seq_s * rows
        cpu_s = max(cpu * self._keep_cpu, cpu - gpu_s)
        eng = self._eng
        if prefill_tokens == 0 and decode_seqs <= self._graph_max:
            launches = eng.graph_launch_s  # type: ignore[union-attr]
        else:
            launches = self._eager_launch_s
        launch_s = max(0.0, launches - gpu_s)
        fixed, per_seq = self._transport
        return cpu_s, launch_s, fixed + per_seq * rows

    # -- pieces ---------------------------------------------------------------------------------

    def _comm(self, group: object, op: CollectiveOp, nbytes: float) -> float:
        if group is None or nbytes == 0:
            return 0.0
        return collective_time_for_group(self._cluster, group, op, nbytes,  # type: ignore
                                         profile=self.profile).time_s

    def _linear(self, tokens: float) -> tuple[float, ...]:
        """Parts that depend only on the step's token count: (gemm s, elementwise s, FLOPs) of
        one dense and one MoE layer, one TP all-reduce of the hidden state, the embedding
        lookup, all PP activation sends, and the final norm."""
        hit = self._linear_memo.get(tokens)
        if hit is not None:
            return hit
        m, d, p, tp = self.model, self.device, self.profile, self.tp
        out = []
        hidden_bytes = tokens * m.hidden_size * self.elt
        all_reduce = self._comm(self._tp_group, CollectiveOp.ALL_REDUCE, hidden_bytes)
        eng = self._eng
        if self._custom_ar and hidden_bytes <= eng.custom_allreduce_max_bytes:  # type: ignore
            floor = self._comm(self._tp_group, CollectiveOp.ALL_REDUCE, ALLREDUCE_FLOOR_BYTES)
            all_reduce = min(all_reduce, max(eng.allreduce_latency_s,
                                             all_reduce - floor + eng.allreduce_latency_s))
        moe_comm = 2 * all_reduce  # the MoE layer's communication (TP: two all-reduces)
        for moe in (False, True):
            if moe and not m.is_moe:
                out += [0.0, 0.0, 0.0]
                continue
            elt = layers.layer_elementwise(m, tokens, tp, moe=moe, sequence_parallel=False,
                                           dropout=False, dtype=self.act_dtype)
            # write new K/V into the paged cache (reshape_and_cache: a copy)
            elt.append((ElementwiseKind.COPY, 2.0 * tokens * self.kv_row_bytes))
            elt_s = layers.elementwise_time(d, elt, p) * self._elt_factor
            if moe and self._ep_group is not None:  # EP / DP attention: hwmodels.serving_moe
                c = serving_moe.moe_layer_cost(
                    m, d, self.moe_layout, tokens, dtype=self.dtype, act_bytes=self.elt,
                    profile=p, cluster=self._cluster, ep_group=self._ep_group,
                    tp_group=self._tp_group, imbalance=self.moe_imbalance)
                out += [c.gemm_s, elt_s, c.flops]
                moe_comm = c.comm_s
                continue
            gemms = layers.layer_gemms(m, tokens, tp, moe=moe)
            flops = sum(g.flops for g in layers.layer_gemms(m, tokens, 1, moe=moe))
            out += [layers.gemms_time(d, gemms, self.dtype, p), elt_s, flops]
        embed = ops._memory(d, p, 2.0 * hidden_bytes, ElementwiseKind.EMBEDDING)
        sends = [self._comm(g, CollectiveOp.SEND_RECV, hidden_bytes)
                 for g in (self._p2p_groups or [])]
        final_norm = ops._memory(d, p, 2.0 * hidden_bytes, ElementwiseKind.NORM)
        result = (out[0], out[3], out[1], out[4], out[2], out[5], all_reduce, embed,
                  sum(sends), final_norm, moe_comm)
        if len(self._linear_memo) >= MEMO_MAX_ENTRIES:
            self._linear_memo.clear()
        self._linear_memo[tokens] = result
        return result

    def _logits(self, rows: float) -> tuple[float, float]:
        """(seconds, flops) of logits for `rows` sampled positions: GEMM over vocab/tp, gather
        of the vocab shards, sampler."""
        hit = self._rows_memo.get(rows)
        if hit is not None:
            return hit
        m, d, p = self.model, self.device, self.profile
        if rows == 0:
            result = (0.0, 0.0)
        else:
            gemm = ops.gemm_time(d, rows, m.vocab_size / self.tp, m.hidden_size, self.act_dtype, p)
            if self._greedy_sharded:  # argmax over this rank's shard, (max, index) all-reduce
                gather = self._comm(self._tp_group, CollectiveOp.ALL_REDUCE,
                                    rows * GREEDY_BYTES_PER_ROW)
                sampler = ops._memory(d, p, rows * m.vocab_size / self.tp * self.elt,
                                      ElementwiseKind.SOFTMAX)
            else:
                gather = self._comm(self._tp_group, CollectiveOp.ALL_GATHER,
                                    rows * m.vocab_size * self.elt)
                sampler = ops._memory(d, p, rows * m.vocab_size * SAMPLER_BYTES_PER_LOGIT,
                                      ElementwiseKind.SOFTMAX)
            result = (gemm + gather + sampler, 2.0 * rows * m.vocab_size * m.hidden_size)
        if len(self._rows_memo) >= MEMO_MAX_ENTRIES:
            self._rows_memo.clear()
        self._rows_memo[rows] = result
        return result

    def _check(self, args: tuple[float, ...]) -> None:
        tokens, units, seqs, context, pseqs, cached = args
        try:  # fast path: plain non-negative finite numbers, consistent sums
            if (0 <= tokens < math.inf and 0 <= seqs <= context < math.inf
                    and 0 <= pseqs < math.inf and 0 <= cached < math.inf
                    and tokens / 2.0 * (1 - 1e-12) <= units < math.inf
                    and (tokens or not (units or pseqs or cached))):
                return
        except TypeError:
            pass
        names = ("prefill_tokens", "prefill_attn_units", "decode_seqs", "decode_context_sum",
                 "prefill_seqs", "prefill_cached_sum")
        for name, value in zip(names, args, strict=True):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not (0 <= value < math.inf):
                raise ConfigError(f"must be a finite number >= 0, got {value!r}", key=name)
        if context < seqs:
            raise ConfigError(f"decode_context_sum {context} < decode_seqs {seqs}: every "
                              "decoding sequence reads >= 1 KV entry", key="decode_context_sum")
        if tokens == 0:
            raise ConfigError("prefill attention units/seqs/cached given without prefill tokens",
                              key="prefill_tokens")
        raise ConfigError(f"prefill_attn_units {units} below the minimum prefill_tokens/2 "
                          f"= {tokens / 2}", key="prefill_attn_units")

    def _parts(self, prefill_tokens: float, prefill_attn_units: float, decode_seqs: float,
               decode_context_sum: float, prefill_seqs: float,
               prefill_cached_sum: float) -> tuple[float, ...]:
        """The step's parts (see _live_parts) as a fixed-shape engine runs it: decode padded
        to its slots over the whole preallocated cache, prompts padded to their bucket and,
        when prefilled one at a time, priced as that many single-prompt steps."""
        shape = self._shape
        if shape is None:
            return self._live_parts(prefill_tokens, prefill_attn_units, decode_seqs,
                                    decode_context_sum, prefill_seqs, prefill_cached_sum)
        n, ctx = shape.decode(decode_seqs, decode_context_sum)
        if prefill_tokens == 0:
            return self._live_parts(0, 0.0, n, ctx, 0, 0)
        k = prefill_seqs or 1
        new = shape.engine.padded_prompt_len(prefill_tokens / k)
        cached = prefill_cached_sum / k
        one_units = new * (cached + new / 2.0)  # causal pairs of the padded prompt
        if not shape.engine.prefill_sequential or k == 1:
            return self._live_parts(k * new, k * one_units, n, ctx, k, k * cached)
        one = self._live_parts(new, one_units, 0, 0.0, 1, cached)
        rest = self._live_parts(0, 0.0, n, ctx, 0, 0) if n else (0.0,) * len(one)
        return tuple(k * a + b for a, b in zip(one, rest, strict=True))

    def _live_parts(self, prefill_tokens: float, prefill_attn_units: float,
                    decode_seqs: float, decode_context_sum: float, prefill_seqs: float,
                    prefill_cached_sum: float) -> tuple[float, ...]:
        """(gemm, attn prefill, attn decode, elementwise, tp comm, pp comm, logits, overhead,
        stage_s, flops) of one step of exactly these sums; the first eight sum to time_s
        (+ the engine's terms after flops)."""
        m, d, p = self.model, self.device, self.profile
        tokens = float(prefill_tokens + decode_seqs)
        if tokens == 0:
            return (0.0,) * 10  # an empty batch launches nothing
        (g_dense, g_moe, e_dense, e_moe, f_dense, f_moe, all_reduce, embed, sends,
         final_norm, moe_comm) = self._linear(tokens)
        attn_p = 0.0 if prefill_tokens == 0 else ops._varlen(
            d, p, prefill_attn_units, prefill_tokens, prefill_tokens + prefill_cached_sum,
            self.heads, self.kv_heads, m.head_dim, self.v_head_dim, self.act_dtype,
            peak=self._attn_peak)
        attn_d = ops._decode(d, p, decode_seqs, decode_context_sum, self.heads,
                             self.decode_kv_heads, m.head_dim, self.kv_dtype, self.latent_dim,
                             self._decode_rate)
        attn_d *= self._attn_d_factor
        rows = decode_seqs + (prefill_seqs or (1 if prefill_tokens else 0))  # seqs in step
        logits_s, logits_flops = self._logits(rows)
        overhead = self._overhead_fixed_s
        if self._overhead_per_seq_s:
            overhead += self._overhead_per_seq_s * rows
        if self._eng is not None:
            overhead = 0.0  # the engine's terms are added below
        embed_ar = all_reduce if self.tp > 1 else 0.0
        per_dense = g_dense + e_dense + 2 * all_reduce + attn_p + attn_d
        per_moe = g_moe + e_moe + moe_comm + attn_p + attn_d
        last = self.pp - 1
        stage_s = 0.0
        for i, (n_dense, n_moe) in enumerate(self.stages):
            t = n_dense * per_dense + n_moe * per_moe
            if i == 0:
                t += embed + embed_ar
            if i == last:
                t += final_norm + logits_s
            stage_s = max(stage_s, t)
        nd, nm, n = self.num_dense, self.num_moe, self.num_layers
        attn_flops = self.attn_flops_per_pair * (prefill_attn_units + decode_context_sum)
        out = (nd * g_dense + nm * g_moe, n * attn_p, n * attn_d,
               nd * e_dense + nm * e_moe + embed,
               2 * n * all_reduce + nm * (moe_comm - 2 * all_reduce) + embed_ar, sends,
               final_norm + logits_s, overhead, stage_s,
               nd * f_dense + nm * f_moe + n * attn_flops + logits_flops)
        if self._eng is None:
            return out
        return out + self._engine_terms(sum(out[:7]), rows, prefill_tokens, decode_seqs)

    def _per_rank(self, args: tuple[float, ...]) -> tuple[float, ...]:
        """One DP-attention rank's share of the batch sums (even spread; serving_moe)."""
        return args if self.dp == 1 else tuple(a / self.dp for a in args)

    # -- public ---------------------------------------------------------------------------------

    def breakdown(self, prefill_tokens: float, prefill_attn_units: float, decode_seqs: float,
                  decode_context_sum: float, *, prefill_seqs: float = 0,
                  prefill_cached_sum: float = 0) -> dict[str, float]:
        """Seconds by part (summed over PP stages), time_s, stage_s and flops of one step."""
        args = (prefill_tokens, prefill_attn_units, decode_seqs, decode_context_sum,
                prefill_seqs, prefill_cached_sum)
        self._check(args)
        parts = self._parts(*self._per_rank(args))
        out = dict(zip(BREAKDOWN_KEYS, parts[:8], strict=True))
        if self._eng is not None:
            extra = parts[10:] if len(parts) > 10 else (0.0,) * len(ENGINE_BREAKDOWN_KEYS)
            out.update(zip(ENGINE_BREAKDOWN_KEYS, extra, strict=True))
        out["time_s"] = sum(parts[:8]) + sum(parts[10:])
        out["stage_s"] = parts[8]
        out["flops"] = parts[9] * self.dp
        return out

    def time_s(self, prefill_tokens: float, prefill_attn_units: float, decode_seqs: float,
               decode_context_sum: float, *, prefill_seqs: float = 0,
               prefill_cached_sum: float = 0) -> float:
        """Seconds of one step through all PP stages (memoized)."""
        key = (prefill_tokens, prefill_attn_units, decode_seqs, decode_context_sum,
               prefill_seqs, prefill_cached_sum)
        hit = self._time_memo.get(key)
        if hit is not None:
            return hit
        self._check(key)
        parts = self._parts(*self._per_rank(key))
        value = sum(parts[:8]) + sum(parts[10:])
        if len(self._time_memo) >= MEMO_MAX_ENTRIES:
            self._time_memo.clear()
        self._time_memo[key] = value
        return value


@functools.lru_cache(maxsize=64)
def _cost_model(model: ModelSpec, device: DeviceSpec, tp: int, pp: int, dtype: DType | str,
                kv_dtype: DType | str | None, profile: DeviceProfile | str | Path | None,
                intra_link: str | LinkSpec | None, inter_link: str | LinkSpec | None,
                engine_overhead: str | None, engine: str | None = None) -> StepCostModel:
    return StepCostModel(model, device, tp=tp, pp=pp, dtype=dtype, kv_dtype=kv_dtype,
                         profile=profile, intra_link=intra_link, inter_link=inter_link,
                         engine_overhead=engine_overhead, engine=engine)


def _lengths(values: Sequence[int], key: str, minimum: int) -> list[int]:
    if isinstance(values, (str, bytes)):
        raise ConfigError(f"expected a list of integers, got {values!r}", key=key)
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ConfigError(f"every length must be an integer >= {minimum}, got {v!r}",
                              key=key)
        out.append(v)
    return out


def prefill_attn_units(prefill_lens: Sequence[int], prefill_cached: Sequence[int] = ()) -> float:
    """Sum over prefill chunks of new * (cached + new/2): causal (query, key) pairs."""
    new = _lengths(prefill_lens, "prefill_lens", 1)
    cached = _lengths(prefill_cached, "prefill_cached", 0) or [0] * len(new)
    if len(cached) != len(new):
        raise ConfigError(f"prefill_cached has {len(cached)} entries for {len(new)} prompts",
                          key="prefill_cached")
    return float(sum(ops.causal_pairs(n, c + n) for n, c in zip(new, cached, strict=True)))


def estimate_step(model: ModelSpec, device: DeviceSpec, *, tp: int = 1, pp: int = 1,
                  prefill_lens: Sequence[int] = (), prefill_cached: Sequence[int] = (),
                  decode_context_lens: Sequence[int] = (), dtype: DType | str = DType.BF16,
                  kv_dtype: DType | str | None = None,
                  profile: DeviceProfile | str | Path | None = None,
                  intra_link: str | LinkSpec | None = None,
                  inter_link: str | LinkSpec | None = None,
                  engine_overhead: str | None = None,
                  engine: str | None = None) -> StepEstimate:
    """One serving step: prompts of prefill_lens new tokens (after prefill_cached cached ones)
    and sequences decoding one token at decode_context_lens, on a TP x PP replica
    (engine_overhead, engine: as StepCostModel)."""
    units = prefill_attn_units(prefill_lens, prefill_cached)
    new = list(prefill_lens)
    ctx = _lengths(decode_context_lens, "decode_context_lens", 1)
    cost = _cost_model(model, device, tp, pp, dtype, kv_dtype, profile, intra_link, inter_link,
                       engine_overhead, None if engine is None else str(engine))
    parts = cost.breakdown(sum(new), units, len(ctx), sum(ctx), prefill_seqs=len(new),
                           prefill_cached_sum=sum(prefill_cached))
    time_s = parts.pop("time_s")
    return StepEstimate(time_s=time_s, breakdown=parts)
