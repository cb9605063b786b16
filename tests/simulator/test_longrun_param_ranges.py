"""Failure/straggler parameters: out-of-range values are one ConfigError naming the key; over
the whole valid range the sampler and the engine never raise (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from longrun_helpers import job

from hwmodels.errors import ConfigError
from simulator.longrun import parse_run
from simulator.longrun.engine import simulate_longrun
from simulator.longrun.failures import (
    MAX_RATE_PER_UNIT_S,
    WEIBULL_SHAPE_MAX,
    WEIBULL_SHAPE_MIN,
    ComponentFailure,
    FailureModel,
    FailureModelKind,
    FailureSampler,
    Scope,
)
from simulator.longrun.stragglers import MAX_SIGMA, MAX_SLOWDOWN, StragglerSpec


def _run(failures: dict, **extra) -> object:
    j = job(4)
    return parse_run({"duration": "2d", "spares": 4, "failures": failures,
                      "checkpoint": {"interval_s": 1800, "mode": "sync", "write_s": 30,
                                     "read_s": 0}, **extra}, job=j)


@pytest.mark.parametrize(("failures", "key"), [
    ({"model": "weibull", "shape": 1e-9}, "run.failures.shape"),  # was OverflowError
    ({"model": "weibull", "shape": 1e9}, "run.failures.shape"),
    ({"model": "weibull", "shape": float("nan")}, "run.failures.shape"),
    ({"model": "llama3", "components": {"gpu_hbm3_memory": {"shape": 0.001}}},
     "run.failures.components.gpu_hbm3_memory.shape"),
    ({"model": "llama3", "scale": 1e30}, "rate"),
])
def test_bad_failure_parameters_name_the_key(failures, key) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _run(failures)


@pytest.mark.parametrize(("stragglers", "key"), [
    ({"fraction": 0.1, "slowdown": 1.5, "sigma": 1e3}, "run.stragglers.sigma"),  # exp overflow
    ({"fraction": 0.1, "slowdown": 1.5, "sigma": float("nan")}, "run.stragglers.sigma"),
    ({"fraction": 0.1, "slowdown": 1e300}, "run.stragglers.slowdown"),
    ({"fraction": 0.1, "slowdown": 1.5, "kind": "transient", "duration_s": float("inf")},
     "run.stragglers.duration_s"),
])
def test_bad_straggler_parameters_name_the_key(stragglers, key) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        StragglerSpec(**{k if k != "duration_s" else "mean_duration_s": v
                         for k, v in stragglers.items()})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.floats(WEIBULL_SHAPE_MIN, WEIBULL_SHAPE_MAX),
       rate=st.floats(1e-12, MAX_RATE_PER_UNIT_S),
       scope=st.sampled_from(list(Scope)), nodes=st.integers(1, 64),
       seed=st.integers(0, 2**32 - 1))
def test_sampler_never_raises_for_valid_parameters(shape, rate, scope, nodes, seed) -> None:
    c = ComponentFailure(cause="x", scope=scope, rate_per_unit_s=rate, shape=shape)
    assert 0 < c.weibull_scale_s < math.inf
    s = FailureSampler(FailureModel(kind=FailureModelKind.WEIBULL, components=(c,)),
                       num_gpus=nodes * 8, gpus_per_node=8, nodes_per_leaf=32,
                       rng=np.random.default_rng(seed))
    now = 0.0
    for _ in range(20):
        t, i, unit = s.next_failure()
        assert math.isfinite(t) and t >= now
        now = t
        s.renew_unit(i, unit, now)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.floats(WEIBULL_SHAPE_MIN, WEIBULL_SHAPE_MAX),
       per_1000=st.floats(0.1, 1e4),
       sigma=st.floats(0.0, MAX_SIGMA), slowdown=st.floats(1.0, MAX_SLOWDOWN),
       seed=st.integers(0, 2**16))
def test_long_run_never_raises_for_valid_parameters(shape, per_1000, sigma, slowdown,
                                                    seed) -> None:
    j = job(4)
    cfg = _run({"model": "weibull", "shape": shape, "node_failures_per_1000_node_days": per_1000,
                "repair_s": "1h"},
               stragglers={"fraction": 0.25, "slowdown": slowdown, "sigma": sigma})
    r = simulate_longrun(cfg, j, lambda dp: 10.0 * 4 / dp, seed=seed)
    assert 0.0 <= r.ettr <= 1.0 and r.wall_s >= r.productive_s
    assert all(math.isfinite(v) and v >= 0 for v in r.time_lost_s.values())
