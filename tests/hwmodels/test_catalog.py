"""The bundled catalog: every device, link and model loads with plausible, sourced numbers;
bad catalog files fail with one message naming the file and the key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwmodels import catalog, flops
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError, UnknownNameError
from hwmodels.specs import DeviceKind, LinkKind
from hwmodels.units import GiB

REQUIRED_DEVICES = {"v100", "a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "b200",
                    "l40s", "l4", "a10g", "mi250x", "mi250x-package", "mi300x", "ascend-910b",
                    "tpu-v5e"}
REQUIRED_LINKS = {"nvlink2", "nvlink3", "nvlink4", "nvlink5", "pcie3", "pcie4", "pcie5",
                  "ib-hdr", "ib-ndr", "roce-200g", "roce-400g", "eth-100g", "hccs", "ici",
                  "infinity-fabric"}
REQUIRED_MODELS = {"gpt-1.7b", "gpt-3.6b", "gpt-7.5b", "gpt-18.4b", "gpt-39.1b", "gpt-76.1b",
                   "gpt-145.6b", "gpt-310.1b", "gpt-529.6b", "gpt-1t", "gpt3-175b", "gpt-22b",
                   "mt-nlg-530b", "llama2-7b", "llama2-13b", "llama2-70b", "llama3-8b",
                   "llama3-70b", "llama3.1-8b", "llama3.1-70b", "llama3.1-405b",
                   "mixtral-8x7b", "mixtral-8x22b", "qwen2-57b-a14b", "qwen3-30b-a3b",
                   "qwen3-235b-a22b", "deepseek-v3", "mpt-1b", "mpt-3b", "mpt-7b", "mpt-13b",
                   "mpt-30b", "mpt-70b"}
YEAR = re.compile(r"(19|20)\d\d")


def test_required_names_present() -> None:
    assert REQUIRED_DEVICES <= set(catalog.list_devices())
    assert REQUIRED_LINKS <= set(catalog.list_links())
    assert REQUIRED_MODELS <= set(catalog.list_models())


@pytest.mark.parametrize("name", catalog.list_devices())
def test_every_device_loads_with_plausible_fields(name: str) -> None:
    d = catalog.load_device(name)
    bf16 = d.peak(DType.BF16)
    assert 50e12 <= bf16 <= 6000e12
    if DType.FP8 in d.peak_flops:  # dense fp8 is 2x dense bf16 (or equal, never 4x = sparse)
        assert bf16 <= d.peak_flops[DType.FP8] <= 2.05 * bf16  # L40S sheet: 733 vs 362.05
    if DType.FP32 in d.peak_flops:
        assert d.peak_flops[DType.FP32] < bf16
    assert 16 * GiB <= d.memory_bytes <= 300 * GiB
    assert 250e9 <= d.memory_bw_Bps <= 10e12
    assert d.scale_up_link in catalog.list_links() and d.host_link in catalog.list_links()
    assert catalog.load_link(d.scale_up_link).kind in (LinkKind.SCALE_UP, LinkKind.HOST)
    assert catalog.load_link(d.host_link).kind is LinkKind.HOST
    assert 10e9 <= d.scale_up_bw_Bps <= 1000e9
    assert 0 < d.idle_w < d.tdp_w <= 1500
    assert 0 < d.price_usd_per_hour <= 15
    assert d.gemm_efficiency and all(0.4 <= e <= 0.95 for e in d.gemm_efficiency.values())
    assert set(d.gemm_efficiency) <= set(d.peak_flops)
    assert 0.7 <= d.memory_efficiency <= 0.95
    assert 0.3 <= d.attention_efficiency <= 0.75
    assert 0 < d.kernel_overhead_s <= 20e-6
    assert d.devices_per_node >= 1
    assert YEAR.search(d.source), "source must name a dated document"


@pytest.mark.parametrize(("name", "bf16_tflops", "mem_bw_gbps"), [
    ("v100", 125, 900), ("a100-40gb", 312, 1555), ("a100-80gb", 312, 2039),
    ("h100-sxm", 989, 3350), ("h100-pcie", 756, 2000), ("h200", 989, 4800),
    ("b200", 2250, 8000), ("l40s", 362.05, 864), ("l4", 121, 300), ("mi250x", 191.5, 1638.4),
    ("mi250x-package", 383, 3276.8), ("mi300x", 1307.4, 5300), ("tpu-v5e", 197, 819),
])
def test_datasheet_dense_peaks(name: str, bf16_tflops: float, mem_bw_gbps: float) -> None:
    d = catalog.load_device(name)
    assert d.peak("bf16") == pytest.approx(bf16_tflops * 1e12)
    assert d.memory_bw_Bps == pytest.approx(mem_bw_gbps * 1e9)


def test_device_kinds_and_aliases() -> None:
    assert catalog.load_device("ascend-910b").kind is DeviceKind.NPU
    assert catalog.load_device("tpu-v5e").kind is DeviceKind.TPU
    assert catalog.load_device("h100").name == "h100-sxm"
    assert catalog.load_device("MI250X-GCD").name == "mi250x"
    gcd, pkg = catalog.load_device("mi250x"), catalog.load_device("mi250x-package")
    assert pkg.peak("bf16") == pytest.approx(2 * gcd.peak("bf16"))
    assert pkg.memory_bytes == pytest.approx(2 * gcd.memory_bytes)


def test_every_catalog_number_is_commented() -> None:
    """Each numeric line of devices.yaml / links.yaml carries a comment or sits under one."""
    for fname in ("devices.yaml", "links.yaml"):
        lines = (catalog.CATALOG_DIR / fname).read_text().splitlines()
        for entry in _entries(lines):
            assert any("#" in line for line in entry), (fname, entry[0])


def _entries(lines: list[str]) -> Iterator[list[str]]:
    block: list[str] = []
    for line in lines:
        if line and not line[0].isspace() and not line.startswith("#"):
            if block:
                yield block
            block = [line]
        elif block:
            block.append(line)
    if block:
        yield block


@pytest.mark.parametrize("name", catalog.list_links())
def test_every_link_loads(name: str) -> None:
    link = catalog.load_link(name)
    assert 5e9 <= link.bandwidth_Bps <= 1000e9
    assert 0 < link.latency_s <= 50e-6
    assert 0.5 <= link.efficiency <= 0.95
    assert YEAR.search(link.source)


@pytest.mark.parametrize(("link", "lo_gbps", "hi_gbps"), [
    ("nvlink4", 360, 480),  # nccl-tests all_reduce busbw, 8x H100 SXM
    ("nvlink3", 230, 250),  # 8x A100 SXM
    ("ib-ndr", 40, 50),  # per GPU, 400 Gb/s NDR
    ("ib-hdr", 20, 23),  # per GPU, 200 Gb/s HDR
])
def test_link_busbw_calibration(link: str, lo_gbps: float, hi_gbps: float) -> None:
    spec = catalog.load_link(link)
    assert lo_gbps <= spec.bandwidth_Bps * spec.efficiency / 1e9 <= hi_gbps


@pytest.mark.parametrize("name", catalog.list_models())
def test_every_model_loads(name: str) -> None:
    m = catalog.load_model(name)
    assert m.name == name and m.source
    assert flops.param_count(m) >= flops.active_param_count(m) > 0
    assert m.head_dim * m.num_heads >= m.hidden_size // 2


def test_device_scale_up_matches_its_link_where_shared() -> None:
    for name in ("a100-80gb", "h100-sxm", "h200", "b200", "mi300x"):
        d = catalog.load_device(name)
        assert d.scale_up_bw_Bps == catalog.load_link(d.scale_up_link).bandwidth_Bps


# ---------------------------------------------------------------- bad catalog input


@pytest.fixture()
def user_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "models").mkdir()
    monkeypatch.setenv("FLEETSIM_CATALOG", str(tmp_path))
    catalog.clear_cache()
    yield tmp_path
    monkeypatch.delenv("FLEETSIM_CATALOG")
    catalog.clear_cache()


GOOD_DEVICE = """
my-gpu:
  vendor: acme
  peak_tflops: {bf16: 100}
  memory_gib: 24
  memory_bw_gbps: 1000
  scale_up_link: pcie4
  scale_up_bw_gbps: 32
  tdp_w: 300
  idle_w: 30
  price_usd_per_hour: 1.0
