"""`plan_hetero`: one training job over unlike device pools, beside the homogeneous baselines.

Searches tp, dp (pp follows: each pool holds N_k / (tp*dp) stages), the pool order along the
pipeline and recompute, with layers split by simulator.training.hetero (per-layer time within
memory), every candidate simulated. Always reports, on the same search space and the same
machines: each pool alone, the naive mixed job (even split, paced by the slowest pool) and the
two pools as separate jobs (their summed throughput: not one job, a ceiling for comparison).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError, FleetsimError, InfeasibleError
from hwmodels.parallel import ParallelConfig, PoolSplit, Recompute, TrainingConfig
from hwmodels.specs import ModelSpec
from hwmodels.training.hetero import PoolSpec
from simulator.training.hetero import simulate_hetero
from simulator.training.simulate import simulate_iteration

TP_CHOICES = (2, 4, 8)
RECOMPUTE_CHOICES = (Recompute.SELECTIVE, Recompute.FULL)


@dataclass(frozen=True, slots=True, kw_only=True)
class HeteroRow:
    """One reported plan: which machines, its shape, and its simulated figures."""

    kind: str  # hetero | naive-even | alone:<device> | separate-jobs
    devices: str
    tp: int
    pp: int
    dp: int
    recompute: str
    pipeline_split: str
    tokens_per_s: float
    mfu: float
    usd_per_mtoken: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True, kw_only=True)
class HeteroPlan:
    """The best heterogeneous plan and its baselines; speedup over the best single-job
    homogeneous use of the same machines (the faster pool alone, or the naive mixed job)."""

    hetero: HeteroRow | None
    naive: HeteroRow | None
    alone: tuple[HeteroRow, ...]
    separate: HeteroRow | None
    simulated: int

    @property
    def best_baseline(self) -> HeteroRow | None:
        rows = [r for r in (*self.alone, self.naive) if r is not None]
        return max(rows, key=lambda r: r.tokens_per_s) if rows else None

    @property
    def speedup(self) -> float:
        base = self.best_baseline
        if self.hetero is None or base is None:
            return 0.0
        return self.hetero.tokens_per_s / base.tokens_per_s

    def to_dict(self) -> dict[str, Any]:
        base = self.best_baseline
        return {"hetero": self.hetero and self.hetero.to_dict(),
                "naive_even": self.naive and self.naive.to_dict(),
                "alone": [r.to_dict() for r in self.alone],
                "separate_jobs": self.separate and self.separate.to_dict(),
                "best_baseline": base and base.kind, "speedup": self.speedup,
                "hetero_wins": self.speedup > 1.0, "simulated": self.simulated}


def parse_pools(text: str, **links: str | None) -> tuple[PoolSpec, ...]:
    """'a100-80gb:64,h100-sxm:64' -> pools on each device's default nodes and fabric."""
    pools = []
    for part in text.split(","):
        name, sep, count = part.strip().partition(":")
        if not sep or not count.strip().isdigit() or int(count) < 1:
            raise ConfigError(f"expected DEVICE:COUNT with COUNT >= 1, got {part.strip()!r}",
                              key="--pools", allowed="e.g. a100-80gb:64,h100-sxm:64")
        kwargs = {k: v for k, v in links.items() if v is not None}
        pools.append(PoolSpec(cluster=build_cluster(name.strip(), int(count), **kwargs)))
    if len(pools) < 2:
        raise ConfigError("needs at least two pools", key="--pools")
    return tuple(pools)


def _price_per_s(pools: Sequence[PoolSpec], prices: Mapping[str, float]) -> float:
    total = 0.0
    for p in pools:
        dev = p.cluster.device
        total += p.num_devices * prices.get(dev.name, dev.price_usd_per_hour) / 3600.0
    return total


def _row(kind: str, pools: Sequence[PoolSpec], par: ParallelConfig, result: Any,
         prices: Mapping[str, float]) -> HeteroRow:
    devices = " + ".join(f"{p.num_devices}x{p.cluster.device.name}" for p in pools)
    return HeteroRow(kind=kind, devices=devices, tp=par.tp, pp=par.pp, dp=par.dp,
                     recompute=str(par.recompute), pipeline_split=result.pipeline_split,
                     tokens_per_s=result.tokens_per_s, mfu=result.mfu,
                     usd_per_mtoken=_price_per_s(pools, prices) / result.tokens_per_s * 1e6)


