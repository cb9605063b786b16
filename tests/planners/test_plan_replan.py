"""Elastic re-planning (planners/replan.py): on fewer nodes the job runs the faster of its
own plan with fewer replicas and a re-chosen pipeline layout; in node units for the engine."""

from __future__ import annotations

import yaml

from planners.replan import replanned
from simulator.longrun import simulate_longrun
from simulator.longrun.simulate import default_iteration_time_fn, run_config
from simulator.training import load_training_scenario

SPOT = "simulator/scenarios/llama3-70b-h100-spot.yaml"


def _job(num_devices: int = 128, tp: int = 8, pp: int = 8, gbs: int = 64):
    raw = yaml.safe_load(open(SPOT).read())
    raw["cluster"]["num_devices"] = num_devices
    raw["parallelism"].update(tp=tp, pp=pp)
    raw["training"]["global_batch"] = gbs
    raw["run"]["min_dp"] = 1
    sc = load_training_scenario(raw)
    cfg, job = run_config(sc)
    return cfg, job, default_iteration_time_fn(sc)


def test_full_size_is_the_scenario_plan_and_shrinks_never_lose_to_dp_only() -> None:
    cfg, job, fn = _job()
    _, node_job, r = replanned(cfg, job, fn)
    assert node_job.dp == 16 and node_job.gpus_per_replica == 8
    assert r(16) == fn(2)
    for nodes in (15, 12, 9, 8):
        dp_k = nodes * 8 // 64
        assert r(nodes) <= fn(dp_k)


def test_losing_one_node_of_a_multi_node_replica_is_cheap_when_replanned() -> None:
    """tp8 pp8 on 16 nodes is 2 replicas of 8 nodes: dp-only elastic halves the job when one
    node goes, a re-plan runs on the 15 left (tp8 pp15, Megatron-style uneven split)."""
    cfg, job, fn = _job()
    _, _, r = replanned(cfg, job, fn)
    assert r(15) < 0.7 * fn(1)
    assert r.chosen[15].startswith("re-planned tp8 pp15")


def test_replanned_long_run_keeps_its_invariants() -> None:
    cfg, job, fn = _job()
    c, j, r = replanned(cfg, job, fn)
    res = simulate_longrun(c, j, r, seed=0)
    assert res.ettr <= 1.0 and res.time_to_train_s is not None


def test_replan_searches_with_the_scenario_stack(monkeypatch) -> None:
    """The re-plan's candidates are pruned and estimated with the kernels, attention and loss
    the job runs (not the planner's fused default), like the simulation that confirms them."""
    import planners.replan as replan

    seen = []
    original = replan.enumerate_candidates

    def spy(*args, **kwargs):
        seen.append(kwargs["constraints"])
        return original(*args, **kwargs)

    monkeypatch.setattr(replan, "enumerate_candidates", spy)
    raw = yaml.safe_load(open(SPOT).read())
    raw["cluster"]["num_devices"] = 128
    raw["parallelism"].update(tp=8, pp=8)
    raw["training"].update(global_batch=64, kernels="eager", loss_impl="eager-fp32")
    raw["run"]["min_dp"] = 1
    sc = load_training_scenario(raw)
    cfg, job = run_config(sc)
    _, _, r = replanned(cfg, job, default_iteration_time_fn(sc))
    r(15)
    assert seen and all((str(c.kernels), str(c.loss_impl)) == ("eager", "eager-fp32")
                        for c in seen)
