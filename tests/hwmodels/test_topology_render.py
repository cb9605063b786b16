"""hwmodels.topology_render: the drawing shows every chip once and every link it draws exists;
the per-group figures are group_info's; the facts match the topology."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.catalog import load_device
from hwmodels.cluster import build_cluster, group_info
from hwmodels.topology import ScaleUpFabric, ScaleUpKind, ScaleUpTopology
from hwmodels.topology_render import (
    MAX_GRID_AXIS,
    WRAP_MARK,
    adjacency_table,
    grid_cells,
    group_rows,
    render_cluster,
    scale_up_lines,
    topology_facts,
    torus_axes,
    torus_grid,
    typical_groups,
)

GBPS = 1e9


def _torus(nx: int, ny: int, wrap: tuple[bool, bool]) -> ScaleUpTopology:
    return ScaleUpTopology(kind=ScaleUpKind.TORUS, size=nx * ny, link_bw_Bps=45 * GBPS,
                           dims=(nx, ny), wrap=wrap)


def _grid_ids(lines: list[str]) -> list[int]:
    return [int(t) for ln in lines for t in ln.replace("-", " ").split() if t.isdigit()]


@settings(max_examples=60, deadline=None)
@given(nx=st.integers(1, MAX_GRID_AXIS), ny=st.integers(1, MAX_GRID_AXIS),
       wx=st.booleans(), wy=st.booleans())
def test_grid_draws_every_chip_once_row_major(nx: int, ny: int, wx: bool, wy: bool) -> None:
    lines = torus_grid(_torus(nx, ny, (wx, wy)))
    assert _grid_ids(lines) == list(range(nx * ny))  # axis 0 fastest, each chip once
    assert grid_cells(lines) == nx * ny
    chip_rows = [ln for ln in lines if any(c.isdigit() for c in ln)]
    assert len(chip_rows) == ny
    for ln in chip_rows:  # nx - 1 horizontal links between neighbours on a row
        assert ln.count("-") == nx - 1
        assert (ln.strip().startswith(WRAP_MARK) and ln.endswith(WRAP_MARK)) == wx
    link_rows = [ln for ln in lines if ln.strip() and not any(c.isdigit() for c in ln)]
    assert sum(ln.count("|") for ln in link_rows) == nx * (ny - 1)
    assert sum(ln.count(WRAP_MARK) for ln in link_rows) == (2 * nx if wy else 0)
    assert max(len(ln) for ln in lines) <= 80


def test_grid_vertical_links_sit_under_their_chip() -> None:
    lines = torus_grid(_torus(4, 2, (False, False)))
    first, links = lines[0], lines[1]
    for pos, ch in enumerate(links):
        if ch == "|":
            assert first[pos].isdigit()
    assert links.count("|") == 4


def test_grid_refuses_3d_and_oversize() -> None:
    topo3 = ScaleUpTopology(kind=ScaleUpKind.TORUS, size=64, link_bw_Bps=45 * GBPS,
                            dims=(4, 4, 4), wrap=(True, True, True))
    with pytest.raises(ValueError):
        torus_grid(topo3)
    with pytest.raises(ValueError):
        torus_grid(_torus(32, 2, (False, False)))


def test_3d_torus_is_summarised_per_axis() -> None:
    topo = ScaleUpTopology(kind=ScaleUpKind.TORUS, size=64, link_bw_Bps=45 * GBPS,
                           dims=(4, 4, 4), wrap=(True, False, True))
    lines = torus_axes(topo)
    assert len(lines) == 3
    assert "wraps" in lines[0] and "2 x 45 = 90 GB/s" in lines[0]
    assert "no wrap" in lines[1] and "1 x 45 = 45 GB/s" in lines[1]


def test_pod_16x16_with_wraparound_from_the_catalog() -> None:
    c = build_cluster("tpu-v5e", 256)
    assert c.scale_up is not None and c.scale_up.dims == (16, 16)
    text = "\n".join(render_cluster(c))
    assert "2D torus 16x16 (axis 0 wraps, axis 1 wraps)" in text
    assert " 255 " + WRAP_MARK in text or "255 " + WRAP_MARK in text
    facts = topology_facts(c)
    assert facts["scale_up"]["dims"] == [16, 16] and facts["scale_up"]["wrap"] == [True, True]
    json.dumps(facts)  # plain JSON types only


def test_mesh_adjacency_lists_each_peer_link() -> None:
    c = build_cluster("mi300x", 8)
    table = adjacency_table(c.scale_up)
    assert len(table) == 9
    for a, row in enumerate(table[1:]):
        cells = row.split()
        assert cells[0] == str(a)
        assert cells[1 + a] == "-"
        assert cells[1:9].count("64") == 7
        assert cells[-1] == "448"
    links = topology_facts(c)["scale_up"]["links"]
    assert len(links) == 8 * 7 // 2 and all(bw == 64 for _, _, bw in links)


def _graph_cluster() -> object:
    """A 4-GCD node as a link graph: a fast pair, slower links around (MI250X-like)."""
    fabric = ScaleUpFabric(kind=ScaleUpKind.GRAPH, graph_size=4, edges=(
        (0, 1, 200 * GBPS), (1, 2, 50 * GBPS), (2, 3, 200 * GBPS), (3, 0, 50 * GBPS)))
    dev = dataclasses.replace(load_device("mi250x"), scale_up_fabric=fabric,
                              devices_per_node=4)
    return build_cluster(dev, 8)


def test_graph_adjacency_matches_neighbours_and_missing_links_are_dots() -> None:
    c = _graph_cluster()
    topo = c.scale_up
    table = adjacency_table(topo)
    adj = topo.neighbours()
    for a, row in enumerate(table[1:]):
        cells = row.split()[1:5]
        for b, cell in enumerate(cells):
            if a == b:
                assert cell == "-"
            elif b in adj[a]:
                assert float(cell) == adj[a][b] / GBPS
            else:
                assert cell == "."
    assert "link graph: 4 devices, 4 links" in scale_up_lines(c)[0]


def test_group_rows_are_group_info() -> None:
    for c in (build_cluster("tpu-v5e", 512, devices_per_node=256),
              build_cluster("ascend-910b", 32), build_cluster("h100-sxm", 16), _graph_cluster()):
        for row in group_rows(c):
            info = group_info(c, row.ranks, concurrent=True)
            assert row.size == info.size == len(row.ranks)
            assert row.num_nodes == info.num_nodes
            if info.ranks_per_node > 1:
                assert row.intra_bw_Bps == info.intra_bw_Bps
                assert row.hops * c.intra_node.latency_s == pytest.approx(info.intra_latency_s)
            else:
                assert row.intra_bw_Bps is None
            assert (row.inter_bw_Bps is None) == (info.num_nodes == 1)


def test_typical_groups_cover_tp_node_and_one_per_node() -> None:
    c = build_cluster("tpu-v5e", 512, devices_per_node=256)
    names = dict(typical_groups(c))
    assert names["TP8"] == tuple(range(8))
    assert names["axis 1 ring (16)"] == tuple(range(0, 256, 16))
    assert names["whole slice (256)"] == tuple(range(256))
    assert names["one rank per slice (2)"] == (0, 256)
    rows = {r.name: r for r in group_rows(c)}
    # a full wrapped axis has 2 rings; a 4-chip line on a 16-chip axis only one
    assert rows["axis 0 ring (16)"].intra_bw_Bps == 2 * 45 * GBPS
    assert rows["TP4"].intra_bw_Bps == 45 * GBPS
    assert rows["whole slice (256)"].intra_bw_Bps == 4 * 45 * GBPS
    # 64 DCN NICs per 256-chip slice (2 per 8-chip host): a chip's share is a quarter NIC
    assert c.nics == 64
    assert rows["one rank per slice (2)"].inter_bw_Bps == c.inter_node.bandwidth_Bps / 4


def test_mesh_group_bandwidth_grows_with_members() -> None:
    rows = {r.name: r for r in group_rows(build_cluster("mi300x", 8))}
    assert rows["TP2"].intra_bw_Bps == 64 * GBPS
    assert rows["TP4"].intra_bw_Bps == 3 * 64 * GBPS
    assert rows["whole node (8)"].intra_bw_Bps == 7 * 64 * GBPS


def test_switch_and_scale_out_lines() -> None:
    c = build_cluster("h100-sxm", 16)
    lines = render_cluster(c)
    text = "\n".join(lines)
    assert "switch: 8 devices per node over nvlink4, 450 GB/s" in text
    assert "2 nodes, 8 x ib-ndr NIC(s) per node (50 GB/s each, behind pcie5 64 GB/s)" in text
    assert lines[-1].startswith("fabric: 2 nodes of 8 x h100-sxm")
    facts = topology_facts(c)
    assert facts["scale_up"]["kind"] == "switch"
    assert facts["scale_out"]["num_nodes"] == 2 and facts["scale_out"]["nics_per_node"] == 8


def test_tpu_cluster_speaks_of_slices() -> None:
    text = "\n".join(render_cluster(build_cluster("tpu-v5e", 512, devices_per_node=256)))
    assert "2 slices of 256" in text and "per slice" in text
    assert math.isfinite(topology_facts(build_cluster("tpu-v5e", 8))["groups"][0]["hops"])


def test_huge_cluster_group_is_capped_not_enumerated() -> None:
    from hwmodels.topology_render import MAX_GROUP_NODES

    c = build_cluster("h100-sxm", 8 * 10**9)
    name, ranks = typical_groups(c)[-1]
    assert len(ranks) == MAX_GROUP_NODES and name.startswith("one rank per node (first")
    assert group_rows(c)[-1].inter_bw_Bps == c.inter_node.bandwidth_Bps


def test_plan_groups_are_the_placement_groups() -> None:
    from hwmodels.parallel import ParallelConfig
    from hwmodels.topology_render import plan_groups

    groups = dict(plan_groups(ParallelConfig(tp=8, pp=2, dp=4)))
    assert groups["plan TP (8)"] == tuple(range(8))
    assert groups["plan DP (4)"] == (0, 8, 16, 24)
    assert groups["plan PP link (stage 0 -> 1)"] == (0, 32)
    assert "plan CP (1)" not in groups  # one-rank groups are left out
    c = build_cluster("tpu-v5e", 64)
    text = "\n".join(render_cluster(c, plan_groups(ParallelConfig(tp=8, pp=2, dp=4))))
    assert "the scenario's process groups" in text and "plan PP link" in text
    facts = topology_facts(c, plan_groups(ParallelConfig(tp=8, pp=2, dp=4)))
    assert [g["name"] for g in facts["plan_groups"]][0] == "plan TP (8)"
