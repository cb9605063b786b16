"""A cluster's topology as text and as plain facts: what `fleetsim hw show` prints.

Pure functions of a ClusterSpec (no printing, no I/O): `topology_facts` gives the facts a
--json reader wants (scale-up kind and links, per-group bandwidths from group_info, scale-out),
`render_cluster` the lines a person reads: a torus as an ASCII grid (2D slices up to
MAX_GRID_AXIS chips per axis, wraparound marked), a mesh or link graph as an adjacency
table in GB/s, a switch as one line. The per-group figures are the ones every collective cost
uses (hwmodels.cluster.group_info), so what is drawn is what is simulated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hwmodels.cluster import describe_fabric, group_info
from hwmodels.parallel import ParallelConfig
from hwmodels.specs import ClusterSpec, DeviceKind, LinkKind
from hwmodels.topology import ScaleUpKind, ScaleUpTopology

MAX_GRID_AXIS = 16  # a 16x16 grid of 3-digit ids fits 80 columns; larger: per-axis summary
MAX_MATRIX = 16  # adjacency tables for nodes up to this many devices
WRAP_MARK = "~"
# the one-rank-per-node group is taken over at most this many nodes (group_info is O(ranks);
# past a few leaves of nodes the per-rank figures no longer change)
MAX_GROUP_NODES = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRow:
    """One typical process group and what group_info says about it (per-rank, B/s)."""

    name: str
    ranks: tuple[int, ...]
    size: int
    num_nodes: int
    intra_bw_Bps: float | None  # None: one rank per node (the group uses no scale-up link)
    hops: int
    intra_latency_s: float
    inter_bw_Bps: float | None  # None: the group stays inside one node

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ranks": _ranks_text(self.ranks), "size": self.size,
                "num_nodes": self.num_nodes,
                "scale_up_gbps": None if self.intra_bw_Bps is None else self.intra_bw_Bps / 1e9,
                "hops": self.hops, "scale_up_latency_us": self.intra_latency_s * 1e6,
                "nic_gbps": None if self.inter_bw_Bps is None else self.inter_bw_Bps / 1e9}


def _gbs(bandwidth_Bps: float) -> str:
    return f"{bandwidth_Bps / 1e9:g}"


def _ranks_text(ranks: tuple[int, ...]) -> str:
    """'0-7', '0,16,32,...,240' or a short list."""
    if len(ranks) <= 4:
        return ",".join(map(str, ranks))
    step = ranks[1] - ranks[0]
    if all(b - a == step for a, b in zip(ranks, ranks[1:], strict=False)):
        if step == 1:
            return f"{ranks[0]}-{ranks[-1]}"
        return f"{ranks[0]},{ranks[1]},...,{ranks[-1]} (stride {step})"
    return ",".join(map(str, ranks[:3])) + f",...,{ranks[-1]}"


def unit_noun(cluster: ClusterSpec) -> str:
    """'slice' for a TPU (one ICI domain per 'node'), else 'node'."""
    return "slice" if cluster.device.kind is DeviceKind.TPU else "node"


def typical_groups(cluster: ClusterSpec) -> list[tuple[str, tuple[int, ...]]]:
    """(name, ranks) of the groups worth showing: TP 2/4/8 (ranks 0..k-1), each torus axis's
    ring, the whole node, and one rank per node (rank 0 of every node) when there are nodes."""
    dpn = min(cluster.devices_per_node, cluster.num_devices)
    noun = unit_noun(cluster)
    out: list[tuple[str, tuple[int, ...]]] = []
    for k in (2, 4, 8):
        if k < dpn:
            out.append((f"TP{k}", tuple(range(k))))
    topo = cluster.scale_up
    if topo is not None and topo.kind is ScaleUpKind.TORUS and topo.size == dpn:
        stride = 1
        for axis, d in enumerate(topo.dims):
            if 1 < d < dpn:
                out.append((f"axis {axis} ring ({d})", tuple(range(0, d * stride, stride))))
            stride *= d
    if dpn > 1:
        out.append((f"whole {noun} ({dpn})", tuple(range(dpn))))
    if cluster.num_nodes > 1:
        nodes = min(cluster.num_nodes, MAX_GROUP_NODES)
        count = f"{nodes}" if nodes == cluster.num_nodes else f"first {nodes} of " \
            f"{cluster.num_nodes}"
        out.append((f"one rank per {noun} ({count})",
                    tuple(range(0, nodes * cluster.devices_per_node, cluster.devices_per_node))))
    seen: set[tuple[int, ...]] = set()
    unique = []
    for name, ranks in out:
        if ranks not in seen:
            seen.add(ranks)
            unique.append((name, ranks))
    return unique


def plan_groups(parallel: ParallelConfig) -> list[tuple[str, tuple[int, ...]]]:
    """(name, ranks) of the process groups a training plan's first stage uses (Megatron rank
    order, hwmodels.training.placement): TP, CP, DP, DP x CP, EP and the pipeline link."""
    from hwmodels.training.placement import stage_groups

    g = stage_groups(parallel, 0)
    out = [(f"plan TP ({parallel.tp})", g.tp_group), (f"plan CP ({parallel.cp})", g.cp_group),
           (f"plan DP ({parallel.dp})", g.dp_group),
           (f"plan DP x CP ({parallel.dp * parallel.cp})", g.dp_cp_group),
           (f"plan EP ({parallel.ep})", g.ep_group)]
    if g.next_rank is not None:
        out.append(("plan PP link (stage 0 -> 1)", (g.rank, g.next_rank)))
    seen: set[tuple[int, ...]] = set()
    unique = []
    for name, ranks in out:
        ranks = tuple(sorted(ranks))
        if len(ranks) > 1 and ranks not in seen:
            seen.add(ranks)
            unique.append((name, ranks))
    return unique


def group_rows(cluster: ClusterSpec,
               groups: Sequence[tuple[str, tuple[int, ...]]] | None = None) -> list[GroupRow]:
    """group_info (concurrent, as training asks) for each group (default: typical_groups)."""
    rows = []
    lat = cluster.intra_node.latency_s
    for name, ranks in (typical_groups(cluster) if groups is None else groups):
        info = group_info(cluster, ranks, concurrent=True)
        local = info.ranks_per_node > 1
        rows.append(GroupRow(
            name=name, ranks=ranks, size=info.size, num_nodes=info.num_nodes,
            intra_bw_Bps=info.intra_bw_Bps if local else None,
            # group_info charges latency x hops; the ratio recovers the hops it used
            hops=round(info.intra_latency_s / lat) if (local and lat > 0) else 1,
            intra_latency_s=info.intra_latency_s,
            inter_bw_Bps=info.inter_bw_Bps if info.num_nodes > 1 else None))
    return rows


# -------------------------------------------------------------------------- scale-up drawing

def torus_grid(topo: ScaleUpTopology) -> list[str]:
    """A 2D torus slice (each axis <= MAX_GRID_AXIS) as an ASCII grid of local indices.

    Axis 0 runs left to right (local index = x + X*y), axis 1 top to bottom; '-' and '|' are
    ICI links, '~' at a row's ends or above/below a column marks its wraparound link."""
    if len(topo.dims) != 2 or max(topo.dims) > MAX_GRID_AXIS:
        raise ValueError("torus_grid draws 2D slices up to "
                         f"{MAX_GRID_AXIS}x{MAX_GRID_AXIS}")
    nx_, ny = topo.dims
    wrap_x, wrap_y = topo.wrap
    width = len(str(topo.size - 1))
    pad = 2  # room for the row's wrap mark and a space
    edge = (WRAP_MARK if wrap_x else " ") + " "
    tail = " " + (WRAP_MARK if wrap_x else " ")
    col = [pad + i * (width + 1) + width - 1 for i in range(nx_)]  # where '|' sits

    def under(mark: str) -> str:
        line = [" "] * (pad + nx_ * (width + 1))
        for c in col:
            line[c] = mark
        return "".join(line).rstrip()

    lines = []
    if wrap_y:
        lines.append(under(WRAP_MARK))
    for y in range(ny):
        cells = [str(x + nx_ * y).rjust(width) for x in range(nx_)]
        lines.append((edge + "-".join(cells) + tail).rstrip())
        if y < ny - 1:
            lines.append(under("|"))
    if wrap_y:
        lines.append(under(WRAP_MARK))
    return lines


