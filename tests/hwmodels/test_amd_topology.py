"""AMD scale-up fabrics as built: the Frontier MI250X GCD graph and the MI300X xGMI mesh."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.catalog import load_device, load_link
from hwmodels.cluster import build_cluster, group_info
from hwmodels.errors import ConfigError


def _frontier():  # noqa: ANN202
    return build_cluster("mi250x", 8, nics_per_node=4)


def test_gcd_links_follow_the_lab_notes_measurement() -> None:
    """GCD 0's neighbours and link counts as the AMD lab notes' osu_bw shows them: sibling
    GCD 1 over 4 links (142 GB/s measured), GCD 6 over 2 (76), GCD 2 over 1 (39), the rest
    two hops or more (35-69)."""
    nbrs = _frontier().scale_up.neighbours()
    assert nbrs[0] == {1: 200e9, 6: 100e9, 2: 50e9}
    assert all(sum(peers.values()) == 350e9 for peers in nbrs.values())
    # the measured ordering of GCD 0's peers is the links' ordering
    measured = {1: 142.2, 6: 76.3, 2: 39.0}
    assert sorted(measured, key=measured.get) == sorted(nbrs[0], key=nbrs[0].get)


def test_group_bandwidths() -> None:
    c = _frontier()
    eff = c.intra_node.efficiency
    tp2 = group_info(c, (0, 1))
    assert tp2.intra_bw_Bps == 200e9  # inside a package: 4 xGMI links
    # x 0.7 link efficiency = 140 GB/s, the lab notes' 142 GB/s GCD0->1 kernel copy
    assert tp2.intra_bw_Bps * eff == pytest.approx(142.2e9, rel=0.02)
    # TP8 over the node: the 4 single links between {0,1,6,7} and {2,3,4,5} bound it
    assert group_info(c, tuple(range(8))).intra_bw_Bps == 200e9
    # TP4 on packages 0 and 1: two single links between them
    assert group_info(c, (0, 1, 2, 3)).intra_bw_Bps == 100e9
    # two GCDs with no direct link: one ring routed over two hops
    far = group_info(c, (0, 3))
    assert far.intra_bw_Bps < group_info(c, (0, 2)).intra_bw_Bps and far.intra_latency_s > \
        tp2.intra_latency_s


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 7), min_size=2, max_size=8))
def test_a_group_never_beats_its_best_member_links(members: set) -> None:
    c = _frontier()
    nbrs = c.scale_up.neighbours()
    bw = group_info(c, tuple(sorted(members))).intra_bw_Bps
    assert 0 < bw <= max(sum(nbrs[m].values()) for m in members)


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(0, 7), min_size=2, max_size=7), st.integers(0, 7))
def test_adding_a_member_never_raises_the_bound_above_the_cut(members: set, extra: int) -> None:
    """Every split of the group bounds its bandwidth: no group exceeds the links leaving any
    subset of it."""
    c = _frontier()
    nbrs = c.scale_up.neighbours()
    group = sorted(members | {extra})
    bw = group_info(c, tuple(group)).intra_bw_Bps
    for r in range(1, len(group)):
        for side in itertools.combinations(group, r):
            cut = sum(w for a in side for b, w in nbrs[a].items() if b in group and b not in side)
            if cut > 0:
                assert bw <= cut + 1e-3


def test_mi300x_mesh() -> None:
    c = build_cluster("mi300x", 8)
    assert group_info(c, tuple(range(8))).intra_bw_Bps == 7 * 64e9
    assert group_info(c, (0, 1)).intra_bw_Bps == 64e9
    assert group_info(c, (0, 1, 2, 3)).intra_bw_Bps == 3 * 64e9


def test_slingshot_is_the_frontier_nic() -> None:
    ss = load_link("slingshot-11")
    assert ss.bandwidth_Bps == 25e9 and ss.kind == "scale_out"
    c = build_cluster("mi250x", 16, nics_per_node=4)
    assert c.inter_node.name == "slingshot-11" and c.num_nodes == 2
    g = group_info(c, (0, 8))  # two GCDs on one rail of two nodes share its NIC with a sibling
    assert g.num_nodes == 2 and g.inter_bw_Bps <= 25e9


def test_mi250x_node_size_is_checked() -> None:
    with pytest.raises(ConfigError, match="nodes of 8 devices") as err:
        build_cluster("mi250x", 4, devices_per_node=4)
    assert err.value.key == "cluster.devices_per_node"


def test_a_link_the_gcd_lacks_exits() -> None:
    with pytest.raises(ConfigError, match="mi250x has no nvlink3") as err:
        build_cluster("mi250x", 8, intra_node="nvlink3")
    assert err.value.key == "cluster.intra_node"
    assert load_device("mi250x").scale_up_link == "infinity-fabric"
