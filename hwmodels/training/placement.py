"""Rank placement: which global ranks form each TP/CP/DP/EP group and pipeline link.

Megatron-LM orders ranks with TP innermost (inside a node), then CP, EP, DP and PP outermost
(megatron/core/parallel_state.py, RankGenerator order "tp-cp-ep-dp-pp"). ParallelConfig's
rank_order lists the dimensions innermost first and can move them. The mesh is built over the
four dense dimensions (tp, cp, dp, pp; world = tp*cp*dp*pp). Expert parallelism splits the
cp*dp "data" ranks of one (tp rank, pp stage) into groups of `ep`: consecutive ones when ep comes
before dp in rank_order (Megatron's default), strided ones otherwise. With an expert tensor-parallel
degree expert_tp != tp the experts have their own grid over the stage's tp*cp*dp ranks, expert-TP
innermost, then EP, then expert-DP (Megatron-core parallel_state: the expert RankGenerator with
tp=expert_tensor_parallel_size, order "tp-ep-dp-pp", expert_data_parallel_size = world_size //
(etp * ep * pp)).

Hybrid sharding (ParallelConfig.fsdp_shard_size = S, zero 3): the data ranks split into dp / S
shard groups of S consecutive DP coordinates (x all of CP), as torchtitan's mesh puts
dp_shard inside dp_replicate and PyTorch's HSDP device mesh (replicate, shard) does; the
ZeRO-3 gathers and reduce-scatters run inside the shard group (dp_cp_group then names it) and
the replica group (same shard position in every shard group, strided) all-reduces the grads.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hwmodels.parallel import ParallelConfig

_DENSE_DIMS = ("tp", "cp", "dp", "pp")


@dataclass(frozen=True, slots=True, kw_only=True)
class StageGroups:
    """The concrete rank groups seen by the representative rank of one pipeline stage."""

    stage: int
    rank: int  # the representative rank (tp=cp=dp=0 coordinates) of this stage
    tp_group: tuple[int, ...]
    cp_group: tuple[int, ...]
    dp_group: tuple[int, ...]  # data-parallel replicas of this rank (same tp/cp/pp coords)
    # gradient-reduction / ZeRO sharding group of dense params (dp x cp; with hybrid
    # sharding the shard group: fsdp_shard_size consecutive DP ranks x cp)
    dp_cp_group: tuple[int, ...]
    ep_group: tuple[int, ...]
    expert_dp_group: tuple[int, ...]  # gradient-reduction group of expert params
    expert_tp_group: tuple[int, ...] = ()  # ranks splitting one expert's GEMMs (() = tp_group)
    # hybrid sharding: the ranks holding the same shard in the other shard groups, whose
    # grads are all-reduced once per step (() without hybrid sharding)
    replica_group: tuple[int, ...] = ()
    next_rank: int | None  # same coordinates on stage + 1 (None on the last stage)
    prev_rank: int | None


@dataclass(frozen=True, slots=True)
class Mesh:
    """Strides of the dense dimensions for a rank order (innermost first)."""

    sizes: dict[str, int]
    strides: dict[str, int]

    def rank(self, **coords: int) -> int:
        return sum(self.strides[d] * coords.get(d, 0) for d in _DENSE_DIMS)

    def group(self, vary: tuple[str, ...], limit: dict[str, range] | None = None,
              **fixed: int) -> tuple[int, ...]:
        """Ranks obtained by varying `vary` dimensions with the others fixed, sorted; `limit`
        narrows a varied dimension to a range of its coordinates."""
        limit = limit or {}
        ranges = [limit.get(d, range(self.sizes[d])) for d in vary]
        out = []
        for combo in itertools.product(*ranges):
            coords = dict(fixed)
            coords.update(zip(vary, combo, strict=True))
            out.append(self.rank(**coords))
        return tuple(sorted(out))


def build_mesh(parallel: ParallelConfig) -> Mesh:
    """Strides of tp/cp/dp/pp following parallel.rank_order (ep is folded into cp*dp)."""
    sizes = {"tp": parallel.tp, "cp": parallel.cp, "dp": parallel.dp, "pp": parallel.pp}
    strides: dict[str, int] = {}
    stride = 1
    for dim in parallel.rank_order:
        if dim == "ep":
            continue
        strides[dim] = stride
        stride *= sizes[dim]
    return Mesh(sizes=sizes, strides=strides)


def _ep_groups(data_ranks: tuple[int, ...], ep: int, contiguous: bool) -> tuple[
        tuple[int, ...], tuple[int, ...]]:
    """(EP group, expert-DP group) containing data_ranks[0]."""
    n = len(data_ranks)
    if ep <= 1:
        return (data_ranks[0],), data_ranks
    if contiguous:
        ep_group = data_ranks[:ep]
        edp_group = data_ranks[::ep]
    else:
        step = n // ep
        ep_group = data_ranks[::step]
        edp_group = data_ranks[:step]
    return tuple(sorted(ep_group)), tuple(sorted(edp_group))


def _expert_grid(stage_ranks: tuple[int, ...], etp: int, ep: int) -> tuple[
        tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(EP group, expert-DP group, expert-TP group) of stage_ranks[0] in the expert grid laid
    over the stage's ranks in rank order: expert-TP innermost, then EP, then expert-DP."""
    return (stage_ranks[0:etp * ep:etp], stage_ranks[0::etp * ep], stage_ranks[0:etp])


