"""Speed of the serving planner: Llama-2-70B on the bundled Azure 2023 conversation sample over
three device types (a100-80gb, h100-sxm, h200), a Vidur-Search-sized space.

Run: python benchmarks/bench_plan_serve.py [--workers 2] [--small] [--no-disagg]
Space (default): TP {1,2,4,8} x PP {1,2,4}; schedulers vllm, orca (token budget 8192) and
sarathi (chunk 512/1024/2048/4096); max_num_seqs {32,64,128,256,512}; plus prefill:decode
units 1:1, 1:2, 2:1, 1:3 (when the simulator supports disaggregation). SLO: P90 of requests
within TTFT 2 s and TPOT 0.1 s. Bisection window 400 requests, tolerance 5%; the top 5
deployments are confirmed on the whole trace; units that cannot win even at 3x their closed-form
estimate are skipped (--no-prune simulates all). Prints counts, wall time and the best plans.
Target (issue 8): < 10 minutes on 2 cores (Vidur-Search: ~1 CPU-hour for a comparable
70B search, Agrawal et al., MLSys'24 Sec. 7).
Also runnable under pytest-benchmark: pytest benchmarks/bench_plan_serve.py --benchmark-enable.
"""

from __future__ import annotations

import argparse
import time

from planners.executors import LocalExecutor
from planners.serve import ServePlanResult, plan_serve
from traces.readers import read_trace

DEVICES = ("a100-80gb", "h100-sxm", "h200")
RATIOS = ("1:1", "1:2", "2:1", "1:3")


def run(workers: int = 2, small: bool = False, disagg: bool = True, prune: bool = True
        ) -> ServePlanResult:
    """One full search on `workers` processes."""
    df = read_trace("azure-conv-2023-sample")
    space = ({"tp": (2, 4, 8), "pp": (1,), "schedulers": ("vllm", "sarathi"),
              "chunk_sizes": (512, 2048), "max_num_seqs": (128, 256)} if small else
             {"tp": (1, 2, 4, 8), "pp": (1, 2, 4), "schedulers": ("vllm", "orca", "sarathi"),
              "chunk_sizes": (512, 1024, 2048, 4096), "max_num_seqs": (32, 64, 128, 256, 512)})
    with LocalExecutor(max_workers=workers) as ex:
        return plan_serve("llama2-70b", df, slo_ttft_s=2.0, slo_tpot_s=0.1,
                          slo_percentile="p90", devices=DEVICES,
                          disaggregation=RATIOS if disagg else None, confirm_top=5,
                          prune_by_estimate=prune, executor=ex, **space)


def test_plan_serve_llama2_70b(benchmark):  # type: ignore[no-untyped-def]
    res = benchmark.pedantic(run, kwargs={"small": True}, rounds=1, iterations=1)
    assert not res.plans.empty and res.plans["meets_workload"].iloc[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--small", action="store_true", help="a 54-candidate space")
    parser.add_argument("--no-disagg", action="store_true")
    parser.add_argument("--no-prune", action="store_true")
    args = parser.parse_args()
    start, cpu0 = time.perf_counter(), time.process_time()
    res = run(args.workers, args.small, not args.no_disagg, not args.no_prune)
    wall = time.perf_counter() - start
    for key, value in res.counts().items():
        print(f"{key:>16}: {value:.2f}" if isinstance(value, float) else f"{key:>16}: {value}")
    print(f"{'wall_s':>16}: {wall:.2f}  (this process's CPU {time.process_time() - cpu0:.1f} s)")
    if res.failures:
        print(f"{len(res.failures)} failed, first: {res.failures[0]}")
    cols = ["device", "tp", "pp", "placement", "pd_ratio", "scheduler", "token_budget",
            "max_num_seqs", "unit_rate_rps", "units", "gpus", "cost_usd_per_hour",
            "requests_per_usd", "confirmed", "confirmed_attainment"]
    print(res.plans[cols].head(10).to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print("Pareto front (cost vs goodput):")
    print(res.pareto[["device", "tp", "pp", "placement", "pd_ratio", "scheduler", "units",
                      "cost_usd_per_hour", "goodput_rps"]].to_string(
        index=False, float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()
