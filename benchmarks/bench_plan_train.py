"""Speed of the training planner: the 1T GPT of SC'21 Table 1 on 3072 A100-80GB (Selene).

Run: python benchmarks/bench_plan_train.py [--workers 2] [--simulate-top 10]
The full default search space (TP within a node, PP dividing the layers, vpp <= 8, micro-batch
1-8, ZeRO 0-3, recompute none/selective/full, SP, schedules 1F1B/interleaved/ZB-H1), seq 2048,
global batch 3072 sequences, fp16. Prints candidates considered / pruned / estimated /
simulated, the wall time of each step and the best plans. Target (issue 8): < 60 s on 2 cores.
Also runnable under pytest-benchmark: pytest benchmarks/bench_plan_train.py --benchmark-enable.
"""

from __future__ import annotations

import argparse
import time

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from planners.executors import LocalExecutor
from planners.train import PlanResult, plan_train_on

# SC'21 Table 1, last row: 128 layers, hidden 25600, 160 heads, 3072 GPUs, batch 3072.
GPT_1T = {"name": "gpt-1t", "model_type": "gpt2", "n_layer": 128, "n_embd": 25600,
          "n_head": 160, "n_inner": 102400, "n_positions": 2048, "vocab_size": 51200,
          "tie_word_embeddings": True}


def run(workers: int = 2, simulate_top: int = 10) -> PlanResult:
    """One full search, the simulations fanned out over `workers` processes."""
    model = load_model(GPT_1T)
    cluster = build_cluster("a100-80gb", 3072, devices_per_node=8, intra_node="nvlink3",
                            inter_node="ib-hdr")
    with LocalExecutor(max_workers=workers) as ex:
        return plan_train_on(model, cluster, seq_len=2048, global_batch=3072, dtype="fp16",
                             top_k=10, simulate_top=simulate_top, executor=ex)


def test_plan_train_1t(benchmark):  # type: ignore[no-untyped-def]
    res = benchmark.pedantic(run, rounds=1, iterations=1)
    assert res.simulated == 10 and not res.plans.empty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--simulate-top", type=int, default=10)
    args = parser.parse_args()
    start = time.perf_counter()
    res = run(args.workers, args.simulate_top)
    wall = time.perf_counter() - start
    for key, value in res.counts().items():
        print(f"{key:>20}: {value:.2f}" if isinstance(value, float) else f"{key:>20}: {value}")
    print(f"{'wall_s':>20}: {wall:.2f}")
    cols = ["tp", "pp", "vpp", "dp", "micro_batch", "zero", "recompute", "schedule",
            "sequence_parallel", "est_rank", "tokens_per_s", "mfu", "peak_memory_gib"]
    print(res.plans[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    # the best plan of each parallel shape (PlanResult.shapes; its probes are simulated apart)
    print(f"{'shapes':>20}: {len(res.shapes)}")
    print(res.shapes[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()
