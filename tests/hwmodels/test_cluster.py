"""Cluster building, per-group bandwidth arithmetic, and the topology graph that cross-checks it."""

from __future__ import annotations

import networkx as nx
import pytest

from hwmodels.catalog import load_link
from hwmodels.cluster import (
    GroupInfo,
    bottleneck_bandwidth,
    build_cluster,
    cluster_graph,
    group_info,
    rail_of,
)
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap
from hwmodels.specs import DeviceSpec, Topology

NDR_Bps = 50e9  # 400 Gb/s per NIC (ConnectX-7)


def h100(devices_per_node: int = 8) -> DeviceSpec:
    """An H100 SXM as the cluster code needs it (NVLink4 scale-up, 8 per HGX node)."""
    return DeviceSpec(name="h100-sxm", vendor="nvidia", peak_flops=FrozenMap({DType.BF16: 989e12}),
                      memory_bytes=80 * 2**30, memory_bw_Bps=3.35e12, scale_up_link="nvlink4",
                      scale_up_bw_Bps=450e9, host_link="pcie5", tdp_w=700, idle_w=100,
                      price_usd_per_hour=2.5, devices_per_node=devices_per_node)


def test_build_cluster_defaults_come_from_the_catalog() -> None:
    c = build_cluster(h100(), 64)
    assert c.intra_node == load_link("nvlink4")
    assert c.inter_node == load_link("ib-ndr")
    assert c.devices_per_node == 8 and c.num_nodes == 8 and c.nics == 8
    assert c.topology is Topology.RAIL_OPTIMIZED


def test_build_cluster_overrides() -> None:
    c = build_cluster(h100(), 16, devices_per_node=4, intra_node="pcie5", inter_node="roce-400g",
                      nics_per_node=2, topology="fat-tree", oversubscription=2, name="x")
    assert (c.devices_per_node, c.num_nodes, c.nics) == (4, 4, 2)
    assert c.intra_node.name == "pcie5" and c.inter_node.name == "roce-400g"
    assert c.topology is Topology.FAT_TREE and c.oversubscription == 2.0


