"""Throughput of the serving step model: estimate_step and StepCostModel.time_s calls per second.

Run: python benchmarks/bench_step.py [--calls N]. The serving simulator calls time_s once per
batch step; it needs > 100k calls/s. "fresh" keys change decode_context_sum on every call (as a
real decode loop does); "repeat" replays the same keys (memo hits).
"""

from __future__ import annotations

import argparse
import functools
import random
import time

from hwmodels.catalog import load_device, load_model
from hwmodels.step import StepCostModel, estimate_step


def _batches(n: int, seed: int = 0) -> list[tuple[int, float, int, int]]:
    """Random continuous-batching steps: a few chunked prefills plus up to 256 decodes."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prefill = rng.choice([0, 0, 0, 256, 512, 1024, 2048])
        seqs = rng.randint(1, 256)
        out.append((prefill, prefill * prefill / 2.0, seqs, seqs * rng.randint(64, 4096)))
    return out


def _rate(fn, items) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for item in items:
        fn(*item)
    return len(items) / (time.perf_counter() - start)


def _estimate(model, device, tp, prefill_lens, decode_context_lens):  # type: ignore
    return estimate_step(model, device, tp=tp, prefill_lens=prefill_lens,
                         decode_context_lens=decode_context_lens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    device = load_device("h100-sxm")
    for name, tp in (("llama3-8b", 1), ("llama2-70b", 8), ("mixtral-8x7b", 2)):
        model = load_model(name)
        batches = _batches(args.calls)
        cost = StepCostModel(model, device, tp=tp)
        fresh = _rate(cost.time_s, batches)
        repeat = _rate(cost.time_s, batches)
        small = [([p] if p else [], [c // s] * s) for p, _, s, c in batches[:args.calls // 100]]
        est = _rate(functools.partial(_estimate, model, device, tp), small)
        print(f"{name:14s} tp={tp}  StepCostModel.time_s: {fresh:>10,.0f} calls/s fresh, "
              f"{repeat:>11,.0f} calls/s repeat;  estimate_step: {est:>8,.0f} calls/s")


if __name__ == "__main__":
    main()
