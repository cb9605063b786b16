"""The training-plan search space: enumerate (tp, pp, vpp, cp, ep, dp, micro-batch, ZeRO,
recompute, schedule, SP) candidates and prune what is impossible, redundant or out of memory.

Divisibility is judged by hwmodels.parallel.check_plan (the rules the simulator enforces);
memory by hwmodels.memory.training_memory on the first and last pipeline stages (the first
holds the most in-flight microbatches under 1F1B/interleaved/ZB-H1 and the input embedding,
the last holds the output layer; middle stages hold no more than the larger of the two).
Redundant plans are never generated: SP without TP, any schedule but 1F1B with pp = 1, vpp > 1
without the interleaved schedule, the interleaved schedule with one virtual stage (= 1F1B).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.memory import DEFAULT_HEADROOM, training_memory
from hwmodels.parallel import (
    CPMode,
    ParallelConfig,
    PipelineSchedule,
    Recompute,
    TrainingConfig,
    check_plan,
)
from hwmodels.specs import ClusterSpec, ModelSpec

DEFAULT_MICRO_BATCHES = (1, 2, 4, 8)
# Interleaving beyond ~8 chunks per stage buys little bubble and costs p2p (Narayanan et al.
# SC'21 Fig. 14 stops at 4-8); keeps the space small.
DEFAULT_MAX_VPP = 8


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
    recompute: Sequence[Recompute | str] = tuple(Recompute)
    sequence_parallel: Sequence[bool] = (False, True)
    schedules: Sequence[PipelineSchedule | str] = (
        PipelineSchedule.ONE_F_ONE_B, PipelineSchedule.INTERLEAVED, PipelineSchedule.ZB_H1)
    cp_mode: CPMode = CPMode.RING
    memory_headroom: float = DEFAULT_HEADROOM  # fraction of device memory kept free
    overlap_grad_reduce: bool = True
    overlap_param_gather: bool = True
    overlap_tp_comm: bool = False
    flash_attention: bool = True
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
        if not self.sequence_parallel:
            raise ConfigError("must allow at least one value", key="constraints.sequence_parallel",
                              allowed=[False, True])
        # normalized to enum tuples (frozen dataclass: set once, here)
        object.__setattr__(self, "recompute",
                           _enums(self.recompute, Recompute, "constraints.recompute"))
        object.__setattr__(self, "schedules",
                           _enums(self.schedules, PipelineSchedule, "constraints.schedules"))


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

    @property
    def kept(self) -> int:
        return self.considered - self.pruned_divisibility - self.pruned_memory


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


def peak_memory_bytes(model: ModelSpec, training: TrainingConfig, parallel: ParallelConfig, *,
                      flash_attention: bool = True) -> float:
    """Peak per-device training memory over the first and last pipeline stages."""
    stages = {0, parallel.pp - 1}
    return max(training_memory(model, training, parallel, stage=s,
                               flash_attention=flash_attention).total_bytes for s in stages)


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
        sps = [sp for sp in c.sequence_parallel if tp > 1 or not sp]
        variants = list(itertools.product(c.zero, c.recompute, sps))
        for mb in c.micro_batches:
            counts.considered += len(variants)
            if n % (tp * cp * pp) or global_batch % mb:
                counts.pruned_divisibility += len(variants)
                continue
            training = TrainingConfig(seq_len=seq_len, global_batch=global_batch,
                                      micro_batch=mb, dtype=dtype)
            base = ParallelConfig(tp=tp, pp=pp, dp=n // (tp * cp * pp), cp=cp, ep=ep, vpp=vpp,
                                  schedule=sched, cp_mode=c.cp_mode, rank_order=c.rank_order)
            try:
                check_plan(model, cluster, training, base)
            except ConfigError:
                counts.pruned_divisibility += len(variants)
                continue
            for zero, rc, sp in variants:
                plan = replace(base, zero=zero, sequence_parallel=sp, recompute=rc,
                               overlap_grad_reduce=c.overlap_grad_reduce,
                               overlap_param_gather=c.overlap_param_gather,
                               overlap_tp_comm=c.overlap_tp_comm)
                if peak_memory_bytes(model, training, plan,
                                     flash_attention=c.flash_attention) > capacity:
                    counts.pruned_memory += 1
                    continue
                kept.append(Candidate(parallel=plan, micro_batch=mb))
    return kept, counts