def torus_axes(topo: ScaleUpTopology) -> list[str]:
    """Per-axis summary of a torus: length, wraparound, links per chip, ring bandwidth."""
    lines = []
    for axis, (d, w) in enumerate(zip(topo.dims, topo.wrap, strict=True)):
        links = "2" if w else ("1" if d == 2 else "1-2")
        rings = 2 if w else 1
        kind = "ring (wraps)" if w else ("line (no wrap)" if d > 1 else "single chip")
        lines.append(f"axis {axis}: {d} chips, {kind}, {links} link(s) per chip, a full-axis "
                     f"group gets {rings} x {_gbs(topo.link_bw_Bps)} = "
                     f"{_gbs(rings * topo.link_bw_Bps)} GB/s per rank" if d > 1 else
                     f"axis {axis}: 1 chip")
    return lines


def adjacency_table(topo: ScaleUpTopology) -> list[str]:
    """Mesh or link graph (<= MAX_MATRIX devices): a matrix of per-direction GB/s between
    local indices ('.' = no direct link) with each device's total."""
    adj = topo.neighbours()
    n = topo.size
    cells = {(a, b): _gbs(bw) for a, peers in adj.items() for b, bw in peers.items()}
    width = max([len(v) for v in cells.values()] + [len(str(n - 1)), 1])
    head = "    " + " ".join(str(b).rjust(width) for b in range(n)) + "  total GB/s"
    lines = [head]
    for a in range(n):
        row = " ".join(("-" if a == b else cells.get((a, b), ".")).rjust(width)
                       for b in range(n))
        total = sum(adj[a].values())
        lines.append(f"{str(a).rjust(3)} {row}  {_gbs(total)}")
    return lines


