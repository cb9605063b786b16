"""Collective communication times: NCCL-style alpha-beta models over a group's GroupInfo.

time = alpha + data_factor(op, n) * nbytes / bus_bw, where nbytes follows nccl-tests' "size"
(all_gather: gathered output; reduce_scatter: full input; all_to_all: one rank's whole send
buffer) and bus bandwidth is nccl-tests' normalisation (PERFORMANCE.md in NVIDIA/nccl-tests):
busbw = algbw * 2(n-1)/n for all_reduce, (n-1)/n for all_gather/reduce_scatter/all_to_all,
1 for broadcast/send_recv. Achievable bus bandwidth is link bandwidth times LinkSpec.efficiency.

`channels` (optional) caps how many parallel rings/trees (NCCL channels) carry a collective
across nodes: each channel leaves a node through one NIC, so a multi-node ring, tree or
hierarchical inter-node phase gets at most channels x one rank's NIC share instead of all the
node's NICs. None (default) is NCCL's multi-channel ideal; intra-node groups and the direct
all_to_all/send_recv model are not affected.

A device profile (hwmodels.ops.resolve_profile: a DeviceProfile, a path, CATALOG_DEFAULTS, or
None for the bundled one) may carry measured bus-bandwidth curves per op and group size. They
replace the model for a group on one node whose scale-up link is the one they were measured on
(profile.collectives_link; None: any), when the op has a curve and no algorithm is forced. A
group size not measured uses the nearest measured size at or above it (else below): bus
bandwidth is what carries over between group sizes (nccl-tests' normalisation), so the time is
size x bus_factor(op, n) / busbw. Below the smallest measured message the time is that
message's time (the measured latency floor); above the largest, the measured time at the largest
plus what the analytic model charges for the extra bytes (the measurement does not reach the
asymptote: Vidur's tables stop at 64 MB).
send_recv (pipeline p2p, KV transfers) is one pair exchanging: it uses the world-2 curve.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hwmodels._compat import StrEnum
from hwmodels.cluster import GroupInfo, Ranks, group_info
from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap
from hwmodels.ops import resolve_profile
from hwmodels.profile import Curve, DeviceProfile
from hwmodels.specs import ClusterSpec

ProfileArg = DeviceProfile | str | Path | None
# A measured op's bus-bandwidth curves by group size.
WorldCurves = FrozenMap[int, Curve]

# NCCL's fixed per-collective latency (kernel launch + setup) for ring/LL, 6.6 us
# (NVIDIA/nccl src/graph/tuning.cc, baseLat table, NCCL 2.1x).
BASE_LATENCY_S = 6.6e-6
# NCCL scales the tree's bus bandwidth by 0.9 relative to the ring's
# (NVIDIA/nccl src/graph/tuning.cc: `if (a == NCCL_ALGO_TREE) busBw = min(busBw*.9, ...)`).
TREE_BW_FACTOR = 0.9


class CollectiveOp(StrEnum):
    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_TO_ALL = "all_to_all"
    SEND_RECV = "send_recv"
    BROADCAST = "broadcast"


class Algorithm(StrEnum):
    RING = "ring"
    TREE = "tree"
    HIERARCHICAL = "hierarchical"
    DIRECT = "direct"


SUPPORTED: dict[CollectiveOp, tuple[Algorithm, ...]] = {
    CollectiveOp.ALL_REDUCE: (Algorithm.RING, Algorithm.TREE, Algorithm.HIERARCHICAL),
    CollectiveOp.ALL_GATHER: (Algorithm.RING, Algorithm.HIERARCHICAL),
    CollectiveOp.REDUCE_SCATTER: (Algorithm.RING, Algorithm.HIERARCHICAL),
    CollectiveOp.ALL_TO_ALL: (Algorithm.DIRECT,),
    CollectiveOp.SEND_RECV: (Algorithm.DIRECT,),
    CollectiveOp.BROADCAST: (Algorithm.RING, Algorithm.TREE),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectiveCost:
    """Time of one collective; bus/alg bandwidths as nccl-tests would report them (0 if free)."""

    time_s: float
    algorithm: Algorithm
    bus_bw_Bps: float
    alg_bw_Bps: float
    latency_s: float = 0.0  # the alpha (size-independent) part of time_s


def supported_algorithms(op: CollectiveOp | str) -> tuple[Algorithm, ...]:
    """The algorithms `op` can run with (the auto choice picks the fastest of these)."""
    return SUPPORTED[_op(op)]


def bus_factor(op: CollectiveOp, n: int) -> float:
    """nccl-tests' busbw/algbw ratio for `op` on n ranks."""
    if n <= 1:
        return 1.0
    if op is CollectiveOp.ALL_REDUCE:
        return 2.0 * (n - 1) / n
    if op in (CollectiveOp.ALL_GATHER, CollectiveOp.REDUCE_SCATTER, CollectiveOp.ALL_TO_ALL):
        return (n - 1) / n
    return 1.0


