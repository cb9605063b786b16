"""Training plans: how a model is split over devices (TP/PP/DP/CP/EP, ZeRO, recompute, schedule).

`check_plan` enforces every divisibility rule in one place, so the simulator, the memory
model and the planners reject the same impossible plans with the same one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels._compat import StrEnum
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.specs import AttentionKind, ClusterSpec, ModelSpec


class Recompute(StrEnum):
    NONE = "none"
    SELECTIVE = "selective"  # Korthikanti et al.: recompute attention softmax/dropout only
    FULL = "full"  # store only each layer's input
    # torchtitan's per-op selective AC (activation_checkpoint.selective_ac_option = "op"): in
    # each block the outputs of matmuls are saved except every second one, and the attention
    # kernel's; everything else is recomputed in backward (hwmodels.layers.OP_SAC_*)
    SELECTIVE_OP = "selective-op"


class PipelineSchedule(StrEnum):
    GPIPE = "gpipe"
    ONE_F_ONE_B = "1f1b"
    INTERLEAVED = "interleaved"
    ZB_H1 = "zb-h1"


class FSDPImpl(StrEnum):
    """The sharded-data-parallel stack: how ZeRO-3/FSDP moves weights and grads (framework
    constants per value, hwmodels.training.costs.FSDP_TRAITS)."""

    NCCL = "nccl"  # v0.1 behaviour: NCCL multi-channel, one gather per layer, prefetch 1 ahead
    DEEPSPEED_2021 = "deepspeed-2021"  # DeepSpeed ZeRO-3 as in SC'21 Table 2 (see costs.py)
    DEEPSPEED = "deepspeed"  # DeepSpeed ZeRO-3 (>= 0.10: prefetch bucket, param persistence)
    FSDP1 = "fsdp1"  # PyTorch FSDP (FullyShardedDataParallel, flat parameters)
    FSDP2 = "fsdp2"  # PyTorch fully_shard (per-parameter DTensor sharding)
    MEGATRON = "megatron"  # Megatron-core custom FSDP / distributed optimizer
    IDEAL = "ideal"  # explicit ideal overlap: every gather hidden unless longer than compute


class AttentionImpl(StrEnum):
    """Attention kernel family used in training (TrainingConfig.attention_impl)."""

    AUTO = "auto"  # the device generation's usual kernel (see hwmodels.layers)
    FA2 = "fa2"  # FlashAttention-2 (Dao, 2023)
    FA3 = "fa3"  # FlashAttention-3 (Shah et al., 2024), Hopper only
    CUDNN = "cudnn"  # cuDNN fused attention (Transformer Engine's default on Hopper)
    UNFUSED = "unfused"  # materialized softmax (Megatron before FlashAttention)


class KernelStack(StrEnum):
    """How a framework launches the non-GEMM kernels (TrainingConfig.kernels)."""

    FUSED = "fused"  # Megatron / Transformer Engine fused kernels
    EAGER = "eager"  # PyTorch eager: one kernel per op
    COMPILED = "compiled"  # torch.compile (Inductor) fused elementwise


class LossImpl(StrEnum):
    """How the framework computes the cross-entropy loss over the logits (TrainingConfig.loss_impl;
    bytes per logit in hwmodels.layers, saved bytes in hwmodels.memory)."""

    FUSED = "fused"  # Megatron vocab-parallel CE / flash-attn's fused CE: fp32 softmax kept
    # PyTorch F.cross_entropy(logits.float(), ...) (torchtitan's loss_fn at 9dec370): an fp32
    # copy of the logits, log_softmax's fp32 output saved, a dense fp32 nll grad in backward
    EAGER_FP32 = "eager-fp32"


class EPOverlap(StrEnum):
    """Whether MoE all-to-all is hidden behind compute (ParallelConfig.ep_overlap)."""

    NONE = "none"  # dispatch/combine on the critical path
    DUALPIPE = "dualpipe"  # DeepSeek-V3 DualPipe-style: one microbatch's a2a behind another's


class GradReduceDType(StrEnum):
    """The dtype data-parallel gradients are reduced in (ParallelConfig.grad_reduce_dtype):
    Megatron --grad-reduce-in-bf16, FSDP MixedPrecision(Policy).reduce_dtype, torchtitan
    mixed_precision_reduce, DeepSpeed communication_data_type."""

    BF16 = "bf16"
    FP32 = "fp32"


class TPOverlapImpl(StrEnum):
    """How tensor-parallel collectives are overlapped with the GEMMs that produce or consume
    them (ParallelConfig.tp_comm_overlap_impl; per-implementation achievable overlap and
    chunking overhead in hwmodels.training.tp_overlap.TP_OVERLAP_TRAITS)."""

    NONE = "none"  # collectives on the critical path
    TE_USERBUFFERS = "te-userbuffers"  # Transformer Engine userbuffers (chunked AG/RS + GEMM)
    MINDSPEED_MC2 = "mindspeed-mc2"  # Ascend MC2 fused matmul+all-reduce / AG-matmul / matmul-RS
    XLA_COLLECTIVE_MATMUL = "xla-collective-matmul"  # XLA decomposed collective matmul (Wang 2023)
    IDEAL = "ideal"  # every TP collective hidden unless longer than the layer's GEMMs


class OffloadTarget(StrEnum):
    """Where ZeRO-Offload / ZeRO-Infinity keep a kind of state (DeepSpeed's offload `device`)."""

    NONE = "none"  # on the GPU
    CPU = "cpu"  # host DRAM (ZeRO-Offload, Ren et al. ATC'21)
    NVME = "nvme"  # the node's NVMe drives through host buffers (ZeRO-Infinity, SC'21)


class PoolSplit(StrEnum):
    """How layers are split over pipeline stages that run on different device pools."""

    PROPORTIONAL = "proportional"  # by each stage's per-layer time, within its memory
    EVEN = "even"  # stage_layer_counts' split, blind to the devices (a naive launcher)


class CPMode(StrEnum):
    RING = "ring"  # ring attention: KV blocks passed around the CP group (send/recv)
    ULYSSES = "ulysses"  # all-to-all on heads (DeepSpeed-Ulysses)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingConfig:
    """What one optimizer step processes."""

    seq_len: int
    global_batch: int  # sequences per optimizer step
    micro_batch: int = 1  # sequences per microbatch per DP replica
    dtype: DType = DType.BF16
    attention_impl: AttentionImpl = AttentionImpl.AUTO
    kernels: KernelStack = KernelStack.FUSED
    loss_impl: LossImpl = LossImpl.FUSED

    def __post_init__(self) -> None:
        for name in ("seq_len", "global_batch", "micro_batch"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"must be > 0, got {getattr(self, name)}",
                                  key=f"training.{name}")
        _enum(self.attention_impl, AttentionImpl, "training.attention_impl")
        _enum(self.kernels, KernelStack, "training.kernels")
        _enum(self.loss_impl, LossImpl, "training.loss_impl")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelConfig:
    """The parallel plan. dp is the data-parallel degree over *non-expert* parameters.

    ep splits experts across ranks of the data-parallel x context-parallel group (Megatron's
    convention: ep must divide dp*cp). rank_order lists dimensions innermost first.
    """

    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    vpp: int = 1  # virtual pipeline chunks per stage (interleaved schedule)
    zero: int = 0  # 0..3; 1 = distributed optimizer, 3 = FSDP
    sequence_parallel: bool = False
    recompute: Recompute = Recompute.NONE
    schedule: PipelineSchedule = PipelineSchedule.ONE_F_ONE_B
    cp_mode: CPMode = CPMode.RING
    # only read when zero == 3. Default fsdp2: PyTorch's maintained FSDP path (fully_shard;
    # FSDP1 is deprecated in its favour, torchtitan uses it), with its real prefetch and
    # contention (hwmodels.training.fsdp); `ideal` only when asked, nccl = v0.1.
    fsdp_impl: FSDPImpl = FSDPImpl.FSDP2
    overlap_grad_reduce: bool = True
    overlap_param_gather: bool = True
    overlap_tp_comm: bool = False
    # which TP-overlap implementation (None: ideal when overlap_tp_comm, else none, the
    # behaviour before this field); a value given here wins over overlap_tp_comm
    tp_comm_overlap_impl: TPOverlapImpl | None = None
    rank_order: tuple[str, ...] = ("tp", "cp", "ep", "dp", "pp")
    # Uneven pipeline stages (Megatron's decoder_first/last_pipeline_num_layers; an explicit
    # list of layers per stage, or per virtual stage in chunk-major order v = chunk * pp + s).
    # None/() and pp*vpp not dividing num_layers: the balanced split (hwmodels.parallel
    # .stage_layer_counts); the first and last stages, which carry embedding and loss, get fewer.
    first_stage_layers: int | None = None
    last_stage_layers: int | None = None
    stage_layers: tuple[int, ...] = ()
    # Megatron's --account-for-embedding/loss-in-pipeline-split (torchtitan's input/output
    # weight 1): the embedding / the logits+loss count as one layer of the balanced split.
    account_for_embedding_in_split: bool = False
    account_for_loss_in_split: bool = False
    # ZeRO-3 / FSDP knobs (None: the fsdp_impl stack's default, costs.FSDP_TRAITS)
    fsdp_prefetch: int | None = None  # layers whose gathers may be in flight ahead of compute
    fsdp_bucket_mb: float | None = None  # gather/reduce bucket size (DeepSpeed prefetch bucket)
    # Hybrid sharding (zero 3 only): model states sharded over groups of fsdp_shard_size
    # consecutive DP ranks (x cp), replicated across the dp / fsdp_shard_size groups, whose
    # grads are all-reduced (PyTorch HSDP / torchtitan dp_shard x dp_replicate, DeepSpeed MiCS
    # mics_shard_size, MaxText ici_fsdp x dcn_data). None: shard over all of DP.
    fsdp_shard_size: int | None = None
    # ZeRO-Offload / ZeRO-Infinity (hwmodels.training.offload): optimizer state + step on the
    # host (cpu) or its state on NVMe (nvme); true/false read as cpu/none (the old bool key)
    offload_optimizer: OffloadTarget | bool = OffloadTarget.NONE
    # ZeRO-Infinity parameter offload (zero 3 only): 16-bit weights streamed from host / NVMe
    offload_params: OffloadTarget | bool = OffloadTarget.NONE
    # MoE: expert tensor parallelism (None: = tp, Megatron's default), token capacity per
    # expert (None: dropless), busiest-expert load over the mean (None: the model default)
    expert_tp: int | None = None
    moe_capacity_factor: float | None = None
    moe_imbalance: float | None = None
    ep_overlap: EPOverlap = EPOverlap.NONE
    # dtype of the data-parallel gradient reduction (None: the stack's own: Megatron's DDP
    # fp32 main grads for bf16, hwmodels.training.gradsync; FSDP_TRAITS grad_bytes for
    # zero 3). With zero < 3, bf16 also keeps Megatron's grad buffer in bf16 (2 B/param).
    grad_reduce_dtype: GradReduceDType | None = None
    # Heterogeneous jobs (cluster.pools): the pool index of each pipeline stage (() = contiguous
    # stages per pool, in pool order) and how layers are split over stages on unlike pools.
    stage_pools: tuple[int, ...] = ()
    pool_split: PoolSplit = PoolSplit.PROPORTIONAL

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "cp", "ep", "vpp"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}",
                                  key=f"parallelism.{name}")
        if self.zero not in (0, 1, 2, 3):
            raise ConfigError(f"unknown ZeRO stage {self.zero}", key="parallelism.zero",
                              allowed=[0, 1, 2, 3])
        if str(self.fsdp_impl) not in {m.value for m in FSDPImpl}:
            raise ConfigError(f"unknown FSDP implementation {self.fsdp_impl!r}",
                              key="parallelism.fsdp_impl", allowed=[m.value for m in FSDPImpl])
        if sorted(self.rank_order) != sorted(("tp", "cp", "ep", "dp", "pp")):
            raise ConfigError(f"bad rank order {self.rank_order}", key="parallelism.rank_order",
                              allowed="a permutation of tp, cp, ep, dp, pp")
        if self.vpp > 1 and self.schedule is not PipelineSchedule.INTERLEAVED:
            raise ConfigError("vpp > 1 needs schedule: interleaved", key="parallelism.vpp")
        _enum(self.ep_overlap, EPOverlap, "parallelism.ep_overlap")
        if self.grad_reduce_dtype is not None:
            _enum(self.grad_reduce_dtype, GradReduceDType, "parallelism.grad_reduce_dtype")
            object.__setattr__(self, "grad_reduce_dtype",
                               GradReduceDType(str(self.grad_reduce_dtype)))
        if self.tp_comm_overlap_impl is not None:
            _enum(self.tp_comm_overlap_impl, TPOverlapImpl, "parallelism.tp_comm_overlap_impl")
            impl = TPOverlapImpl(str(self.tp_comm_overlap_impl))
            object.__setattr__(self, "tp_comm_overlap_impl", impl)
            if impl in (TPOverlapImpl.TE_USERBUFFERS, TPOverlapImpl.MINDSPEED_MC2) and \
                    self.tp > 1 and not self.sequence_parallel:
                # MindSpeed mc2.md: --use-ascend-mc2 needs --sequence-parallel; Megatron-Bridge
                # comm_overlap.py: tp_comm_overlap needs sequence_parallel
                raise ConfigError(f"tp_comm_overlap_impl {impl} needs sequence_parallel: true",
                                  key="parallelism.tp_comm_overlap_impl",
                                  allowed=["sequence_parallel: true", "none", "ideal",
                                           "xla-collective-matmul"])
        for name in ("offload_optimizer", "offload_params"):
            object.__setattr__(self, name, _offload(getattr(self, name), f"parallelism.{name}"))
        if self.offload_params is not OffloadTarget.NONE:
            if self.zero != 3:
                raise ConfigError(f"offload_params {self.offload_params} needs zero: 3 "
                                  f"(ZeRO-Infinity partitions the weights), got zero "
                                  f"{self.zero}", key="parallelism.offload_params",
                                  allowed=["none", "zero: 3"])
            if self.offload_optimizer is OffloadTarget.NONE:
                # assumption: not modelled (the GPU would need its fp32 master weights while
                # its 16-bit weights live on the host); DeepSpeed's ZeRO-Infinity configs
                # offload both
                raise ConfigError("offload_params needs offload_optimizer cpu|nvme",
                                  key="parallelism.offload_params", allowed=["none"])
        _enum(self.pool_split, PoolSplit, "parallelism.pool_split")
        if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in self.stage_pools):
            raise ConfigError(f"pool indices must be integers >= 0, got {list(self.stage_pools)}",
                              key="parallelism.stage_pools")
        if self.stage_pools and len(self.stage_pools) != self.pp:
            raise ConfigError(f"{len(self.stage_pools)} entries for pp {self.pp}",
                              key="parallelism.stage_pools", allowed=f"{self.pp} pool indices")
        for name in ("first_stage_layers", "last_stage_layers", "fsdp_prefetch", "expert_tp"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ConfigError(f"must be an integer >= 1, got {value!r}",
                                  key=f"parallelism.{name}")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.stage_layers):
            raise ConfigError(f"every stage needs >= 1 layer, got {list(self.stage_layers)}",
                              key="parallelism.stage_layers")
        if self.stage_layers and (self.first_stage_layers or self.last_stage_layers):
            raise ConfigError("give stage_layers or first/last_stage_layers, not both",
                              key="parallelism.stage_layers")
        accounts = self.account_for_embedding_in_split or self.account_for_loss_in_split
        if accounts and (self.stage_layers or self.first_stage_layers is not None
                         or self.last_stage_layers is not None):
            raise ConfigError("account_for_embedding/loss_in_split shape the balanced split; "
                              "an explicit split already places the ends",
                              key="parallelism.account_for_embedding_in_split")
        if self.stage_layers and len(self.stage_layers) not in (self.pp, self.pp * self.vpp):
            raise ConfigError(f"{len(self.stage_layers)} entries for pp {self.pp}, vpp "
                              f"{self.vpp}", key="parallelism.stage_layers",
                              allowed=sorted({self.pp, self.pp * self.vpp}))
        if (self.first_stage_layers or self.last_stage_layers) and self.pp == 1:
            raise ConfigError("first/last_stage_layers need pp > 1",
                              key="parallelism.first_stage_layers")
        if self.fsdp_shard_size is not None:
            _check_shard_size(self)
        for name, low in (("fsdp_bucket_mb", 0.0), ("moe_capacity_factor", 0.0),
                          ("moe_imbalance", 1.0)):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not (value >= low) or value != value or value == float("inf"):
                raise ConfigError(f"must be a finite number {'>=' if low else '>'} {low:g}, "
                                  f"got {value!r}", key=f"parallelism.{name}")
            if low == 0.0 and value == 0:
                raise ConfigError(f"must be > 0, got {value!r}", key=f"parallelism.{name}")

    @property
    def tp_overlap(self) -> TPOverlapImpl:
        """The TP-overlap implementation in effect: the one named, else ideal when
        overlap_tp_comm is set (the v0 behaviour), else none."""
        if self.tp_comm_overlap_impl is not None:
            return self.tp_comm_overlap_impl
        return TPOverlapImpl.IDEAL if self.overlap_tp_comm else TPOverlapImpl.NONE

    @property
    def world_size(self) -> int:
        return self.tp * self.pp * self.dp * self.cp


