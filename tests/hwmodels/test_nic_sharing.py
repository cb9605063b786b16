"""The network as shared: device-default NICs, the host (PCIe) limit on a NIC, the fabric line,
sibling groups of one node sharing its NICs, and oversubscription above the leaves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hwmodels.catalog import list_devices, list_links, load_device, load_link
from hwmodels.cluster import (
    build_cluster,
    default_nic,
    describe_fabric,
    group_info,
    node_sharers,
)
from hwmodels.collectives import CollectiveOp, collective_time
from hwmodels.errors import ConfigError
from hwmodels.specs import LinkKind
from hwmodels.training.comm import CommModel
from simulator.training import apply_overrides, load_training_scenario, simulate_training

GPT3 = Path(__file__).resolve().parents[2] / "simulator" / "scenarios" / "gpt3-175b-a100.yaml"


@pytest.mark.parametrize("name", list_devices())
def test_every_device_builds_a_multi_node_cluster_with_its_defaults(name: str) -> None:
    dev = load_device(name)
    c = build_cluster(name, 2 * dev.devices_per_node)
    assert c.inter_node.name == dev.default_inter_node
    assert c.inter_node.kind is LinkKind.SCALE_OUT
    assert c.host_link is not None and c.host_link.name == dev.host_link
    assert c.inter_node.bandwidth_Bps <= c.host_link.bandwidth_Bps
    assert dev.default_inter_node in list_links()


@pytest.mark.parametrize(("device", "nic"), [
    ("a100-80gb", "ib-hdr"), ("a100-40gb", "ib-hdr"), ("h100-sxm", "ib-ndr"),
    ("h200", "ib-ndr"), ("h800", "ib-ndr"), ("b200", "ib-ndr"), ("v100", "ib-edr")])
def test_generation_defaults(device: str, nic: str) -> None:
    assert build_cluster(device, 16).inter_node.name == nic


def test_describe_fabric_names_links_and_figures() -> None:
    line = describe_fabric(build_cluster("a100-80gb", 1024, nics_per_node=4,
                                         oversubscription=2.0))
    for needle in ("128 nodes", "8 x a100-80gb", "nvlink3 (300 GB/s)",
                   "4 x ib-hdr NICs/node (25 GB/s each", "behind pcie4 32 GB/s",
                   "rail-optimized", "oversubscription 2"):
        assert needle in line, (needle, line)
    assert "\n" not in line


@pytest.mark.parametrize("nics", [0, 4, 1])
def test_nic_faster_than_the_host_link_is_a_config_error(nics: int) -> None:
    with pytest.raises(ConfigError) as info:
        build_cluster("a100-80gb", 16, inter_node="ib-ndr", nics_per_node=nics)
    err = info.value
    assert err.key == "cluster.inter_node"
    for needle in ("ib-ndr", "50 GB/s", "pcie4", "32 GB/s", "a100-80gb"):
        assert needle in err.message, (needle, err.message)
    allowed = [a.strip() for a in str(err.allowed).split(",")]
    assert "ib-hdr" in allowed and "ib-ndr" not in allowed
    for name in allowed:
        assert load_link(name).bandwidth_Bps <= 32e9


def test_host_limit_spares_single_node_and_fitting_links() -> None:
    assert build_cluster("a100-80gb", 8, inter_node="ib-ndr").num_nodes == 1  # NICs unused
    assert build_cluster("a100-80gb", 16, inter_node="roce-200g").inter_node.name == "roce-200g"
    assert build_cluster("h100-sxm", 16, inter_node="ib-ndr").inter_node.name == "ib-ndr"
    with pytest.raises(ConfigError, match="pcie3"):
        build_cluster("v100", 16, inter_node="ib-hdr")


def _dp_group(n: int = 1024, stride: int = 64) -> tuple[int, ...]:
    return tuple(range(0, n, stride))  # one rank per node, same local index (GPT-3 DP group)


def test_siblings_share_the_nics_when_devices_outnumber_them() -> None:
    share = {}
    for nics in (8, 4, 2):
        c = build_cluster("a100-80gb", 1024, nics_per_node=nics)
        alone = group_info(c, _dp_group())
        shared = group_info(c, _dp_group(), concurrent=True)
        assert alone.inter_bw_Bps == pytest.approx(25e9)  # the group by itself: a whole NIC
        assert node_sharers(c, _dp_group()) == frozenset(range(8))
        share[nics] = shared.inter_bw_Bps
        assert shared.node_inter_bw_Bps == pytest.approx(shared.inter_bw_Bps)
    assert share == pytest.approx({8: 25e9, 4: 12.5e9, 2: 6.25e9})


def test_only_siblings_that_leave_the_node_count() -> None:
    c = build_cluster("a100-80gb", 16, nics_per_node=4)
    # the p2p pair (4, 8) crosses nodes; its siblings (0,4)..(3,7) stay on NVLink
    assert node_sharers(c, (4, 8)) == frozenset({4, 5, 6, 7})
    g = group_info(c, (4, 8), concurrent=True)
    assert g.inter_bw_Bps == pytest.approx(0.5 * 25e9)  # locals 4,5 share rail 2
    assert group_info(c, (0, 1), concurrent=True).num_nodes == 1


def test_comm_model_costs_siblings_and_plain_collectives_do_not() -> None:
    c = build_cluster("a100-80gb", 1024, nics_per_node=2)
    size = 256e6
    plain = collective_time(c, _dp_group(), CollectiveOp.ALL_REDUCE, size).time_s
    shared = CommModel(c, "defaults").all_reduce(_dp_group(), size)
    assert shared > 3 * plain  # a quarter of a NIC instead of a whole one


def _gpt3(**overrides: object) -> float:
    raw = yaml.safe_load(GPT3.read_text())
    raw = apply_overrides(raw, [f"{k}={v}" for k, v in overrides.items()])
    sc = load_training_scenario(raw, file=str(GPT3))
    return simulate_training(sc.plan()).iteration_time_s


def test_gpt3_iteration_slows_strictly_as_nics_per_node_drop() -> None:
    times = [_gpt3(**{"cluster.nics_per_node": n}) for n in (8, 4, 2)]
    assert times[0] < times[1] < times[2], times
    # the default (one HDR NIC per GPU) is the 8-NIC figure
    assert _gpt3() == pytest.approx(times[0], rel=1e-12)


def test_oversubscription_slows_dp_that_spans_leaves() -> None:
    base = _gpt3()
    # 128 nodes, 32 per leaf: the DP groups (every 8th node) span four leaves
    assert _gpt3(**{"cluster.oversubscription": 4}) > base
    # everything under one leaf: oversubscription never applies
    one_leaf = {"cluster.nodes_per_leaf": 128, "cluster.topology": "fat-tree"}
    assert _gpt3(**one_leaf, **{"cluster.oversubscription": 4}) == pytest.approx(
        _gpt3(**one_leaf), rel=1e-12)


@pytest.mark.parametrize(("host", "nic"), [("pcie5", "ib-ndr"), ("pcie4", "ib-hdr"),
                                           ("pcie3", "ib-edr")])
def test_device_without_a_default_gets_the_fastest_ib_its_host_link_carries(host: str,
                                                                          nic: str) -> None:
    import dataclasses

    dev = dataclasses.replace(load_device("h100-sxm"), host_link=host, default_inter_node="")
    assert default_nic(dev) == nic
    assert build_cluster(dev, 16).inter_node.name == nic