def _op(op: CollectiveOp | str) -> CollectiveOp:
    try:
        return CollectiveOp(str(op))
    except ValueError:
        raise ConfigError(f"unknown collective '{op}'", key="op",
                          allowed=[o.value for o in CollectiveOp]) from None


def _algorithm(op: CollectiveOp, algorithm: Algorithm | str | None) -> Algorithm | None:
    if algorithm is None:
        return None
    try:
        algo = Algorithm(str(algorithm))
    except ValueError:
        raise ConfigError(f"unknown algorithm '{algorithm}'", key="algorithm",
                          allowed=[a.value for a in Algorithm]) from None
    if algo not in SUPPORTED[op]:
        raise ConfigError(f"{op} cannot run as {algo}", key="algorithm",
                          allowed=[a.value for a in SUPPORTED[op]])
    return algo


def _channels(channels: int | None) -> None:
    if channels is None:
        return
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ConfigError(f"must be an integer >= 1 or None, got {channels!r}", key="channels")


def _channel_limited(group: GroupInfo, channels: int) -> GroupInfo:
    """The group as `channels` NCCL channels see it: one NIC share per channel leaves a node."""
    node_bw = min(group.node_inter_bw_Bps, channels * group.inter_bw_Bps)
    if node_bw >= group.node_inter_bw_Bps:
        return group
    return dataclasses.replace(group, node_inter_bw_Bps=node_bw)


def _nbytes(nbytes: float) -> float:
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float)) or \
            not (0 <= nbytes < math.inf):
        raise ConfigError(f"must be a finite number >= 0, got {nbytes!r}", key="nbytes")
    return float(nbytes)


def collective_time(
    cluster: ClusterSpec,
    ranks: Ranks | GroupInfo,
    op: CollectiveOp | str,
    nbytes: float,
    *,
    algorithm: Algorithm | str | None = None,
    profile: ProfileArg = None,
    channels: int | None = None,
    concurrent: bool = False,
) -> CollectiveCost:
    """Time of `op` on `nbytes` (nccl-tests size) over the group `ranks`; cached.

    concurrent=True: the group's SPMD siblings on the same nodes share its NICs
    (hwmodels.cluster.group_info); training's CommModel always asks for it.
    """
    group = ranks if isinstance(ranks, GroupInfo) else \
        group_info(cluster, ranks, concurrent=concurrent)
    return collective_time_for_group(cluster, group, op, nbytes, algorithm=algorithm,
                                     profile=profile, channels=channels)


def collective_time_for_group(
    cluster: ClusterSpec,
    group: GroupInfo,
    op: CollectiveOp | str,
    nbytes: float,
    *,
    algorithm: Algorithm | str | None = None,
    profile: ProfileArg = None,
    channels: int | None = None,
) -> CollectiveCost:
    """collective_time for a precomputed GroupInfo (the simulator's hot path).

    GroupInfo carries every cluster fact the cost uses, so the cache key omits the cluster
    (and the profile: only the op's measured curves, when they apply, are part of it).
    """
    _channels(channels)
    if channels is not None and group.num_nodes > 1:
        group = _channel_limited(group, channels)
    try:
        curves = _measured_curves(cluster, group, op, algorithm, profile)
        return _cost(group, op, nbytes, algorithm, curves)
    except TypeError:  # unhashable argument: validate for a clear message
        op_ = _op(op)
        _algorithm(op_, algorithm)
        _nbytes(nbytes)
        raise


def _measured_curves(cluster: ClusterSpec, group: GroupInfo, op: CollectiveOp | str,
                     algorithm: Algorithm | str | None, profile: ProfileArg
                     ) -> WorldCurves | None:
    """The profile's curves for `op` if they apply to `group` (one node, the measured link,
    no forced algorithm), else None (the model)."""
    if algorithm is not None or group.num_nodes != 1 or group.size < 2:
        return None
    prof = resolve_profile(cluster.device, profile)
    if not prof.collectives:
        return None
    link = prof.collectives_link
    if link is not None and link.lower() != group.intra_link.lower():
        return None
    return prof.collectives.get(op)  # type: ignore[call-overload]


