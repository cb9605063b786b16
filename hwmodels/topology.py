"""Scale-up topologies as built: one switch, a full mesh, a torus, or an explicit link graph.

A device's catalog entry describes its scale-up fabric (`ScaleUpFabric`: NVSwitch -> switch,
MI300X xGMI / Ascend HCCS / Gaudi RoCE -> mesh, TPU ICI -> torus, MI250X on a Frontier node ->
graph); build_cluster turns it into the node's (TPU: the slice's) concrete `ScaleUpTopology`.
What a collective's cost takes from it is one number per process group: the per-rank bus
bandwidth a ring-style collective can reach over the links among the group's members (before
the link's NCCL-style efficiency), and the hops one ring step crosses.

The bounds, per kind:
- switch: every rank reaches every other at the device's full link rate (today's model).
- mesh: a group of k ranks drives its k-1 direct links at once (RCCL/HCCL's direct or
  multi-ring algorithms on a fully connected node): (k-1) x link bandwidth.
- torus: per axis the group spans, a bidirectional ring uses 2 links with wraparound and 1
  without (a line); axes add up ("How to Scale Your Model", JAX team 2025, the AllGather /
  AllReduce cost over several axes). A group whose members sit s hops apart on an axis shares
  those links with its s SPMD siblings: the axis gives (2 or 1) x link / s, one step s hops.
- graph: the group's members' links to each other, min over members of the sum (a member can
  send on all its in-group links at once) and over every split of the group in two of the
  links across it (ring traffic crosses each split both ways); a group whose induced subgraph is not connected
  falls back to one ring routed over shortest paths (its bottleneck link / hops).
Local indices map to torus coordinates row-major with axis 0 fastest (rank r of a slice with
dims (X, Y) sits at x = r % X, y = r // X), so the fastest-varying parallel dim (TP in the
default rank order) lies along axis 0.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError


class ScaleUpKind(StrEnum):
    SWITCH = "switch"  # NVSwitch / a PCIe switch: any pair at the device's full link rate
    MESH = "mesh"  # fully connected point-to-point links (MI300X xGMI, Ascend HCCS, Gaudi)
    TORUS = "torus"  # TPU ICI: 2D/3D torus, wraparound by rule
    GRAPH = "graph"  # explicit per-pair links (MI250X GCDs on a Frontier node)


class WrapRule(StrEnum):
    """When a torus axis of a slice has its wraparound links."""

    FULL_AXIS = "full-axis"  # only an axis as long as the full pod's (TPU v5e/v6e: 16)
    MULTIPLE_OF_4 = "multiple-of-4"  # axes of whole 4-chip cubes (TPU v4/v5p optical switches)
    ALWAYS = "always"
    NEVER = "never"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScaleUpFabric:
    """A device's scale-up fabric as its catalog entry describes it (a template: the slice
    shape of a torus is chosen per cluster).

    link_bw_Bps: one link, per direction (mesh: to one peer; torus: to one neighbour).
    max_dims: torus only, the full pod's shape (the largest slice).
    edges: graph only, (local a, local b, bandwidth_Bps per direction) for each linked pair
    of a node of `graph_size` devices.
    """

    kind: ScaleUpKind = ScaleUpKind.SWITCH
    link_bw_Bps: float = 0.0
    max_dims: tuple[int, ...] = ()
    wrap: WrapRule = WrapRule.FULL_AXIS
    edges: tuple[tuple[int, int, float], ...] = ()
    graph_size: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        key = "DeviceSpec.scale_up_fabric"
        if self.kind in (ScaleUpKind.MESH, ScaleUpKind.TORUS) and not self.link_bw_Bps > 0:
            raise ConfigError(f"a {self.kind} fabric needs link_gbps > 0", key=f"{key}.link_gbps")
        if self.kind is ScaleUpKind.TORUS:
            if not self.max_dims or any(not isinstance(d, int) or d < 1 for d in self.max_dims):
                raise ConfigError(f"a torus needs max_dims of positive integers, got "
                                  f"{list(self.max_dims)}", key=f"{key}.max_dims")
        if self.kind is ScaleUpKind.GRAPH:
            if self.graph_size < 2 or not self.edges:
                raise ConfigError("a graph fabric needs size >= 2 and edges [a, b, gbps]",
                                  key=f"{key}.edges")
            _check_edges(self.edges, self.graph_size, f"{key}.edges")


def _check_edges(edges: Sequence[tuple[int, int, float]], size: int, key: str) -> None:
    seen: set[tuple[int, int]] = set()
    for a, b, bw in edges:
        if not (0 <= a < size and 0 <= b < size) or a == b:
            raise ConfigError(f"edge [{a}, {b}] must join two distinct devices", key=key,
                              allowed=f"device indices 0..{size - 1}, a != b")
        if not bw > 0:
            raise ConfigError(f"edge [{a}, {b}] needs bandwidth > 0, got {bw!r}", key=key)
        pair = (min(a, b), max(a, b))
        if pair in seen:
            raise ConfigError(f"edge [{a}, {b}] listed twice", key=key)
        seen.add(pair)


SWITCH_FABRIC = ScaleUpFabric()


@dataclass(frozen=True, slots=True, kw_only=True)
class ScaleUpTopology:
    """One node's (TPU: one slice's) scale-up topology; hashable (part of ClusterSpec)."""

    kind: ScaleUpKind
    size: int
    link_bw_Bps: float  # switch: the device's per-direction aggregate; else one link
    dims: tuple[int, ...] = ()
    wrap: tuple[bool, ...] = ()
    edges: tuple[tuple[int, int, float], ...] = ()

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"must be >= 1, got {self.size}", key="cluster.devices_per_node")
        if not self.link_bw_Bps > 0:
            raise ConfigError(f"must be > 0, got {self.link_bw_Bps!r}",
                              key="ScaleUpTopology.link_bw_Bps")
        if self.kind is ScaleUpKind.TORUS:
            if math.prod(self.dims) != self.size:
                raise ConfigError(
                    f"torus shape {'x'.join(map(str, self.dims))} has {math.prod(self.dims)} "
                    f"chips, the slice has {self.size}", key="cluster.slice_shape",
                    allowed=f"dims whose product is {self.size}")
            if len(self.wrap) != len(self.dims):
                raise ConfigError("one wrap flag per torus axis", key="ScaleUpTopology.wrap")
        if self.kind is ScaleUpKind.GRAPH:
            _check_edges(self.edges, self.size, "ScaleUpTopology.edges")

    @property
    def is_switch(self) -> bool:
        return self.kind is ScaleUpKind.SWITCH

    def coords(self, local: int) -> tuple[int, ...]:
        """Torus coordinates of a local index (axis 0 fastest)."""
        out = []
        for d in self.dims:
            local, c = divmod(local, d)
            out.append(c)
        return tuple(out)

    def neighbours(self) -> dict[int, dict[int, float]]:
        """Adjacency: local index -> {peer: per-direction bandwidth} (switch: empty)."""
        return _adjacency(self)

    def group_bandwidth_Bps(self, locals_: Sequence[int]) -> float:
        """Per-rank bus-bandwidth bound (B/s, before link efficiency) of a ring-style
        collective among the local indices `locals_` of one node (see the module docstring)."""
        return _group_bw(self, tuple(sorted(set(locals_))))[0]

    def group_hops(self, locals_: Sequence[int]) -> int:
        """Links one ring step crosses (1 unless members sit several hops apart)."""
        return _group_bw(self, tuple(sorted(set(locals_))))[1]

    def describe(self) -> str:
        """One line: kind, shape and link figures."""
        gbs = f"{self.link_bw_Bps / 1e9:g} GB/s"
        if self.kind is ScaleUpKind.SWITCH:
            return f"switch: {self.size} devices, {gbs} per device per direction"
        if self.kind is ScaleUpKind.MESH:
            return (f"full mesh: {self.size} devices, {self.size - 1} links of {gbs} per "
                    f"device per direction")
        if self.kind is ScaleUpKind.TORUS:
            shape = "x".join(map(str, self.dims))
            wraps = ", ".join(f"axis {i} {'wraps' if w else 'no wrap'}"
                              for i, w in enumerate(self.wrap))
            return f"{len(self.dims)}D torus {shape} ({wraps}), {gbs} per link per direction"
        return f"link graph: {self.size} devices, {len(self.edges)} links"


@functools.lru_cache(maxsize=64)
def _adjacency(topo: ScaleUpTopology) -> dict[int, dict[int, float]]:
    adj: dict[int, dict[int, float]] = {i: {} for i in range(topo.size)}
    if topo.kind is ScaleUpKind.MESH:
        for a in range(topo.size):
            adj[a] = {b: topo.link_bw_Bps for b in range(topo.size) if b != a}
    elif topo.kind is ScaleUpKind.TORUS:
        strides = [math.prod(topo.dims[:i]) for i in range(len(topo.dims))]
        for a in range(topo.size):
            c = topo.coords(a)
            for axis, d in enumerate(topo.dims):
                if d < 2:
                    continue
                for step in (-1, 1):
                    nc = c[axis] + step
                    if not 0 <= nc < d:
                        if not topo.wrap[axis]:
                            continue
                        nc %= d
                    b = a + (nc - c[axis]) * strides[axis]
                    if b != a:
                        adj[a][b] = topo.link_bw_Bps
    elif topo.kind is ScaleUpKind.GRAPH:
        for a, b, bw in topo.edges:
            adj[a][b] = adj[b][a] = bw
    return adj


@functools.lru_cache(maxsize=8192)
def _group_bw(topo: ScaleUpTopology, members: tuple[int, ...]) -> tuple[float, int]:
    if len(members) < 2 or topo.kind is ScaleUpKind.SWITCH:
        return topo.link_bw_Bps, 1
    if topo.kind is ScaleUpKind.MESH:
        return (len(members) - 1) * topo.link_bw_Bps, 1
    if topo.kind is ScaleUpKind.TORUS:
        return _torus_bw(topo, members)
    return _graph_bw(topo, members)


def _torus_bw(topo: ScaleUpTopology, members: tuple[int, ...]) -> tuple[float, int]:
    coords = [topo.coords(m) for m in members]
    total, hops = 0.0, 1
    for axis, d in enumerate(topo.dims):
        values = sorted({c[axis] for c in coords})
        if len(values) < 2:
            continue
        gaps = [b - a for a, b in zip(values, values[1:], strict=False)]
        stride = max(gaps)  # an irregular spacing is charged its widest gap
        full = len(values) * stride == d and gaps.count(stride) == len(gaps)
        rings = 2 if (full and topo.wrap[axis] and d > 2) else 1
        total += rings * topo.link_bw_Bps / stride
        hops = max(hops, stride)
    return total, hops


def _graph_bw(topo: ScaleUpTopology, members: tuple[int, ...]) -> tuple[float, int]:
    adj = _adjacency(topo)
    group = set(members)
    incident = [sum(bw for peer, bw in adj[m].items() if peer in group) for m in members]
    if min(incident) > 0 and _connected(adj, group):
        return min(min(incident), _min_cut(adj, members)), 1
    # Not connected among themselves: one ring over the members, routed on shortest paths.
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(topo.size))
    g.add_edges_from((a, b, {"bw": bw}) for a, nbrs in adj.items() for b, bw in nbrs.items())
    best, hops = math.inf, 1
    ring = list(members) + [members[0]]
    for a, b in zip(ring, ring[1:], strict=False):
        try:
            path = nx.shortest_path(g, a, b)
        except nx.NetworkXNoPath:
            raise ConfigError(f"devices {a} and {b} of one node have no scale-up path",
                              key="DeviceSpec.scale_up_fabric.edges") from None
        best = min(best, min(g[u][v]["bw"] for u, v in zip(path, path[1:], strict=False)))
        hops = max(hops, len(path) - 1)
    return best / hops, hops


MIN_CUT_MAX_MEMBERS = 16  # 2^15 bipartitions; larger groups keep the per-member bound


def _min_cut(adj: dict[int, dict[int, float]], members: tuple[int, ...]) -> float:
    """The smallest in-group bandwidth across any split of the group in two: ring traffic
    (every ring, however many) crosses each split once each way, so the rings' summed per-rank
    rate is at most the split's links per direction. A single member's split is its incident
    bandwidth; on the MI250X node the 4 single links between GCDs {0,1,6,7} and {2,3,4,5}
    (200 GB/s) bound an 8-GCD ring below a GCD's own 350 GB/s."""
    if len(members) > MIN_CUT_MAX_MEMBERS:
        return math.inf
    best = math.inf
    rest = members[1:]
    for mask in range(1 << len(rest)):  # members[0] always on side A: each split once
        side = {members[0], *(m for i, m in enumerate(rest) if mask >> i & 1)}
        if len(side) == len(members):
            continue
        cut = sum(bw for a in side for b, bw in adj[a].items() if b in members and b not in side)
        best = min(best, cut)
    return best


