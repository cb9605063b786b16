"""Cluster topology: building ClusterSpecs, the switch graph, and per-group bandwidth facts.

Cost queries use `group_info` (arithmetic on rank numbers, cached); `cluster_graph` builds the
explicit device/NVSwitch/NIC/leaf/spine graph for inspection, plots and cross-checks only.
Rank r lives on node r // devices_per_node at local index r % devices_per_node; NIC i of a node
serves local indices l with l * nics // devices_per_node == i (its "rail").

A NIC sits behind its device's PCIe switch (ClusterSpec.host_link): a scale-out link faster per
NIC than that host link cannot be driven, so build_cluster rejects it on multi-node clusters.
With `concurrent=True` (what training's CommModel asks for) a group's NIC share also counts its
sibling groups: in SPMD training every rank of a node issues the same collective on its own
group at the same time, so when several devices share one NIC the rank's share is split among
all the node's ranks whose groups leave the node (not only the group's own ranks).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import networkx as nx

from hwmodels.errors import ConfigError
from hwmodels.specs import ClusterSpec, DeviceSpec, LinkKind, LinkSpec, Topology
from hwmodels.topology import ScaleUpKind, ScaleUpTopology, build_topology

# One switch hop on an InfiniBand NDR fabric (NVIDIA Quantum-2 QM9700 datasheet, 2022:
# port-to-port latency ~130 ns); crossing the spine adds two hops (leaf->spine->leaf).
SWITCH_HOP_LATENCY_S = 130e-9

Ranks = Sequence[int] | range


def _resolve_device(device: str | DeviceSpec) -> DeviceSpec:
    if isinstance(device, DeviceSpec):
        return device
    from hwmodels.catalog import load_device

    return load_device(str(device))


def _resolve_link(link: str | LinkSpec, key: str) -> LinkSpec:
    if isinstance(link, LinkSpec):
        return link
    from hwmodels.catalog import load_link
    from hwmodels.errors import UnknownNameError

    try:
        return load_link(str(link))
    except UnknownNameError as err:
        raise ConfigError(f"unknown link '{link}'", key=key, allowed=err.allowed) from None


def build_cluster(
    device: str | DeviceSpec,
    num_devices: int,
    *,
    devices_per_node: int | None = None,
    intra_node: str | LinkSpec | None = None,
    inter_node: str | LinkSpec | None = None,
    nics_per_node: int = 0,
    topology: str | Topology = "rail-optimized",
    oversubscription: float = 1.0,
    nodes_per_leaf: int = 32,
    name: str = "",
    host: str = "",
    slice_shape: Sequence[int] | None = None,
    power_cap_w: float | None = None,
) -> ClusterSpec:
    """A ClusterSpec from catalog names or specs.

    intra_node defaults to the device's scale-up link at the device's own scale_up_bw_Bps;
    inter_node to the device's reference NIC (DeviceSpec.default_inter_node);
    nics_per_node=0 means the device's own NIC count (DeviceSpec.nics_per_device per device,
    one unless the catalog says otherwise). A scale-out NIC faster than the device's host
    (PCIe) link is a ConfigError on clusters of more than one node (key cluster.inter_node).
    intra_node must be the device's own scale-up link (taken at the device's own figure), one
    of its alt_scale_up_links, or a host (PCIe) link (then the node is a PCIe switch); the
    node's scale-up topology follows the device's fabric (hwmodels.topology); slice_shape
    gives a torus slice's dims (TPU), product = devices_per_node; power_cap_w a static board
    power limit per device (hwmodels.power.power_capped: compute-bound kernels at the clock it
    leaves).
    """
    dev = _resolve_device(device)
    if power_cap_w is not None:
        from hwmodels.power import power_capped

        dev = power_capped(dev, power_cap_w, key="cluster.power_cap_w")
    try:
        topo = Topology(str(topology))
    except ValueError:
        raise ConfigError(f"unknown topology '{topology}'", key="cluster.topology",
                          allowed=[t.value for t in Topology]) from None
    for key, value in (("cluster.num_devices", num_devices),
                       ("cluster.devices_per_node", devices_per_node),
                       ("cluster.nics_per_node", nics_per_node),
                       ("cluster.nodes_per_leaf", nodes_per_leaf)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"expected an integer, got {value!r}", key=key)
    if devices_per_node is None:
        devices_per_node = dev.devices_per_node
    if dev.scale_up_fabric.kind is ScaleUpKind.TORUS and isinstance(num_devices, int) \
            and not isinstance(num_devices, bool) and 0 < num_devices < devices_per_node:
        devices_per_node = num_devices  # a slice smaller than the pod is its own torus (node)
    intra, scale_up = _scale_up(dev, intra_node, devices_per_node, slice_shape)
    if nics_per_node == 0 and dev.nics_per_device != 1.0 and isinstance(devices_per_node, int):
        # the device's reference node has other than one NIC per device (catalog)
        nics_per_node = max(1, round(devices_per_node * dev.nics_per_device))
    if host:
        from hwmodels.hosts import load_host

        load_host(host)  # an unknown cluster.host fails here, listing the entries
    host_pcie = _resolve_link(dev.host_link, f"{dev.name}.host_link")
    inter = _resolve_link(default_nic(dev, host_pcie) if inter_node is None else inter_node,
                          "cluster.inter_node")
    _check_inter(dev, inter_node, inter)
    cluster = ClusterSpec(
        device=dev,
        num_devices=num_devices,
        devices_per_node=devices_per_node,
        intra_node=intra,
        inter_node=inter,
        nics_per_node=nics_per_node,
        topology=topo,
        oversubscription=float(oversubscription),
        nodes_per_leaf=nodes_per_leaf,
        name=name,
        host_link=host_pcie,
        host=host.lower(),
        scale_up=scale_up,
    )
    check_host_link(cluster)
    return cluster


def _check_inter(dev: DeviceSpec, inter_node: str | LinkSpec | None, inter: LinkSpec) -> None:
    """A scale-up link named as inter_node must be one the device has (its own or an alt: a
    scale-up domain spanning nodes); another device's (nvlink4 on an MI300X, ici on an H100)
    is refused, as intra_node is."""
    if inter_node is None or isinstance(inter_node, LinkSpec) or inter.kind is not LinkKind.SCALE_UP:
        return
    if inter.name in _own_scale_up_links(dev):
        return
    from hwmodels.catalog import list_links, load_link

    raise ConfigError(
        f"{inter.name} is a scale-up link {dev.name} does not have; inter_node is the link "
        f"between nodes", key="cluster.inter_node",
        allowed=[n for n in list_links() if load_link(n).kind is LinkKind.SCALE_OUT])


def _own_scale_up_links(dev: DeviceSpec) -> set[str]:
    """Catalog names of the scale-up links a device has: its own and its alternatives."""
    return {dev.scale_up_link.lower(), *(n.lower() for n in dev.alt_scale_up_links)}


def _scale_up(dev: DeviceSpec, intra_node: str | LinkSpec | None, devices_per_node: int,
              slice_shape: Sequence[int] | None) -> tuple[LinkSpec, ScaleUpTopology | None]:
    """The node's scale-up LinkSpec and topology (None: a switch, the model before topologies).

    The device's own link (by default, or named) is taken at the device's own bandwidth: the
    catalog link is shared by devices of one family (an MI250X GCD has less Infinity Fabric
    than an MI300X). A host link makes the node a PCIe switch. Any other scale-up link is one
    the device does not have: ConfigError. A scale-out link (devices talking through their
    NICs, as a KV transfer between pools does) is a switch as well.
    """
    own = _resolve_link(dev.scale_up_link, "cluster.intra_node")
    if intra_node is None or (not isinstance(intra_node, LinkSpec)
                              and str(intra_node).lower() == own.name):
        intra = own
        if intra.bandwidth_Bps != dev.scale_up_bw_Bps:
            intra = dataclasses.replace(intra, bandwidth_Bps=dev.scale_up_bw_Bps)
    else:
        intra = _resolve_link(intra_node, "cluster.intra_node")
        allowed = _own_scale_up_links(dev)
        if not isinstance(intra_node, LinkSpec) and intra.kind is LinkKind.SCALE_UP \
                and intra.name not in allowed:
            from hwmodels.catalog import list_links, load_link

            others = [n for n in list_links() if load_link(n).kind is not LinkKind.SCALE_UP]
            raise ConfigError(
                f"{dev.name} has no {intra.name} link (its scale-up link is {own.name})",
                key="cluster.intra_node", allowed=sorted(allowed) + others)
    dpn = devices_per_node  # build_cluster has filled in the device's default
    fabric = dev.scale_up_fabric
    if intra.name != own.name or fabric.kind is ScaleUpKind.SWITCH:
        if slice_shape is not None:
            raise ConfigError(f"slice_shape applies to torus fabrics; {dev.name} over "
                              f"{intra.name} is a switch", key="cluster.slice_shape",
                              allowed="no slice_shape (only a torus scale-up fabric takes one)")
        return intra, None
    if not isinstance(dpn, int) or isinstance(dpn, bool) or dpn < 1:
        return intra, None  # ClusterSpec reports the bad devices_per_node
    if fabric.kind is ScaleUpKind.MESH and dpn > dev.devices_per_node:
        # a full mesh has a link per peer: the catalog's node is as many devices as it wires
        raise ConfigError(
            f"{dev.name}'s {intra.name} mesh links {dev.devices_per_node} devices; a node of "
            f"{dpn} has no links between its meshes", key="cluster.devices_per_node",
            allowed=f"1..{dev.devices_per_node} (or a host link as intra_node)")
    return intra, build_topology(fabric, dpn, intra.bandwidth_Bps, slice_shape)


# InfiniBand generations, fastest first (links.yaml): the fallback default NIC of a device
# entry without default_inter_node is the first its host link can carry.
_IB_GENERATIONS = ("ib-ndr", "ib-hdr", "ib-edr")


def default_nic(device: DeviceSpec, host: LinkSpec | None = None) -> str:
    """The device's default scale-out NIC: its catalog default_inter_node, else the fastest
    InfiniBand generation no faster than its host link (pcie5 -> NDR, pcie4 -> HDR)."""
    if device.default_inter_node:
        return device.default_inter_node
    host = host or _resolve_link(device.host_link, f"{device.name}.host_link")
    for name in _IB_GENERATIONS:
        link = _resolve_link(name, "cluster.inter_node")
        if link.bandwidth_Bps <= host.bandwidth_Bps:
            return name
    return _IB_GENERATIONS[-1]


def check_host_link(cluster: ClusterSpec) -> None:
    """ConfigError if a scale-out NIC is faster than the host (PCIe) link it sits behind.

    A single-node cluster never drives its NICs, so it is not checked. The NIC's own PCIe
    slot hangs off the device's PCIe switch (DGX A100/H100 layout: two GPUs and two NICs per
    switch), so the NIC cannot deliver more than that link whatever nics_per_node is.
    """
    host, inter = cluster.host_link, cluster.inter_node
    if host is None or cluster.num_nodes <= 1 or inter.kind is not LinkKind.SCALE_OUT:
        return
    if inter.bandwidth_Bps > host.bandwidth_Bps:
        raise ConfigError(
            f"{inter.name} NIC ({_gbs(inter.bandwidth_Bps)} per NIC) is faster than "
            f"{cluster.device.name}'s host link {host.name} ({_gbs(host.bandwidth_Bps)}) it "
            f"sits behind; use a NIC at or below {_gbs(host.bandwidth_Bps)} "
            f"(default for this device: {default_nic(cluster.device, host)})",
            key="cluster.inter_node", allowed=_links_within(host.bandwidth_Bps))


def _gbs(bandwidth_Bps: float) -> str:
    return f"{bandwidth_Bps / 1e9:g} GB/s"


def _links_within(bandwidth_Bps: float) -> list[str]:
    """Catalogued scale-out links no faster than `bandwidth_Bps`."""
    from hwmodels.catalog import list_links, load_link

    return [n for n in list_links() if load_link(n).kind is LinkKind.SCALE_OUT
            and load_link(n).bandwidth_Bps <= bandwidth_Bps]


def describe_fabric(cluster: ClusterSpec) -> str:
    """One line stating the fabric a prediction assumed (devices, scale-up, NICs, host link)."""
    intra, inter, host = cluster.intra_node, cluster.inter_node, cluster.host_link
    dpn = min(cluster.devices_per_node, cluster.num_devices)
    parts = [f"{cluster.num_nodes} node{'s' if cluster.num_nodes != 1 else ''} of "
             f"{dpn} x {cluster.device.name} over {intra.name} ({_gbs(intra.bandwidth_Bps)})"]
    behind = f", behind {host.name} {_gbs(host.bandwidth_Bps)}" if host is not None else ""
    parts.append(f"{cluster.nics} x {inter.name} NICs/node ({_gbs(inter.bandwidth_Bps)} each"
                 f"{behind})")
    parts.append(f"{cluster.topology.value}, {cluster.nodes_per_leaf} nodes/leaf, "
                 f"oversubscription {cluster.oversubscription:g}")
    dev = cluster.device
    if dev.power_cap_w:
        parts.append(f"power cap {dev.power_cap_w:g} W of {dev.tdp_w:g} W TDP (compute-bound "
                     f"kernels at {dev.sm_clock_scale:.2f} x the uncapped SM clock)")
    return ", ".join(parts)


def rail_of(cluster: ClusterSpec, local_index: int) -> int:
    """The NIC (rail) index that serves a device's local index on its node."""
    nics, dpn = cluster.nics, cluster.devices_per_node
    return local_index * nics // dpn


