"""`plan_train`: the fastest training plans for a model on a cluster, searched then simulated.

Three steps. (1) train_space enumerates every (tp, pp, vpp, cp, ep, dp, micro-batch, ZeRO,
recompute, schedule, SP) plan allowed by the constraints and prunes what breaks divisibility
(hwmodels.parallel.check_plan) or memory (hwmodels.memory). (2) A closed-form estimate ranks the
rest: per-layer forward/backward costs are the simulator's own (hwmodels.training.costs, built
from hwmodels.layers and hwmodels.collectives on the plan's real rank groups, cached across
plans); the schedule is closed form: m microbatches of the critical stage plus a pipeline
bubble of (p-1) stage-microbatches (1F1B/GPipe), (p-1)/v (interleaved, v chunks per stage) or
(p-1)(1 - 2W/T) (ZB-H1, W = weight-gradient share), plus p2p latency on the fill/drain path,
the exposed data-parallel reduction (bucketed as Megatron does; overlapped with the last
backward when enabled) and the Adam step; vectorized with numpy over plans. (3) The best
`simulate_top` plans by estimate go through simulate_training (typed TrainingPlans, via the
executor); the
returned table ranks them by simulated tokens/s and keeps only plans whose every stage fits
memory with the requested head-room.

Not supported (stated, not approximated): heterogeneous pools. A cluster has one device type
(ClusterSpec.device), so a 256 H100 + 512 A100 pool cannot be planned as one job: plan each
homogeneous pool separately (or plan on the slower device type, a safe lower bound for a job
that spans both with synchronous data parallelism). Per-stage device assignment for pipelines
spanning device types needs a per-stage device in ClusterSpec and in the simulator; neither has
it yet. Also not searched: rank orders other than the given one, CP modes other than the given
one, and tensor parallelism across nodes (TP is limited to divisors of devices_per_node).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwmodels import flops
from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.dtypes import DType, parse_dtype
from hwmodels.errors import ConfigError
from hwmodels.memory import training_memory
from hwmodels.ops import memory_time, resolve_profile
from hwmodels.parallel import (
    ParallelConfig,
    PipelineSchedule,
    TrainingConfig,
    num_microbatches,
)
from hwmodels.profile import DeviceProfile
from hwmodels.specs import ClusterSpec, DeviceSpec, ModelSpec
from hwmodels.training.comm import CommModel
from hwmodels.training.costs import ZERO3_GRAD_BYTES, ZERO3_PARAM_BYTES, ChunkCostModel
from hwmodels.training.costs import activation_bytes as wire_bytes
from hwmodels.training.gradsync import (
    ADAM_BYTES_PER_PARAM,
    BUCKET_MIN_PARAMS,
    BUCKET_PARAMS_PER_DP_RANK,
    PARAM_GATHER_BYTES,
    grad_reduce_bytes,
    stage_params,
)
from hwmodels.training.placement import StageGroups, build_mesh, pipeline_groups
from hwmodels.units import GiB
from planners.executors import Executor, LocalExecutor, TaskResult
from planners.train_space import Candidate, TrainConstraints, enumerate_candidates
from simulator.training.plan import TrainingPlan
from simulator.training.simulate import simulate_training

PLAN_COLUMNS = ("tp", "pp", "vpp", "dp", "cp", "ep", "micro_batch", "zero", "recompute",
                "schedule", "sequence_parallel")
BREAKDOWN_COLUMNS = ("compute_s", "exposed_comm_s", "bubble_s", "optimizer_s")


# ---------------------------------------------------------------------------------------------
# Closed-form estimate
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Parts:
    """Per-microbatch costs of the critical stage of one plan (seconds)."""

    fwd_compute: float
    fwd_exposed: float
    bwd_compute: float
    bwd_exposed: float
    wgrad: float
    p2p: float
    tail_exposed: float  # DP reduction, embedding sync, param gather left exposed
    optimizer: float


@dataclass(frozen=True, slots=True)
class _Ends:
    """Embedding / logits seconds of one microbatch and the TP collectives around them."""

    emb_f: float
    emb_b: float
    log_f: float
    log_b: float
    log_w: float
    coll: float  # embedding-output all-reduce (RS with SP) = logits-backward collective
    gather: float  # SP: logits-input all-gather


class TrainEstimator:
    """Closed-form iteration time of many plans of one (model, cluster, seq_len, dtype).

    Layer costs and collective times are memoized across plans, so estimating thousands of
    plans costs a few dozen hwmodels.layers calls.
    """

    def __init__(self, model: ModelSpec, cluster: ClusterSpec, *, flash_attention: bool = True,
                 profile: DeviceProfile | str | Path | None = None) -> None:
        self.model, self.cluster = model, cluster
        self.flash_attention = flash_attention
        self.profile = resolve_profile(cluster.device, profile)
        self.comm = CommModel(cluster, self.profile)
        self._layer_cache: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        self._ends_cache: dict[tuple[Any, ...], _Ends] = {}

    def _groups(self, p: ParallelConfig) -> tuple[StageGroups, int]:
        """Stage-0 rank groups and the stride between consecutive pipeline stages."""
        if p.rank_order[-1] == "pp":  # pp outermost: stage 0 groups do not depend on pp
            g0 = pipeline_groups(replace(p, pp=1, vpp=1, schedule=PipelineSchedule.ONE_F_ONE_B))[0]
        else:
            g0 = pipeline_groups(p)[0]
        return g0, build_mesh(p).strides["pp"]

    def _layer(self, p: ParallelConfig, t: TrainingConfig, g: StageGroups, moe: bool
               ) -> tuple[Any, Any]:
        key = (g.tp_group, g.cp_group, g.ep_group if moe else (), t.micro_batch, t.seq_len,
               t.dtype, p.tp, p.cp, p.ep if moe else 1, p.sequence_parallel, p.recompute,
               p.overlap_tp_comm, p.cp_mode, moe)
        hit = self._layer_cache.get(key)
        if hit is None:
            costs = ChunkCostModel(self.model, t, p, self.comm, (g,), profile=self.profile,
                                   flash_attention=self.flash_attention)
            hit = self._layer_cache[key] = costs.layer(0, moe)
        return hit

    def _ends(self, p: ParallelConfig, t: TrainingConfig, g: StageGroups) -> _Ends:
        """Embedding and logits work of one microbatch with their TP collectives."""
        from hwmodels import layers

        key = (g.tp_group, t.micro_batch, t.seq_len, t.dtype, p.tp, p.cp,
               p.sequence_parallel)
        hit = self._ends_cache.get(key)
        if hit is not None:
            return hit
        common = dict(micro_batch=t.micro_batch, seq_len=t.seq_len, tp=p.tp, cp=p.cp,
                      sequence_parallel=p.sequence_parallel and p.tp > 1, dtype=t.dtype,
                      profile=self.profile)
        dev = self.cluster.device
        l_b = layers.logits_backward_time(self.model, dev, **common)
        nbytes = (t.micro_batch * t.seq_len / p.cp * self.model.hidden_size
                  * wire_bytes(t.dtype))
        hit = self._ends_cache[key] = _Ends(
            emb_f=layers.embedding_forward_time(self.model, dev, **common).total_s,
            emb_b=layers.embedding_backward_time(self.model, dev, **common).total_s,
            log_f=layers.logits_forward_time(self.model, dev, **common).total_s,
            log_b=l_b.total_s, log_w=l_b.weight_grad_s,
            coll=(self.comm.reduce_scatter(g.tp_group, nbytes) if p.sequence_parallel
                  else self.comm.all_reduce(g.tp_group, nbytes)),
            gather=self.comm.all_gather(g.tp_group, nbytes) if p.sequence_parallel else 0.0)
        return hit

    def _zero3(self, p: ParallelConfig, g: StageGroups, moe: bool) -> tuple[float, float]:
        if p.zero < 3 or len(g.dp_cp_group) == 1:
            return 0.0, 0.0
        params = flops.layer_param_count(self.model, moe=moe) / p.tp
        return (self.comm.all_gather(g.dp_cp_group, params * ZERO3_PARAM_BYTES),
                self.comm.reduce_scatter(g.dp_cp_group, params * ZERO3_GRAD_BYTES))

    def parts(self, p: ParallelConfig, t: TrainingConfig) -> _Parts:
        """Per-microbatch costs of the busiest stage, and the iteration's tail."""
        m = self.model
        g, pp_stride = self._groups(p)
        per_stage = m.num_layers / p.pp
        n_moe = m.num_moe_layers / p.pp if m.is_moe else 0.0
        counts = ((per_stage - n_moe, False), (n_moe, True))
        f_c = f_e = b_c = b_e = w = 0.0
        first_gather = (0.0, 0.0)
        for n, moe in counts:
            if n <= 0:
                continue
            fwd, bwd = self._layer(p, t, g, moe)
            ag, rs = self._zero3(p, g, moe)
            f_c += n * fwd.compute_s
            b_c += n * bwd.compute_s
            w += n * bwd.wgrad_s
            f_e += n * (fwd.exposed_s + max(0.0, ag - fwd.compute_s))
            b_e += n * (bwd.exposed_s + max(0.0, ag + rs - bwd.compute_s))
            first_gather = max(first_gather, (ag, rs))
        # ZeRO-3: the first layer of each chunk waits for its gather (nothing to prefetch behind)
        f_e += p.vpp * first_gather[0]
        b_e += p.vpp * sum(first_gather)
        e = self._ends(p, t, g)
        # the last stage carries the logits (they outweigh the first stage's embedding)
        f_c += e.log_f
        b_c += e.log_b
        w += e.log_w
        f_e += e.gather
        b_e += e.coll
        if p.pp == 1:
            f_c += e.emb_f
            b_c += e.emb_b
            f_e += e.coll
        p2p_bytes = (t.micro_batch * t.seq_len / p.cp * m.hidden_size * wire_bytes(t.dtype)
                     / p.tp)
        p2p = self.comm.send_recv(g.rank, g.rank + pp_stride, p2p_bytes) if p.pp > 1 else 0.0
        tail, optimizer = self._tail(p, t, g, pp_stride, b_c + b_e)
        return _Parts(fwd_compute=f_c, fwd_exposed=f_e, bwd_compute=b_c, bwd_exposed=b_e,
                      wgrad=w, p2p=p2p, tail_exposed=tail, optimizer=optimizer)

    def _tail(self, p: ParallelConfig, t: TrainingConfig, g: StageGroups, pp_stride: int,
              backward_s: float) -> tuple[float, float]:
        """(exposed DP reduction + embedding sync + param gather, optimizer step) seconds."""
        m = self.model
        stages = [stage_params(m, p, s) for s in sorted({0, p.pp - 1})]
        params = max(stages, key=lambda sp: sp.dense + sp.expert)
        gbytes = grad_reduce_bytes(t.dtype)
        exposed = 0.0
        if p.zero < 3:
            sync = last = 0.0
            for ranks, nparams in ((g.dp_cp_group, params.dense),
                                   (g.expert_dp_group, params.expert)):
                if len(ranks) <= 1 or nparams <= 0:
                    continue
                bucket = max(BUCKET_MIN_PARAMS, BUCKET_PARAMS_PER_DP_RANK * len(g.dp_cp_group))
                n_buckets = max(1, math.ceil(nparams / bucket))
                size = nparams / n_buckets * gbytes
                t_bucket = (self.comm.reduce_scatter(ranks, size) if p.zero >= 1
                            else self.comm.all_reduce(ranks, size))
                sync += n_buckets * t_bucket
                last = t_bucket
            # overlapped: buckets go out while the last microbatch's backward runs
            exposed = max(last, sync - backward_s) if p.overlap_grad_reduce else sync
        tied = max(sp.tied_embedding for sp in stages)
        if tied:
            peers = (g.rank, g.rank + (p.pp - 1) * pp_stride)
            exposed += self.comm.all_reduce(peers, tied * gbytes)
        if p.zero in (1, 2) and not p.overlap_param_gather:
            exposed += self.comm.all_gather(g.dp_cp_group, params.dense * PARAM_GATHER_BYTES)
            exposed += self.comm.all_gather(g.expert_dp_group, params.expert * PARAM_GATHER_BYTES)
        dp_shard = len(g.dp_cp_group) if p.zero >= 1 else 1
        edp_shard = len(g.expert_dp_group) if p.zero >= 1 else 1
        shard = params.dense / dp_shard + params.expert / edp_shard
        optimizer = (memory_time(self.cluster.device, shard * ADAM_BYTES_PER_PARAM, self.profile)
                     if shard else 0.0)
        return exposed, optimizer

    def estimate(self, candidates: Sequence[Candidate], *, seq_len: int, global_batch: int,
                 dtype: DType) -> pd.DataFrame:
        """One row per candidate: est_iteration_time_s and its breakdown (vectorized)."""
        rows = []
        for c in candidates:
            t = TrainingConfig(seq_len=seq_len, global_batch=global_batch,
                               micro_batch=c.micro_batch, dtype=dtype)
            parts = self.parts(c.parallel, t)
            p = c.parallel
            rows.append((p.pp, p.vpp, _SCHED_CODE[p.schedule], num_microbatches(t, p),
                         parts.fwd_compute, parts.fwd_exposed, parts.bwd_compute,
                         parts.bwd_exposed, parts.wgrad, parts.p2p, parts.tail_exposed,
                         parts.optimizer))
        a = np.asarray(rows, dtype=float).reshape(-1, 12)
        pp, vpp, sched, mb, f_c, f_e, b_c, b_e, w, p2p, tail, opt = a.T
        per_mb = f_c + f_e + b_c + b_e
        zb = sched == _SCHED_CODE[PipelineSchedule.ZB_H1]
        # bubble in microbatch-stage units: (p-1) (1F1B, GPipe), (p-1)/v (interleaved),
        # (p-1)(T - 2W)/T (ZB-H1: Qi et al. ICLR'24, bubble (p-1)(F + B - W))
        bubble_units = np.where(zb, (pp - 1) * np.clip(1 - 2 * w / per_mb, 0.0, 1.0),
                                (pp - 1) / vpp)
        bubble = bubble_units * per_mb + 2 * (pp * vpp - 1) * p2p * (pp > 1)
        compute = mb * (f_c + b_c)
        exposed = mb * (f_e + b_e) + tail
        iteration = compute + exposed + bubble + opt
        tokens = global_batch * seq_len
        return pd.DataFrame({"est_iteration_time_s": iteration,
                             "est_tokens_per_s": tokens / iteration,
                             "est_compute_s": compute, "est_exposed_comm_s": exposed,
                             "est_bubble_s": bubble, "est_optimizer_s": opt})