def _connected(adj: dict[int, dict[int, float]], group: set[int]) -> bool:
    start = next(iter(group))
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        for peer in adj[node]:
            if peer in group and peer not in seen:
                seen.add(peer)
                todo.append(peer)
    return seen == group


def torus_wraps(fabric: ScaleUpFabric, dims: Sequence[int]) -> tuple[bool, ...]:
    """Which axes of a slice of shape `dims` have wraparound links under the fabric's rule."""
    out = []
    for axis, d in enumerate(dims):
        full = fabric.max_dims[axis] if axis < len(fabric.max_dims) else 0
        if fabric.wrap is WrapRule.ALWAYS:
            out.append(d > 2)
        elif fabric.wrap is WrapRule.NEVER:
            out.append(False)
        elif fabric.wrap is WrapRule.MULTIPLE_OF_4:
            out.append(d > 2 and d % 4 == 0)
        else:
            out.append(d > 2 and d == full)
    return tuple(out)


def default_torus_shape(fabric: ScaleUpFabric, size: int) -> tuple[int, ...]:
    """The slice shape for `size` chips: the most nearly cubic shape with the pod's number of
    axes that fits inside the pod (largest axes first, as GCP's slice names: v5e 8x16 ...)."""
    ndim = len(fabric.max_dims)
    best: tuple[int, ...] | None = None
    for shape in _factorizations(size, ndim):
        if any(s > m for s, m in zip(sorted(shape, reverse=True),
                                     sorted(fabric.max_dims, reverse=True), strict=False)):
            continue
        if best is None or max(shape) < max(best):
            best = shape
    if best is None:
        raise ConfigError(
            f"{size} chips do not fit a {'x'.join(map(str, fabric.max_dims))} pod",
            key="cluster.devices_per_node",
            allowed=f"at most {math.prod(fabric.max_dims)} chips per slice")
    return tuple(sorted(best, reverse=True))


