"""Executors: results in task order, failures reported per task, batching, seeds, registry."""

from __future__ import annotations

import importlib.util

import _executor_tasks as _tasks  # tests/planners is on sys.path (rootdir-less test dirs)
import numpy as np
import pytest

from hwmodels.errors import ConfigError, UnknownNameError
from planners.executors import (
    EXECUTORS,
    Executor,
    ExecutorKind,
    LocalExecutor,
    RayExecutor,
    make_batches,
    make_executor,
    map_seeds,
    spawn_seeds,
)


@pytest.fixture(scope="module")
def local():
    with LocalExecutor(max_workers=2) as ex:
        yield ex


def test_local_map_in_order_and_parallel(local):
    res = local.map(_tasks.square, list(range(20)))
    assert [r.index for r in res] == list(range(20))
    assert [r.value for r in res] == [i * i for i in range(20)]
    assert all(r.ok and r.duration_s >= 0 for r in res)
    pids = {r.value for r in local.map(_tasks.pid, list(range(8)))}
    assert pids and all(p != __import__("os").getpid() for p in pids)


def test_local_reports_failures_not_swallows(local):
    res = local.map(_tasks.fail_on_three, list(range(6)))
    bad = [r for r in res if not r.ok]
    assert [r.index for r in bad] == [3]
    assert bad[0].error.startswith("ValueError: three is not allowed")
    assert "Traceback" in bad[0].error
    assert [r.value for r in res if r.ok] == [0, 1, 2, 4, 5]
    with pytest.raises(RuntimeError, match="task 3 failed"):
        bad[0].unwrap()


def test_local_worker_crash_is_reported_and_pool_recovers():
    with LocalExecutor(max_workers=2, batch_size=1) as ex:
        res = ex.map(_tasks.die_on_two, list(range(4)))
        assert not res[2].ok and "worker died" in res[2].error
        assert len(res) == 4
        assert [r.value for r in ex.map(_tasks.square, [1, 2, 3])] == [1, 4, 9]


def test_inline_executor_and_empty():
    ex = LocalExecutor(max_workers=1)
    assert [r.value for r in ex.map(_tasks.square, [2, 3])] == [4, 9]
    assert ex.map(_tasks.square, []) == []
    assert isinstance(ex, Executor)


def test_batches_cover_every_task_once():
    for n, workers, size in [(0, 2, None), (1, 2, None), (17, 2, None), (100, 3, 7)]:
        batches = make_batches(n, workers, size)
        flat = [i for b in batches for i in b]
        assert flat == list(range(n))
        if n and size is None:
            assert len(batches) <= workers * 4


def test_registry_and_unknown_name():
    assert isinstance(make_executor("local", max_workers=1), LocalExecutor)
    assert isinstance(make_executor(ExecutorKind.RAY), RayExecutor)
    assert EXECUTORS.names() == ["local", "ray"]
    assert EXECUTORS.get("local") is LocalExecutor
    with pytest.raises(UnknownNameError, match="allowed: local, ray"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="executor.max_workers"):
        LocalExecutor(max_workers=0)


def test_seeds_are_spawned_independent_and_reproducible(local):
    a = map_seeds(local, _tasks.draw, "x", seed=42, num_seeds=6)
    b = map_seeds(LocalExecutor(max_workers=1), _tasks.draw, "x", seed=42, num_seeds=6)
    assert [r.value for r in a] == [r.value for r in b]  # same seed, same result
    assert len({r.value for r in a}) == 6
    kids = spawn_seeds(42, 3)
    assert [k.spawn_key for k in kids] == [(0,), (1,), (2,)]
    assert np.random.default_rng(kids[0]).random() != np.random.default_rng(kids[1]).random()
    with pytest.raises(ConfigError, match="num_seeds"):
        spawn_seeds(1, 0)


RAY_MISSING = importlib.util.find_spec("ray") is None


@pytest.mark.skipif(RAY_MISSING, reason="ray is not installed (pip install 'fleetsim[ray]')")
def test_ray_executor_local_instance():
    import ray

    # Ray workers do not share pytest's sys.path: ship the task module by value
    ray.cloudpickle.register_pickle_by_value(_tasks)
    with RayExecutor(num_cpus=2, batch_size=4) as ex:
        res = ex.map(_tasks.fail_on_three, list(range(10)))
        assert [r.index for r in res] == list(range(10))
        assert [r.value for r in res if r.ok] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
        assert res[3].error.startswith("ValueError: three is not allowed")
        seeded = map_seeds(ex, _tasks.draw, "x", seed=42, num_seeds=4)
    local = map_seeds(LocalExecutor(max_workers=1), _tasks.draw, "x", seed=42, num_seeds=4)
    assert [r.value for r in seeded] == [r.value for r in local]