@functools.lru_cache(maxsize=1 << 18)
def _cost(group: GroupInfo, op: CollectiveOp | str, nbytes: float,
          algorithm: Algorithm | str | None, curves: WorldCurves | None) -> CollectiveCost:
    op_ = _op(op)
    algo = _algorithm(op_, algorithm)
    size = _nbytes(nbytes)
    n = group.size
    if n == 1 or size == 0:
        return CollectiveCost(time_s=0.0, algorithm=algo or SUPPORTED[op_][0], bus_bw_Bps=0.0,
                              alg_bw_Bps=0.0)
    if algo is None and curves:
        return _measured(group, op_, size, curves)
    alpha, beta, chosen = _model(group, op_, size, algo)
    time_s = alpha + beta
    alg_bw = size / time_s
    return CollectiveCost(time_s=time_s, algorithm=chosen, alg_bw_Bps=alg_bw,
                          bus_bw_Bps=alg_bw * bus_factor(op_, n), latency_s=alpha)


def _model(group: GroupInfo, op: CollectiveOp, size: float, algo: Algorithm | None
           ) -> tuple[float, float, Algorithm]:
    """(alpha_s, beta_s, algorithm) of the analytic model; like NCCL's tuner, the fastest
    allowed algorithm unless one is forced."""
    candidates = (algo,) if algo is not None else SUPPORTED[op]
    return min(((*_MODELS[c](group, op, size), c) for c in candidates),
               key=lambda t: t[0] + t[1])


def measured_world(op: CollectiveOp, size: int, worlds: Iterable[int]) -> int:
    """The measured group size whose curve stands in for a group of `size` ranks: send_recv
    -> 2 (one pair), else `size` itself, else the nearest measured at or above, else below."""
    have = sorted(worlds)
    target = 2 if op is CollectiveOp.SEND_RECV else size
    if target in have:
        return target
    above = [w for w in have if w >= target]
    return above[0] if above else have[-1]


def _measured(group: GroupInfo, op: CollectiveOp, size: float,
              curves: WorldCurves) -> CollectiveCost:
    """Cost from a measured bus-bandwidth curve (see the module docstring)."""
    curve = curves[measured_world(op, group.size, curves)]
    factor = bus_factor(op, group.size)
    smallest, largest = curve.xs[0], curve.xs[-1]
    floor_s = smallest * factor / curve(smallest)  # the smallest measured message's time
    if size > largest:
        # Past the largest measured message the curve says nothing about the asymptote: the
        # bytes beyond it cost what the analytic model charges for them (continuous, monotone).
        top_s = largest * factor / curve(largest)
        a1, b1, _ = _model(group, op, size, None)
        a0, b0, _ = _model(group, op, largest, None)
        time_s = max(top_s + (a1 + b1) - (a0 + b0), floor_s)
    else:
        time_s = max(size * factor / curve(size), floor_s)
    alg_bw = size / time_s
    return CollectiveCost(time_s=time_s, algorithm=SUPPORTED[op][0], bus_bw_Bps=alg_bw * factor,
                          alg_bw_Bps=alg_bw, latency_s=floor_s)


# --------------------------------------------------------------------------------------
# Models: each returns (alpha_s, beta_s) for one algorithm.
# --------------------------------------------------------------------------------------


def _intra_bus(g: GroupInfo) -> float:
    return g.intra_bw_Bps * g.intra_efficiency


def _node_bus(g: GroupInfo) -> float:
    """Bus bandwidth of rings that span nodes: NCCL runs one ring per NIC in parallel."""
    return min(_intra_bus(g), g.node_inter_bw_Bps * g.inter_efficiency)


def _flat_bus(g: GroupInfo) -> float:
    return _intra_bus(g) if g.num_nodes == 1 else _node_bus(g)


def _ring_steps(op: CollectiveOp, n: int, nodes: int) -> tuple[int, int]:
    """(total steps, steps that cross nodes) as NCCL's tuner counts them."""
    if op is CollectiveOp.ALL_REDUCE:
        return 2 * (n - 1), 2 * (nodes - 1)
    if op is CollectiveOp.BROADCAST:
        return n - 1, nodes - 1
    return n - 1, nodes - 1