def _factorizations(n: int, k: int) -> list[tuple[int, ...]]:
    if k == 1:
        return [(n,)]
    out = []
    for d in range(1, n + 1):
        if n % d == 0:
            out.extend((d, *rest) for rest in _factorizations(n // d, k - 1))
    return out


def build_topology(fabric: ScaleUpFabric, size: int, bandwidth_Bps: float,
                   shape: Sequence[int] | None = None) -> ScaleUpTopology:
    """A node's concrete topology from the device's fabric (size devices; `bandwidth_Bps` the
    device's aggregate scale-up figure, used by a switch; `shape` a torus slice's dims)."""
    if shape is not None and fabric.kind is not ScaleUpKind.TORUS:
        raise ConfigError(f"slice_shape applies to torus fabrics; this device's scale-up "
                          f"fabric is a {fabric.kind}", key="cluster.slice_shape",
                          allowed="no slice_shape (only a torus scale-up fabric takes one)")
    if fabric.kind is ScaleUpKind.SWITCH:
        return ScaleUpTopology(kind=ScaleUpKind.SWITCH, size=size, link_bw_Bps=bandwidth_Bps)
    if fabric.kind is ScaleUpKind.MESH:
        return ScaleUpTopology(kind=ScaleUpKind.MESH, size=size, link_bw_Bps=fabric.link_bw_Bps)
    if fabric.kind is ScaleUpKind.TORUS:
        if shape is None:
            dims = default_torus_shape(fabric, size)
        else:
            dims = tuple(shape)
            if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
                raise ConfigError(f"expected positive integers, got {list(shape)}",
                                  key="cluster.slice_shape",
                                  allowed=f"{len(fabric.max_dims)} positive integers whose "
                                          f"product is {size}")
            if len(dims) != len(fabric.max_dims):
                raise ConfigError(
                    f"torus shape {'x'.join(map(str, dims))} has {len(dims)} axes, the pod "
                    f"{'x'.join(map(str, fabric.max_dims))} has {len(fabric.max_dims)}",
                    key="cluster.slice_shape",
                    allowed=f"{len(fabric.max_dims)} dims whose product is {size}")
            if math.prod(dims) != size:
                raise ConfigError(
                    f"torus shape {'x'.join(map(str, dims))} has {math.prod(dims)} chips, the "
                    f"slice (cluster.devices_per_node) has {size}", key="cluster.slice_shape",
                    allowed=f"dims whose product is {size}")
            over = [d for d, m in zip(dims, fabric.max_dims, strict=False) if d > m]
            if over:
                raise ConfigError(
                    f"torus shape {'x'.join(map(str, dims))} exceeds the pod "
                    f"{'x'.join(map(str, fabric.max_dims))}", key="cluster.slice_shape",
                    allowed=f"each axis at most the pod's ({list(fabric.max_dims)})")
        return ScaleUpTopology(kind=ScaleUpKind.TORUS, size=size, link_bw_Bps=fabric.link_bw_Bps,
                               dims=dims, wrap=torus_wraps(fabric, dims))
    if size != fabric.graph_size:
        raise ConfigError(
            f"this device's scale-up link graph describes nodes of {fabric.graph_size} "
            f"devices, got devices_per_node {size}", key="cluster.devices_per_node",
            allowed=[fabric.graph_size])
    min_bw = min(bw for _, _, bw in fabric.edges)
    return ScaleUpTopology(kind=ScaleUpKind.GRAPH, size=size, link_bw_Bps=min_bw,
                           edges=fabric.edges)
