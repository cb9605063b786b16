"""CLI: an impossible plan or step is never a silent number (exit 3 unless --allow-infeasible)."""

from __future__ import annotations

import json

from hwmodels.catalog import load_device, load_model
from hwmodels.memory import serving_step_fit

STEP_405B_L4 = ("estimate", "step", "--model", "llama3.1-405b", "--device", "l4",
                "--decode-seqs", "1", "--context", "128")


def test_estimate_step_that_cannot_fit_exits_3(cli) -> None:
    code, out, err = cli(*STEP_405B_L4)
    assert code == 3, (out, err)
    assert "does not fit" in err and "--allow-infeasible" in err
    assert "ms" not in out  # no step time printed


def test_estimate_step_allow_infeasible_reports_it(cli) -> None:
    code, out, _ = cli(*STEP_405B_L4, "--allow-infeasible")
    assert code == 0
    assert "DOES NOT FIT" in out
    code, out, _ = cli(*STEP_405B_L4, "--allow-infeasible", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["fits_memory"] is False and data["time_s"] > 0
    assert data["memory_needed_gib"] > data["memory_capacity_gib"]


def test_estimate_step_kv_of_a_huge_batch_counts(cli) -> None:
    # 8B weights fit an H100, but 256 sequences of 8k context need ~256 GiB of KV
    code, _, err = cli("estimate", "step", "--model", "llama3-8b", "--device", "h100-sxm",
                       "--decode-seqs", "256", "--context", "8192")
    assert code == 3, err


def test_serving_step_fit_grows_with_kv_and_shrinks_with_tp() -> None:
    m, d = load_model("llama2-70b"), load_device("h100-sxm")
    small = serving_step_fit(m, d, tp=8, batch_tokens=8, batch_seqs=8, kv_tokens=8 * 1024)
    big = serving_step_fit(m, d, tp=8, batch_tokens=8, batch_seqs=8, kv_tokens=8 * 100_000)
    assert small.fits and big.needed_bytes > small.needed_bytes
    assert serving_step_fit(m, d, tp=1, batch_tokens=1, batch_seqs=1,
                            kv_tokens=1).needed_bytes > small.needed_bytes
    assert not serving_step_fit(m, d, tp=1, batch_tokens=1, batch_seqs=1, kv_tokens=1).fits


SCEN = __import__("pathlib").Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
TRAIN = str(SCEN / "gpt3-175b-a100.yaml")
LONG = str(SCEN / "llama3-405b-16k-54d.yaml")
NO_FIT = ("--set", "cluster.num_devices=64", "--set", "parallelism.pp=1",
          "--set", "parallelism.vpp=1", "--set", "parallelism.schedule=1f1b",
          "--set", "training.global_batch=64")


def test_simulate_train_that_does_not_fit_exits_3(cli) -> None:
    code, out, err = cli("simulate", "train", TRAIN, *NO_FIT)
    assert code == 3, (out, err)
    assert "does not fit" in err
    code, out, _ = cli("simulate", "train", TRAIN, *NO_FIT, "--allow-infeasible")
    assert code == 0 and "DOES NOT FIT" in out


def test_plan_train_with_nothing_feasible_exits_3_with_reasons(cli) -> None:
    args = ("plan", "train", "--model", "llama3.1-405b", "--device", "l4", "--num-devices", "8",
            "--seq-len", "4096", "--global-batch", "8")
    code, out, err = cli(*args)
    assert code == 3, (out, err)
    assert "by divisibility" in err and "by memory" in err
    code, out, _ = cli(*args, "--allow-infeasible")
    assert code == 0 and "INFEASIBLE" in out and "by memory" in out
    code, out, _ = cli(*args, "--allow-infeasible", "--json")
    data = json.loads(out)
    assert code == 0 and data["plans"] == [] and data["pruned_memory"] > 0


def test_plan_serve_with_nothing_feasible_exits_3(cli) -> None:
    args = ("plan", "serve", "--model", "llama3.1-405b", "--devices", "l4", "--tp", "1,2",
            "--slo-ttft", "1", "--slo-tpot", "0.1", "--confirm-top", "0")
    code, _, err = cli(*args)
    assert code == 3 and "rejected 20 by memory" in err, err
    code, out, _ = cli(*args, "--allow-infeasible")
    assert code == 0 and "INFEASIBLE" in out


def test_plan_power_below_one_server_exits_3(cli) -> None:
    code, _, err = cli("plan", "power", "--budget-kw", "1")
    assert code == 3 and "not even one dgx-a100 server" in err and "budget" in err, err
    code, out, _ = cli("plan", "power", "--budget-kw", "1", "--allow-infeasible", "--json")
    assert code == 0 and json.loads(out)["servers"] == 0


def test_plan_checkpoint_that_does_not_fit_exits_3(cli) -> None:
    code, _, err = cli("plan", "checkpoint", LONG, "--seeds", "1", "--set",
                       "parallelism.tp=1", "--set", "parallelism.pp=1",
                       "--set", "parallelism.schedule=1f1b", "--set", "parallelism.vpp=1",
                       "--set", "cluster.num_devices=64", "--set", "training.global_batch=64",
                       "--set", "run.spares=0")
    assert code == 3 and "does not fit" in err, err


def test_plan_gpu_mix_no_type_serves_exits_3(cli) -> None:
    code, _, err = cli("plan", "gpu-mix", "--model", "llama3-8b", "--trace",
                       "azure-conv-2023-sample", "--devices", "l4", "--slo-ttft", "1e-6",
                       "--slo-tpot", "1e-6")
    assert code == 3 and "no instance type serves" in err, err


def test_infeasible_hint_only_names_options_the_command_has(cli):
    """plan train-hetero has no --allow-infeasible: its exit-3 line must not suggest it."""
    code, _, err = cli("plan", "train-hetero", "--model", "llama3.1-405b", "--pools",
                       "l4:8,a10g:8", "--global-batch", "16")
    assert code == 3 and "allow-infeasible" not in err and len(err.splitlines()) == 1
    code, _, err = cli("plan", "train", "--model", "llama3.1-405b", "--device", "l4",
                       "--num-devices", "8", "--seq-len", "8192", "--global-batch", "8")
    assert code == 3 and "--allow-infeasible" in err
