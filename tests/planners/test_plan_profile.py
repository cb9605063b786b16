"""Every planner honours the user's profile: with a hand-made v2 profile (GEMM efficiency
halved) the chosen plan's predicted time moves against --no-profile, the JSON says which
profile was used, and a profile for a device the plan does not use exits 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from _profiles import half_gemm_profile

from hwmodels import ops
from hwmodels.catalog import load_device
from planners.mix_profile import ProfileTask, max_rate_within_slo
from simulator.profiles import ProfileChoice

SCEN = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"




def _both(cli_json, tmp_path: Path, device: str, *args: str) -> tuple[dict[str, Any], ...]:  # type: ignore[no-untyped-def]
    """(with the halved-GEMM profile of `device`, with --no-profile) outputs of one command."""
    prof = half_gemm_profile(tmp_path / f"{device}-half.json", device)
    slow = cli_json(*args, "--profile", str(prof))
    base = cli_json(*args, "--no-profile")
    assert slow["profile"][device]["name"] == f"{device}-half-gemm"
    assert slow["profile"][device]["file"] == str(prof)
    assert base["profile"][device]["name"] == "catalog defaults"
    return slow, base


PLAN_TRAIN = ("plan", "train", "--model", "gpt-7.5b", "--device", "a100-80gb",
              "--num-devices", "64", "--seq-len", "2048", "--global-batch", "512",
              "--top-k", "3", "--micro-batches", "4", "--pp", "1,2")


def test_plan_train_honours_the_profile(cli_json, tmp_path: Path) -> None:
    slow, base = _both(cli_json, tmp_path, "a100-80gb", *PLAN_TRAIN)
    best_slow, best_base = slow["plans"][0], base["plans"][0]
    assert best_slow["iteration_time_s"] > 1.3 * best_base["iteration_time_s"]
    assert best_slow["est_iteration_time_s"] > 1.3 * best_base["est_iteration_time_s"]


def test_plan_checkpoint_honours_the_profile(cli_json, tmp_path: Path) -> None:
    slow, base = _both(cli_json, tmp_path, "h100-sxm", "plan", "checkpoint",
                       str(SCEN / "llama3-405b-16k-54d.yaml"), "--seeds", "1",
                       "--set", "run.duration=1d", "--set", "run.checkpoint.mode=sync")
    # the same candidate interval rounds to whole iterations: slower iterations, other cycle
    assert slow["table"][0]["interval_s"] == base["table"][0]["interval_s"]
    assert slow["table"][0]["simulated_interval_s"] != base["table"][0]["simulated_interval_s"]


def test_plan_serve_honours_the_profile(cli_json, tmp_path: Path) -> None:
    slow, base = _both(cli_json, tmp_path, "h100-sxm", "plan", "serve", "--model", "llama3-8b",
                       "--devices", "h100-sxm", "--slo-ttft", "2", "--slo-tpot", "0.1",
                       "--tp", "1", "--schedulers", "vllm", "--chunk-sizes", "512",
                       "--max-num-seqs", "256", "--disagg", "", "--end-s", "60",
                       "--confirm-top", "0")
    assert slow["plans"][0]["unit_rate_rps"] < 0.9 * base["plans"][0]["unit_rate_rps"]


def test_plan_power_honours_the_profile(cli_json, tmp_path: Path) -> None:
    slow, base = _both(cli_json, tmp_path, "a100-80gb", "plan", "power", "--budget-kw", "60",
                       "--seed", "1")
    latency = {(r["priority"], r["metric"]): r["uncapped"] for r in base["impact"]}
    latency_slow = {(r["priority"], r["metric"]): r["uncapped"] for r in slow["impact"]}
    key = ("high", "latency_p50_s")
    assert latency_slow[key] > latency[key]  # the load's requests ran on slower steps


def test_gpu_mix_capacity_uses_the_profile(tmp_path: Path) -> None:
    """The capacity the GPU-mix ILP is built on (one bucket of one type, by simulation)."""
    prof = half_gemm_profile(tmp_path / "h100-half.json", "h100-sxm")
    task: dict[str, Any] = {"model": "llama3-8b", "device": "h100-sxm", "tp": 1,
                            "inputs": (2048,) * 4, "outputs": (64,) * 4, "slo_ttft_s": 2.0,
                            "slo_tpot_s": 0.1, "num_requests": 60, "rel_tol": 0.1}
    slow = max_rate_within_slo(ProfileTask(**task,
                                           profiles=ProfileChoice.from_paths([str(prof)])))
    base = max_rate_within_slo(ProfileTask(**task, profiles=ProfileChoice(no_profile=True)))
    assert 0 < slow < 0.9 * base


def test_gpu_mix_cli_reports_profiles_and_refuses_unused_devices(cli, tmp_path: Path) -> None:
    l4 = half_gemm_profile(tmp_path / "l4.json", "l4")
    code, _, err = cli("plan", "gpu-mix", "--model", "llama3-8b", "--trace",
                       "azure-conv-2023-sample", "--devices", "h100-sxm", "--slo-ttft", "2",
                       "--slo-tpot", "0.1", "--profile", str(l4))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'l4'" in err and "h100-sxm" in err


def _sweep_train(tmp: Path) -> Path:
    sc = {"name": "tiny-train", "model": "llama3-8b",
          "cluster": {"device": "h100-sxm", "num_devices": 8, "devices_per_node": 8},
          "training": {"seq_len": 2048, "global_batch": 16, "micro_batch": 1},
          "parallelism": {"tp": 2, "pp": 2, "dp": "auto", "schedule": "1f1b"}}
    path = tmp / "train.yaml"
    path.write_text(yaml.safe_dump(sc))
    return path


def test_sweep_honours_the_profile(cli_json, tmp_path: Path) -> None:
    sc = str(_sweep_train(tmp_path))
    slow, base = _both(cli_json, tmp_path, "h100-sxm", "sweep", sc, "--grid",
                       "parallelism.tp=1,2", "--out", str(tmp_path / "s.csv"))
    for r_slow, r_base in zip(slow["rows"], base["rows"], strict=True):
        assert r_slow["ok"] and r_base["ok"]
        assert r_slow["iteration_time_s"] > 1.2 * r_base["iteration_time_s"]


def test_sweep_profile_for_a_grid_device_is_accepted(cli_json, tmp_path: Path) -> None:
    """A --profile for a device only a grid point uses is not 'unused'."""
    sc = str(_sweep_train(tmp_path))
    prof = half_gemm_profile(tmp_path / "a100.json", "a100-80gb")
    out = cli_json("sweep", sc, "--grid", "cluster.device=h100-sxm,a100-80gb",
                   "--out", str(tmp_path / "s.csv"), "--profile", str(prof))
    assert out["profile"]["a100-80gb"]["name"] == "a100-80gb-half-gemm"
    assert out["profile"]["h100-sxm"]["name"] == \
        ops.resolve_profile(load_device("h100-sxm")).describe()["name"]  # bundled, else defaults


@pytest.mark.parametrize("args", [
    PLAN_TRAIN,
    ("plan", "serve", "--model", "llama3-8b", "--devices", "h100-sxm", "--slo-ttft", "2"),
    ("plan", "power", "--budget-kw", "60"),
])
def test_plan_profile_for_an_unused_device_exits_2(cli, tmp_path: Path,
                                                   args: tuple[str, ...]) -> None:
    l4 = half_gemm_profile(tmp_path / "l4.json", "l4")
    code, _, err = cli(*args, "--profile", str(l4))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--profile" in err and "'l4'" in err
