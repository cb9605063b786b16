"""Engine profiles must not slow the Azure replay (issue 16: at most +10%): the whole Azure 2023
conversation trace on one Llama-2-70B TP8 H100 replica (benchmarks/bench_serving.py's case),
once per engine preset (unset = kernel-only, today's model), best of --repeat wall times, and the
engine's effect on TTFT/TPOT.

Run: python benchmarks/bench_engine_profiles.py [--repeat N] [--engines E ...]
"""

from __future__ import annotations

import argparse
import copy
import time

from bench_serving import BASE, FULL_AZURE

from simulator.serving import load_serving_scenario, simulate_serving
from traces.readers import read_trace

ENGINES = [None, "vllm-0.2", "vllm-0.6", "sglang", "trtllm"]


def bench(engine: str | None, df, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    """Best wall seconds of `repeat` replays under `engine` and the last result."""
    mapping = copy.deepcopy(BASE)
    if engine is not None:
        mapping["serving"]["engine"] = engine
        mapping["serving"].pop("scheduler")  # the engine's default scheduler
    scenario = load_serving_scenario(mapping)
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = simulate_serving(scenario, df)
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=ENGINES[1:])
    args = parser.parse_args()
    df = read_trace(FULL_AZURE if FULL_AZURE.exists() else "azure-conv-2023-sample")
    base_s, _ = bench(None, df, args.repeat)
    print(f"{len(df)} requests; unset engine (kernel-only): {base_s:.2f} s")
    for engine in args.engines:
        wall, result = bench(engine, df, args.repeat)
        s = result.summary()  # type: ignore[attr-defined]
        print(f"{engine:>10}: {wall:.2f} s ({wall / base_s - 1:+.1%} vs unset)  "
              f"TTFT p50 {s['ttft_s']['p50'] * 1e3:.1f} ms  TPOT p50 "
              f"{s['tpot_s']['p50'] * 1e3:.1f} ms  {s['throughput_tokens_per_s']:,.0f} tok/s")


if __name__ == "__main__":
    main()
