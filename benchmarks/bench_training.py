"""Speed of simulate_iteration on the issue-3 scenarios (pytest-benchmark, not timing asserts).

Run: pytest benchmarks/bench_training.py --benchmark-enable
  - 1T GPT on 3072 A100 (TP8 PP64 DP6, 512 microbatches per pipeline): target < 2 s.
  - the 1T GPT on 16,384 H100 (TP8 PP64 DP32, 128 microbatches, ZeRO-1): target < 5 s.
"""

from __future__ import annotations

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.dtypes import DType
from hwmodels.parallel import ParallelConfig, Recompute, TrainingConfig
from simulator.training import simulate_iteration


def _gpt_1t():  # type: ignore[no-untyped-def]
    return load_model({"name": "gpt-1t", "model_type": "gpt2", "n_layer": 128, "n_embd": 25600,
                       "n_head": 160, "n_positions": 2048, "vocab_size": 51200})


def run_1t_3072() -> float:
    cluster = build_cluster("a100-80gb", 3072, inter_node="ib-hdr")
    training = TrainingConfig(seq_len=2048, global_batch=3072, micro_batch=1, dtype=DType.FP16)
    plan = ParallelConfig(tp=8, pp=64, dp=6, recompute=Recompute.FULL)
    return simulate_iteration(_gpt_1t(), cluster, training, plan).iteration_time_s


def run_1t_16k() -> float:
    cluster = build_cluster("h100-sxm", 16384, inter_node="ib-ndr")
    training = TrainingConfig(seq_len=2048, global_batch=4096, micro_batch=1)
    plan = ParallelConfig(tp=8, pp=64, dp=32, zero=1, sequence_parallel=True,
                          recompute=Recompute.SELECTIVE)
    return simulate_iteration(_gpt_1t(), cluster, training, plan).iteration_time_s


def test_bench_1t_3072_a100(benchmark) -> None:  # type: ignore[no-untyped-def]
    assert benchmark(run_1t_3072) > 0


def test_bench_1t_16384_h100(benchmark) -> None:  # type: ignore[no-untyped-def]
    assert benchmark(run_1t_16k) > 0


if __name__ == "__main__":
    import time

    for fn in (run_1t_3072, run_1t_16k):
        t0 = time.perf_counter()
        value = fn()
        print(f"{fn.__name__}: iteration {value:.2f} s simulated in "
              f"{time.perf_counter() - t0:.2f} s")
