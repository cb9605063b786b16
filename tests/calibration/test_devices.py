"""Torch device names -> catalog names; device selection; collectives over Gloo."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from calibration.collectives import bench_collectives, bus_factor  # noqa: E402
from calibration.devices import catalog_name_for, select_device  # noqa: E402
from calibration.runner import resolve_peaks  # noqa: E402
from hwmodels.catalog import list_devices, load_device  # noqa: E402


@pytest.mark.parametrize(("reported", "name"), [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"),
    ("NVIDIA H100 PCIe", "h100-pcie"),
    ("NVIDIA H200", "h200"),
    ("NVIDIA H20", "h20"),
    ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
    ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
    ("NVIDIA A100 80GB PCIe", "a100-80gb"),
    ("Tesla V100-SXM2-32GB", "v100"),
    ("NVIDIA L40S", "l40s"),
    ("NVIDIA L4", "l4"),
    ("NVIDIA A10G", "a10g"),
    ("NVIDIA B200", "b200"),
    ("NVIDIA GB200", "gb200"),
    ("AMD Instinct MI300X", "mi300x"),
    ("AMD Instinct MI250X", "mi250x"),
    ("Ascend910B3", "ascend-910b3"),
    ("Ascend910B2", "ascend-910b"),
    ("Ascend910B1", "ascend-910b1"),
    ("GAUDI2", "gaudi2"),
    ("GAUDI3", "gaudi3"),
    ("NVIDIA GeForce RTX 4090", None),
])
def test_catalog_names(reported: str, name: str | None) -> None:
    assert catalog_name_for(reported, "cuda") == name
    if name is not None:
        assert name in list_devices()


def test_select_cpu() -> None:
    assert select_device("CPU").type == "cpu"


def test_catalog_peaks_for_a_gpu() -> None:
    name, peaks = resolve_peaks(torch.device("cuda"), "h100", ["bf16", "fp8"], {}, None,
                                lambda _m: None)
    spec = load_device("h100-sxm")
    assert name == "h100-sxm"  # alias resolved to the catalog name
    assert peaks["flops"] == {"bf16": 989e12, "fp8": 1979e12}  # H100 SXM datasheet, dense
    assert peaks["memory_bw_Bps"] == spec.memory_bw_Bps == 3350e9
    name, peaks = resolve_peaks(torch.device("cuda"), "h100-sxm", ["bf16"], {"bf16": 900e12},
                                None, lambda _m: None)
    assert peaks["flops"]["bf16"] == 900e12 and "overridden" in peaks["source"]


def test_bus_factors_match_nccl_tests() -> None:
    assert bus_factor("all_reduce", 8) == pytest.approx(1.75)
    assert bus_factor("all_gather", 8) == pytest.approx(0.875)
    assert bus_factor("all_to_all", 2) == pytest.approx(0.5)


def test_gloo_collectives_path() -> None:
    messages: list[str] = []
    recs = bench_collectives(torch.device("cpu"), (1 << 12, 1 << 16), messages.append,
                             repeats=5, cpu_ranks=2)
    assert {r["op"] for r in recs} == {"all_reduce", "all_gather", "reduce_scatter",
                                       "all_to_all"}
    for r in recs:
        assert r["world"] == 2 and r["median_s"] > 0
        assert r["busbw_Bps"] == pytest.approx(r["algbw_Bps"] * bus_factor(r["op"], 2))
    assert bench_collectives(torch.device("cpu"), (1 << 12,), messages.append) == []
    assert "skipped" in messages[-1]