def _check_shard_size(p: ParallelConfig) -> None:
    """fsdp_shard_size: an integer >= 1 dividing dp, with zero 3 (the sharded model states it
    groups; ZeRO-1/2's replicated weights have no shard group to shrink: DeepSpeed's hpZ
    secondary weight partition is a different scheme, not modelled) and ep 1."""
    n = p.fsdp_shard_size
    key = "parallelism.fsdp_shard_size"
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"must be an integer >= 1, got {n!r}", key=key,
                          allowed="a divisor of dp, node, slice or null")
    if p.zero != 3:
        raise ConfigError(f"hybrid sharding needs zero: 3, got zero {p.zero}", key=key,
                          allowed=["null", "zero: 3"])
    if p.dp % n:
        raise ConfigError(f"{n} does not divide dp {p.dp}", key=key,
                          allowed=[d for d in range(1, p.dp + 1) if p.dp % d == 0])
    if p.ep > 1 or (p.expert_tp is not None and p.expert_tp != p.tp):
        # assumption: expert-parallel hybrid sharding (its own expert shard/replica grid) is
        # not modelled; experts then shard like dense parameters
        raise ConfigError(f"hybrid sharding with ep {p.ep} / expert_tp {p.expert_tp} is not "
                          "modelled", key=key, allowed="ep: 1 and expert_tp unset or = tp")


