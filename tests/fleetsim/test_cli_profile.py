"""--profile / --no-profile / cluster.profile through the CLI: a hand-made v2 profile (GEMM
efficiency halved) slows compute-bound predictions, every --json result says which profile
produced it, and a bad profile is one line, exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from _profiles import half_gemm_profile

from hwmodels import ops
from hwmodels.catalog import load_device


def _train_yaml(tmp: Path, **cluster: Any) -> Path:
    sc = {"name": "tiny-train", "model": "llama3-8b",
          "cluster": {"device": "h100-sxm", "num_devices": 8, "devices_per_node": 8, **cluster},
          "training": {"seq_len": 2048, "global_batch": 16, "micro_batch": 1},
          "parallelism": {"tp": 2, "pp": 2, "dp": "auto", "schedule": "1f1b"}}
    path = tmp / "train.yaml"
    path.write_text(yaml.safe_dump(sc))
    return path


def _serve_yaml(tmp: Path) -> Path:
    """llama3-8b on 2 x H100, 2048-token prompts: prefill is compute-bound."""
    sc = {"name": "tiny-serve", "model": "llama3-8b",
          "cluster": {"device": "h100-sxm", "num_devices": 2},
          "serving": {"replicas": 2, "tp": 1},
          "workload": {"synthetic": {"num_requests": 30,
                                     "arrival": {"process": "poisson", "rate": 4.0},
                                     "input": {"dist": "fixed", "value": 2048},
                                     "output": {"dist": "fixed", "value": 16}}},
          "slo": {"ttft_s": 1.0, "tpot_s": 0.1}, "seed": 0}
    path = tmp / "serve.yaml"
    path.write_text(yaml.safe_dump(sc))
    return path


def _one_line_exit_2(cli, *args: str) -> str:  # type: ignore[no-untyped-def]
    code, _, err = cli(*args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_simulate_train_profile_vs_no_profile(cli_json, tmp_path: Path) -> None:
    prof = half_gemm_profile(tmp_path / "h100-half.json", "h100-sxm")
    sc = str(_train_yaml(tmp_path))
    slow = cli_json("simulate", "train", sc, "--profile", str(prof))
    base = cli_json("simulate", "train", sc, "--no-profile")
    assert slow["breakdown"]["compute_s"] > 1.3 * base["breakdown"]["compute_s"]
    assert slow["iteration_time_s"] > base["iteration_time_s"]
    assert slow["mfu"] < base["mfu"]
    got = slow["profile"]["h100-sxm"]
    assert got["name"] == "h100-sxm-half-gemm" and got["file"] == str(prof)
    assert got["measured"] == ["gemm.bf16"] and got["version"] == 2
    assert base["profile"] == {"h100-sxm": {"name": "catalog defaults", "device": "h100-sxm",
                                            "source": "hwmodels/catalog/devices.yaml "
                                                      "efficiencies"}}


def test_scenario_key_relative_to_the_file_and_cli_overrides_it(cli_json, tmp_path: Path
                                                                ) -> None:
    half_gemm_profile(tmp_path / "h100-half.json", "h100-sxm")
    sc = str(_train_yaml(tmp_path, profile="h100-half.json"))  # relative to the scenario
    keyed = cli_json("simulate", "train", sc)
    assert keyed["profile"]["h100-sxm"]["name"] == "h100-sxm-half-gemm"
    cli_off = cli_json("simulate", "train", sc, "--no-profile")
    assert cli_off["profile"]["h100-sxm"]["name"] == "catalog defaults"
    assert keyed["iteration_time_s"] > cli_off["iteration_time_s"]
    defaults = cli_json("simulate", "train", sc, "--set", "cluster.profile=defaults")
    assert defaults["iteration_time_s"] == cli_off["iteration_time_s"]


def test_simulate_serve_profile_vs_no_profile(cli, cli_json, tmp_path: Path) -> None:
    prof = half_gemm_profile(tmp_path / "h100-half.json", "h100-sxm")
    sc = str(_serve_yaml(tmp_path))
    slow = cli_json("simulate", "serve", sc, "--profile", str(prof))
    base = cli_json("simulate", "serve", sc, "--no-profile")
    assert slow["ttft_s"]["p50"] > 1.2 * base["ttft_s"]["p50"]
    assert slow["profile"]["h100-sxm"]["name"] == "h100-sxm-half-gemm"
    assert base["profile"]["h100-sxm"]["name"] == "catalog defaults"
    code, out, err = cli("simulate", "serve", sc, "--profile", str(prof), "--no-progress")
    assert code == 0, err
    assert "efficiency: h100-sxm-half-gemm (test: catalog GEMM efficiency halved" in out


def test_human_output_names_the_efficiency_source(cli, tmp_path: Path) -> None:
    code, out, err = cli("simulate", "train", str(_train_yaml(tmp_path)))
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln.startswith("efficiency:")]
    used = ops.resolve_profile(load_device("h100-sxm")).describe()  # bundled, else defaults
    assert len(lines) == 1 and lines[0].startswith(f"efficiency: {used['name']} (")
    assert lines[0].endswith(" for h100-sxm")
    code, out, err = cli("simulate", "train", str(_train_yaml(tmp_path)), "--no-profile")
    assert [ln for ln in out.splitlines() if ln.startswith("efficiency:")] == [
        "efficiency: catalog defaults (hwmodels/catalog/devices.yaml efficiencies) for h100-sxm"]


def test_estimate_step_profile(cli_json, tmp_path: Path) -> None:
    prof = half_gemm_profile(tmp_path / "h100-half.json", "h100-sxm")
    args = ("estimate", "step", "--model", "llama3-8b", "--device", "h100-sxm",
            "--prefill-len", "4096")
    slow = cli_json(*args, "--profile", str(prof))
    base = cli_json(*args, "--no-profile")
    assert slow["breakdown"]["gemm_s"] > 1.5 * base["breakdown"]["gemm_s"]
    assert slow["profile"]["h100-sxm"]["file"] == str(prof)


@pytest.mark.parametrize("command", ["train", "serve"])
def test_profile_for_another_device_exits_2(cli, tmp_path: Path, command: str) -> None:
    prof = half_gemm_profile(tmp_path / "a100-half.json", "a100-80gb")
    sc = _train_yaml(tmp_path) if command == "train" else _serve_yaml(tmp_path)
    line = _one_line_exit_2(cli, "simulate", command, str(sc), "--profile", str(prof))
    assert "--profile" in line and "a100-80gb" in line and "h100-sxm" in line


def test_scenario_key_for_another_device_exits_2(cli, tmp_path: Path) -> None:
    half_gemm_profile(tmp_path / "a100-half.json", "a100-80gb")
    sc = _train_yaml(tmp_path, profile="a100-half.json")
    line = _one_line_exit_2(cli, "simulate", "train", str(sc))
    assert str(sc) in line and "cluster.profile" in line
    assert "a100-80gb" in line and "h100-sxm" in line


def test_unreadable_malformed_and_v1_profiles_exit_2(cli, tmp_path: Path) -> None:
    sc = str(_train_yaml(tmp_path))
    missing = tmp_path / "missing.json"
    line = _one_line_exit_2(cli, "simulate", "train", sc, "--profile", str(missing))
    assert str(missing) in line
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    line = _one_line_exit_2(cli, "simulate", "train", sc, "--profile", str(bad))
    assert str(bad) in line and "JSON" in line
    old = half_gemm_profile(tmp_path / "v1.json", "h100-sxm", version=1)
    line = _one_line_exit_2(cli, "simulate", "train", sc, "--profile", str(old))
    assert str(old) in line and "version" in line and "older" in line


def test_profile_and_no_profile_conflict(cli, tmp_path: Path) -> None:
    prof = half_gemm_profile(tmp_path / "h100-half.json", "h100-sxm")
    for args in (("simulate", "train", str(_train_yaml(tmp_path))),
                 ("estimate", "step", "--model", "llama3-8b", "--device", "h100-sxm",
                  "--decode-seqs", "4", "--context", "128")):
        line = _one_line_exit_2(cli, *args, "--profile", str(prof), "--no-profile")
        assert "--no-profile" in line and "--profile" in line


def test_two_profiles_for_one_device_exit_2(cli, tmp_path: Path) -> None:
    a = half_gemm_profile(tmp_path / "a.json", "h100-sxm")
    b = half_gemm_profile(tmp_path / "b.json", "h100-sxm")
    line = _one_line_exit_2(cli, "simulate", "train", str(_train_yaml(tmp_path)),
                            "--profile", str(a), "--profile", str(b))
    assert "h100-sxm" in line and "one --profile per device" in line


def test_profile_by_bundled_name(cli_json, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                 ) -> None:
    from simulator import profiles

    path = half_gemm_profile(tmp_path / "h100-sxm.json", "h100-sxm")
    monkeypatch.setattr(profiles, "bundled_profiles", lambda: {"h100-test": path})
    out = cli_json("simulate", "train", str(_train_yaml(tmp_path)), "--profile", "h100-test")
    assert out["profile"]["h100-sxm"]["file"] == str(path)