"""


def test_user_catalog_adds_a_device(user_catalog: Path) -> None:
    (user_catalog / "devices.yaml").write_text(GOOD_DEVICE)
    assert catalog.load_device("my-gpu").peak("bf16") == 100e12
    assert "h100-sxm" in catalog.list_devices()  # bundled entries stay


def test_malformed_yaml_names_file_and_line(user_catalog: Path) -> None:
    path = user_catalog / "devices.yaml"
    path.write_text("my-gpu:\n  vendor: acme\n  peak_tflops: {bf16: 100\n")
    with pytest.raises(ConfigError, match="malformed YAML at line") as info:
        catalog.load_device("h100-sxm")
    assert info.value.file == str(path)


def test_unknown_device_key_names_file_and_key(user_catalog: Path) -> None:
    path = user_catalog / "devices.yaml"
    path.write_text(GOOD_DEVICE.replace("tdp_w:", "tdp_watts:"))
    with pytest.raises(ConfigError) as info:
        catalog.load_device("my-gpu")
    assert info.value.file == str(path) and info.value.key == "my-gpu.tdp_watts"
    assert "tdp_w" in str(info.value)  # the allowed keys are listed


def test_unknown_device_name_lists_valid(user_catalog: Path) -> None:
    with pytest.raises(UnknownNameError) as info:
        catalog.load_device("h1000")
    assert "unknown device 'h1000'" in str(info.value) and "h100-sxm" in str(info.value)
    with pytest.raises(UnknownNameError, match="unknown link 'nvlink9'"):
        catalog.load_link("nvlink9")
    with pytest.raises(UnknownNameError, match="unknown model 'llama9'"):
        catalog.load_model("llama9")


def test_unknown_model_type_in_catalog_file(user_catalog: Path) -> None:
    path = user_catalog / "models" / "mine.yaml"
    path.write_text("my-model:\n  model_type: llamma\n  num_hidden_layers: 2\n"
                    "  hidden_size: 64\n  num_attention_heads: 4\n  intermediate_size: 128\n"
                    "  vocab_size: 100\n")
    with pytest.raises(ConfigError) as info:
        catalog.load_model("my-model")
    assert info.value.file == str(path) and info.value.key == "my-model.model_type"
    assert "llama" in str(info.value)


def test_misspelt_model_key_in_catalog_file(user_catalog: Path) -> None:
    path = user_catalog / "models" / "mine.yaml"
    path.write_text("my-model:\n  model_type: llama\n  num_hidden_layers: 2\n"
                    "  hidden_size: 64\n  num_attention_heads: 4\n  intermediate_size: 128\n"
                    "  vocab_size: 100\n  num_key_value_head: 2\n")
    with pytest.raises(ConfigError) as info:
        catalog.load_model("my-model")
    assert info.value.file == str(path) and info.value.key == "my-model.num_key_value_head"


def test_bad_link_value_names_file_and_key(user_catalog: Path) -> None:
    path = user_catalog / "links.yaml"
    path.write_text("my-link:\n  kind: scale_up\n  bandwidth_gbps: fast\n  latency_us: 1\n")
    with pytest.raises(ConfigError) as info:
        catalog.load_link("my-link")
    assert info.value.file == str(path) and info.value.key == "my-link.bandwidth_gbps"
    path.write_text("my-link:\n  kind: warp\n  bandwidth_gbps: 10\n  latency_us: 1\n")
    catalog.clear_cache()
    with pytest.raises(ConfigError, match="scale_up, scale_out, host"):
        catalog.load_link("my-link")