def _nics_of_device(cluster: ClusterSpec) -> float:
    """NICs one device owns: its own PCIe-switch NIC(s); below 1 when devices share a NIC."""
    return cluster.nics / cluster.devices_per_node


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupInfo:
    """What a collective's cost depends on for one process group (per-rank bandwidths, B/s).

    inter_bw_Bps is one rank's share of its node's NICs for traffic leaving the node (divided
    by the oversubscription when the traffic crosses leaf switches); node_inter_bw_Bps is the
    whole group's NIC bandwidth on its least-served node (what parallel rings share).
    """

    size: int
    num_nodes: int
    ranks_per_node: int  # max over the group's nodes
    min_ranks_per_node: int
    intra_bw_Bps: float
    inter_bw_Bps: float
    node_inter_bw_Bps: float
    intra_latency_s: float
    inter_latency_s: float
    intra_efficiency: float
    inter_efficiency: float
    spans_leaves: bool
    # catalog name of the scale-up link (a profile's measured collectives apply only to it)
    intra_link: str = ""


def _canonical_ranks(cluster: ClusterSpec, ranks: Ranks) -> tuple[int, ...] | range:
    """A hashable key for a rank list (ranges stay ranges: O(1) to hash)."""
    if isinstance(ranks, range):
        if ranks.step < 0:
            ranks = ranks[::-1]
        return ranks
    if isinstance(ranks, (str, bytes)) or not isinstance(ranks, Iterable):
        raise ConfigError(f"expected a sequence of integer ranks, got {ranks!r}", key="ranks",
                          allowed=f"distinct integers in 0..{cluster.num_devices - 1}")
    return tuple(ranks)