@pytest.mark.parametrize("kwargs, key", [
    ({"topology": "torus"}, "cluster.topology"),
    ({"inter_node": "ib-xdr"}, "cluster.inter_node"),
    ({"intra_node": "nvlink9"}, "cluster.intra_node"),
    ({"devices_per_node": 2.5}, "cluster.devices_per_node"),
    ({"oversubscription": 0.5}, "cluster.oversubscription"),
])
def test_build_cluster_rejects_bad_input(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_cluster(h100(), 16, **kwargs)
    assert err.value.key == key
    if "topology" in kwargs:
        assert "rail-optimized" in str(err.value) and "fat-tree" in str(err.value)
    if "inter_node" in kwargs:
        assert "ib-ndr" in str(err.value)


def test_group_inside_one_node() -> None:
    c = build_cluster(h100(), 64)
    g = group_info(c, range(8, 16))
    assert (g.size, g.num_nodes, g.ranks_per_node) == (8, 1, 8)
    assert g.intra_bw_Bps == 450e9 and not g.spans_leaves


def test_one_rank_per_node_gets_one_nic() -> None:
    c = build_cluster(h100(), 128)
    g = group_info(c, range(0, 128, 8))
    assert (g.size, g.num_nodes, g.ranks_per_node) == (16, 16, 1)
    assert g.inter_bw_Bps == NDR_Bps  # not 8 NICs: a GPU drives its own rail's NIC
    assert g.node_inter_bw_Bps == NDR_Bps


def test_full_nodes_use_all_nics() -> None:
    c = build_cluster(h100(), 128)
    g = group_info(c, range(32))
    assert (g.num_nodes, g.ranks_per_node) == (4, 8)
    assert g.inter_bw_Bps == NDR_Bps
    assert g.node_inter_bw_Bps == 8 * NDR_Bps


def test_shared_nics_split_bandwidth() -> None:
    # 4 NICs for 8 GPUs: locals 0,1 share NIC 0, locals 2,3 share NIC 1.
    c = build_cluster(h100(), 32, nics_per_node=4)
    assert [rail_of(c, i) for i in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert group_info(c, [0, 1, 8, 9]).inter_bw_Bps == NDR_Bps / 2
    assert group_info(c, [0, 2, 8, 10]).inter_bw_Bps == NDR_Bps
    assert group_info(c, range(32)).node_inter_bw_Bps == 4 * NDR_Bps


def test_oversubscription_halves_cross_leaf_bandwidth() -> None:
    kw = {"topology": "fat-tree", "nodes_per_leaf": 2}
    flat = build_cluster(h100(), 64, **kw)
    over = build_cluster(h100(), 64, oversubscription=2.0, **kw)
    cross = range(0, 64, 8)  # 8 nodes over 4 leaves
    assert group_info(flat, cross).spans_leaves and group_info(over, cross).spans_leaves
    assert group_info(over, cross).inter_bw_Bps == pytest.approx(
        group_info(flat, cross).inter_bw_Bps / 2, rel=1e-12)
    inside = [0, 8]  # nodes 0 and 1 share leaf 0
    assert not group_info(over, inside).spans_leaves
    assert group_info(over, inside).inter_bw_Bps == NDR_Bps


def test_rail_optimized_cross_rail_traffic_climbs_to_the_spine() -> None:
    c = build_cluster(h100(), 64, oversubscription=2.0)
    same_rail = group_info(c, [0, 8])
    cross_rail = group_info(c, [0, 9])
    assert not same_rail.spans_leaves and same_rail.inter_bw_Bps == NDR_Bps
    assert cross_rail.spans_leaves and cross_rail.inter_bw_Bps == NDR_Bps / 2
    assert cross_rail.inter_latency_s > same_rail.inter_latency_s


def test_group_info_is_cached_and_order_free() -> None:
    c = build_cluster(h100(), 64)
    a = group_info(c, range(0, 64, 4))
    assert group_info(c, range(0, 64, 4)) is a
    assert group_info(c, list(reversed(range(0, 64, 4)))) == a
    assert group_info(c, range(60, -1, -4)) == a
    assert isinstance(a, GroupInfo)


@pytest.mark.parametrize("ranks", [[], [0, 0], [0, 64], [-1, 3], range(60, 72), [0, 1.5], "01",
                                   range(0)])
def test_group_info_rejects_bad_ranks(ranks: object) -> None:
    c = build_cluster(h100(), 64)
    with pytest.raises(ConfigError) as err:
        group_info(c, ranks)  # type: ignore[arg-type]
    assert err.value.key == "ranks"
    assert "0..63" in str(err.value)


def test_graph_structure_rail_optimized() -> None:
    c = build_cluster(h100(), 128, nodes_per_leaf=8, oversubscription=2.0)
    g = cluster_graph(c)
    kinds: dict[str, int] = {}
    for _, data in g.nodes(data=True):
        kinds[data["kind"]] = kinds.get(data["kind"], 0) + 1
    # 16 nodes, 2 leaf groups x 8 rails, one spine.
    assert kinds == {"device": 128, "switch": 16, "nic": 128, "leaf": 16, "spine": 1}
    uplink = g[("leaf", 0, 3)][("spine",)]
    assert uplink["ports"] == 8 and uplink["bandwidth_Bps"] == 8 * NDR_Bps / 2
    assert g[("device", 13)][("nic", 1, 5)]["bandwidth_Bps"] == NDR_Bps
    assert g[("device", 13)][("nvswitch", 1)]["bandwidth_Bps"] == 450e9
    assert cluster_graph(c) is g
    with pytest.raises(nx.NetworkXError):
        g.add_node("intruder")


def test_graph_structure_fat_tree_single_leaf() -> None:
    c = build_cluster(h100(), 32, topology="fat-tree")
    g = cluster_graph(c)
    leaves = [n for n, d in g.nodes(data=True) if d["kind"] == "leaf"]
    assert leaves == [("leaf", 0, 0)] and ("spine",) not in g
    assert g.degree[("leaf", 0, 0)] == 32  # every NIC of the 4 nodes


def test_graph_is_linear_in_devices() -> None:
    small = cluster_graph(build_cluster(h100(), 256))
    large = cluster_graph(build_cluster(h100(), 2048))
    ratio = large.number_of_edges() / small.number_of_edges()
    assert 7.5 < ratio < 8.5


CASES = [
    # (cluster kwargs, num_devices, ranks)
    ({}, 64, range(8)),
    ({}, 64, range(0, 64, 8)),
    ({}, 64, range(64)),
    ({}, 64, [0, 9]),
    ({"oversubscription": 2.0}, 64, [0, 9]),
    ({"oversubscription": 2.0}, 64, [0, 1, 8]),
    ({"oversubscription": 2.0}, 64, [0, 8, 16]),
    ({"oversubscription": 3.0, "nodes_per_leaf": 2}, 64, range(0, 64, 8)),
    ({"oversubscription": 2.0, "nodes_per_leaf": 2, "topology": "fat-tree"}, 64, [3, 9]),
    ({"oversubscription": 2.0, "nodes_per_leaf": 2, "topology": "fat-tree"}, 64, [3, 40]),
    ({"nics_per_node": 4}, 32, [0, 1, 8, 9]),
    ({"nics_per_node": 4}, 32, [0, 2, 8, 10]),
    ({"nics_per_node": 4, "oversubscription": 2.0}, 32, [0, 2, 8, 12]),
    ({"devices_per_node": 4, "nics_per_node": 4}, 32, range(0, 32, 2)),
]


@pytest.mark.parametrize("kwargs, num_devices, ranks", CASES)
def test_arithmetic_agrees_with_graph(kwargs: dict, num_devices: int, ranks: object) -> None:
    c = build_cluster(h100(), num_devices, **kwargs)
    g = group_info(c, ranks)  # type: ignore[arg-type]
    expected = g.intra_bw_Bps if g.num_nodes == 1 else g.inter_bw_Bps
    assert bottleneck_bandwidth(c, ranks) == pytest.approx(expected, rel=1e-9)  # type: ignore[arg-type]


def test_catalog_device_by_name() -> None:
    c = build_cluster("h100-sxm", 16)
    assert c.device.name == "h100-sxm" and c.intra_node.name == "nvlink4"
    assert c.num_nodes == 2 and c.inter_node.name == "ib-ndr"


def test_device_scale_up_bandwidth_wins_over_the_shared_link_figure() -> None:
    # An MI250X GCD (350 GB/s over its 7 xGMI links) shares the 'infinity-fabric' entry
    # written for MI300X (448).
    c = build_cluster("mi250x", 8)
    assert c.intra_node.name == "infinity-fabric"
    assert c.intra_node.bandwidth_Bps == c.device.scale_up_bw_Bps == 350e9


def test_unknown_device_and_bad_node_multiple() -> None:
    with pytest.raises(ConfigError) as err:
        build_cluster("h900", 8)
    assert "h100-sxm" in str(err.value)
    with pytest.raises(ConfigError) as err:
        build_cluster("h100-sxm", 12)
    assert err.value.key == "cluster.num_devices"