def _shapes(model: ModelSpec, counts: Sequence[int], global_batch: int, micro_batch: int,
            dpn: int) -> list[tuple[int, int]]:
    """(tp, dp) with every pool a whole number of tp*dp stages and pp <= layers."""
    out = []
    for tp in TP_CHOICES:
        if tp > dpn or model.num_heads % tp or (model.num_kv_heads % tp and tp % model.num_kv_heads):
            continue
        for dp in range(1, min(counts) // tp + 1):
            stage = tp * dp
            if any(n % stage for n in counts) or global_batch % (micro_batch * dp):
                continue
            if sum(n // stage for n in counts) <= model.num_layers:
                out.append((tp, dp))
    return out


def _base(tp: int, pp: int, dp: int, recompute: Recompute) -> ParallelConfig:
    return ParallelConfig(tp=tp, pp=pp, dp=dp, zero=1, sequence_parallel=True,
                          recompute=recompute)


def plan_hetero(model: ModelSpec | str, pools: Sequence[PoolSpec], *, seq_len: int,
                global_batch: int, micro_batch: int = 1,
                prices: Mapping[str, float] | None = None) -> HeteroPlan:
    """Best simulated plan over `pools` in one job, and the baselines (module docstring)."""
    spec = model if isinstance(model, ModelSpec) else load_model(model)
    training = TrainingConfig(seq_len=seq_len, global_batch=global_batch, micro_batch=micro_batch)
    prices = dict(prices or {})
    for name, usd in prices.items():
        if isinstance(usd, bool) or not isinstance(usd, (int, float)) or not usd >= 0:
            raise ConfigError(f"price must be >= 0 USD per device-hour, got {usd!r}",
                              key=f"prices.{name}")
    pools = tuple(pools)
    dpn = min(p.cluster.devices_per_node for p in pools)
    simulated = 0
    best: dict[str, HeteroRow] = {}

    def keep(kind: str, row: HeteroRow) -> None:
        if kind not in best or row.tokens_per_s > best[kind].tokens_per_s:
            best[kind] = row

    counts = [p.num_devices for p in pools]
    for tp, dp in _shapes(spec, counts, global_batch, micro_batch, dpn):
        for order in itertools.permutations(range(len(pools))):
            stage_pools = tuple(k for k in order for _ in range(counts[k] // (tp * dp)))
            for rc, split in itertools.product(RECOMPUTE_CHOICES, PoolSplit):
                par = replace(_base(tp, len(stage_pools), dp, rc), stage_pools=stage_pools,
                              pool_split=split)
                try:
                    res = simulate_hetero(spec, training, par, pools)
                except FleetsimError:
                    continue
                simulated += 1
                if res.fits_memory:
                    kind = "hetero" if split is PoolSplit.PROPORTIONAL else "naive-even"
                    keep(kind, _row(kind, pools, par, res, prices))
    alone = []
    for pool in pools:
        kind = f"alone:{pool.cluster.device.name}"
        for tp, dp in _shapes(spec, [pool.num_devices], global_batch, micro_batch,
                              pool.cluster.devices_per_node):
            for rc in RECOMPUTE_CHOICES:
                par = _base(tp, pool.num_devices // (tp * dp), dp, rc)
                try:
                    res = simulate_iteration(spec, pool.cluster, training, par,
                                             profile=pool.profile)
                except FleetsimError:
                    continue
                simulated += 1
                if res.fits_memory:
                    keep(kind, _row(kind, [pool], par, res, prices))
        if kind in best:
            alone.append(best[kind])
    separate = None
    if len(alone) == len(pools):
        tps = sum(r.tokens_per_s for r in alone)
        peaks = [p.num_devices * p.cluster.device.peak(training.dtype) for p in pools]
        separate = HeteroRow(kind="separate-jobs", devices=" + ".join(r.devices for r in alone),
                             tp=0, pp=0, dp=0, recompute="-", pipeline_split="two jobs",
                             tokens_per_s=tps,
                             mfu=sum(r.mfu * x for r, x in zip(alone, peaks, strict=True))
                             / sum(peaks),
                             usd_per_mtoken=_price_per_s(pools, prices) / tps * 1e6)
    if "hetero" not in best and not alone:
        raise InfeasibleError("no plan fits memory on these pools",
                              hint="more devices, a larger --global-batch divisor, recompute")
    return HeteroPlan(hetero=best.get("hetero"), naive=best.get("naive-even"),
                      alone=tuple(alone), separate=separate, simulated=simulated)


__all__ = ["HeteroPlan", "HeteroRow", "parse_pools", "plan_hetero"]
