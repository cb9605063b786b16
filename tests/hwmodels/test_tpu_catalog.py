"""TPU v4 / v5e / v5p / v6e catalog entries, their tori, and multi-slice clusters over DCN."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.catalog import load_device, load_link
from hwmodels.cluster import build_cluster, group_info
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.specs import LinkKind
from hwmodels.topology import ScaleUpKind, WrapRule, torus_wraps
from hwmodels.units import GiB

ROOT = Path(__file__).resolve().parents[2]

# name: (bf16 TFLOP/s, HBM GiB, HBM GB/s, link GB/s one-way, pod dims, wrap rule, DCN link,
#        DCN GB/s per chip) -- the published figures the entries cite
TPUS = {
    "tpu-v4": (275, 32, 1200, 45, (16, 16, 16), WrapRule.MULTIPLE_OF_4, "dcn-v4", 6.25),
    "tpu-v5e": (197, 16, 819, 45, (16, 16), WrapRule.FULL_AXIS, "dcn-v5e", 3.125),
    "tpu-v5p": (459, 95, 2765, 90, (16, 16, 24), WrapRule.MULTIPLE_OF_4, "dcn-v5p", 6.25),
    "tpu-v6e": (918, 32, 1600, 90, (16, 16), WrapRule.FULL_AXIS, "dcn-v6e", 12.5),
}
# chips per DCN link entry (links.yaml: v5e/v6e per NIC as published, v4/v5p per chip)
CHIPS_PER_NIC = {"tpu-v4": 1, "tpu-v5e": 4, "tpu-v5p": 1, "tpu-v6e": 2}


@pytest.mark.parametrize("name", sorted(TPUS))
def test_entry_matches_published_figures(name: str) -> None:
    bf16, hbm, bw, link, dims, wrap, dcn, dcn_gbs = TPUS[name]
    dev = load_device(name)
    assert dev.peak(DType.BF16) == bf16 * 1e12
    assert dev.memory_bytes == hbm * GiB and dev.memory_bw_Bps == bw * 1e9
    fab = dev.scale_up_fabric
    assert fab.kind is ScaleUpKind.TORUS and fab.max_dims == dims and fab.wrap is wrap
    assert fab.link_bw_Bps == link * 1e9
    # one link per torus direction: 2 x axes links of link_gbps make the scale-up figure
    assert dev.scale_up_bw_Bps == pytest.approx(2 * len(dims) * link * 1e9)
    assert dev.devices_per_node == math.prod(dims)  # the largest slice
    assert dev.default_inter_node == dcn
    nic = load_link(dcn)
    assert nic.kind is LinkKind.SCALE_OUT
    assert nic.bandwidth_Bps == dcn_gbs * 1e9 * CHIPS_PER_NIC[name]
    assert nic.bandwidth_Bps <= load_link(dev.host_link).bandwidth_Bps


def test_int8_and_fp8_peaks() -> None:
    assert load_device("tpu-v5e").peak(DType.INT8) == 394e12
    assert load_device("tpu-v5p").peak(DType.INT8) == 918e12
    assert load_device("tpu-v5p").peak(DType.FP8) == 459e12  # published: no fp8 speed-up
    assert load_device("tpu-v6e").peak(DType.INT8) == 1836e12


def test_every_tpu_entry_cites_a_dated_source() -> None:
    text = (ROOT / "hwmodels/catalog/devices.yaml").read_text()
    raw = yaml.safe_load(text)
    for name in TPUS:
        assert "TPU" in raw[name]["source"] or "ISCA" in raw[name]["source"]
        block = text.split(f"\n{name}:\n", 1)[1].split("\n\n", 1)[0]
        assert "2026-12-03" in block, name  # added or reviewed on this date


def test_v4_v5p_cubes_wrap_and_v5e_v6e_only_full_axes() -> None:
    v5p, v6e = load_device("tpu-v5p").scale_up_fabric, load_device("tpu-v6e").scale_up_fabric
    assert torus_wraps(v5p, (4, 4, 4)) == (True, True, True)
    assert torus_wraps(v5p, (2, 2, 4)) == (False, False, True)
    assert torus_wraps(v5p, (4, 4, 8)) == (True, True, True)
    assert torus_wraps(v6e, (8, 16)) == (False, True)
    c = build_cluster("tpu-v5p", 64, devices_per_node=64, slice_shape=[4, 4, 4])
    # a TP-4 group along a wrapped axis of a 4x4x4 cube: a bidirectional ring of 90 GB/s links
    assert group_info(c, range(4)).intra_bw_Bps == 2 * 90e9
    assert group_info(c, range(64)).intra_bw_Bps == 6 * 90e9


def test_default_cluster_is_the_largest_slice() -> None:
    for name, (_, _, _, _, dims, _, dcn, _) in TPUS.items():
        c = build_cluster(name, math.prod(dims))
        assert c.scale_up is not None and sorted(c.scale_up.dims) == sorted(dims)
        assert c.inter_node.name == dcn


def test_two_v5e_slices_over_dcn() -> None:
    """512 chips = 2 slices of 256 with 64 NICs of 100 Gbps each (32 hosts x 2): a slice's DCN
    is 800 GB/s (6.4 Tbps), 3.125 GB/s per chip when every chip's DP group crosses at once."""
    c = build_cluster("tpu-v5e", 512, devices_per_node=256, slice_shape=[16, 16],
                      nics_per_node=64)
    assert c.num_nodes == 2 and c.inter_node.name == "dcn-v5e" and c.nics == 64
    across = group_info(c, [0, 256])
    assert across.num_nodes == 2 and across.inter_bw_Bps == 12.5e9  # one NIC, alone
    pod = group_info(c, range(256))
    assert pod.num_nodes == 1 and pod.node_inter_bw_Bps == 800e9
    every = group_info(c, range(512))
    assert every.inter_bw_Bps == 3.125e9  # all 256 chips of a slice share its 64 NICs


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([(a, b, c) for a in (1, 2, 4, 8, 16) for b in (1, 2, 4, 8, 16)
                        for c in (1, 2, 4, 8, 12, 16, 24) if a * b * c >= 2]))