_SCHED_CODE = {s: i for i, s in enumerate(PipelineSchedule)}


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

    @property
    def best(self) -> pd.Series:
        if self.plans.empty:
            raise ConfigError("no plan fits: every candidate was pruned or failed",
                              key="plan", allowed="more devices, a smaller micro-batch, "
                              "recompute or ZeRO")
        return self.plans.iloc[0]

    def counts(self) -> dict[str, int | float]:
        return {"considered": self.considered, "pruned_divisibility": self.pruned_divisibility,
                "pruned_memory": self.pruned_memory, "estimated": self.estimated,
                "simulated": self.simulated, "failed": self.failed,
                "rejected_memory": self.rejected_memory, "elapsed_s": self.elapsed_s}

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `fleetsim plan train --json` prints."""
        plans = self.plans.drop(columns=[c for c in BREAKDOWN_COLUMNS if c in self.plans])
        out_rows = []
        for (_, row), (_, full) in zip(plans.iterrows(), self.plans.iterrows(), strict=True):
            d = {k: _jsonable(v) for k, v in row.items()}
            d["breakdown"] = {c: float(full[c]) for c in BREAKDOWN_COLUMNS}
            out_rows.append(d)
        return {"plans": out_rows, **self.counts()}


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _row(c: Candidate) -> dict[str, Any]:
    p = c.parallel
    return {"tp": p.tp, "pp": p.pp, "vpp": p.vpp, "dp": p.dp, "cp": p.cp, "ep": p.ep,
            "micro_batch": c.micro_batch, "zero": p.zero, "recompute": str(p.recompute),
            "schedule": str(p.schedule), "sequence_parallel": p.sequence_parallel}


def plan_train(model: ModelSpec | str | Mapping[str, Any], device: DeviceSpec | str,
               num_devices: int | Sequence[int], *, seq_len: int, global_batch: int | None = None,
               global_batch_tokens: int | None = None, dtype: DType | str = DType.BF16,
               constraints: TrainConstraints | None = None, top_k: int = 10,
               simulate_top: int | None = None, executor: Executor | None = None,
               devices_per_node: int | None = None, intra_node: str | None = None,
               inter_node: str = "ib-ndr", profile: DeviceProfile | str | Path | None = None
               ) -> PlanResult:
    """Plan training of `model` on `num_devices` (or each of a list of counts) x `device`.

    global_batch is in sequences (or give global_batch_tokens). Builds the cluster with
    hwmodels.cluster.build_cluster and calls plan_train_on; with a list of counts the tables
    are concatenated (column num_devices) and ranked together.
    """
    counts = [num_devices] if isinstance(num_devices, int) else list(num_devices)
    if not counts:
        raise ConfigError("needs at least one device count", key="num_devices")
    results = [plan_train_on(model, build_cluster(device, n, devices_per_node=devices_per_node,
                                                  intra_node=intra_node, inter_node=inter_node),
                             seq_len=seq_len, global_batch=global_batch,
                             global_batch_tokens=global_batch_tokens, dtype=dtype,
                             constraints=constraints, top_k=top_k, simulate_top=simulate_top,
                             executor=executor, profile=profile)
               for n in counts]
    if len(results) == 1:
        return results[0]
    return _merge(results, top_k)


def _merge(results: list[PlanResult], top_k: int) -> PlanResult:
    plans = pd.concat([r.plans for r in results], ignore_index=True)
    configs = [c for r in results for c in r.configs]
    order = plans.sort_values("tokens_per_s", ascending=False, kind="stable").index[:top_k]
    return PlanResult(
        plans=plans.loc[order].reset_index(drop=True),
        configs=tuple(configs[i] for i in order),
        estimates=pd.concat([r.estimates for r in results], ignore_index=True),
        considered=sum(r.considered for r in results),
        pruned_divisibility=sum(r.pruned_divisibility for r in results),
        pruned_memory=sum(r.pruned_memory for r in results),
        estimated=sum(r.estimated for r in results),
        simulated=sum(r.simulated for r in results), failed=sum(r.failed for r in results),
        rejected_memory=sum(r.rejected_memory for r in results),
        elapsed_s=sum(r.elapsed_s for r in results),
        failures=tuple(f for r in results for f in r.failures))


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
                  profile: DeviceProfile | str | Path | None = None) -> PlanResult:
    """Enumerate, prune, estimate, simulate the best `simulate_top` (default top_k) and
    return the top_k plans that fit, ranked by simulated tokens/s."""
    start = time.perf_counter()
    spec = model if isinstance(model, ModelSpec) else load_model(model)
    batch = _batch(seq_len, global_batch, global_batch_tokens)
    dt = parse_dtype(dtype, key="training.dtype")
    c = constraints or TrainConstraints()
    for key, value in (("top_k", top_k), ("simulate_top", simulate_top)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise ConfigError(f"must be an integer >= 0, got {value!r}", key=key)
    n_sim = top_k if simulate_top is None else simulate_top
    # validates seq_len/global_batch once, with the user's key names
    TrainingConfig(seq_len=seq_len, global_batch=batch, dtype=dt)
    candidates, counts = enumerate_candidates(spec, cluster, seq_len=seq_len,
                                              global_batch=batch, constraints=c, dtype=dt)
    estimator = TrainEstimator(spec, cluster, flash_attention=c.flash_attention, profile=profile)
    est = estimator.estimate(candidates, seq_len=seq_len, global_batch=batch, dtype=dt)
    table = pd.concat([pd.DataFrame([_row(x) for x in candidates],
                                    columns=list(PLAN_COLUMNS)), est], axis=1)
    table.insert(0, "num_devices", cluster.num_devices)
    order = np.argsort(table["est_iteration_time_s"].to_numpy(), kind="stable")
    table = table.iloc[order].reset_index(drop=True)
    table.insert(len(PLAN_COLUMNS) + 1, "est_rank", np.arange(1, len(table) + 1))
    ranked = [candidates[i] for i in order]
    plans, configs, failures, rejected = _simulate(spec, cluster, ranked[:n_sim],
                                                   table.iloc[:n_sim], seq_len, batch, dt, c,
                                                   executor, estimator.profile)
    plans = plans.iloc[:top_k].reset_index(drop=True)
    return PlanResult(plans=plans, configs=tuple(configs[:top_k]), estimates=table,
                      considered=counts.considered,
                      pruned_divisibility=counts.pruned_divisibility,
                      pruned_memory=counts.pruned_memory, estimated=len(candidates),
                      simulated=min(n_sim, len(candidates)), failed=len(failures),
                      rejected_memory=rejected, elapsed_s=time.perf_counter() - start,
                      failures=tuple(failures))


def _simulate(model: ModelSpec, cluster: ClusterSpec, ranked: list[Candidate],
              est_rows: pd.DataFrame, seq_len: int, batch: int, dtype: DType,
              c: TrainConstraints, executor: Executor | None, profile: DeviceProfile
              ) -> tuple[pd.DataFrame, list[tuple[ParallelConfig, TrainingConfig]], list[str],
                         int]:
    """Simulate the ranked candidates; keep those whose every stage fits, best first."""
    trainings = [TrainingConfig(seq_len=seq_len, global_batch=batch, micro_batch=x.micro_batch,
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
        if sim["peak_memory_gib"] > capacity_gib:  # all stages, with the requested head-room
            rejected += 1
            continue
        rows.append({**est.to_dict(), **sim})
        configs.append((x.parallel, t))
    columns = list(est_rows.columns) + ["iteration_time_s", "tokens_per_s", "mfu", "hfu",
                                        "tflops_per_gpu", "peak_memory_gib", "fits_memory",
                                        *BREAKDOWN_COLUMNS]
    df = pd.DataFrame(rows, columns=columns)
    order = np.argsort(-df["tokens_per_s"].to_numpy(dtype=float), kind="stable")
    return (df.iloc[order].reset_index(drop=True), [configs[i] for i in order], failures,
            rejected)


def _describe(c: Candidate) -> str:
    p = c.parallel
    return (f"tp{p.tp} pp{p.pp} vpp{p.vpp} dp{p.dp} cp{p.cp} ep{p.ep} mb{c.micro_batch} "
            f"zero{p.zero} {p.recompute} {p.schedule} sp={p.sequence_parallel}")


def plan_memory_gib(model: ModelSpec, training: TrainingConfig, parallel: ParallelConfig, *,
                    flash_attention: bool = True) -> float:
    """Peak memory over every pipeline stage, GiB (what the returned plans are checked with)."""
    return max(training_memory(model, training, parallel, stage=s,
                               flash_attention=flash_attention).total_bytes
               for s in range(parallel.pp)) / GiB

