"""Ascend 910B bins and Intel Gaudi 2/3 as catalogued (devices.yaml, links.yaml)."""

from __future__ import annotations

import pytest

from hwmodels import catalog
from hwmodels.cluster import build_cluster, group_info
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.topology import ScaleUpKind

GiB = 1024**3
# (cube cores, cube MHz, GiB) per bin: CANN 8.1.RC1 data/platform_config/Ascend910B{1..4}.ini
BINS = {"ascend-910b1": (24, 1850, 64), "ascend-910b": (24, 1800, 64),
        "ascend-910b3": (20, 1800, 64), "ascend-910b4": (20, 1500, 32)}


@pytest.mark.parametrize(("name", "spec"), list(BINS.items()))
def test_bin_peak_is_the_cube_array_rate(name: str, spec: tuple[int, int, int]) -> None:
    cores, mhz, gib = spec
    d = catalog.load_device(name)
    cube = 2 * cores * 16**3 * mhz * 1e6  # 16x16x16 MACs per core per cycle
    assert d.peak(DType.BF16) == pytest.approx(cube, rel=1e-3)
    assert d.peak_flops[DType.INT8] == pytest.approx(2 * cube, rel=1e-3)
    assert d.memory_bytes == gib * GiB


def test_bins_share_one_family() -> None:
    base = catalog.load_device("ascend-910b")
    for name in BINS:
        d = catalog.load_device(name)
        assert (d.scale_up_link, d.scale_up_fabric, d.default_inter_node, d.gemm_efficiency,
                d.memory_efficiency, d.devices_per_node) == \
            (base.scale_up_link, base.scale_up_fabric, base.default_inter_node,
             base.gemm_efficiency, base.memory_efficiency, base.devices_per_node)
    ordered = sorted(BINS, key=lambda n: catalog.load_device(n).peak(DType.BF16))
    assert ordered == ["ascend-910b4", "ascend-910b3", "ascend-910b", "ascend-910b1"]


@pytest.mark.parametrize(("alias", "name"), [("910b", "ascend-910b"), ("910b2", "ascend-910b"),
                                             ("ascend-910b2", "ascend-910b"),
                                             ("910B3", "ascend-910b3"), ("910b4", "ascend-910b4"),
                                             ("gaudi-2", "gaudi2"), ("HL-325L", "gaudi3")])
def test_aliases(alias: str, name: str) -> None:
    assert catalog.load_device(alias).name == name


@pytest.mark.parametrize(("device", "link", "per_peer_gbps"),
                         [("ascend-910b", "hccs", 28), ("gaudi2", "gaudi2-roce", 37.5),
                          ("gaudi3", "gaudi3-roce", 75)])
def test_scale_up_is_a_full_mesh_of_eight(device: str, link: str, per_peer_gbps: float) -> None:
    d = catalog.load_device(device)
    assert d.scale_up_fabric.kind is ScaleUpKind.MESH
    assert d.scale_up_fabric.link_bw_Bps == per_peer_gbps * 1e9
    assert d.scale_up_bw_Bps == pytest.approx(7 * per_peer_gbps * 1e9)  # 7 peers
    assert catalog.load_link(link).bandwidth_Bps == pytest.approx(7 * per_peer_gbps * 1e9)
    cluster = build_cluster(device, 8, devices_per_node=8, intra_node=link)
    pair = group_info(cluster, (0, 1)).intra_bw_Bps
    four = group_info(cluster, (0, 1, 2, 3)).intra_bw_Bps
    eight = group_info(cluster, tuple(range(8))).intra_bw_Bps
    # a k-rank group uses its k-1 links: bandwidth grows with the group, one link for a pair
    assert pair < four < eight
    assert eight / pair == pytest.approx(7, rel=1e-6)


def test_gaudi_scale_out_is_three_ports_per_card() -> None:
    from simulator.training.validation_gaudi import hls_cluster

    for device, port_gbps in (("gaudi2", 12.5), ("gaudi3", 25)):
        c = hls_cluster(device, 16)
        assert c.nics_per_node == 24 and c.inter_node.bandwidth_Bps == port_gbps * 1e9
        # every port sits within the card's PCIe host link (checked by build_cluster)
        assert c.inter_node.bandwidth_Bps <= c.host_link.bandwidth_Bps


@pytest.mark.parametrize(("device", "link"), [("gaudi2", "hccs"), ("ascend-910b", "nvlink4"),
                                              ("gaudi3", "gaudi2-roce")])
def test_a_link_the_device_lacks_is_refused(device: str, link: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_cluster(device, 16, devices_per_node=8, intra_node=link)
    assert err.value.key == "cluster.intra_node"


def test_gaudi_peaks_are_dense_matrix_rates() -> None:
    g2, g3 = catalog.load_device("gaudi2"), catalog.load_device("gaudi3")
    assert g2.peak(DType.BF16) == 432e12 and g2.peak_flops[DType.FP8] == 865e12
    assert g3.peak(DType.BF16) == 1835e12 and g3.peak_flops[DType.FP8] == 1835e12
    assert (g2.memory_bytes, g3.memory_bytes) == (96 * GiB, 128 * GiB)