def _ring(g: GroupInfo, op: CollectiveOp, size: float) -> tuple[float, float]:
    steps, inter_steps = _ring_steps(op, g.size, g.num_nodes)
    alpha = BASE_LATENCY_S + (steps - inter_steps) * g.intra_latency_s + \
        inter_steps * g.inter_latency_s
    return alpha, size * bus_factor(op, g.size) / _flat_bus(g)


def _tree(g: GroupInfo, op: CollectiveOp, size: float) -> tuple[float, float]:
    """Double binary tree: log2 depth across nodes and across each node's switch-connected ranks.

    (NCCL chains the ranks inside a node; with an NVSwitch any pairing costs one hop, so a
    log-depth tree is the better small-message bound and keeps "one node is never slower".)
    """
    hops = math.ceil(math.log2(g.ranks_per_node)) * g.intra_latency_s + \
        math.ceil(math.log2(g.num_nodes)) * g.inter_latency_s
    passes = 2 if op is CollectiveOp.ALL_REDUCE else 1  # reduce up + broadcast down
    bus = TREE_BW_FACTOR * _flat_bus(g)
    return BASE_LATENCY_S + passes * hops, size * bus_factor(op, g.size) / bus


def _hierarchical(g: GroupInfo, op: CollectiveOp, size: float) -> tuple[float, float]:
    """Intra-node reduce-scatter, inter-node collective on 1/ranks_per_node, intra all-gather."""
    if g.num_nodes == 1:
        return _ring(g, op, size)
    p, nodes = g.ranks_per_node, g.num_nodes
    intra_bus, inter_bus = _intra_bus(g), g.node_inter_bw_Bps * g.inter_efficiency
    intra_frac = (p - 1) / p
    inter_frac = (nodes - 1) / nodes
    if op is CollectiveOp.ALL_REDUCE:
        # RS + AG inside the node on `size`, all-reduce across nodes on size/p per rank,
        # all p rails at once: together they move `size` through the node's NICs.
        intra_s = 2 * intra_frac * size / intra_bus
        inter_s = 2 * inter_frac * size / inter_bus
        steps_intra, steps_inter = 2 * (p - 1), 2 * (nodes - 1)
    else:
        # all_gather: gather across nodes per rail (output size/p each), then inside the node;
        # reduce_scatter: the mirror image.
        intra_s = intra_frac * size / intra_bus
        inter_s = inter_frac * size / inter_bus
        steps_intra, steps_inter = p - 1, nodes - 1
    alpha = 2 * BASE_LATENCY_S + steps_intra * g.intra_latency_s + \
        steps_inter * g.inter_latency_s
    return alpha, intra_s + inter_s


def _direct(g: GroupInfo, op: CollectiveOp, size: float) -> tuple[float, float]:
    """all_to_all and send_recv: every rank writes straight to its peers."""
    if op is CollectiveOp.SEND_RECV:
        # Each rank sends `size` to the next rank (nccl-tests sendrecv): across the slowest
        # link any rank uses.
        if g.num_nodes == 1:
            return BASE_LATENCY_S + g.intra_latency_s, size / _intra_bus(g)
        inter_bus = g.inter_bw_Bps * g.inter_efficiency
        return BASE_LATENCY_S + g.inter_latency_s, size / min(_intra_bus(g), inter_bus)
    n, p = g.size, g.ranks_per_node
    intra_s = size * (p - 1) / n / _intra_bus(g)
    if g.num_nodes == 1:
        return BASE_LATENCY_S + g.intra_latency_s, intra_s
    # A rank on the busiest node sends (n - p)/n of its buffer off-node through its NIC
    # share while NVLink carries the rest; the two overlap.
    inter_s = size * (n - p) / n / (g.inter_bw_Bps * g.inter_efficiency)
    return BASE_LATENCY_S + g.inter_latency_s, max(intra_s, inter_s)


_MODELS = {
    Algorithm.RING: _ring,
    Algorithm.TREE: _tree,
    Algorithm.HIERARCHICAL: _hierarchical,
    Algorithm.DIRECT: _direct,
}


def clear_caches() -> None:
    """Forget cached group facts and costs (tests and long sweeps over many clusters)."""
    from hwmodels.cluster import _group_info, _node_sharers

    _cost.cache_clear()
    _group_info.cache_clear()
    _node_sharers.cache_clear()