def shard_group_size(parallel: ParallelConfig) -> int:
    """DP ranks one ZeRO-3 shard group spans (dp unless hybrid sharding narrows it)."""
    return parallel.dp if parallel.fsdp_shard_size is None else parallel.fsdp_shard_size


def replica_count(parallel: ParallelConfig) -> int:
    """Hybrid-sharding replicas: shard groups holding the same model states (1 without)."""
    return parallel.dp // shard_group_size(parallel)


def _enum(value: object, cls: type[StrEnum], key: str) -> None:
    if str(value) not in {m.value for m in cls}:  # type: ignore[attr-defined]
        raise ConfigError(f"unknown value {value!r}", key=key,
                          allowed=[m.value for m in cls])  # type: ignore[attr-defined]


def _offload(value: object, key: str) -> OffloadTarget:
    """An offload setting as OffloadTarget: true/false (the old bool key) are cpu/none."""
    if isinstance(value, bool):
        return OffloadTarget.CPU if value else OffloadTarget.NONE
    if str(value) not in {m.value for m in OffloadTarget}:
        raise ConfigError(f"unknown offload target {value!r}", key=key,
                          allowed=[m.value for m in OffloadTarget] + [True, False])
    return OffloadTarget(str(value))


def num_microbatches(training: TrainingConfig, parallel: ParallelConfig) -> int:
    """Microbatches per pipeline per step: global_batch / (micro_batch * dp)."""
    return training.global_batch // (training.micro_batch * parallel.dp)