def scale_up_lines(cluster: ClusterSpec) -> list[str]:
    """The node's (slice's) scale-up topology: its describe() line, then a drawing."""
    topo = cluster.scale_up
    intra = cluster.intra_node
    noun = unit_noun(cluster)
    if topo is None or topo.kind is ScaleUpKind.SWITCH:
        dpn = min(cluster.devices_per_node, cluster.num_devices)
        how = "a PCIe switch" if intra.kind is LinkKind.HOST else "a switch"
        return [f"switch: {dpn} devices per {noun} over {intra.name}, "
                f"{_gbs(intra.bandwidth_Bps)} GB/s per device per direction",
                f"every pair one hop through {how}; any group gets the full figure"]
    lines = [topo.describe()]
    if topo.kind is ScaleUpKind.TORUS:
        if len(topo.dims) == 2 and max(topo.dims) <= MAX_GRID_AXIS:
            lines.append(f"grid (local index = x + {topo.dims[0]}*y; '-' '|' ICI links, "
                         f"'{WRAP_MARK}' wraparound):")
            lines.extend("  " + ln for ln in torus_grid(topo))
        lines.extend(torus_axes(topo))
    elif topo.size <= MAX_MATRIX:
        what = "per-peer links" if topo.kind is ScaleUpKind.MESH else "link graph"
        lines.append(f"{what}, GB/s per direction ('.' no direct link):")
        lines.extend("  " + ln for ln in adjacency_table(topo))
    else:
        degree = _degrees(topo)
        lines.append(f"{topo.size} devices, {min(degree)}-{max(degree)} links each")
    return lines


def _degrees(topo: ScaleUpTopology) -> list[int]:
    """Links per device of a mesh or link graph, without building the adjacency (a mesh of
    n devices has n(n-1)/2 links)."""
    if topo.kind is ScaleUpKind.MESH:
        return [topo.size - 1] * topo.size
    degree = [0] * topo.size
    for a, b, _ in topo.edges:
        degree[a] += 1
        degree[b] += 1
    return degree


def scale_out_facts(cluster: ClusterSpec) -> dict[str, Any]:
    """NICs per node, the scale-out (DCN/IB/RoCE) link, host link, nodes and switch fabric."""
    inter, host = cluster.inter_node, cluster.host_link
    return {
        "unit": unit_noun(cluster), "num_nodes": cluster.num_nodes,
        "devices_per_node": cluster.devices_per_node, "nics_per_node": cluster.nics,
        "link": inter.name, "link_kind": str(inter.kind), "link_gbps": inter.bandwidth_Bps / 1e9,
        "link_latency_us": inter.latency_s * 1e6, "link_efficiency": inter.efficiency,
        "host_link": None if host is None else host.name,
        "host_link_gbps": None if host is None else host.bandwidth_Bps / 1e9,
        "topology": cluster.topology.value, "nodes_per_leaf": cluster.nodes_per_leaf,
        "oversubscription": cluster.oversubscription,
    }


