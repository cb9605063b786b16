"""Speed of the long-run engine: a month of a 16,384-GPU job must simulate in < 10 s.

Run: pytest benchmarks/bench_longrun.py --benchmark-enable   (or python benchmarks/bench_longrun.py)
  - llama3 failure model, async checkpoints every 10 min (fast-forward between failures);
  - multilevel checkpoints every 5 min (every cycle stepped as events);
  - the same with 1% transient stragglers (an event every ~30 s of simulated time).
"""

from __future__ import annotations

import time
from typing import Any

from simulator.longrun import JobShape, RunResult, parse_run, simulate_longrun

JOB = JobShape(num_gpus=16384, gpus_per_node=8, dp=128, gpus_per_replica=128,
               tokens_per_iteration=16 * 2**20, state_bytes=405e9 * 18)
MONTH = {"duration": "30d", "spares": 64, "checkpoint": {"interval_s": "10m", "mode": "async"}}
MULTILEVEL = {**MONTH, "checkpoint": {"interval_s": "5m", "mode": "multilevel",
                                      "persistent_every": 6}}
STRAGGLERS = {**MULTILEVEL, "stragglers": {"fraction": 0.01, "slowdown": 1.3,
                                           "kind": "transient", "duration_s": "10m"}}


def run_month(run: dict[str, Any], seed: int = 0) -> RunResult:
    return simulate_longrun(parse_run(run, job=JOB), JOB, lambda dp: 6.0 * 128 / dp, seed=seed)


def test_bench_month_16k_async(benchmark) -> None:  # type: ignore[no-untyped-def]
    assert benchmark(run_month, MONTH).ettr > 0.9


def test_bench_month_16k_multilevel(benchmark) -> None:  # type: ignore[no-untyped-def]
    assert benchmark(run_month, MULTILEVEL).ettr > 0.9


def test_bench_month_16k_transient_stragglers(benchmark) -> None:  # type: ignore[no-untyped-def]
    assert benchmark(run_month, STRAGGLERS).ettr > 0.5


if __name__ == "__main__":
    for name, run in (("async", MONTH), ("multilevel", MULTILEVEL),
                      ("transient stragglers", STRAGGLERS)):
        t0 = time.perf_counter()
        r = run_month(run)
        dt = time.perf_counter() - t0
        print(f"30 days x 16,384 GPUs, {name}: {dt:.2f} s wall, ETTR {r.ettr:.3f}, "
              f"{r.num_interruptions} interruptions")
