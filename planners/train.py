"""`plan_train`: the fastest training plans for a model on a cluster, searched then simulated.

Three steps. (1) train_space enumerates every (tp, pp, vpp, pipeline split, cp, ep, dp,
micro-batch, ZeRO, FSDP stack, offload, recompute, schedule, SP) plan allowed by the
constraints (uneven splits by train_space.UnevenPolicy) and prunes what breaks divisibility
(hwmodels.parallel.check_plan) or memory (hwmodels.memory). (2) A closed-form estimate ranks the
rest: hwmodels.training.estimate_iteration, built from the simulator's own costs (chunk costs
with FSDP traits, p2p bytes, the bucketed gradient sync and Adam step of finish_stage) on the
critical stage's real rank groups, with a per-schedule closed-form bubble; layer costs are
cached across plans. (3) The best `simulate_top` plans by estimate go through
simulate_training (typed TrainingPlans, via the executor); the returned table ranks them by
simulated tokens/s and keeps only plans whose every stage fits memory with the requested
head-room. The result names each plan's pipeline split and the cluster's fabric, and flags a
best plan whose MFU exceeds the best published MFU of its device class (planners.credibility).

Heterogeneous pools (A100 + H100 stages in one pipeline) are planned by planners.hetero
(`fleetsim plan train-hetero`), not here: this search has one device type per cluster. Not searched: rank orders other than the given one, CP modes other than the given
one, and tensor parallelism across nodes (TP is limited to divisors of devices_per_node).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwmodels import sac
from hwmodels.attention_impl import resolve as resolve_attention
from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.dtypes import DType, parse_dtype
from hwmodels.errors import ConfigError, InfeasibleError
from hwmodels.memory import training_memory
from hwmodels.ops import resolve_profile
from hwmodels.parallel import (
    OffloadTarget,
    ParallelConfig,
    Recompute,
    TrainingConfig,
    describe_split,
    shard_group_size,
    stage_layer_counts,
)
from hwmodels.profile import DeviceProfile
from hwmodels.specs import ClusterSpec, DeviceSpec, ModelSpec
from hwmodels.training.comm import CommModel
from hwmodels.training.costs import CostCache
from hwmodels.training.estimate import estimate_iteration
from hwmodels.units import GiB
from planners.credibility import Credibility, assess_mfu
from planners.executors import Executor, LocalExecutor, TaskResult
from planners.train_space import Candidate, TrainConstraints, enumerate_candidates
from simulator.training.plan import TrainingPlan
from simulator.training.simulate import simulate_training

PLAN_COLUMNS = ("tp", "pp", "vpp", "dp", "cp", "ep", "micro_batch", "zero", "recompute",
                "schedule", "sequence_parallel", "pipeline_split", "fsdp_impl",
                "offload_optimizer")
BREAKDOWN_COLUMNS = ("compute_s", "exposed_comm_s", "bubble_s", "optimizer_s")
# A plan's parallel shape: how the devices are cut into TP x PP x CP x EP groups (DP follows).
# The ranked table lists the best plans, which are often one shape with different vpp,
# recompute or micro-batch; PlanResult.shapes is the best plan of each shape instead.
SHAPE_COLUMNS = ("num_devices", "tp", "pp", "cp", "ep")
ESTIMATE_COLUMNS = ("est_iteration_time_s", "est_tokens_per_s", "est_compute_s",
                    "est_exposed_comm_s", "est_bubble_s", "est_optimizer_s")


# ---------------------------------------------------------------------------------------------
# Closed-form estimate
# ---------------------------------------------------------------------------------------------


class TrainEstimator:
    """Closed-form iteration time of many plans of one (model, cluster, profile).

    Each plan goes through hwmodels.training.estimate_iteration, the simulator's own costs;
    layer costs and collective times are memoized across plans, so estimating thousands of
    plans costs a few dozen hwmodels.layers calls.
    """

    def __init__(self, model: ModelSpec, cluster: ClusterSpec, *, flash_attention: bool = True,
                 profile: DeviceProfile | str | Path | None = None) -> None:
        self.model, self.cluster = model, cluster
        self.flash_attention = flash_attention
        self.profile = resolve_profile(cluster.device, profile)
        self.comm = CommModel(cluster, self.profile)
        self.cache = CostCache()

    def estimate(self, candidates: Sequence[Candidate], *, seq_len: int, global_batch: int,
                 dtype: DType, space: TrainConstraints | None = None) -> pd.DataFrame:
        """One row per candidate: est_iteration_time_s and its breakdown, with the kernels,
        attention and loss of `space` (default: TrainConstraints(), Megatron's fused stack)."""
        space = space or TrainConstraints()
        rows = []
        for c in candidates:
            t = space.training(seq_len=seq_len, global_batch=global_batch,
                               micro_batch=c.micro_batch, dtype=dtype)
            e = estimate_iteration(self.model, t, c.parallel, self.comm,
                                   flash_attention=self.flash_attention, cache=self.cache)
            rows.append((e.iteration_time_s, global_batch * seq_len / e.iteration_time_s,
                         e.compute_s, e.exposed_comm_s, e.bubble_s, e.optimizer_s))
        return pd.DataFrame(rows, columns=list(ESTIMATE_COLUMNS))


# ---------------------------------------------------------------------------------------------
# Simulation tasks (module level: they go through process pools and Ray)
# ---------------------------------------------------------------------------------------------


def simulate_task(plan: TrainingPlan) -> dict[str, float | bool]:
    """Simulate one plan through the typed seam; a small summary (no timeline) comes back."""
    r = simulate_training(plan)
    out: dict[str, float | bool] = {
        "iteration_time_s": r.iteration_time_s, "tokens_per_s": r.tokens_per_s,
        "mfu": r.mfu, "hfu": r.hfu, "tflops_per_gpu": r.tflops_per_gpu,
        "peak_memory_gib": r.peak_memory_gib, "fits_memory": r.fits_memory}
    out.update(r.breakdown.to_dict())
    if r.host_memory is not None:  # offloaded: the host must hold it too
        out["host_fits"] = bool(r.host_memory["fits"])
    if r.breakdown.offload is not None:
        out["offload"] = r.breakdown.offload.to_dict()
    return out


# ---------------------------------------------------------------------------------------------
# The planner
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanResult:
    """Ranked plans (best first) and how the search got there."""

    plans: pd.DataFrame  # top_k simulated plans that fit, best tokens/s first
    configs: tuple[tuple[ParallelConfig, TrainingConfig], ...]  # aligned with plans rows
    estimates: pd.DataFrame  # every candidate that survived pruning, by estimate
    considered: int
    pruned_divisibility: int
    pruned_memory: int
    estimated: int
    simulated: int
    failed: int  # simulations that raised (their errors are in `failures`)
    rejected_memory: int  # simulated plans over memory on some middle stage (not returned)
    elapsed_s: float
    failures: tuple[str, ...] = field(default=())
    not_simulated: int = 0  # estimated candidates left out by simulate_top / top_k
    fabric: str = ""  # the cluster's fabric in words (hwmodels.cluster.describe_fabric)
    credibility: Credibility | None = None  # best plan's MFU vs the best published one
    pruned_unlaunchable: int = 0  # plans no training stack runs (train_space.launchable)
    # the best simulated plan of each parallel shape (SHAPE_COLUMNS), best first, top_k rows;
    # shapes with no plan among the simulated top get their best-estimated plan simulated
    shapes: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def best(self) -> pd.Series:
        if self.plans.empty:
            raise self.infeasible_error()
        return self.plans.iloc[0]

    @property
    def feasible(self) -> bool:
        return not self.plans.empty

    def rejections(self) -> dict[str, int]:
        """Candidates rejected, per reason (what an empty table is made of)."""
        return {"divisibility": self.pruned_divisibility,
                "memory": self.pruned_memory + self.rejected_memory,
                "unlaunchable": self.pruned_unlaunchable,
                "simulation_failed": self.failed, "not_simulated": self.not_simulated}

    def describe_rejections(self) -> str:
        parts = [f"{n} by {reason}" for reason, n in self.rejections().items() if n]
        return (f"{self.considered} candidates considered, rejected "
                + (", ".join(parts) if parts else "none"))

    def infeasible_error(self) -> InfeasibleError:
        """The error for a search where no plan fits (exit 3 in the CLI)."""
        first = f"; first failure: {self.failures[0]}" if self.failures else ""
        return InfeasibleError(f"no plan fits: {self.describe_rejections()}{first}",
                               hint="more devices, a smaller micro-batch, recompute or ZeRO")

    def counts(self) -> dict[str, int | float]:
        return {"considered": self.considered, "pruned_divisibility": self.pruned_divisibility,
                "pruned_memory": self.pruned_memory,
                "pruned_unlaunchable": self.pruned_unlaunchable, "estimated": self.estimated,
                "simulated": self.simulated, "failed": self.failed,
                "rejected_memory": self.rejected_memory, "not_simulated": self.not_simulated,
                "elapsed_s": self.elapsed_s}

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `fleetsim plan train --json` prints."""
        plans = self.plans.drop(columns=[c for c in BREAKDOWN_COLUMNS if c in self.plans])
        out_rows = []
        for (_, row), (_, full) in zip(plans.iterrows(), self.plans.iterrows(), strict=True):
            d = {k: _jsonable(v) for k, v in row.items()}
            d["breakdown"] = {c: float(full[c]) for c in BREAKDOWN_COLUMNS}
            if "offload" in full and isinstance(full["offload"], dict):
                d["breakdown"]["offload"] = dict(full["offload"])
            out_rows.append(d)
        shapes = [{k: _jsonable(v) for k, v in row.items() if k not in BREAKDOWN_COLUMNS
                   and k != "offload"} for _, row in self.shapes.iterrows()]
        return {"plans": out_rows, **self.counts(), "rejections": self.rejections(),
                "fabric": self.fabric,
                "credibility": None if self.credibility is None else self.credibility.to_dict(),
                "shapes": shapes}


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _row(c: Candidate, num_layers: int) -> dict[str, Any]:
    p = c.parallel
    return {"tp": p.tp, "pp": p.pp, "vpp": p.vpp, "dp": p.dp, "cp": p.cp, "ep": p.ep,
            "micro_batch": c.micro_batch, "zero": p.zero, "recompute": str(p.recompute),
            "schedule": str(p.schedule), "sequence_parallel": p.sequence_parallel,
            "pipeline_split": describe_split(stage_layer_counts(num_layers, p), p),
            "fsdp_impl": str(p.fsdp_impl) if p.zero == 3 else "",
            "offload_optimizer": _offload_label(p)}


def _offload_label(p: ParallelConfig) -> bool | str:
    """False without offload (the column's old value), else 'optimizer=cpu params=nvme'."""
    if p.offload_optimizer is OffloadTarget.NONE and p.offload_params is OffloadTarget.NONE:
        return False
    return f"optimizer={p.offload_optimizer} params={p.offload_params}"


def plan_train(model: ModelSpec | str | Mapping[str, Any], device: DeviceSpec | str,
               num_devices: int | Sequence[int], *, seq_len: int, global_batch: int | None = None,
               global_batch_tokens: int | None = None, dtype: DType | str = DType.BF16,
               constraints: TrainConstraints | None = None, top_k: int = 10,
               simulate_top: int | None = None, executor: Executor | None = None,
               devices_per_node: int | None = None, intra_node: str | None = None,
               inter_node: str | None = None, nics_per_node: int = 0,
               power_cap_w: float | None = None,
               profile: DeviceProfile | str | Path | None = None,
               shape_probes: int | None = None) -> PlanResult:
    """Plan training of `model` on `num_devices` (or each of a list of counts) x `device`.

    global_batch is in sequences (or give global_batch_tokens). Builds the cluster with
    hwmodels.cluster.build_cluster and calls plan_train_on; with a list of counts the tables
    are concatenated (column num_devices) and ranked together. inter_node None: the device
    generation's default fabric (build_cluster's default); nics_per_node 0: the device's own
    NIC count (one per device unless the catalog says otherwise); power_cap_w: a static board
    power limit per device (None: TDP); shape_probes: see plan_train_on.
    """
    counts = [num_devices] if isinstance(num_devices, int) else list(num_devices)
    if not counts:
        raise ConfigError("needs at least one device count", key="num_devices")
    fabric = {} if inter_node is None else {"inter_node": inter_node}
    results = [plan_train_on(model, build_cluster(device, n, devices_per_node=devices_per_node,
                                                  intra_node=intra_node,
                                                  nics_per_node=nics_per_node,
                                                  power_cap_w=power_cap_w, **fabric),
                             seq_len=seq_len, global_batch=global_batch,
                             global_batch_tokens=global_batch_tokens, dtype=dtype,
                             constraints=constraints, top_k=top_k, simulate_top=simulate_top,
                             executor=executor, profile=profile, shape_probes=shape_probes)
               for n in counts]
    if len(results) == 1:
        return results[0]
    return _merge(results, top_k)


def _merge(results: list[PlanResult], top_k: int) -> PlanResult:
    plans = pd.concat([r.plans for r in results], ignore_index=True)
    configs = [c for r in results for c in r.configs]
    order = plans.sort_values("tokens_per_s", ascending=False, kind="stable").index[:top_k]
    ranked = plans.loc[order].reset_index(drop=True)
    best = [r.credibility for r in results if r.credibility is not None]
    cred = (None if ranked.empty or not best else
            assess_mfu(float(ranked.mfu.iloc[0]), best[0].device_class, best[0].ceiling,
                       num_devices=int(ranked.num_devices.iloc[0])))
    return PlanResult(
        plans=ranked,
        configs=tuple(configs[i] for i in order),
        estimates=pd.concat([r.estimates for r in results], ignore_index=True),
        considered=sum(r.considered for r in results),
        pruned_divisibility=sum(r.pruned_divisibility for r in results),
        pruned_memory=sum(r.pruned_memory for r in results),
        pruned_unlaunchable=sum(r.pruned_unlaunchable for r in results),
        estimated=sum(r.estimated for r in results),
        simulated=sum(r.simulated for r in results), failed=sum(r.failed for r in results),
        rejected_memory=sum(r.rejected_memory for r in results),
        elapsed_s=sum(r.elapsed_s for r in results),
        failures=tuple(f for r in results for f in r.failures),
        not_simulated=sum(r.not_simulated for r in results),
        fabric="; ".join(dict.fromkeys(r.fabric for r in results)), credibility=cred,
        shapes=best_per_shape(pd.concat([r.shapes for r in results], ignore_index=True), top_k))


def _batch(seq_len: int, global_batch: int | None, global_batch_tokens: int | None) -> int:
    if (global_batch is None) == (global_batch_tokens is None):
        raise ConfigError("give exactly one of global_batch (sequences) or global_batch_tokens",
                          key="training.global_batch")
    if global_batch is not None:
        return global_batch
    if global_batch_tokens % seq_len:  # type: ignore[operator]
        raise ConfigError(f"global_batch_tokens {global_batch_tokens} is not a multiple of "
                          f"seq_len {seq_len}", key="training.global_batch_tokens")
    return global_batch_tokens // seq_len  # type: ignore[operator]


def plan_train_on(model: ModelSpec | str | Mapping[str, Any], cluster: ClusterSpec, *,
                  seq_len: int, global_batch: int | None = None,
                  global_batch_tokens: int | None = None, dtype: DType | str = DType.BF16,
                  constraints: TrainConstraints | None = None, top_k: int = 10,
                  simulate_top: int | None = None, executor: Executor | None = None,
                  profile: DeviceProfile | str | Path | None = None,
                  shape_probes: int | None = None) -> PlanResult:
    """Enumerate, prune, estimate, simulate the best `simulate_top` (default top_k) and
    return the top_k plans that fit, ranked by simulated tokens/s. `shape_probes` (default:
    as many as simulate_top, 0: none) caps the extra simulations of PlanResult.shapes."""
    start = time.perf_counter()
    spec = model if isinstance(model, ModelSpec) else load_model(model)
    batch = _batch(seq_len, global_batch, global_batch_tokens)
    dt = parse_dtype(dtype, key="training.dtype")
    c = constraints or TrainConstraints()
    for key, value in (("top_k", top_k), ("simulate_top", simulate_top),
                       ("shape_probes", shape_probes)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise ConfigError(f"must be an integer >= 0, got {value!r}", key=key)
    n_sim = top_k if simulate_top is None else simulate_top
    if Recompute.SELECTIVE_OP in c.recompute:
        sac.block_matmuls(spec, 1)  # the per-op policy is modelled on dense GQA/MHA blocks
    # validates seq_len/global_batch once, with the user's key names, and the attention kernel
    # on this device (FlashAttention-3 is Hopper-only)
    TrainingConfig(seq_len=seq_len, global_batch=batch, dtype=dt)
    resolve_attention(c.attention_impl, cluster.device.name, c.kernels, c.flash_attention)
    candidates, counts = enumerate_candidates(spec, cluster, seq_len=seq_len,
                                              global_batch=batch, constraints=c, dtype=dt)
    estimator = TrainEstimator(spec, cluster, flash_attention=c.flash_attention, profile=profile)
    est = estimator.estimate(candidates, seq_len=seq_len, global_batch=batch, dtype=dt, space=c)
    table = pd.concat([pd.DataFrame([_row(x, spec.num_layers) for x in candidates],
                                    columns=list(PLAN_COLUMNS)), est], axis=1)
    table.insert(0, "num_devices", cluster.num_devices)
    order = np.argsort(table["est_iteration_time_s"].to_numpy(), kind="stable")
    table = table.iloc[order].reset_index(drop=True)
    table.insert(len(PLAN_COLUMNS) + 1, "est_rank", np.arange(1, len(table) + 1))
    ranked = [candidates[i] for i in order]
    if tuple(c.fsdp_shard) != ("all",):
        # hybrid-sharding searches: DP ranks per ZeRO-3 shard group (dp = all of DP, 0 = not
        # ZeRO-3); other searches keep their columns
        table.insert(int(table.columns.get_loc("fsdp_impl")) + 1, "fsdp_shard_size",
                     [shard_group_size(x.parallel) if x.parallel.zero == 3 else 0
                      for x in ranked])
    plans, configs, failures, rejected = _simulate(spec, cluster, ranked[:n_sim],
                                                   table.iloc[:n_sim], seq_len, batch, dt, c,
                                                   executor, estimator.profile)
    probe = _shape_probes(table, n_sim, top_k)[:n_sim if shape_probes is None else shape_probes]
    probed, _, _, _ = _simulate(spec, cluster, [ranked[i] for i in probe], table.iloc[probe],
                                seq_len, batch, dt, c, executor, estimator.profile)
    shapes = best_per_shape(pd.concat([plans, probed], ignore_index=True), top_k)
    plans = plans.iloc[:top_k].reset_index(drop=True)
    simulated = min(n_sim, len(candidates))
    # top_k = 0 (or simulate_top = 0) leaves every estimated plan unreported: an empty table
    # must say so rather than look like a search that found nothing
    not_simulated = len(candidates) - simulated if plans.empty else 0
    cred = None if plans.empty else assess_mfu(float(plans.mfu.iloc[0]), cluster.device,
                                               num_devices=cluster.num_devices)
    return PlanResult(plans=plans, configs=tuple(configs[:top_k]), estimates=table,
                      considered=counts.considered,
                      pruned_divisibility=counts.pruned_divisibility,
                      pruned_memory=counts.pruned_memory,
                      pruned_unlaunchable=counts.pruned_unlaunchable, estimated=len(candidates),
                      simulated=simulated, failed=len(failures),
                      rejected_memory=rejected, elapsed_s=time.perf_counter() - start,
                      failures=tuple(failures), not_simulated=not_simulated,
                      fabric=fabric_of(cluster), credibility=cred, shapes=shapes)


def _shape_probes(table: pd.DataFrame, n_sim: int, top_k: int) -> list[int]:
    """Rows of the estimate-ranked `table` to simulate besides its first n_sim: the
    best-estimated plan of each of the first top_k shapes that has none among them."""
    if table.empty or top_k == 0:
        return []
    key = table.loc[:, list(SHAPE_COLUMNS)].apply(tuple, axis=1)
    first = key.drop_duplicates()  # index = the best-estimated row of each shape, in rank order
    covered = set(key.iloc[:n_sim])
    return [int(i) for i, k in first.iloc[:top_k].items() if k not in covered]


def best_per_shape(plans: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """The best plan (tokens/s) of each parallel shape in `plans`, best first, top_k rows."""
    if plans.empty:
        return plans.iloc[:0]
    ranked = plans.sort_values("tokens_per_s", ascending=False, kind="stable")
    return ranked.drop_duplicates(list(SHAPE_COLUMNS)).iloc[:top_k].reset_index(drop=True)


def _simulate(model: ModelSpec, cluster: ClusterSpec, ranked: list[Candidate],
              est_rows: pd.DataFrame, seq_len: int, batch: int, dtype: DType,
              c: TrainConstraints, executor: Executor | None, profile: DeviceProfile
              ) -> tuple[pd.DataFrame, list[tuple[ParallelConfig, TrainingConfig]], list[str],
                         int]:
    """Simulate the ranked candidates; keep those whose every stage fits, best first."""
    trainings = [c.training(seq_len=seq_len, global_batch=batch, micro_batch=x.micro_batch,
                            dtype=dtype) for x in ranked]
    tasks = [TrainingPlan(model=model, cluster=cluster, training=t, parallel=x.parallel,
                          profile=profile, flash_attention=c.flash_attention)
             for x, t in zip(ranked, trainings, strict=True)]
    own = executor is None
    ex = LocalExecutor(max_workers=1) if own else executor
    try:
        results: list[TaskResult] = ex.map(simulate_task, tasks)  # type: ignore[union-attr]
    finally:
        if own:
            ex.close()  # type: ignore[union-attr]
    capacity_gib = cluster.device.memory_bytes * (1.0 - c.memory_headroom) / GiB
    rows, configs, failures = [], [], []
    rejected = 0
    for res, (_, est), x, t in zip(results, est_rows.iterrows(), ranked, trainings, strict=True):
        if not res.ok:
            failures.append(f"{_describe(x)}: {res.error.splitlines()[0]}")
            continue
        sim = res.value
        if sim["peak_memory_gib"] > capacity_gib or not sim.get("host_fits", True):
            rejected += 1  # all stages, with the requested head-room; offload: host DRAM/NVMe
            continue
        rows.append({**est.to_dict(), **sim})
        configs.append((x.parallel, t))
    columns = list(est_rows.columns) + ["iteration_time_s", "tokens_per_s", "mfu", "hfu",
                                        "tflops_per_gpu", "peak_memory_gib", "fits_memory",
                                        *BREAKDOWN_COLUMNS]
    if any("offload" in r for r in rows):  # only offloaded searches carry the column
        columns.append("offload")
    df = pd.DataFrame(rows, columns=columns)
    order = np.argsort(-df["tokens_per_s"].to_numpy(dtype=float), kind="stable")
    return (df.iloc[order].reset_index(drop=True), [configs[i] for i in order], failures,
            rejected)


def _describe(c: Candidate) -> str:
    p = c.parallel
    return (f"tp{p.tp} pp{p.pp} vpp{p.vpp} dp{p.dp} cp{p.cp} ep{p.ep} mb{c.micro_batch} "
            f"zero{p.zero} {p.recompute} {p.schedule} sp={p.sequence_parallel}"
            + (f" shard{p.fsdp_shard_size}" if p.fsdp_shard_size else ""))


def fabric_of(cluster: ClusterSpec) -> str:
    """The cluster's fabric in words: hwmodels.cluster.describe_fabric where it exists (helper
    net's), else the scale-up and scale-out links with their per-device bandwidth."""
    try:
        from hwmodels.cluster import describe_fabric  # type: ignore[attr-defined]
    except ImportError:
        describe_fabric = None
    if describe_fabric is not None:
        return str(describe_fabric(cluster))
    intra, inter = cluster.intra_node, cluster.inter_node
    return (f"{cluster.devices_per_node}/node over {intra.name} "
            f"({intra.bandwidth_Bps / 1e9:.0f} GB/s), {cluster.nics} x {inter.name} per node "
            f"({inter.bandwidth_Bps / 1e9:.0f} GB/s each)")


def plan_memory_gib(model: ModelSpec, training: TrainingConfig, parallel: ParallelConfig, *,
                    flash_attention: bool = True) -> float:
    """Peak memory over every pipeline stage, GiB (what the returned plans are checked with)."""
    return max(training_memory(model, training, parallel, stage=s,
                               flash_attention=flash_attention).total_bytes
               for s in range(parallel.pp)) / GiB