def stage_layer_counts(num_layers: int, parallel: ParallelConfig) -> tuple[int, ...]:
    """Layers of each virtual stage, chunk-major (virtual stage v = chunk * pp + stage).

    An explicit `stage_layers` list is used as given (pp entries: each stage's layers split
    evenly over its vpp chunks); first/last_stage_layers fix the ends and split the rest evenly
    over the other stages (Megatron-core get_num_layers_to_build: the rest must divide);
    otherwise layers divide evenly, or, when pp*vpp does not divide them, the balanced split:
    ceil(layers / (pp*vpp)) per virtual stage, one fewer on virtual stages taken from the ends
    inwards (0, last, 1, last-1, ...), since the first carries the embedding and the last the
    logits and loss (Llama 3 405B on PP16: 7 + 14x8 + 7 = 126, Dubey et al. 2024, Sec. 3.3.2).
    account_for_embedding/loss_in_split count the embedding / the loss as one more layer of the
    split, on the first / last virtual stage (Megatron-LM's flags of those names; torchtitan's
    generate_llm_fqn_per_model_part with input/output weight 1).
    Raises ConfigError (one line, parallelism.* key) for a split that does not add up or leaves
    a stage without layers.
    """
    p = parallel
    slots = p.pp * p.vpp
    if slots > num_layers:
        raise ConfigError(f"pp*vpp = {slots} exceeds num_layers {num_layers}",
                          key="parallelism.pp", allowed=f"pp*vpp <= {num_layers}")
    if p.stage_layers:
        given = list(p.stage_layers)
        if sum(given) != num_layers:
            raise ConfigError(f"stage_layers {given} add up to {sum(given)}, the model has "
                              f"{num_layers} layers", key="parallelism.stage_layers",
                              allowed=f"{len(given)} positive integers summing to {num_layers}")
        if len(given) == slots:
            return tuple(given)
        return _split_stages(given, p, "parallelism.stage_layers")
    if p.first_stage_layers is not None or p.last_stage_layers is not None:
        fixed = {0: p.first_stage_layers, p.pp - 1: p.last_stage_layers}
        fixed = {s: n for s, n in fixed.items() if n is not None}
        rest_layers = num_layers - sum(fixed.values())
        rest_stages = p.pp - len(fixed)
        key = ("parallelism.first_stage_layers" if p.first_stage_layers is not None
               else "parallelism.last_stage_layers")
        if rest_layers < rest_stages or (rest_stages == 0 and rest_layers != 0) or \
                (rest_stages and rest_layers % rest_stages):
            raise ConfigError(
                f"first/last stage layers {p.first_stage_layers}/{p.last_stage_layers} leave "
                f"{rest_layers} layers for {rest_stages} other stages of {num_layers}",
                key=key, allowed="values leaving a positive multiple of the other stages' count")
        per = rest_layers // rest_stages if rest_stages else 0
        return _split_stages([fixed.get(s, per) for s in range(p.pp)], p, key)
    emb, loss = int(p.account_for_embedding_in_split), int(p.account_for_loss_in_split)
    per, extra = divmod(num_layers + emb + loss, slots)
    counts = [per + (1 if extra else 0)] * slots
    lo, hi = 0, slots - 1
    for k in range(slots - extra if extra else 0):  # take one layer from the ends inwards
        if k % 2 == 0:
            counts[lo] -= 1
            lo += 1
        else:
            counts[hi] -= 1
            hi -= 1
    counts[0] -= emb
    counts[-1] -= loss
    if min(counts) < 1:
        raise ConfigError(f"counting the embedding/loss as layers leaves a virtual stage of "
                          f"{num_layers} layers over pp*vpp = {slots} without layers",
                          key="parallelism.account_for_embedding_in_split",
                          allowed="fewer stages or no accounting")
    return tuple(counts)


