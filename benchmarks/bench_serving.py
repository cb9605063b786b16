"""Serving simulator speed: the whole Azure 2023 conversation trace on one Llama-2-70B TP8 H100
replica (target < 5 s) and 1,000,000 synthetic requests on 16 replicas (target < 60 s), with 1
and with 4 front-end routers (issue 7: 4 routers x 16 replicas stays under 2x the 1-router
time), and the same with per-step power accounting.

Run: python benchmarks/bench_serving.py [--requests N] [--routers R ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from simulator.serving import load_serving_scenario, simulate_serving
from traces.readers import read_trace
from traces.synth import synthesize

FULL_AZURE = Path(__file__).resolve().parents[2] / "shared" / "traces" / "azure_llm_2023_conv.csv"
BASE = {"model": "llama2-70b", "cluster": {"device": "h100-sxm", "intra_node": "nvlink4"},
        "serving": {"tp": 8, "scheduler": "vllm", "router": "least_loaded"},
        "workload": {"trace": "azure-conv-2023-sample"}, "slo": {"ttft_s": 1.0, "tpot_s": 0.1}}


def bench_azure() -> None:
    df = read_trace(FULL_AZURE if FULL_AZURE.exists() else "azure-conv-2023-sample")
    scenario = load_serving_scenario(BASE)
    t0 = time.perf_counter()
    result = simulate_serving(scenario, df)
    wall = time.perf_counter() - t0
    s = result.summary()
    print(f"azure-2023-conv: {len(df)} requests, {result.duration_s:.0f} s simulated in "
          f"{wall:.2f} s wall ({result.duration_s / wall:,.0f}x real time); completed "
          f"{s['completed']}, TTFT p99 {s['ttft_s']['p99']:.3f} s, TPOT p99 "
          f"{s['tpot_s']['p99']:.4f} s")


def bench_million(n: int, routers: int = 1, power: bool = False) -> float:
    spec = {"num_requests": n, "arrival": {"process": "poisson", "rate": 80.0},
            "input": {"dist": "trace", "path": "azure-conv-2023-sample"},
            "output": {"dist": "trace", "path": "azure-conv-2023-sample"}}
    df = synthesize(spec, seed=0)
    mapping = {**BASE, "serving": {**BASE["serving"], "replicas": 16, "routers": routers}}
    if power:
        mapping["power"] = {"bin_s": 10.0}
    scenario = load_serving_scenario(mapping)
    t0 = time.perf_counter()
    result = simulate_serving(scenario, df)
    wall = time.perf_counter() - t0
    s = result.summary()
    print(f"synthetic: {n:,} requests, {routers} router(s) x 16 replicas"
          f"{' + power' if power else ''}, {result.duration_s:.0f} s simulated in "
          f"{wall:.2f} s wall ({n / wall:,.0f} requests/s, {16 * result.duration_s / wall:,.0f}"
          f" replica-seconds/s); completed {s['completed']:,}, TTFT p99 "
          f"{s['ttft_s']['p99']:.3f} s")
    return wall


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--routers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--power", action="store_true", help="also time with a power section")
    args = parser.parse_args()
    bench_azure()
    walls = {r: bench_million(args.requests, r) for r in args.routers}
    if len(walls) > 1:
        base = walls[min(walls)]
        print("router scaling: " + ", ".join(f"{r} routers {w / base:.2f}x"
                                             for r, w in walls.items()))
    if args.power:
        bench_million(args.requests, max(args.routers), power=True)
