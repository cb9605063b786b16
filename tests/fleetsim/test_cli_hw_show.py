"""`fleetsim hw show`: a cluster's topology from flags or a scenario, text and --json; bad
cluster input is one line, exit 2, naming the flag (or file and key) and allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TPU_TRAIN = {
    "name": "v5e-2slice", "model": "llama3-8b",
    "cluster": {"device": "tpu-v5e", "num_devices": 512, "devices_per_node": 256,
                "slice_shape": [16, 16]},
    "training": {"seq_len": 2048, "global_batch": 512, "micro_batch": 1},
    "parallelism": {"tp": 1, "pp": 1, "dp": "auto", "zero": 3}}
TPU_SERVE = {
    "name": "v5e-serve", "model": "llama3-8b",
    "cluster": {"device": "tpu-v5e", "num_devices": 8, "slice_shape": [4, 2]},
    "serving": {"replicas": 1, "tp": 8},
    "workload": {"synthetic": {"num_requests": 10, "arrival": {"process": "poisson",
                                                               "rate": 5.0},
                               "input": {"dist": "fixed", "value": 128},
                               "output": {"dist": "fixed", "value": 8}}}}


def _write(tmp_path: Path, name: str, data: dict) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _one_line_exit_2(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("fleetsim: error:"), err
    assert "(allowed:" in lines[0], err
    for needle in needles:
        assert needle in lines[0], (needle, err)


def test_plain_device_keeps_todays_keys_and_adds_its_node(cli_json) -> None:
    d = cli_json("hw", "show", "h100-sxm")
    assert d["peak_tflops"]["bf16"] == pytest.approx(989, rel=0.01)
    assert d["topology"]["scale_up"]["kind"] == "switch"
    assert d["topology"]["num_devices"] == 8


def test_plain_link_is_unchanged(cli_json) -> None:
    d = cli_json("hw", "show", "nvlink4")
    assert "topology" not in d and d["kind"] == "scale_up"


def test_two_v5e_slices_over_dcn(cli_json) -> None:
    d = cli_json("hw", "show", "tpu-v5e", "--num-devices", "512", "--slice-shape", "16x16")
    topo = d["topology"]
    assert topo["scale_up"]["dims"] == [16, 16] and topo["scale_up"]["wrap"] == [True, True]
    assert topo["scale_out"]["num_nodes"] == 2 and topo["scale_out"]["unit"] == "slice"
    groups = {g["name"]: g for g in topo["groups"]}
    across = groups["one rank per slice (2)"]
    assert across["num_nodes"] == 2 and across["scale_up_gbps"] is None
    # a v5e host has 2 DCN NICs per 8 chips (nics_per_device 0.25): a chip's share is 1/4
    out = topo["scale_out"]
    assert out["nics_per_node"] == 64
    assert across["nic_gbps"] == pytest.approx(out["link_gbps"] * 64 / 256)
    assert groups["axis 0 ring (16)"]["scale_up_gbps"] == pytest.approx(90)
    assert "2 nodes of 256 x tpu-v5e" in topo["fabric"]


def test_pod_text_draws_the_grid(cli) -> None:
    code, out, err = cli("hw", "show", "tpu-v5e", "--slice-shape", "16x16")
    assert code == 0, err
    assert "2D torus 16x16 (axis 0 wraps, axis 1 wraps)" in out
    assert "240-241-242" in out and "~" in out
    assert "one rank per" not in out  # one slice


def test_mi300x_node_mesh(cli) -> None:
    code, out, err = cli("hw", "show", "mi300x", "--num-devices", "16")
    assert code == 0, err
    assert "full mesh: 8 devices, 7 links of 64 GB/s" in out
    assert "total GB/s" in out and "one rank per node (2)" in out


def test_ascend_four_nodes(cli_json) -> None:
    d = cli_json("hw", "show", "ascend-910b", "--num-devices", "32")
    topo = d["topology"]
    assert topo["scale_up"]["kind"] == "mesh" and topo["scale_out"]["num_nodes"] == 4
    assert topo["scale_out"]["link"] == "roce-200g"


def test_training_scenario(cli_json, tmp_path: Path) -> None:
    d = cli_json("hw", "show", "--scenario", _write(tmp_path, "t.yaml", TPU_TRAIN))
    assert d["scenario"]["kind"] == "training"
    assert d["topology"]["num_devices"] == 512
    assert d["topology"]["scale_up"]["dims"] == [16, 16]
    (dp,) = d["topology"]["plan_groups"]  # FSDP over both slices: the DCN NIC bounds it
    assert dp["name"] == "plan DP (512)" and dp["num_nodes"] == 2
    out = d["topology"]["scale_out"]
    assert dp["nic_gbps"] == pytest.approx(out["link_gbps"] * out["nics_per_node"] / 256)


def test_serving_scenario_carries_slice_shape(cli_json, tmp_path: Path) -> None:
    d = cli_json("hw", "show", "--scenario", _write(tmp_path, "s.yaml", TPU_SERVE))
    assert d["scenario"]["kind"] == "serving"
    assert d["topology"]["scale_up"]["dims"] == [4, 2]
    assert d["topology"]["scale_up"]["wrap"] == [False, False]


def test_serving_scenario_bad_slice_shape_exits_2(cli, tmp_path: Path) -> None:
    bad = {**TPU_SERVE, "cluster": {**TPU_SERVE["cluster"], "slice_shape": [4, 4]}}
    path = _write(tmp_path, "s.yaml", bad)
    for args in (("simulate", "serve", path, "--json"), ("hw", "show", "--scenario", path)):
        code, _, err = cli(*args)
        _one_line_exit_2(code, err, path, "cluster.slice_shape", "4x4", "product is 8")


@pytest.mark.parametrize(("args", "needles"), [
    (("tpu-v5e", "--slice-shape", "16x8", "--devices-per-node", "256"),
     ("--slice-shape", "16x8", "product is 256")),
    (("tpu-v5e", "--slice-shape", "4x4x4"), ("--slice-shape", "3 axes", "2 dims")),
    (("tpu-v5e", "--slice-shape", "32x8"), ("--slice-shape", "exceeds the pod")),
    (("tpu-v5e", "--slice-shape", "4by4"), ("--slice-shape", "4by4")),
    (("mi300x", "--slice-shape", "2x4"), ("--slice-shape", "torus")),
    (("mi300x", "--intra-node", "nvlink4"), ("--intra-node", "nvlink4", "infinity-fabric")),
    (("mi300x", "--inter-node", "nvlink4"), ("--inter-node", "nvlink4", "ib-ndr")),
    (("h100-sxm", "--inter-node", "ici"), ("--inter-node", "ici", "roce-400g")),
    (("mi300x", "--inter-node", "warp-drive"), ("--inter-node", "warp-drive")),
    (("nvlink4", "--num-devices", "8"), ("NAME", "nvlink4")),
    (("tpu-v5e", "--num-devices", "0"), ("--num-devices",)),
    (("ascend-910b", "--devices-per-node", "4096"), ("--devices-per-node", "hccs", "1..8")),
    (("tpu-v5e", "--nics-per-node", "-1"), ("--nics-per-node",)),
])
def test_bad_cluster_flags(cli, args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    code, _, err = cli("hw", "show", *args)
    _one_line_exit_2(code, err, *needles)


def test_no_device_and_scenario_conflicts(cli, tmp_path: Path) -> None:
    code, _, err = cli("hw", "show")
    _one_line_exit_2(code, err, "NAME", "--scenario")
    path = _write(tmp_path, "t.yaml", TPU_TRAIN)
    code, _, err = cli("hw", "show", "tpu-v5e", "--scenario", path)
    _one_line_exit_2(code, err, "--scenario")
