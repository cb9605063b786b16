"""Solve time of the GPU-mix integer program: 6 instance types x 100 request-size buckets.

Run: python benchmarks/bench_gpu_mix.py [--seeds N] [--windows W]   (target: < 5 s per solve)
or:  pytest benchmarks/bench_gpu_mix.py --benchmark-enable
Throughput tables are synthetic but shaped like profiled ones: capacity falls with request
size, small GPUs cannot serve the largest buckets (TTFT/KV), prices span $0.8-12/h.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from planners.mix_ilp import single_type_costs, solve_mix

TYPES, BUCKETS = 6, 100


def synthetic_instance(seed: int, *, windows: int = 1) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """(rates [W, B], capacity [B, T], prices [T]) for a 10 x 10 input x output grid."""
    rng = np.random.default_rng(seed)
    size = np.outer(np.geomspace(64, 16384, 10), np.geomspace(16, 2048, 10)).ravel()
    speed = np.array([0.5, 1.0, 2.0, 4.0, 9.0, 16.0])  # rps x 1e4 / size, per type
    prices = np.array([0.80, 1.01, 1.86, 3.00, 5.12, 12.29])
    cap = speed[None, :] * 1e4 / size[:, None] * rng.uniform(0.8, 1.2, (BUCKETS, TYPES))
    cap[size[:, None] > np.array([2e5, 4e5, 2e6, 1e7, 2e7, 4e7])[None, :]] = 0.0
    rates = rng.lognormal(-1.0, 1.0, (windows, BUCKETS)) * rng.uniform(0.5, 1.5, (windows, 1))
    return rates, cap, prices


def solve_once(seed: int, solver: str, windows: int = 1) -> Any:
    rates, cap, prices = synthetic_instance(seed, windows=windows)
    return solve_mix(rates, cap, prices, solver=solver)


def test_ilp_6x100_cbc(benchmark: Any) -> None:
    sol = benchmark(solve_once, 0, "cbc")
    assert sol.cost_usd_per_hour > 0


def test_ilp_6x100_highs(benchmark: Any) -> None:
    sol = benchmark(solve_once, 0, "highs")
    assert sol.cost_usd_per_hour > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--windows", type=int, default=1)
    args = parser.parse_args()
    for solver in ("cbc", "highs"):
        times, saving = [], []
        for seed in range(args.seeds):
            rates, cap, prices = synthetic_instance(seed, windows=args.windows)
            start = time.perf_counter()
            sol = solve_mix(rates, cap, prices, solver=solver)
            times.append(time.perf_counter() - start)
            saving.append(1 - sol.cost_usd_per_hour
                          / single_type_costs(rates, cap, prices).min())
        print(f"{solver:5s} {TYPES} types x {BUCKETS} buckets x {args.windows} window(s): "
              f"solve {np.mean(times):.3f} s mean, {np.max(times):.3f} s max over "
              f"{args.seeds} seeds; mix saves {np.mean(saving):.1%} vs best single type")


if __name__ == "__main__":
    main()
