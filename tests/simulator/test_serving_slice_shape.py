"""A serving scenario's cluster.slice_shape (TPU) is the slice each replica runs on: it reaches
the step cost, and a shape whose chips are not a replica's tp x pp is refused at load."""

from __future__ import annotations

import pytest

from hwmodels.errors import ConfigError
from simulator.serving.assemble import build_group_setup
from simulator.serving.scenario import load_serving_scenario


def _scenario(shape: list[int] | None, tp: int = 8, num_devices: int = 8) -> dict:
    cluster = {"device": "tpu-v5e", "num_devices": num_devices}
    if shape is not None:
        cluster["slice_shape"] = shape
    return {"name": "v5e", "model": "llama2-7b", "cluster": cluster,
            "serving": {"replicas": num_devices // tp, "tp": tp},
            "workload": {"synthetic": {"num_requests": 4, "arrival": {"process": "poisson",
                                                                      "rate": 1.0},
                                       "input": {"dist": "fixed", "value": 128},
                                       "output": {"dist": "fixed", "value": 8}}}}


def _decode_step_s(shape: list[int] | None) -> float:
    plan = load_serving_scenario(_scenario(shape))
    setup = build_group_setup(plan, plan.groups[0])
    return setup.step_cost(0, 0.0, 64, 64 * 1024, 0, 0.0)  # 64 decodes at 1k context


def test_slice_shape_reaches_the_step_cost() -> None:
    """TP8 on an 8x1 line (one link per chip) communicates slower than on the default 4x2 slice
    (two axes); 2x4 is the same slice as 4x2 turned."""
    default, line, turned = _decode_step_s(None), _decode_step_s([8, 1]), _decode_step_s([2, 4])
    assert line > default
    assert turned == pytest.approx(default)
    assert _decode_step_s([4, 2]) == default


def test_a_slice_that_is_not_one_replica_is_refused() -> None:
    with pytest.raises(ConfigError, match="one replica runs on one slice") as err:
        load_serving_scenario(_scenario([16, 16], num_devices=256))
    assert err.value.key == "cluster.slice_shape" and "product is 8" in str(err.value.allowed)


def test_many_replicas_each_on_its_own_slice() -> None:
    plan = load_serving_scenario(_scenario([4, 2], num_devices=64))
    assert plan.slice_shape == (4, 2) and plan.groups[0].count == 8
