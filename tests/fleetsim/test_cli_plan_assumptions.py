"""Every `plan ...` states the assumptions its answer depends on (JSON and one human line),
and exits 3 with a reason when nothing is feasible."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from fleetsim.cli.app import main

LONG = "simulator/scenarios/llama3-405b-16k-54d.yaml"
SMALL = {
    "train": ("plan", "train", "--model", "gpt-7.5b", "--device", "a100-80gb", "--num-devices",
              "64", "--seq-len", "2048", "--global-batch", "512", "--top-k", "1",
              "--micro-batches", "4", "--pp", "1", "--tp", "8", "--zero", "1",
              "--recompute", "none", "--schedules", "1f1b"),
    "serve": ("plan", "serve", "--model", "llama3-8b", "--devices", "h100-sxm", "--slo-ttft",
              "2", "--slo-tpot", "0.1", "--tp", "1", "--schedulers", "vllm", "--chunk-sizes",
              "512", "--max-num-seqs", "256", "--disagg", "", "--end-s", "30",
              "--confirm-top", "1"),
    "gpu-mix": ("plan", "gpu-mix", "--model", "llama3-8b", "--trace", "azure-conv-2023-sample",
                "--devices", "h100-sxm", "--slo-tpot", "0.1", "--end-s", "30"),
    "power": ("plan", "power", "--budget-kw", "30", "--training"),
    "checkpoint": ("plan", "checkpoint", LONG, "--seeds", "1", "--set", "run.duration=1d"),
    "spot": ("plan", "spot", "simulator/scenarios/llama3-70b-h100-spot.yaml", "--seeds", "1"),
    "train-hetero": ("plan", "train-hetero", "--model", "llama3-8b", "--pools",
                     "a100-80gb:16,h100-sxm:16", "--global-batch", "32", "--seq-len", "2048"),
}


def _run(args: tuple[str, ...]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_json_has_assumptions_and_human_output_one_line(name: str) -> None:
    code, out, _ = _run((*SMALL[name], "--json"))
    assert code == 0
    a = json.loads(out)["assumptions"]
    assert {"fabric", "engine", "profile"} <= set(a) and all(a[k] for k in a)
    code, text, _ = _run(SMALL[name])
    assert code == 0
    lines = [ln for ln in text.splitlines() if ln.startswith("assumptions: ")]
    assert len(lines) == 1 and "fabric=" in lines[0] and "profile=" in lines[0]


def test_assumptions_name_the_inputs_they_rest_on() -> None:
    a = json.loads(_run((*SMALL["serve"], "--json"))[1])["assumptions"]
    assert "h100-sxm: nvlink4" in a["fabric"] and a["engine"].startswith("kernel-only")
    a = json.loads(_run((*SMALL["checkpoint"], "--json"))[1])["assumptions"]
    assert "roce-400g" in a["fabric"] and a["failures"] == "llama3"
    a = json.loads(_run((*SMALL["train"], "--json"))[1])["assumptions"]
    assert "ib-hdr" in a["fabric"] and a["dtype"] == "bf16"
    a = json.loads(_run((*SMALL["spot"], "--json"))[1])["assumptions"]
    assert "h100-sxm" in a["fabric"] and a["warning_s"] == 120.0
    a = json.loads(_run((*SMALL["train-hetero"], "--json"))[1])["assumptions"]
    assert "a100-80gb" in a["fabric"] and "h100-sxm" in a["fabric"]
    assert "a100-80gb:" in a["profile"] and "h100-sxm:" in a["profile"]


INFEASIBLE = {
    "train": ("plan", "train", "--model", "llama3.1-405b", "--device", "l4", "--num-devices",
              "8", "--seq-len", "4096", "--global-batch", "8", "--micro-batches", "1"),
    "serve": ("plan", "serve", "--model", "llama3.1-405b", "--devices", "l4", "--tp", "1,2",
              "--slo-ttft", "1", "--slo-tpot", "0.1", "--end-s", "30", "--disagg", ""),
    "gpu-mix": ("plan", "gpu-mix", "--model", "llama3.1-405b", "--trace",
                "azure-conv-2023-sample", "--devices", "l4", "--slo-tpot", "0.01",
                "--end-s", "30"),
    "power": ("plan", "power", "--budget-kw", "1", "--training"),
    "checkpoint": ("plan", "checkpoint", LONG, "--seeds", "1", "--set", "run.duration=1d",
                   "--set", "cluster.num_devices=64", "--set", "parallelism.pp=1"),
}


@pytest.mark.parametrize("name", sorted(INFEASIBLE))
def test_nothing_feasible_exits_3_with_a_reason(name: str) -> None:
    code, out, err = _run(INFEASIBLE[name])
    assert code == 3, (code, out[-400:], err[-400:])
    assert len(err.strip()) > 20 and "Traceback" not in err


def test_gpu_mix_accepts_a_tpot_only_slo() -> None:
    code, out, _ = _run((*SMALL["gpu-mix"], "--json"))
    d = json.loads(out)
    assert code == 0 and d["slo"]["ttft_s"] is None and d["slo"]["tpot_s"] == 0.1
    assert d["meets_slo"] and d["slo_attainment"] >= 0.95
    code, _, err = _run(("plan", "gpu-mix", "--model", "llama3-8b", "--trace",
                         "azure-conv-2023-sample", "--devices", "h100-sxm"))
    assert code == 2 and "slo" in err.lower()  # neither SLO: bad input, not a plan
