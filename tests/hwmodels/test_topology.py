"""Scale-up topologies (hwmodels.topology) and how group_info uses them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.cluster import build_cluster, cluster_graph, group_info
from hwmodels.errors import ConfigError
from hwmodels.topology import (
    ScaleUpFabric,
    ScaleUpKind,
    ScaleUpTopology,
    WrapRule,
    build_topology,
    default_torus_shape,
    torus_wraps,
)

V5E = ScaleUpFabric(kind=ScaleUpKind.TORUS, link_bw_Bps=45e9, max_dims=(16, 16),
                    wrap=WrapRule.FULL_AXIS)


def test_switch_clusters_are_unchanged() -> None:
    c = build_cluster("h100-sxm", 64)
    assert c.scale_up is None
    assert group_info(c, range(2)).intra_bw_Bps == group_info(c, range(8)).intra_bw_Bps == 450e9


def test_mesh_group_drives_its_direct_links() -> None:
    c = build_cluster("mi300x", 8)
    assert c.scale_up is not None and c.scale_up.kind is ScaleUpKind.MESH
    assert [group_info(c, range(k)).intra_bw_Bps / 1e9 for k in (2, 4, 8)] == [64, 192, 448]


def test_torus_axes_wraparound_and_stride() -> None:
    c = build_cluster("tpu-v5e", 256)
    assert c.scale_up.dims == (16, 16) and c.scale_up.wrap == (True, True)
    row, column, pod = range(16), range(0, 256, 16), range(256)
    assert group_info(c, row).intra_bw_Bps == 2 * 45e9  # one axis, both directions
    assert group_info(c, column).intra_bw_Bps == 2 * 45e9
    assert group_info(c, pod).intra_bw_Bps == 4 * 45e9  # both axes
    assert group_info(c, range(4)).intra_bw_Bps == 45e9  # a line: no wraparound
    strided = group_info(c, range(0, 16, 4))  # 4 hops apart: shares links with 3 siblings
    assert strided.intra_bw_Bps == 2 * 45e9 / 4
    assert strided.intra_latency_s == pytest.approx(4 * group_info(c, row).intra_latency_s)


def test_small_slice_has_no_wraparound() -> None:
    c = build_cluster("tpu-v5e", 8)
    assert c.scale_up.dims == (4, 2) and c.scale_up.wrap == (False, False)
    assert group_info(c, range(8)).intra_bw_Bps == 2 * 45e9


def test_wrap_rules() -> None:
    assert torus_wraps(V5E, (16, 16)) == (True, True)
    assert torus_wraps(V5E, (8, 16)) == (False, True)
    cube = ScaleUpFabric(kind=ScaleUpKind.TORUS, link_bw_Bps=1e9, max_dims=(16, 16, 24),
                         wrap=WrapRule.MULTIPLE_OF_4)
    assert torus_wraps(cube, (4, 4, 8)) == (True, True, True)
    assert torus_wraps(cube, (2, 2, 1)) == (False, False, False)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128, 256]))
def test_default_shape_fits_the_pod(size: int) -> None:
    dims = default_torus_shape(V5E, size)
    assert dims[0] * dims[1] == size and max(dims) <= 16


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 63), min_size=2, max_size=16, unique=True))
def test_group_bandwidth_never_exceeds_a_members_links(members: list[int]) -> None:
    topo = build_topology(V5E, 64, 180e9)
    bw = topo.group_bandwidth_Bps(members)
    assert 0 < bw <= 4 * 45e9
    assert topo.group_hops(members) >= 1


def test_graph_fabric_bounds_by_in_group_links() -> None:
    # two packages of two dies: 200 inside a package, 50 between them
    edges = ((0, 1, 200e9), (2, 3, 200e9), (0, 2, 50e9), (1, 3, 50e9))
    topo = ScaleUpTopology(kind=ScaleUpKind.GRAPH, size=4, link_bw_Bps=50e9, edges=edges)
    assert topo.group_bandwidth_Bps([0, 1]) == 200e9
    # a member's own links give 250, but ring traffic crosses the package split (two 50 GB/s
    # links each way): the min-cut bound (helper amd, issue 18)
    assert topo.group_bandwidth_Bps([0, 1, 2, 3]) == 100e9
    assert topo.group_bandwidth_Bps([0, 3]) == 50e9 / 2  # routed over two hops
    assert topo.group_hops([0, 3]) == 2


def test_graph_edges_are_checked() -> None:
    with pytest.raises(ConfigError, match="distinct devices"):
        ScaleUpTopology(kind=ScaleUpKind.GRAPH, size=2, link_bw_Bps=1e9, edges=((0, 2, 1e9),))
    with pytest.raises(ConfigError, match="twice"):
        ScaleUpTopology(kind=ScaleUpKind.GRAPH, size=2, link_bw_Bps=1e9,
                        edges=((0, 1, 1e9), (1, 0, 1e9)))


@pytest.mark.parametrize(("shape", "match"), [
    ([16, 8], "has 128 chips"), ([256], "has 1 axes"), ([32, 8], "exceeds the pod"),
    ([16, 0], "positive integers"),
])
def test_bad_slice_shape(shape: list[int], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        build_cluster("tpu-v5e", 256, slice_shape=shape)
    assert err.value.key == "cluster.slice_shape"


def test_slice_shape_on_a_switch_is_refused() -> None:
    with pytest.raises(ConfigError, match="torus"):
        build_cluster("h100-sxm", 8, slice_shape=[2, 4])


def test_a_link_the_device_lacks_is_refused() -> None:
    with pytest.raises(ConfigError, match="mi300x has no nvlink4") as err:
        build_cluster("mi300x", 8, intra_node="nvlink4")
    assert err.value.key == "cluster.intra_node" and "infinity-fabric" in err.value.allowed
    # PCIe is always there: the node becomes a PCIe switch
    assert build_cluster("mi300x", 8, intra_node="pcie5").scale_up is None


def test_naming_the_own_link_keeps_the_device_figure() -> None:
    """intra_node: infinity-fabric on an MI250X GCD is the GCD's link, not MI300X's 448 GB/s."""
    named = build_cluster("mi250x", 8, intra_node="infinity-fabric")
    default = build_cluster("mi250x", 8)
    assert named.intra_node == default.intra_node
    assert named.intra_node.bandwidth_Bps < 448e9


def test_graph_of_mesh_has_device_links() -> None:
    g = cluster_graph(build_cluster("mi300x", 8))
    links = [e for e in g.edges(data=True) if e[2]["kind"] == "scale_up"]
    assert len(links) == 28 and not any(n[0] == "nvswitch" for n in g.nodes)


@pytest.mark.parametrize(("device", "n", "nics"), [
    ("tpu-v5e", 512, 64),  # 2 DCN NICs per 8-chip host
    ("tpu-v6e", 256, 128),  # 4 per 8-chip host
    ("mi250x", 16, 4),  # one Slingshot NIC per package of 2 GCDs
    ("mi250x-package", 8, 4),
    ("gaudi2", 16, 24),  # 3 scale-out ports per card
    ("h100-sxm", 16, 8),
])
def test_default_nics_follow_the_catalog(device: str, n: int, nics: int) -> None:
    assert build_cluster(device, n).nics == nics
    assert build_cluster(device, n, nics_per_node=2).nics == 2  # an explicit count wins
