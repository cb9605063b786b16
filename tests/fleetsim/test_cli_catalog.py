"""CLI: catalog browsing, estimate step, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest


def test_hw_list_json_has_all_required_devices(cli_json) -> None:
    data = cli_json("hw", "list")
    names = {d["name"] for d in data["devices"]}
    required = {"v100", "a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "b200",
                "l40s", "l4", "a10g", "mi250x", "mi300x", "ascend-910b", "tpu-v5e"}
    assert required <= names
    links = {link["name"] for link in data["links"]}
    assert {"nvlink3", "nvlink4", "nvlink5", "pcie4", "pcie5", "ib-hdr", "ib-ndr", "roce-200g",
            "roce-400g", "eth-100g", "hccs", "ici"} <= links


def test_hw_show_device(cli_json) -> None:
    d = cli_json("hw", "show", "h100-sxm")
    assert d["peak_tflops"]["bf16"] == pytest.approx(989, rel=0.01)
    assert d["memory_gib"] == pytest.approx(80, rel=0.01)


def test_models_show_params(cli_json) -> None:
    m = cli_json("models", "show", "llama3-70b")
    assert m["params_b"] == pytest.approx(70.6, rel=0.01)
    assert m["kv_bytes_per_token_bf16"] == 80 * 8 * 128 * 2 * 2


def test_models_show_hf_config_path(cli_json, tmp_path) -> None:
    cfg = {"model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096,
           "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
           "vocab_size": 128256, "tie_word_embeddings": False}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    m = cli_json("models", "show", str(path))
    assert m["params_b"] == pytest.approx(8.03, rel=0.01)


def test_estimate_step_json_contract(cli_json) -> None:
    out = cli_json("estimate", "step", "--model", "llama2-70b", "--device", "h100-sxm",
                   "--tp", "8", "--prefill-len", "512", "--prefill-seqs", "2",
                   "--decode-seqs", "32", "--context", "1024")
    assert out["time_s"] > 0
    assert isinstance(out["breakdown"], dict) and out["breakdown"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("hw", "show", "h1000"), "unknown device 'h1000'"),
        (("models", "show", "llama9"), "unknown model 'llama9'"),
        (("estimate", "step", "--model", "llama3-8b", "--device", "nope", "--decode-seqs", "1",
          "--context", "8"), "unknown device"),
        (("estimate", "step", "--model", "llama3-8b", "--device", "h100-sxm", "--tp", "3",
          "--decode-seqs", "1", "--context", "8"), "tp"),
        (("estimate", "step", "--model", "llama3-8b", "--device", "h100-sxm", "--decode-seqs",
          "-1", "--context", "8"), "--decode-seqs"),
        (("estimate", "step", "--model", "llama3-8b", "--device", "h100-sxm", "--dtype", "fp7",
          "--decode-seqs", "1", "--context", "8"), "unknown dtype"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, args, needle) -> None:
    code, out, err = cli(*args)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_unknown_device_lists_valid_names(cli) -> None:
    code, _, err = cli("hw", "show", "h1000")
    assert code == 2 and "h100-sxm" in err and "a100-80gb" in err


def test_malformed_catalog_names_file_and_key(cli, tmp_path, monkeypatch) -> None:
    from hwmodels import catalog

    (tmp_path / "devices.yaml").write_text("my-gpu:\n  vendor: acme\n  peak_tflops: {bf16: -3}\n")
    monkeypatch.setenv("FLEETSIM_CATALOG", str(tmp_path))
    catalog.clear_cache()
    try:
        code, _, err = cli("hw", "show", "my-gpu")
    finally:
        monkeypatch.delenv("FLEETSIM_CATALOG")
        catalog.clear_cache()
    assert code == 2
    assert "devices.yaml" in err and "my-gpu.peak_tflops" in err


@pytest.mark.parametrize("args", [("estimate", "step"), ("hw", "show", "--bogus", "x"),
                                  ("simulate", "train")])
def test_usage_errors_are_one_line_exit_2(cli, args) -> None:
    code, _, err = cli(*args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bare_group_prints_help(cli) -> None:
    code, out, _ = cli("hw")
    assert code == 0 and "list" in out