def _split_stages(per_stage: list[int], parallel: ParallelConfig, key: str) -> tuple[int, ...]:
    """Per-stage counts -> per-virtual-stage counts (each stage's layers even over vpp)."""
    p = parallel
    if any(n < p.vpp for n in per_stage) or any(n % p.vpp for n in per_stage):
        raise ConfigError(f"stage layers {per_stage} do not split into vpp {p.vpp} equal "
                          "chunks of >= 1 layer", key=key,
                          allowed=f"multiples of vpp {p.vpp}, or one entry per virtual stage")
    return tuple(per_stage[v % p.pp] // p.vpp for v in range(p.pp * p.vpp))


def virtual_stage_layers(counts: tuple[int, ...], virtual_stage: int) -> range:
    """Layer indices [lo, hi) of one virtual stage, from stage_layer_counts."""
    lo = sum(counts[:virtual_stage])
    return range(lo, lo + counts[virtual_stage])


def describe_split(counts: tuple[int, ...], parallel: ParallelConfig) -> str:
    """'even 12x8', 'balanced 7+8x14+7' or 'explicit ...': how the layers were split per
    physical stage (the output names it; run-length compressed)."""
    p = parallel
    per_stage = [sum(counts[c * p.pp + s] for c in range(p.vpp)) for s in range(p.pp)]
    runs: list[list[int]] = []
    for n in per_stage:
        if runs and runs[-1][0] == n:
            runs[-1][1] += 1
        else:
            runs.append([n, 1])
    text = "+".join(f"{n}x{k}" if k > 1 else f"{n}" for n, k in runs)
    if len(runs) == 1:
        kind = "even"
    elif p.stage_layers or p.first_stage_layers is not None or p.last_stage_layers is not None:
        kind = "explicit"
    else:
        kind = "balanced"
    return f"{kind} {text}"


def check_plan(model: ModelSpec, cluster: ClusterSpec, training: TrainingConfig,
               parallel: ParallelConfig) -> None:
    """Raise ConfigError (one line, naming the key) for any impossible plan."""
    p = parallel
    if p.world_size != cluster.num_devices:
        raise ConfigError(
            f"tp*pp*dp*cp = {p.tp}*{p.pp}*{p.dp}*{p.cp} = {p.world_size} != num_devices "
            f"{cluster.num_devices}", key="parallelism")
    if model.num_heads % p.tp:
        raise ConfigError(f"num_heads {model.num_heads} not divisible by tp {p.tp}",
                          key="parallelism.tp")
    if model.num_kv_heads % p.tp and p.tp % model.num_kv_heads:
        raise ConfigError(
            f"num_kv_heads {model.num_kv_heads} and tp {p.tp}: one must divide the other",
            key="parallelism.tp")
    stage_layer_counts(model.num_layers, p)  # an explicit split must add up
    if training.global_batch % (training.micro_batch * p.dp):
        raise ConfigError(
            f"global_batch {training.global_batch} not divisible by micro_batch*dp = "
            f"{training.micro_batch * p.dp}", key="training.global_batch")
    if training.seq_len % (2 * p.cp if p.cp > 1 else 1):
        raise ConfigError(f"seq_len {training.seq_len} not divisible by 2*cp", key="parallelism.cp")
    moe_keys = [k for k, on in (("ep", p.ep > 1), ("expert_tp", p.expert_tp is not None),
                                ("ep_overlap", EPOverlap(str(p.ep_overlap)) is not EPOverlap.NONE),
                                ("moe_capacity_factor", p.moe_capacity_factor is not None),
                                ("moe_imbalance", p.moe_imbalance is not None)) if on]
    if moe_keys:
        if not model.is_moe:
            key = moe_keys[0]
            raise ConfigError(f"{key + ' > 1' if key == 'ep' else key} needs an MoE model",
                              key=f"parallelism.{key}")
        if model.num_experts % p.ep:
            raise ConfigError(f"ep {p.ep} does not divide num_experts {model.num_experts}",
                              key="parallelism.ep")
        # Megatron-core parallel_state.initialize_model_parallel: the expert grid is
        # expert_tp x ep x expert_dp x pp over the same ranks and world_size must be divisible by
        # expert_tp * ep * pp, i.e. expert_tp * ep divides tp * cp * dp (expert_tp defaults to
        # tp, which leaves the older rule: ep divides dp * cp).
        etp = p.tp if p.expert_tp is None else p.expert_tp
        if p.expert_tp is None and (p.dp * p.cp) % p.ep:
            raise ConfigError(f"ep {p.ep} must divide dp*cp = {p.dp * p.cp}",
                              key="parallelism.ep")
        if (p.tp * p.cp * p.dp) % (etp * p.ep):
            raise ConfigError(f"expert_tp*ep = {etp}*{p.ep} must divide tp*cp*dp = "
                              f"{p.tp * p.cp * p.dp}", key="parallelism.expert_tp")
        if model.moe_ffn_hidden_size % etp:
            raise ConfigError(f"expert_tp {etp} does not divide the expert width "
                              f"{model.moe_ffn_hidden_size}", key="parallelism.expert_tp")
        if etp != p.tp and p.tp > 1 and not p.sequence_parallel:
            # Megatron: MoE with tensor parallelism needs sequence parallelism; the expert
            # tokens are then each rank's sequence shard gathered over the expert-TP group.
            raise ConfigError("expert_tp != tp with tp > 1 needs sequence_parallel: true",
                              key="parallelism.expert_tp")
        if EPOverlap(str(p.ep_overlap)) is EPOverlap.DUALPIPE:
            # DeepSeek-V3 DualPipe (arXiv 2412.19437 Sec. 3.2.1) and Megatron's
            # --overlap-moe-expert-parallel-comm (combined 1F1B) hide one microbatch's
            # all-to-all behind another's compute: they need an all-to-all (ep > 1), two
            # microbatches per pipeline, and no full recompute (Megatron rejects
            # recompute_granularity full with it).
            if p.ep == 1:
                raise ConfigError("ep_overlap dualpipe needs ep > 1 (no all-to-all to hide)",
                                  key="parallelism.ep_overlap", allowed=["none"])
            m = num_microbatches(training, p)
            if m < 2:
                raise ConfigError(f"ep_overlap dualpipe needs >= 2 microbatches per pipeline, "
                                  f"got {m}", key="parallelism.ep_overlap")
            if p.recompute is Recompute.FULL:
                raise ConfigError("ep_overlap dualpipe does not combine with recompute: full",
                                  key="parallelism.ep_overlap",
                                  allowed=["recompute: none|selective", "ep_overlap: none"])
    if p.recompute is Recompute.SELECTIVE_OP and (model.is_moe
                                                  or model.attention is AttentionKind.MLA):
        # the per-op policy is modelled on the dense GQA block (torchtitan llama3): MoE layers'
        # grouped GEMMs and router, and MLA's projections, save and recompute otherwise
        raise ConfigError(f"recompute selective-op is modelled for dense GQA/MHA models only; "
                          f"'{model.name}' has "
                          f"{'MoE layers' if model.is_moe else 'MLA attention'}",
                          key="parallelism.recompute", allowed=["none", "selective", "full"])
    if p.cp_mode is CPMode.ULYSSES and p.cp > 1 and model.num_heads % (p.tp * p.cp):
        raise ConfigError(f"ulysses needs num_heads divisible by tp*cp = {p.tp * p.cp}",
                          key="parallelism.cp")
    if p.schedule is PipelineSchedule.INTERLEAVED and p.vpp > 1:
        m = num_microbatches(training, p)
        if m % p.pp:
            raise ConfigError(f"interleaved schedule needs microbatches {m} divisible by pp {p.pp}",
                              key="parallelism.vpp")
