"""CLI: simulate train/serve, traces, plan, sweep, validate and demo through `main()`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCEN = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
TRAIN = str(SCEN / "gpt3-175b-a100.yaml")
SERVE = str(SCEN / "llama2-70b-h100-azure.yaml")
LONG = str(SCEN / "llama3-405b-16k-54d.yaml")
SMALL_TRAIN = ("--set", "cluster.num_devices=128", "--set", "training.global_batch=256")

TRAIN_KEYS = {"iteration_time_s", "tokens_per_s", "tflops_per_gpu", "mfu", "hfu",
              "peak_memory_gib", "fits_memory", "breakdown"}
SERVE_KEYS = {"requests", "completed", "dropped", "ttft_s", "tpot_s", "e2e_s", "slo_attainment",
              "goodput_rps", "throughput_tokens_per_s", "gpu_hours", "cost_usd", "energy_kwh"}


def test_simulate_train_contract_and_timeline(cli_json, tmp_path: Path) -> None:
    timeline = tmp_path / "t.json"
    out = cli_json("simulate", "train", TRAIN, *SMALL_TRAIN, "--timeline", str(timeline))
    assert TRAIN_KEYS <= set(out)
    assert set(out["breakdown"]) >= {"compute_s", "exposed_comm_s", "bubble_s", "optimizer_s"}
    assert 0.2 < out["mfu"] < 0.8 and out["fits_memory"] is True
    events = json.loads(timeline.read_text())
    names = events["traceEvents"] if isinstance(events, dict) else events
    assert any(e.get("ph") == "X" for e in names)


def test_simulate_train_with_run_section(cli_json) -> None:
    out = cli_json("simulate", "train", LONG, "--set", "run.duration=2d")
    assert {"ettr", "goodput_tokens_per_s", "interruptions"} <= set(out)
    assert 0.8 < out["ettr"] <= 1.0
    assert out["goodput_tokens_per_s"] < out["tokens_per_s"]


def test_simulate_train_bad_plan_is_one_line(cli) -> None:
    code, _, err = cli("simulate", "train", TRAIN, "--set", "parallelism.dp=3")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "gpt3-175b-a100.yaml" in err and "num_devices" in err


def test_simulate_train_missing_file(cli) -> None:
    code, _, err = cli("simulate", "train", "/nonexistent/s.yaml")
    assert code == 2 and "/nonexistent/s.yaml" in err


def test_simulate_serve_contract(cli_json, tmp_path: Path) -> None:
    rec = tmp_path / "records.csv"
    out = cli_json("simulate", "serve", SERVE, "--set", "workload.window=[0, 60]",
                   "--records", str(rec))
    assert SERVE_KEYS <= set(out)
    assert out["requests"] == out["completed"] + out["dropped"] + out.get("running", 0)
    assert rec.exists() and rec.stat().st_size > 0


def test_simulate_serve_malformed_trace(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival_time_s,input_tokens,output_tokens\n0.0,10,5\n1.0,-3,5\n")
    code, _, err = cli("simulate", "serve", SERVE, "--trace", str(bad))
    assert code == 2 and "bad.csv" in err and "input_tokens" in err


def test_traces_stats_and_synth(cli_json, tmp_path: Path) -> None:
    stats = cli_json("traces", "stats", "azure-conv-2023-sample")
    assert stats["requests"] == 2000 and stats["format"]
    out = tmp_path / "synth.jsonl"
    syn = cli_json("traces", "synth", "--out", str(out), "--num-requests", "300",
                   "--arrival", "process=gamma,rate=4,cv=2", "--seed", "3")
    assert syn["requests"] == 300 and 1.5 < syn["interarrival_cv"] < 2.5
    again = cli_json("traces", "stats", str(out))
    assert again["requests"] == 300


def test_plan_checkpoint_json(cli_json) -> None:
    out = cli_json("plan", "checkpoint", LONG, "--seeds", "1", "--set", "run.duration=1d",
                   "--set", "run.checkpoint.mode=sync")
    assert out["best_interval_s"] > 0 and out["young_interval_s"] > 0
    assert out["table"]


def test_plan_train_json(cli_json) -> None:
    out = cli_json("plan", "train", "--model", "gpt-7.5b", "--device", "a100-80gb",
                   "--num-devices", "64", "--seq-len", "2048", "--global-batch", "512",
                   "--top-k", "3", "--micro-batches", "4", "--pp", "1,2")
    assert out["plans"] and out["considered"] >= out["simulated"] > 0
    best = out["plans"][0]
    assert best["tp"] * best["pp"] * best["dp"] * best["cp"] == 64
    assert best["pipeline_split"].startswith("even ")
    assert out["fabric"]
    cred = out["credibility"]
    assert cred["device_class"] == "a100" and cred["best_published_mfu"] > 0
    assert cred["exceeds"] == (best["mfu"] > cred["best_published_mfu"])


PLAN_SMALL = ("plan", "train", "--model", "gpt-7.5b", "--device", "a100-80gb",
              "--num-devices", "64", "--seq-len", "2048", "--global-batch", "512",
              "--top-k", "3", "--micro-batches", "4")


def test_plan_train_search_options(cli_json) -> None:
    """--tp/--pp/--zero/--recompute/--schedules/--fsdp-impl restrict the space; a pp that does
    not divide the layers (36 on pp8) is searched with the balanced split and named."""
    out = cli_json(*PLAN_SMALL, "--tp", "2,4", "--pp", "8", "--zero", "1,3",
                   "--recompute", "selective", "--schedules", "1f1b", "--fsdp-impl",
                   "fsdp2,deepspeed", "--inter-node", "ib-hdr")
    assert out["plans"]
    for row in out["plans"]:
        assert row["tp"] in (2, 4) and row["pp"] == 8 and row["zero"] in (1, 3)
        assert row["recompute"] == "selective" and row["schedule"] == "1f1b"
        assert row["pipeline_split"] == "balanced 4x2+5x4+4x2"  # 36 layers on pp8
        assert row["fsdp_impl"] in (("fsdp2", "deepspeed") if row["zero"] == 3 else ("",))
    assert "ib-hdr" in out["fabric"]


def test_plan_train_table_names_split_fabric_and_warns(cli) -> None:
    """The table output names the split and fabric; a best plan above the published A100
    ceiling prints the warning line instead of passing as routine."""
    code, out, err = cli(*PLAN_SMALL, "--pp", "1,2")
    assert code == 0, err
    assert "pipeline split" in out and "fabric:" in out
    code, data, _ = cli(*PLAN_SMALL, "--pp", "1,2", "--json")
    cred = __import__("json").loads(data)["credibility"]
    assert code == 0
    assert ("WARNING: predicted MFU" in out) == cred["exceeds"]


def test_plan_train_lists_the_best_plan_of_each_other_shape(cli) -> None:
    """--json "shapes": one row per (devices, tp, pp, cp, ep), best tokens/s first, each a
    simulated plan; the text output prints the shapes its ranked table does not show."""
    import json

    code, data, err = cli(*PLAN_SMALL, "--pp", "1,2", "--top-k", "2", "--json")
    assert code == 0, err
    out = json.loads(data)
    key = ("num_devices", "tp", "pp", "cp", "ep")
    shapes = [tuple(r[k] for k in key) for r in out["shapes"]]
    assert len(shapes) == len(set(shapes)) == 2
    rates = [r["tokens_per_s"] for r in out["shapes"]]
    assert rates == sorted(rates, reverse=True) and rates[0] >= out["plans"][0]["tokens_per_s"]
    assert all(r["mfu"] > 0 and r["peak_memory_gib"] > 0 for r in out["shapes"])
    hidden = set(shapes) - {tuple(r[k] for k in key) for r in out["plans"]}
    code, text, err = cli(*PLAN_SMALL, "--pp", "1,2", "--top-k", "2")
    assert code == 0, err
    assert ("best plan of each other parallel shape" in text) == bool(hidden)
    for shape in hidden:
        assert f"tp{shape[1]} pp{shape[2]} cp{shape[3]} ep{shape[4]}" in text


def test_plan_train_shape_probes_option(cli) -> None:
    import json

    code, data, err = cli(*PLAN_SMALL, "--pp", "1,2", "--top-k", "2", "--shape-probes", "0",
                          "--json")
    assert code == 0, err
    out = json.loads(data)
    key = ("num_devices", "tp", "pp", "cp", "ep")
    assert {tuple(r[k] for k in key) for r in out["shapes"]} <= \
        {tuple(r[k] for k in key) for r in out["plans"]}
    code, _, err = cli(*PLAN_SMALL, "--shape-probes", "-1")
    assert code == 2 and "--shape-probes" in err and len(err.strip().splitlines()) == 1


def test_sweep_writes_table(cli_json, tmp_path: Path) -> None:
    table = tmp_path / "sweep.csv"
    out = cli_json("sweep", TRAIN, *SMALL_TRAIN, "--grid", "parallelism.pp=4,8",
                   "--out", str(table), "--executor", "local")
    assert out["points"] == 2 and out["failed"] == 0 and table.exists()


def test_validate_training_json(cli_json) -> None:
    out = cli_json("validate", "training")
    summary = {r["table"]: r for r in out["training"]["summary"]}
    assert summary["TARGET"]["mape_pct"] <= 10.0


@pytest.mark.parametrize("args", [("validate", "nonsense"), ("plan", "train", "--model", "x",
                                  "--device", "h100-sxm", "--num-devices", "8",
                                  "--seq-len", "2048", "--global-batch", "8")])
def test_bad_arguments_exit_2(cli, args) -> None:
    code, _, err = cli(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_demo_writes_report(cli, tmp_path: Path) -> None:
    code, out, err = cli("demo", "--out", str(tmp_path / "demo"))
    assert code == 0, err
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "Validation against published training runs" in report
    assert (tmp_path / "demo" / "summary.json").exists()


def test_calibrate_cpu_quick_writes_loadable_profile(cli, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from hwmodels.profile import load_profile

    out = tmp_path / "cpu.json"
    code, stdout, err = cli("calibrate", "--device", "cpu", "--quick", "--out", str(out))
    assert code == 0, err
    assert load_profile(out).device == "cpu"


def test_calibrate_unavailable_device(cli, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    code, _, err = cli("calibrate", "--device", "xpu:7", "--out", str(tmp_path / "x.json"))
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_plan_power_json(cli_json) -> None:
    out = cli_json("plan", "power", "--budget-kw", "60", "--seed", "1")
    assert out["servers"] >= out["nameplate_servers"] > 0
    assert out["max_over_budget_s"] <= 2.0 + 1.0  # control latency + one bin


def test_plan_gpu_mix_json(cli_json) -> None:
    out = cli_json("plan", "gpu-mix", "--model", "llama3-8b", "--trace", "azure-conv-2023-sample",
                   "--devices", "l4,h100-sxm", "--slo-ttft", "2", "--slo-tpot", "0.1",
                   "--end-s", "60")
    assert out["mix"] and out["cost_usd_per_hour"] > 0
    assert out["cost_usd_per_hour"] <= out["best_single_cost_usd_per_hour"] + 1e-9


def test_plan_serve_json(cli_json) -> None:
    out = cli_json("plan", "serve", "--model", "llama3-8b", "--devices", "l4,h100-sxm",
                   "--slo-ttft", "2", "--slo-tpot", "0.1", "--tp", "1", "--schedulers", "vllm",
                   "--chunk-sizes", "512", "--max-num-seqs", "256", "--disagg", "1:1",
                   "--end-s", "60", "--confirm-top", "0")
    assert out["plans"]
    costs = [p["cost_usd_per_hour"] for p in out["plans"] if p["meets_workload"]]
    assert costs
