"""The training-plan search space: enumerate (tp, pp, vpp, pipeline split, cp, ep, dp,
micro-batch, ZeRO, FSDP stack, optimizer offload, recompute, schedule, SP) candidates and prune
what is impossible, redundant or out of memory.

Divisibility is judged by hwmodels.parallel.check_plan (the rules the simulator enforces);
memory by hwmodels.memory.training_memory on the first and last pipeline stages (the first
holds the most in-flight microbatches under 1F1B/interleaved/ZB-H1 and the input embedding,
the last holds the output layer) and, for an uneven split, on the first of the stages with the
most layers (more layers than the ends and nearly as many microbatches in flight).
Redundant plans are never generated: SP without TP, any schedule but 1F1B with pp = 1, vpp > 1
without the interleaved schedule, the interleaved schedule with one virtual stage (= 1F1B), an
FSDP stack or offload that the ZeRO stage does not read. ZeRO-3 plans can also be tried with
hybrid sharding (constraints.fsdp_shard: shard groups of one node, replicated across nodes).

Pipeline splits (UnevenPolicy, default MEGATRON): the even split where pp*vpp divides the
layers; with vpp = 1 also the balanced split of any pp (first/last stages one layer lighter:
Llama 3 405B's 7+8x14+7 on PP16) and, where pp divides the layers, the "ends minus one"
variant (first and last stages one layer lighter, the two spare layers on middle stages), which
pays off when the embedding and the logits weigh more than a layer. Uneven splits are not
interleaved by default: Megatron-core's uneven pipeline (decoder_first/last_pipeline_num_layers,
get_num_layers_to_build) first refused a virtual pipeline outright and later required every
stage's layers to split evenly into its chunks, which a stage one layer lighter than the others
cannot; the balanced split of an interleaved pipeline gives chunks of unequal size (e.g. 1- and
2-layer chunks for 40 layers on pp4 vpp6), which is not what Megatron users run. ANY also
searches those; NONE searches only even splits (the v0.1 space).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from hwmodels._compat import StrEnum
from hwmodels.attention_impl import flash_memory
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.memory import DEFAULT_HEADROOM, training_memory
from hwmodels.parallel import (
    AttentionImpl,
    CPMode,
    FSDPImpl,
    GradReduceDType,
    KernelStack,
    LossImpl,
    OffloadTarget,
    ParallelConfig,
    PipelineSchedule,
    Recompute,
    TPOverlapImpl,
    TrainingConfig,
    check_plan,
    stage_layer_counts,
)
from hwmodels.specs import ClusterSpec, ModelSpec
from hwmodels.training.placement import node_shard_size

DEFAULT_MICRO_BATCHES = (1, 2, 4, 8)
# Interleaving beyond ~8 chunks per stage buys little bubble and costs p2p (Narayanan et al.
# SC'21 Fig. 14 stops at 4-8); keeps the space small.
DEFAULT_MAX_VPP = 8


class UnevenPolicy(StrEnum):
    """Which uneven pipeline splits the search generates (module docstring: why)."""

    NONE = "none"  # only pp*vpp dividing the layers (the v0.1 space)
    MEGATRON = "megatron"  # + balanced and ends-minus-one splits, vpp = 1 only (default)
    ANY = "any"  # + the balanced split of interleaved pipelines (unequal chunks)


def divisors(n: int) -> list[int]:
    """Positive divisors of n, ascending."""
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _ints(values: Sequence[int] | None, key: str) -> tuple[int, ...] | None:
    if values is None:
        return None
    out = tuple(values)
    if not out or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in out):
        raise ConfigError(f"must be a non-empty list of integers >= 1, got {values!r}", key=key)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConstraints:
    """What the search may choose. None means "search every valid value"."""

    tp: Sequence[int] | None = None  # allowed TP degrees (default: divisors within a node)
    max_tp: int | None = None
    pp: Sequence[int] | None = None  # allowed (e.g. one fixed) PP degrees
    max_pp: int | None = None
    vpp: Sequence[int] | None = None  # allowed virtual stages per pipeline stage
    max_vpp: int = DEFAULT_MAX_VPP
    cp: Sequence[int] = (1,)  # context parallelism is opt-in (long sequences)
    ep: Sequence[int] | None = None  # MoE only; default: every valid degree
    micro_batches: Sequence[int] = DEFAULT_MICRO_BATCHES
    zero: Sequence[int] = (0, 1, 2, 3)
    # FSDP stacks tried for ZeRO-3 plans (None: ParallelConfig's default stack only)
    fsdp_impl: Sequence[FSDPImpl | str] | None = None
    # ZeRO-3 shard groups tried (hybrid sharding, ParallelConfig.fsdp_shard_size): "all" =
    # over all of DP, "node" = the DP ranks of one node (a TPU slice; only on jobs of > 1
    # node), integers = that many DP ranks (where they divide dp). Default "all" only: adding
    # "node" by default grows every multi-node ZeRO-3 search (and the pinned plan goldens'
    # counts); `plan train --fsdp-shard all,node` asks for it.
    fsdp_shard: Sequence[str | int] = ("all",)
    # ZeRO-Offload tried on ZeRO >= 1 plans (none|cpu|nvme; True/False = cpu/none), and
    # ZeRO-Infinity parameter offload on ZeRO-3 plans that offload the optimizer
    offload_optimizer: Sequence[bool | OffloadTarget | str] = (False,)
    offload_params: Sequence[OffloadTarget | str] = (OffloadTarget.NONE,)
    uneven: UnevenPolicy | str = UnevenPolicy.MEGATRON
    # selective-op (torchtitan's per-op AC) only when asked: the default search is unchanged
    recompute: Sequence[Recompute | str] = (Recompute.NONE, Recompute.SELECTIVE,
                                            Recompute.FULL)
    sequence_parallel: Sequence[bool] = (False, True)
    schedules: Sequence[PipelineSchedule | str] = (
        PipelineSchedule.ONE_F_ONE_B, PipelineSchedule.INTERLEAVED, PipelineSchedule.ZB_H1)
    cp_mode: CPMode = CPMode.RING
    memory_headroom: float = DEFAULT_HEADROOM  # fraction of device memory kept free
    overlap_grad_reduce: bool = True
    overlap_param_gather: bool = True
    overlap_tp_comm: bool = False
    # how TP collectives overlap their GEMMs (hwmodels.training.tp_overlap); None: by
    # overlap_tp_comm alone. An implementation needing sequence parallelism is applied to the
    # sequence-parallel variants only.
    tp_comm_overlap_impl: TPOverlapImpl | None = None
    flash_attention: bool = True
    # the training stack's kernels, as the framework runs them (not searched: a plan is for
    # one framework): fused (Megatron/TE) | eager (PyTorch eager, e.g. llm-foundry,
    # torchtitan without compile) | compiled; the attention kernel; the loss
    kernels: KernelStack = KernelStack.FUSED
    attention_impl: AttentionImpl = AttentionImpl.AUTO
    loss_impl: LossImpl = LossImpl.FUSED
    # the DP gradient reduction's dtype on every plan (None: each stack's own, see
    # ParallelConfig.grad_reduce_dtype)
    grad_reduce_dtype: GradReduceDType | None = None
    rank_order: tuple[str, ...] = ("tp", "cp", "ep", "dp", "pp")

    def __post_init__(self) -> None:
        for key in ("tp", "pp", "vpp", "ep"):
            _ints(getattr(self, key), f"constraints.{key}")
        _ints(self.cp, "constraints.cp")
        _ints(self.micro_batches, "constraints.micro_batches")
        for key in ("max_tp", "max_pp"):
            value = getattr(self, key)
            if value is not None:
                _ints([value], f"constraints.{key}")
        _ints([self.max_vpp], "constraints.max_vpp")
        if not self.zero or any(z not in (0, 1, 2, 3) for z in self.zero):
            raise ConfigError(f"bad ZeRO stages {self.zero!r}", key="constraints.zero",
                              allowed=[0, 1, 2, 3])
        if not 0 <= self.memory_headroom < 1:
            raise ConfigError(f"must be in [0, 1), got {self.memory_headroom}",
                              key="constraints.memory_headroom")
        for key in ("offload_optimizer", "offload_params"):
            values = getattr(self, key)
            if not values:
                raise ConfigError("must allow at least one value", key=f"constraints.{key}",
                                  allowed=[m.value for m in OffloadTarget])
            object.__setattr__(self, key, tuple(dict.fromkeys(
                _offload(v, f"constraints.{key}") for v in values)))
        if not self.sequence_parallel:
            raise ConfigError("must allow at least one value", key="constraints.sequence_parallel",
                              allowed=[False, True])
        # normalized to enum tuples (frozen dataclass: set once, here)
        object.__setattr__(self, "recompute",
                           _enums(self.recompute, Recompute, "constraints.recompute"))
        object.__setattr__(self, "schedules",
                           _enums(self.schedules, PipelineSchedule, "constraints.schedules"))
        if self.fsdp_impl is not None:
            object.__setattr__(self, "fsdp_impl",
                               _enums(self.fsdp_impl, FSDPImpl, "constraints.fsdp_impl"))
        object.__setattr__(self, "uneven",
                           _enums((self.uneven,), UnevenPolicy, "constraints.uneven")[0])
        shard = tuple(dict.fromkeys(self.fsdp_shard))
        if not shard or any(v not in ("all", "node") and (isinstance(v, bool) or not
                                                          isinstance(v, int) or v < 1)
                            for v in shard):
            raise ConfigError(f"bad shard groups {list(self.fsdp_shard)!r}",
                              key="constraints.fsdp_shard",
                              allowed="all, node or integers >= 1")
        object.__setattr__(self, "fsdp_shard", shard)
        for key, enum_cls in (("kernels", KernelStack), ("attention_impl", AttentionImpl),
                              ("loss_impl", LossImpl)):
            object.__setattr__(self, key, _enums((getattr(self, key),), enum_cls,
                                                 f"constraints.{key}")[0])
        if self.grad_reduce_dtype is not None:
            object.__setattr__(self, "grad_reduce_dtype", _enums(
                (self.grad_reduce_dtype,), GradReduceDType, "constraints.grad_reduce_dtype")[0])

    @property
    def memory_flash_attention(self) -> bool:
        """Whether memory is counted without the s x s scores (unfused attention keeps them)."""
        return flash_memory(self.attention_impl, self.flash_attention)

    def training(self, *, seq_len: int, global_batch: int, micro_batch: int,
                 dtype: DType) -> TrainingConfig:
        """The TrainingConfig of one candidate: its batch shape with the space's stack."""
        return TrainingConfig(seq_len=seq_len, global_batch=global_batch,
                              micro_batch=micro_batch, dtype=dtype, kernels=self.kernels,
                              attention_impl=self.attention_impl, loss_impl=self.loss_impl)


