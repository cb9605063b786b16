"""Speed of issue 17's commands: export and import, the heterogeneous planner, the spot
planner (checkpoint choice, three shortage policies, break-even sweep) and re-planning.

Run: python benchmarks/bench_launchable.py
Prints the wall time of each step and the figures it produced. Targets: an export or import
well under 50 ms; plan train-hetero and plan spot on their bundled examples under 30 s on
2 cores (what a user waits for at a prompt).
Also runnable under pytest-benchmark: pytest benchmarks/bench_launchable.py --benchmark-enable.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "simulator" / "scenarios"


def _yaml(name: str) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((SCEN / name).read_text())


def _timed(label: str, fn, repeat: int = 1):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    print(f"{label:58s} {(time.perf_counter() - start) / repeat * 1e3:10.1f} ms")
    return out


def run() -> dict[str, float]:
    from planners.export import export_plan
    from planners.export.importers import import_megatron
    from planners.hetero import parse_pools, plan_hetero
    from planners.replan import replanned
    from planners.spot import plan_spot
    from simulator.longrun.simulate import default_iteration_time_fn, run_config
    from simulator.serving import load_serving_scenario
    from simulator.training import load_training_scenario

    train = load_training_scenario(_yaml("llama3-405b-16k-54d.yaml")).plan()
    serve = load_serving_scenario(_yaml("llama3-70b-h100-disagg-mooncake.yaml"))
    art = _timed("export 405B scenario -> megatron (mean of 20)",
                 lambda: export_plan(train, "megatron"), 20)
    _timed("export disaggregated 70B -> vllm, 2 pools (mean of 20)",
           lambda: export_plan(serve, "vllm"), 20)
    _timed("import that Megatron command (mean of 20)",
           lambda: import_megatron(art.command, device="h100-sxm"), 20)
    het = _timed("plan train-hetero llama3-70b a100-80gb:32,h100-sxm:32",
                 lambda: plan_hetero("llama3-70b", parse_pools("a100-80gb:32,h100-sxm:32"),
                                     seq_len=4096, global_batch=64, micro_batch=1))
    sc = load_training_scenario(_yaml("llama3-70b-h100-spot.yaml"))
    cfg, job = run_config(sc)
    spot = _timed("plan spot llama3-70b-h100-spot (2 seeds)",
                  lambda: plan_spot(cfg, job, default_iteration_time_fn(sc), seeds=2))
    raw = _yaml("llama3-70b-h100-spot.yaml")
    raw["cluster"]["num_devices"] = 128
    raw["parallelism"].update(pp=8)
    raw["training"]["global_batch"] = 64
    raw["run"]["min_dp"] = 1
    sc2 = load_training_scenario(raw)
    cfg2, job2 = run_config(sc2)
    _, _, r = replanned(cfg2, job2, default_iteration_time_fn(sc2))
    _timed("re-plan tp8 pp8 on 15 of 16 nodes (search + one simulation)", lambda: r(15))
    print(f"hetero speedup {het.to_dict()['speedup']:.3f}x; spot {spot.spot['cost_usd']:,.0f} "
          f"vs on-demand {spot.on_demand['cost_usd']:,.0f} USD; 15-node re-plan "
          f"{r(15):.3f} s/step ({r.chosen[15]})")
    return {"speedup": het.to_dict()["speedup"], "replan_15_s": r(15)}


def test_launchable(benchmark):  # type: ignore[no-untyped-def]
    out = benchmark.pedantic(run, rounds=1, iterations=1)
    assert out["speedup"] > 1.0


if __name__ == "__main__":
    run()