def pipeline_groups(parallel: ParallelConfig) -> tuple[StageGroups, ...]:
    """Rank groups of every stage of the pipeline that holds rank 0 (one stands for all)."""
    return tuple(stage_groups(parallel, s) for s in range(parallel.pp))


def stage_groups(parallel: ParallelConfig, stage: int) -> StageGroups:
    """Rank groups of one stage of the pipeline that holds rank 0 (the planner asks for one)."""
    mesh = build_mesh(parallel)
    order = list(parallel.rank_order)
    ep_contiguous = order.index("ep") < order.index("dp")
    s = stage
    data = mesh.group(("cp", "dp"), pp=s)
    tp_group = mesh.group(("tp",), pp=s)
    ep_group, edp_group = _ep_groups(data, parallel.ep, ep_contiguous)
    etp_group = tp_group
    if parallel.expert_tp is not None and parallel.expert_tp != parallel.tp:
        ep_group, edp_group, etp_group = _expert_grid(
            mesh.group(("tp", "cp", "dp"), pp=s), parallel.expert_tp, parallel.ep)
    replicas: tuple[int, ...] = ()
    if parallel.fsdp_shard_size is not None:
        # ep 1 and expert_tp = tp (ParallelConfig checks): experts shard like dense params
        shard = parallel.fsdp_shard_size
        data = edp_group = mesh.group(("cp", "dp"), {"dp": range(shard)}, pp=s)
        replicas = mesh.group(("dp",), {"dp": range(0, parallel.dp, shard)}, pp=s)
    return StageGroups(
        stage=s,
        rank=mesh.rank(pp=s),
        tp_group=tp_group,
        cp_group=mesh.group(("cp",), pp=s),
        dp_group=mesh.group(("dp",), pp=s),
        dp_cp_group=data,
        ep_group=ep_group,
        expert_dp_group=edp_group,
        expert_tp_group=etp_group,
        replica_group=replicas,
        next_rank=mesh.rank(pp=s + 1) if s + 1 < parallel.pp else None,
        prev_rank=mesh.rank(pp=s - 1) if s > 0 else None,
    )


def node_shard_size(parallel: ParallelConfig, devices_per_node: int) -> int:
    """The largest shard size (a divisor of dp) whose every shard group, with its TP/CP
    siblings, stays inside one node (a TPU slice): `fsdp_shard_size: node`. 1 when one DP
    rank's model-parallel group already fills the node."""
    mesh = build_mesh(parallel)
    best = 1
    for k in range(2, parallel.dp + 1):
        if parallel.dp % k == 0 and all(
                len({r // devices_per_node for r in mesh.group(
                    ("tp", "cp", "dp"), {"dp": range(j, j + k)}, pp=s)}) == 1
                for j in range(0, parallel.dp, k) for s in range(parallel.pp)):
            best = k
    return best