def test_v5p_slice_bandwidth_is_sum_of_axis_rings(shape: tuple[int, int, int]) -> None:
    """Any v5p slice: the whole slice's ring bandwidth is, per axis longer than 1, two links
    with a wraparound (a multiple of 4 > 2) and one without."""
    n = math.prod(shape)
    c = build_cluster("tpu-v5p", n, devices_per_node=n, slice_shape=list(shape))
    expect = sum((2 if d % 4 == 0 and d > 2 else 1) * 90e9 for d in shape if d > 1)
    assert group_info(c, range(n)).intra_bw_Bps == pytest.approx(expect)


def test_slice_shape_must_match_the_chips() -> None:
    with pytest.raises(ConfigError, match="has 128 chips") as err:
        build_cluster("tpu-v5p", 256, devices_per_node=256, slice_shape=[4, 4, 8])
    assert err.value.key == "cluster.slice_shape"


def _simulate(tmp_path: Path, **cluster: object) -> subprocess.CompletedProcess[str]:
    scenario = yaml.safe_load((ROOT / "simulator/scenarios/tpu-v5e-256-pod.yaml").read_text())
    scenario["cluster"].update(cluster)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return subprocess.run([sys.executable, "-m", "fleetsim", "simulate", "train", str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize(("cluster", "key"), [
    ({"slice_shape": [16, 8]}, "cluster.slice_shape"),
    ({"intra_node": "nvlink4"}, "cluster.intra_node"),
])
def test_bad_tpu_cluster_exits_2_with_one_line(tmp_path: Path, cluster: dict[str, object],
                                                key: str) -> None:
    out = _simulate(tmp_path, **cluster)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "s.yaml" in lines[0]