def group_info(cluster: ClusterSpec, ranks: Ranks, *, concurrent: bool = False) -> GroupInfo:
    """Bandwidth/latency facts for the process group `ranks` (cached; O(len(ranks)) once).

    concurrent=True: the group's sibling groups (its translates across the node's local
    indices, see node_sharers) send through the same NICs at the same time.
    """
    key = _canonical_ranks(cluster, ranks)
    try:
        return _group_info(cluster, key, bool(concurrent))
    except TypeError:  # an unhashable element: report it as bad input
        _check_ranks(cluster, key)
        raise


def node_sharers(cluster: ClusterSpec, ranks: Ranks) -> frozenset[int]:
    """Local indices of the first node of `ranks` whose SPMD sibling groups leave the node.

    A sibling is the group shifted by delta so that its lowest rank is another rank of that node
    (Megatron's groups of one kind are such translates: the DP groups of the other TP ranks,
    the p2p pairs of the other ranks of a stage); the ranks of siblings that span nodes all
    drive NICs at once. Translates that stay inside the node (their traffic rides the scale-up
    link) or run past the last rank are not counted. O(devices_per_node x len(ranks)).
    """
    key = _canonical_ranks(cluster, ranks)
    _check_ranks(cluster, key)
    return _node_sharers(cluster, key)


