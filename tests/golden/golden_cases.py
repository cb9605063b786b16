"""Seeded golden runs: whole `--json` outputs of the CLI, pinned before the house refactor.

Each case is a `fleetsim` argument list; `make_goldens.py` writes `<name>.json` beside this file
and `test_golden.py` re-runs the case and compares the whole JSON object. The outputs may only
change in a commit that names the bug it fixes and regenerates the file.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCEN = ROOT / "simulator" / "scenarios"


def scen(name: str) -> str:
    return str(SCEN / name)


CASES: dict[str, tuple[str, ...]] = {
    "train_gpt3_175b": ("simulate", "train", scen("gpt3-175b-a100.yaml")),
    "longrun_llama3_405b": ("simulate", "train", scen("llama3-405b-16k-54d.yaml"),
                            "--set", "run.duration=7d", "--seeds", "2"),
    "serve_azure": ("simulate", "serve", scen("llama2-70b-h100-azure.yaml")),
    "serve_disagg_mooncake": ("simulate", "serve", scen("llama3-70b-h100-disagg-mooncake.yaml")),
    "serve_hetero_autoscale": ("simulate", "serve", scen("llama3-8b-hetero-autoscale.yaml")),
    "plan_train": ("plan", "train", "--model", "gpt-7.5b", "--device", "a100-80gb",
                   "--num-devices", "64", "--seq-len", "2048", "--global-batch", "512",
                   "--top-k", "3", "--micro-batches", "4", "--pp", "1,2"),
    "plan_serve": ("plan", "serve", "--model", "llama3-8b", "--devices", "l4,h100-sxm",
                   "--slo-ttft", "2", "--slo-tpot", "0.1", "--tp", "1", "--schedulers", "vllm",
                   "--chunk-sizes", "512", "--max-num-seqs", "256", "--disagg", "1:1",
                   "--end-s", "60", "--confirm-top", "1"),
    "plan_gpu_mix": ("plan", "gpu-mix", "--model", "llama3-8b", "--trace",
                     "azure-conv-2023-sample", "--devices", "l4,h100-sxm", "--slo-ttft", "2",
                     "--slo-tpot", "0.1", "--end-s", "60"),
    "plan_power": ("plan", "power", "--budget-kw", "60", "--seed", "1"),
    "plan_checkpoint": ("plan", "checkpoint", scen("llama3-405b-16k-54d.yaml"), "--seeds", "1",
                        "--set", "run.duration=1d", "--set", "run.checkpoint.mode=sync"),
}
