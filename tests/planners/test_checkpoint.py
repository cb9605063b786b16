"""plan_checkpoint: the simulated optimum sits near Young/Daly where their assumptions hold."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "simulator"))
from longrun_helpers import job  # noqa: E402

from hwmodels.errors import ConfigError  # noqa: E402
from planners.checkpoint import plan_checkpoint  # noqa: E402
from simulator.longrun import parse_run  # noqa: E402

J = job(1024)
CFG = parse_run({"duration": "30d", "spares": 1024, "detection_s": 0, "restart_s": 300,
                 "failures": {"model": "exponential", "node_failures_per_1000_node_days": 3.79,
                              "repair_s": "1h"},
                 "checkpoint": {"mode": "sync", "write_s": 60, "read_s": 0}}, job=J)


def test_simulated_optimum_is_near_daly() -> None:
    plan = plan_checkpoint(CFG, J, lambda dp: 5.0, seeds=3)
    df = plan.to_df()
    assert set(df["rule"]) == {"grid", "young", "daly"}
    # M = 22,263 s; Daly: sqrt(2 * 60 * M) * (1 + 0.0122 + 0.0001) - 60 = 1,595 s
    assert plan.daly_interval_s == pytest.approx(1595, rel=0.01)
    assert plan.best_interval_s / plan.daly_interval_s == pytest.approx(1.0, abs=0.65)
    at_daly = float(df.loc[df["rule"] == "daly", "ettr_mean"].iloc[0])
    assert plan.best_ettr - at_daly < 0.005  # Daly is within half a point of the optimum
    worst = float(df["ettr_mean"].min())
    assert plan.best_ettr - worst > 0.01  # the search does discriminate
    assert (abs(df["ettr_mean"] - df["exact_ettr"]) < 0.01).all()


def test_bad_grid() -> None:
    with pytest.raises(ConfigError, match="intervals_s"):
        plan_checkpoint(CFG, J, lambda dp: 5.0, intervals_s=(600.0, -1.0))


def test_executor_fan_out_matches_in_process() -> None:
    import _executor_tasks as tasks

    from planners.executors import LocalExecutor

    inline = plan_checkpoint(CFG, J, tasks.five_seconds, seeds=2, intervals_s=(900.0, 1800.0))
    with LocalExecutor(max_workers=2) as ex:
        fanned = plan_checkpoint(CFG, J, tasks.five_seconds, seeds=2,
                                 intervals_s=(900.0, 1800.0), executor=ex)
    assert fanned == inline


LONG = str(Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
           / "llama3-405b-16k-54d.yaml")


def test_cli_executor_option(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("plan", "checkpoint", LONG, "--executor", "dask", "--json")
    assert code == 2 and "unknown executor 'dask'" in err and "local, ray" in err


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_executor_matches_in_process() -> None:
    import _executor_tasks as tasks
    import ray

    from planners.executors import RayExecutor

    ray.cloudpickle.register_pickle_by_value(tasks)  # workers do not share pytest's sys.path
    inline = plan_checkpoint(CFG, J, tasks.five_seconds, seeds=2, intervals_s=(900.0,))
    with RayExecutor(num_cpus=2) as ex:
        fanned = plan_checkpoint(CFG, J, tasks.five_seconds, seeds=2, intervals_s=(900.0,),
                                 executor=ex)
    assert fanned == inline