def topology_facts(cluster: ClusterSpec,
                   extra_groups: Sequence[tuple[str, tuple[int, ...]]] = ()) -> dict[str, Any]:
    """Everything render_cluster draws, machine-readable (the `hw show --json` payload);
    `extra_groups` (a scenario's plan_groups) come under "plan_groups"."""
    topo = cluster.scale_up
    intra = cluster.intra_node
    if topo is None:
        scale_up: dict[str, Any] = {
            "kind": "switch", "size": min(cluster.devices_per_node, cluster.num_devices),
            "link": intra.name, "link_gbps": intra.bandwidth_Bps / 1e9,
            "describe": scale_up_lines(cluster)[0]}
    else:
        scale_up = {"kind": str(topo.kind), "size": topo.size, "link": intra.name,
                    "link_gbps": topo.link_bw_Bps / 1e9, "describe": topo.describe()}
        if topo.kind is ScaleUpKind.TORUS:
            scale_up.update(dims=list(topo.dims), wrap=list(topo.wrap))
        if topo.kind is ScaleUpKind.GRAPH:
            scale_up["links"] = [[a, b, bw / 1e9] for a, b, bw in topo.edges]
        elif topo.kind is ScaleUpKind.MESH and topo.size <= MAX_MATRIX:
            scale_up["links"] = [[a, b, topo.link_bw_Bps / 1e9] for a in range(topo.size)
                                 for b in range(a + 1, topo.size)]
        if topo.kind in (ScaleUpKind.MESH, ScaleUpKind.GRAPH):
            scale_up["links_per_device"] = _degrees(topo) if topo.kind is ScaleUpKind.GRAPH \
                else topo.size - 1
    return {
        "device": cluster.device.name, "vendor": cluster.device.vendor,
        "num_devices": cluster.num_devices, "scale_up": scale_up,
        "scale_up_latency_us": intra.latency_s * 1e6, "scale_up_efficiency": intra.efficiency,
        "groups": [g.as_dict() for g in group_rows(cluster)],
        **({"plan_groups": [g.as_dict() for g in group_rows(cluster, extra_groups)]}
           if extra_groups else {}),
        "scale_out": scale_out_facts(cluster),
        "fabric": describe_fabric(cluster),
    }


def group_lines(cluster: ClusterSpec,
                groups: Sequence[tuple[str, tuple[int, ...]]] | None = None) -> list[str]:
    """A fixed-width table of the groups' per-rank bandwidths (default: typical_groups)."""
    rows = group_rows(cluster, groups)
    head = ("group", "ranks", "nodes", "scale-up GB/s", "hops", "NIC GB/s")
    body = [(g.name, _ranks_text(g.ranks), str(g.num_nodes),
             "-" if g.intra_bw_Bps is None else f"{g.intra_bw_Bps / 1e9:.4g}", str(g.hops), "-" if g.inter_bw_Bps is None else f"{g.inter_bw_Bps / 1e9:.4g}")
            for g in rows]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*head).rstrip(), *(fmt.format(*r).rstrip() for r in body)]


def render_cluster(cluster: ClusterSpec,
                   extra_groups: Sequence[tuple[str, tuple[int, ...]]] = ()) -> list[str]:
    """The cluster's topology as text lines: scale-up, typical groups (then `extra_groups`,
    a scenario's plan_groups), scale-out, fabric."""
    noun = unit_noun(cluster)
    so = scale_out_facts(cluster)
    lines = [f"{cluster.num_devices} x {cluster.device.name} ({cluster.device.vendor}), "
             f"{cluster.num_nodes} {noun}{'s' if cluster.num_nodes != 1 else ''} of "
             f"{min(cluster.devices_per_node, cluster.num_devices)}", "",
             f"scale-up ({cluster.intra_node.name}, latency "
             f"{cluster.intra_node.latency_s * 1e6:g} us/hop, bus efficiency "
             f"{cluster.intra_node.efficiency:g}):"]
    lines.extend("  " + ln for ln in scale_up_lines(cluster))
    lines += ["", "per-rank bandwidth of typical groups (group_info, concurrent SPMD groups; "
                  "before link efficiency):"]
    lines.extend("  " + ln for ln in group_lines(cluster))
    if extra_groups:
        lines += ["", "the scenario's process groups (first pipeline stage):"]
        lines.extend("  " + ln for ln in group_lines(cluster, extra_groups))
    host = "" if so["host_link"] is None else \
        f", behind {so['host_link']} {so['host_link_gbps']:g} GB/s"
    lines += ["", "scale-out:",
              f"  {so['num_nodes']} {noun}{'s' if so['num_nodes'] != 1 else ''}, "
              f"{so['nics_per_node']} x {so['link']} NIC(s) per {noun} "
              f"({so['link_gbps']:g} GB/s each{host}), latency {so['link_latency_us']:g} us",
              f"  {so['topology']}, {so['nodes_per_leaf']} {noun}s per leaf, "
              f"oversubscription {so['oversubscription']:g}",
              "", f"fabric: {describe_fabric(cluster)}"]
    return lines


def grid_cells(lines: list[str]) -> int:
    """How many device ids a drawn grid shows (tests: every chip drawn exactly once)."""
    return sum(len([t for t in ln.replace("-", " ").split() if t.isdigit()]) for ln in lines)


__all__ = ["GroupRow", "adjacency_table", "grid_cells", "group_rows", "plan_groups",
           "render_cluster",
           "scale_up_lines", "topology_facts", "torus_axes", "torus_grid", "typical_groups",
           "unit_noun", "MAX_GRID_AXIS"]