@functools.lru_cache(maxsize=4096)
def _node_sharers(cluster: ClusterSpec, ranks: tuple[int, ...] | range) -> frozenset[int]:
    dpn, n = cluster.devices_per_node, cluster.num_devices
    members = sorted(ranks)
    lo, hi = members[0], members[-1]
    base = lo // dpn * dpn
    active: set[int] = set()
    for first in range(base, min(base + dpn, n)):
        delta = first - lo
        if hi + delta >= n:
            continue
        node = first // dpn
        shifted = [r + delta for r in members]
        if all(r // dpn == node for r in shifted):
            continue
        active.update(r - base for r in shifted if r // dpn == node)
    return frozenset(active)


def _check_ranks(cluster: ClusterSpec, ranks: tuple[int, ...] | range) -> None:
    allowed = f"distinct integers in 0..{cluster.num_devices - 1}"
    if len(ranks) == 0:
        raise ConfigError("process group is empty", key="ranks", allowed=allowed)
    if isinstance(ranks, range):
        if ranks[0] < 0 or ranks[-1] >= cluster.num_devices:
            raise ConfigError(f"rank out of range in {ranks}", key="ranks", allowed=allowed)
        return
    seen: set[int] = set()
    for r in ranks:
        if isinstance(r, bool) or not isinstance(r, numbers.Integral):
            raise ConfigError(f"rank {r!r} is not an integer", key="ranks", allowed=allowed)
        if not 0 <= r < cluster.num_devices:
            raise ConfigError(f"rank {r} out of range", key="ranks", allowed=allowed)
        if r in seen:
            raise ConfigError(f"rank {r} appears twice", key="ranks", allowed=allowed)
        seen.add(r)


@functools.lru_cache(maxsize=16384)
def _group_info(cluster: ClusterSpec, ranks: tuple[int, ...] | range,
                concurrent: bool = False) -> GroupInfo:
    _check_ranks(cluster, ranks)
    dpn, nics = cluster.devices_per_node, cluster.nics
    # node -> {rail: number of group ranks on that rail}
    nodes: dict[int, dict[int, int]] = {}
    for r in ranks:
        node, local = divmod(r, dpn)
        rail = local * nics // dpn
        rails = nodes.setdefault(node, {})
        rails[rail] = rails.get(rail, 0) + 1
    counts = [sum(rails.values()) for rails in nodes.values()]
    rpn, min_rpn = max(counts), min(counts)
    intra, inter = cluster.intra_node, cluster.inter_node
    own_nics = _nics_of_device(cluster)
    spans = len(nodes) > 1 and _spans_leaves(cluster, nodes)
    oversub = cluster.oversubscription if spans else 1.0
    if own_nics >= 1:
        # Each device drives its own NIC(s); nothing is shared inside the node.
        rank_nics = own_nics
        node_nics = min(min_rpn * own_nics, nics)
    else:
        # Several devices hang off one NIC: the ranks on one rail split it — the group's own
        # and, when concurrent, every sibling group's rank on that rail of the node.
        on_rail: dict[int, int] = {}
        if concurrent and len(nodes) > 1:
            for local in _node_sharers(cluster, ranks):
                rail = local * nics // dpn
                on_rail[rail] = on_rail.get(rail, 0) + 1
        rank_nics = 1.0 / max(max(on_rail.get(i, 0), c)
                              for rails in nodes.values() for i, c in rails.items())
        node_nics = min(sum(c / max(on_rail.get(i, 0), c) for i, c in rails.items())
                        for rails in nodes.values())
    extra_lat = 2 * SWITCH_HOP_LATENCY_S if spans else 0.0
    intra_bw, hops = _scale_up_share(cluster, ranks, rpn)
    return GroupInfo(
        size=len(ranks),
        num_nodes=len(nodes),
        ranks_per_node=rpn,
        min_ranks_per_node=min_rpn,
        intra_bw_Bps=intra_bw,
        inter_bw_Bps=rank_nics * inter.bandwidth_Bps / oversub,
        node_inter_bw_Bps=node_nics * inter.bandwidth_Bps / oversub,
        intra_latency_s=intra.latency_s * hops,
        inter_latency_s=inter.latency_s + extra_lat,
        intra_efficiency=intra.efficiency,
        inter_efficiency=inter.efficiency,
        spans_leaves=spans,
        intra_link=intra.name,
    )


def _scale_up_share(cluster: ClusterSpec, ranks: tuple[int, ...] | range,
                    ranks_per_node: int) -> tuple[float, int]:
    """(per-rank scale-up bandwidth, hops per ring step) of the group on its least-served node.

    A switch (or no topology) gives every rank the link's full figure; a mesh, torus or link
    graph bounds it by the links among the group's members (hwmodels.topology). A group with
    one rank per node never uses the scale-up fabric for itself: the full figure.
    """
    topo = cluster.scale_up
    if topo is None or topo.is_switch or ranks_per_node < 2:
        return cluster.intra_node.bandwidth_Bps, 1
    dpn = cluster.devices_per_node
    by_node: dict[int, list[int]] = {}
    for r in ranks:
        by_node.setdefault(r // dpn, []).append(r % dpn)
    worst_bw, worst_hops = math.inf, 1
    for locals_ in by_node.values():
        if len(locals_) < 2:
            continue
        bw = topo.group_bandwidth_Bps(locals_)
        if bw < worst_bw:
            worst_bw, worst_hops = bw, topo.group_hops(locals_)
    return worst_bw, worst_hops


def _spans_leaves(cluster: ClusterSpec, nodes: dict[int, dict[int, int]]) -> bool:
    """Whether the group's inter-node traffic must climb above its leaf switches."""
    leaf_groups = {node // cluster.nodes_per_leaf for node in nodes}
    if len(leaf_groups) > 1:
        return True
    if cluster.topology is Topology.FAT_TREE:
        return False
    # Rail-optimized: one leaf per rail; NCCL's rings pair same-position ranks of
    # neighbouring nodes, so traffic stays on a rail only if every node uses the same rails.
    layouts = {tuple(sorted(rails.items())) for rails in nodes.values()}
    return len(layouts) > 1


# --------------------------------------------------------------------------------------
# The explicit graph
# --------------------------------------------------------------------------------------


def _leaf_key(cluster: ClusterSpec, node: int, rail: int) -> tuple[str, int, int]:
    group = node // cluster.nodes_per_leaf
    if cluster.topology is Topology.FAT_TREE:
        return ("leaf", group, 0)
    return ("leaf", group, rail)


def cluster_graph(cluster: ClusterSpec) -> nx.Graph:
    """The cluster as a frozen graph (devices, NVSwitches, NICs, leaves, spine); cached.

    A node whose scale-up fabric is a mesh, torus or link graph (ClusterSpec.scale_up) has
    device-device edges, one per link, instead of an NVSwitch.

    Edges carry bandwidth_Bps (per direction) and latency_s; leaf-spine edges also carry
    `ports` (NICs below the leaf) and have their bandwidth divided by the oversubscription.
    """
    return _cluster_graph(cluster)


@functools.lru_cache(maxsize=4)
def _cluster_graph(cluster: ClusterSpec) -> nx.Graph:
    g = nx.Graph(name=cluster.name or f"{cluster.num_devices}x{cluster.device.name}")
    dpn, nics = cluster.devices_per_node, cluster.nics
    intra, inter = cluster.intra_node, cluster.inter_node
    nic_bw, nic_lat = inter.bandwidth_Bps, inter.latency_s
    own_nics = max(1, nics // dpn)
    half_intra = intra.latency_s / 2
    # Split the link latency over the hops of a same-rail path (dev-nic-leaf-nic-dev).
    hop_lat = nic_lat / 4
    su = {"bandwidth_Bps": intra.bandwidth_Bps, "latency_s": half_intra, "kind": "scale_up"}
    nic_edge = {"bandwidth_Bps": nic_bw, "latency_s": hop_lat, "kind": "nic"}
    nodes: list[tuple] = []
    edges: list[tuple] = []
    ports: dict[tuple, int] = {}
    num_nodes = cluster.num_nodes
    topo = cluster.scale_up
    switched = topo is None or topo.is_switch
    for node in range(num_nodes):
        sw = ("nvswitch", node)
        if switched:
            nodes.append((sw, {"kind": "switch", "node": node}))
        for i in range(nics):
            nic = ("nic", node, i)
            leaf = _leaf_key(cluster, node, i)
            nodes.append((nic, {"kind": "nic", "node": node, "rail": i}))
            edges.append((nic, leaf, nic_edge))
            ports[leaf] = ports.get(leaf, 0) + 1
        first = node * dpn
        for local in range(min(dpn, cluster.num_devices - first)):
            dev = ("device", first + local)
            nodes.append((dev, {"kind": "device", "node": node, "local": local}))
            if switched:
                edges.append((dev, sw, su))
            else:  # point-to-point scale-up links (mesh, torus, link graph)
                for peer, bw in topo.neighbours()[local].items():
                    if local < peer < min(dpn, cluster.num_devices - first):
                        edges.append((dev, ("device", first + peer), {
                            "bandwidth_Bps": bw, "latency_s": half_intra, "kind": "scale_up"}))
            base = local * nics // dpn
            for i in range(base, base + own_nics):
                edges.append((dev, ("nic", node, i), nic_edge))
    for leaf, n_ports in ports.items():
        nodes.append((leaf, {"kind": "leaf", "ports": n_ports}))
    if len(ports) > 1:
        nodes.append((("spine",), {"kind": "spine"}))
        for leaf, n_ports in ports.items():
            edges.append((leaf, ("spine",), {
                "bandwidth_Bps": n_ports * nic_bw / cluster.oversubscription,
                "latency_s": SWITCH_HOP_LATENCY_S, "kind": "uplink", "ports": n_ports}))
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    return nx.freeze(g)


def bottleneck_bandwidth(cluster: ClusterSpec, ranks: Ranks) -> float:
    """Per-rank bandwidth (B/s) of the group's ring traffic, routed on the graph (small groups).

    Single node: each rank's scale-up link. Several nodes: rank j of each node sends to rank j
    of the next node (NCCL's per-rail rings) over the shortest path that avoids NVSwitches;
    each edge is shared fairly among the flows crossing it in that direction; a leaf's uplink
    is assumed fully loaded by every NIC below it (all jobs communicating at once).
    """
    key = _canonical_ranks(cluster, ranks)
    _check_ranks(cluster, key)
    g = cluster_graph(cluster)
    by_node: dict[int, list[int]] = {}
    for r in sorted(key):
        by_node.setdefault(cluster.node_of(r), []).append(r)
    node_ids = sorted(by_node)
    if len(node_ids) == 1:
        if cluster.scale_up is not None and not cluster.scale_up.is_switch:
            dpn = cluster.devices_per_node
            return cluster.scale_up.group_bandwidth_Bps([r % dpn for r in key])
        return min(g[("device", r)][("nvswitch", node_ids[0])]["bandwidth_Bps"] for r in key)
    net = nx.subgraph_view(g, filter_node=lambda n: n[0] != "nvswitch")
    paths: list[list[tuple]] = []
    for idx, node in enumerate(node_ids):
        nxt = by_node[node_ids[(idx + 1) % len(node_ids)]]
        for j, r in enumerate(by_node[node]):
            dst = nxt[j % len(nxt)]
            paths.append(nx.shortest_path(net, ("device", r), ("device", dst)))
    load: dict[tuple, int] = {}
    for path in paths:
        for u, v in zip(path, path[1:], strict=False):
            load[(u, v)] = load.get((u, v), 0) + 1
    best = math.inf
    for path in paths:
        for u, v in zip(path, path[1:], strict=False):
            data = g[u][v]
            sharers = max(load[(u, v)], data.get("ports", 0))
            best = min(best, data["bandwidth_Bps"] / sharers)
    return best