def _offload(value: object, key: str) -> OffloadTarget:
    """A constraint's offload value: true/false as cpu/none, else none|cpu|nvme."""
    if isinstance(value, bool):
        return OffloadTarget.CPU if value else OffloadTarget.NONE
    try:
        return OffloadTarget(str(value).lower())
    except ValueError:
        raise ConfigError(f"unknown offload target {value!r}", key=key,
                          allowed=[m.value for m in OffloadTarget]) from None


def _enums(values: Sequence[object], enum_cls: type, key: str) -> tuple:  # type: ignore[type-arg]
    out = []
    for v in values:
        try:
            out.append(enum_cls(str(v)))
        except ValueError:
            raise ConfigError(f"unknown value '{v}'", key=key,
                              allowed=[e.value for e in enum_cls]) from None
    if not out:
        raise ConfigError("must allow at least one value", key=key,
                          allowed=[e.value for e in enum_cls])
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One point of the search space: a parallel plan plus its micro-batch size."""

    parallel: ParallelConfig
    micro_batch: int


@dataclass(slots=True, kw_only=True)
class SpaceCounts:
    """How many plans the enumeration saw and why it dropped them."""

    considered: int = 0
    pruned_divisibility: int = 0
    pruned_memory: int = 0
    pruned_unlaunchable: int = 0  # settings no training stack runs (see launchable())

    @property
    def kept(self) -> int:
        return (self.considered - self.pruned_divisibility - self.pruned_memory
                - self.pruned_unlaunchable)


def launchable(parallel: ParallelConfig) -> str:
    """'' when some training stack runs `parallel`, else why none does.

    ZeRO-2 (gradients sharded, weights replicated) with pipeline parallelism: DeepSpeed's
    PipelineEngine asserts ZeRO stage < 2 ("ZeRO-2 and ZeRO-3 are incompatible with pipeline
    parallelism", deepspeed/runtime/pipe/engine.py @edaa7221); Megatron-LM's distributed
    optimizer keeps a full fp32 main-grad buffer (megatron/core/distributed param-and-grad
    buffers; bf16 turns on accumulate_allreduce_grads_in_fp32, megatron/training/arguments.py
    @d98e8a64), which is ZeRO-1's memory, not ZeRO-2's; PyTorch pipelining accumulates
    unsharded FSDP gradients until the last microbatch. The planner would otherwise rank a
    memory saving no launcher delivers.
    """
    if parallel.zero == 2 and parallel.pp > 1:
        return ("ZeRO-2 with pipeline parallelism: no stack shards gradients across "
                "microbatches of a pipeline (DeepSpeed refuses it, Megatron's distributed "
                "optimizer keeps full fp32 grads = zero 1)")
    return ""


def shard_sizes(c: TrainConstraints, cluster: ClusterSpec, base: ParallelConfig
                ) -> tuple[int | None, ...]:
    """The ZeRO-3 shard sizes searched on one structure (None = all of DP): "node" only on a
    multi-node job and where one node holds 2..dp-1 DP ranks of a shard group (1 is ZeRO-0's
    replication, dp is "all"); hybrid sharding with ep > 1 or expert_tp is not modelled."""
    out: list[int | None] = []
    hybrid_ok = base.ep == 1 and base.expert_tp in (None, base.tp)
    for v in c.fsdp_shard:
        if v == "all":
            k = None
        elif not hybrid_ok:
            continue
        elif v == "node":
            if cluster.num_devices <= cluster.devices_per_node:
                continue
            k = node_shard_size(base, cluster.devices_per_node)
        else:
            k = int(v)
        if k is not None and (k >= base.dp or k < 2 or base.dp % k):
            continue  # not hybrid: the whole DP group, replication, or not a divisor
        out.append(k)
    return tuple(dict.fromkeys(out)) or (None,)


def _tp_values(model: ModelSpec, cluster: ClusterSpec, c: TrainConstraints) -> list[int]:
    values = list(c.tp) if c.tp is not None else divisors(cluster.devices_per_node)
    if c.max_tp is not None:
        values = [t for t in values if t <= c.max_tp]
    return values


def _structural(model: ModelSpec, cluster: ClusterSpec, c: TrainConstraints
                ) -> Iterator[tuple[int, int, int, int, PipelineSchedule, int]]:
    """Non-redundant (tp, cp, pp, vpp, schedule, ep) combinations, before divisibility."""
    pps = list(c.pp) if c.pp is not None else divisors(cluster.num_devices)
    if c.max_pp is not None:
        pps = [p for p in pps if p <= c.max_pp]
    vpps = [v for v in (c.vpp if c.vpp is not None else range(2, c.max_vpp + 1)) if v > 1]
    if model.is_moe:
        eps = list(c.ep) if c.ep is not None else divisors(model.num_experts)
    else:
        eps = [1]
    for tp, cp, pp, ep in itertools.product(_tp_values(model, cluster, c), c.cp, pps, eps):
        for sched in c.schedules:
            if pp == 1 and sched is not PipelineSchedule.ONE_F_ONE_B:
                continue  # one stage: every schedule is the same
            if sched is PipelineSchedule.INTERLEAVED:
                for vpp in vpps:
                    yield tp, cp, pp, vpp, sched, ep
            else:
                yield tp, cp, pp, 1, sched, ep


def pipeline_splits(num_layers: int, pp: int, vpp: int, policy: UnevenPolicy
                    ) -> list[dict[str, tuple[int, ...]]]:
    """The layer splits searched for one (pp, vpp): ParallelConfig keyword sets ({} = the
    seam's default split: even, or balanced when pp*vpp does not divide the layers)."""
    slots = pp * vpp
    if slots > num_layers:
        return [{}]  # check_plan rejects it (counted as divisibility)
    if num_layers % slots:
        allowed = policy is UnevenPolicy.ANY or (policy is UnevenPolicy.MEGATRON and vpp == 1)
        return [{}] if allowed else []
    out: list[dict[str, tuple[int, ...]]] = [{}]
    per = num_layers // pp
    if policy is not UnevenPolicy.NONE and vpp == 1 and pp >= 3 and per >= 2:
        out.append({"stage_layers": ends_minus_one(num_layers, pp)})
    return out


def ends_minus_one(num_layers: int, pp: int) -> tuple[int, ...]:
    """First and last stages one layer lighter than the even split; the two spare layers go to
    the latest middle stages (they hold the fewest in-flight microbatches under 1F1B)."""
    per = num_layers // pp
    counts = [per] * pp
    counts[0] -= 1
    counts[-1] -= 1
    middle = list(range(pp - 2, 0, -1))  # pp-2, pp-3, ... 1
    for k in range(2):
        counts[middle[k % len(middle)]] += 1
    return tuple(counts)


def _stages_to_check(num_layers: int, parallel: ParallelConfig) -> set[int]:
    """First, last and (uneven split) the first stage with the most layers."""
    p = parallel
    stages = {0, p.pp - 1}
    if p.pp > 2 and (p.stage_layers or num_layers % (p.pp * p.vpp)):
        counts = stage_layer_counts(num_layers, p)
        per_stage = [sum(counts[c * p.pp + s] for c in range(p.vpp)) for s in range(p.pp)]
        stages.add(per_stage.index(max(per_stage)))
    return stages


def peak_memory_bytes(model: ModelSpec, training: TrainingConfig, parallel: ParallelConfig, *,
                      flash_attention: bool = True) -> float:
    """Peak per-device training memory over the stages that can hold the most (see module)."""
    return max(training_memory(model, training, parallel, stage=s,
                               flash_attention=flash_attention).total_bytes
               for s in _stages_to_check(model.num_layers, parallel))


def _tp_overlap(c: TrainConstraints, tp: int, v: dict[str, object]) -> TPOverlapImpl | None:
    """The space's TP-overlap implementation for one variant (None where it needs sequence
    parallelism the variant does not use: ParallelConfig would refuse it)."""
    impl = c.tp_comm_overlap_impl
    if impl is None or tp == 1 or v["sequence_parallel"]:
        return impl
    needs_sp = (TPOverlapImpl.TE_USERBUFFERS, TPOverlapImpl.MINDSPEED_MC2)
    return None if TPOverlapImpl(str(impl)) in needs_sp else impl


def _variants(c: TrainConstraints, tp: int) -> list[dict[str, object]]:
    """The (ZeRO, FSDP stack, offload, recompute, SP) settings tried on one structure."""
    sps = [sp for sp in c.sequence_parallel if tp > 1 or not sp]
    out: list[dict[str, object]] = []
    for zero, rc, sp in itertools.product(c.zero, c.recompute, sps):
        impls = c.fsdp_impl if zero == 3 and c.fsdp_impl is not None else (None,)
        offloads = c.offload_optimizer if zero >= 1 else (OffloadTarget.NONE,)
        params = c.offload_params if zero == 3 else (OffloadTarget.NONE,)
        for impl, off, par in itertools.product(impls, offloads, params):  # type: ignore[arg-type]
            if par is not OffloadTarget.NONE and off is OffloadTarget.NONE:
                continue  # ZeRO-Infinity weights need the optimizer on the host too
            v: dict[str, object] = {"zero": zero, "recompute": rc, "sequence_parallel": sp,
                                    "offload_optimizer": off, "offload_params": par}
            if impl is not None:
                v["fsdp_impl"] = impl
            out.append(v)
    return out


def enumerate_candidates(model: ModelSpec, cluster: ClusterSpec, *, seq_len: int,
                         global_batch: int, constraints: TrainConstraints,
                         dtype: DType = DType.BF16) -> tuple[list[Candidate], SpaceCounts]:
    """Every valid plan of the space that fits memory, plus the counts of what was dropped."""
    c = constraints
    counts = SpaceCounts()
    n = cluster.num_devices
    capacity = cluster.device.memory_bytes * (1.0 - c.memory_headroom)
    kept: list[Candidate] = []
    for tp, cp, pp, vpp, sched, ep in _structural(model, cluster, c):
        variants = _variants(c, tp)
        for split, mb in itertools.product(
                pipeline_splits(model.num_layers, pp, vpp, c.uneven),  # type: ignore[arg-type]
                c.micro_batches):
            counts.considered += len(variants)
            if n % (tp * cp * pp) or global_batch % mb:
                counts.pruned_divisibility += len(variants)
                continue
            training = c.training(seq_len=seq_len, global_batch=global_batch,
                                  micro_batch=mb, dtype=dtype)
            try:
                base = ParallelConfig(tp=tp, pp=pp, dp=n // (tp * cp * pp), cp=cp, ep=ep,
                                      vpp=vpp, schedule=sched, cp_mode=c.cp_mode,
                                      rank_order=c.rank_order, **split)  # type: ignore[arg-type]
                check_plan(model, cluster, training, base)
            except ConfigError:
                counts.pruned_divisibility += len(variants)
                continue
            shards = shard_sizes(c, cluster, base)
            counts.considered += (len(shards) - 1) * sum(x["zero"] == 3 for x in variants)
            for v, shard in ((x, k) for x in variants
                             for k in (shards if x["zero"] == 3 else (None,))):
                plan = replace(base, overlap_grad_reduce=c.overlap_grad_reduce,
                               overlap_param_gather=c.overlap_param_gather,
                               overlap_tp_comm=c.overlap_tp_comm, fsdp_shard_size=shard,
                               grad_reduce_dtype=c.grad_reduce_dtype,
                               tp_comm_overlap_impl=_tp_overlap(c, base.tp, v),
                               **v)  # type: ignore[arg-type]
                if launchable(plan):
                    counts.pruned_unlaunchable += 1
                    continue
                if peak_memory_bytes(model, training, plan,
                                     flash_attention=c.memory_flash_attention) > capacity:
                    counts.pruned_memory += 1
                    continue
                kept.append(Candidate(parallel=plan, micro_batch=mb))
    return kept, counts
