"""Bad `run:` input: one-line ConfigErrors that name the key."""

from __future__ import annotations

from typing import Any

import pytest
from longrun_helpers import job

from hwmodels.errors import ConfigError
from simulator.longrun import build_failure_model, parse_run

J = job(64, state_bytes=405e9 * 18)  # 7.3 TB of state


@pytest.mark.parametrize(("run", "key"), [
    ({"duration": "30d", "failures": {"model": "exponential",
                                      "node_failures_per_1000_node_days": -1}},
     "run.failures.node_failures_per_1000_node_days"),
    ({"duration": "30d", "failures": {"model": "weibull",
                                      "node_failures_per_1000_node_days": 0}},
     "run.failures.node_failures_per_1000_node_days"),
    ({"duration": "30d", "failures": {"components": {"faulty_gpu": {"rate_per_gpu_hour": 0}}}},
     "run.failures.components.faulty_gpu.rate_per_gpu_hour"),
    ({"duration": "30d", "failures": {"components": {"x": {"rate_per_node_day": -0.1}}}},
     "run.failures.components.x.rate_per_node_day"),
    ({"duration": "30d", "failures": {"model": "weibull", "shape": 0}}, "run.failures.shape"),
    ({"duration": "30d", "checkpoint": {"interval_s": 0}}, "run.checkpoint.interval_s"),
    ({"duration": "30d", "checkpoint": {"interval_s": "-5m"}}, "run.checkpoint.interval_s"),
    ({"duration": "30d", "checkpoint": {"storage_capacity": "10TB"}},
     "run.checkpoint.storage_capacity"),
    ({"duration": "30d", "checkpoint": {"storage_write_bandwidth": 0}},
     "run.checkpoint.storage_write_bandwidth"),
    ({"duration": "30d", "spares": 65}, "run.spares"),
    ({"duration": "30d", "spares": -1}, "run.spares"),
    ({"duration": 0}, "run.duration"),
    ({}, "run.duration"),
    ({"duration": "30d", "restart_s": "soon"}, "run.restart_s"),
    ({"duration": "30d", "failures": {"model": "gamma"}}, "run.failures.model"),
    ({"duration": "30d", "checkpoint": {"mode": "eager"}}, "run.checkpoint.mode"),
    ({"duration": "30d", "on_shortage": "panic"}, "run.on_shortage"),
    ({"duration": "30d", "stragglers": {"fraction": 1.5, "slowdown": 1.2}},
     "run.stragglers.fraction"),
    ({"duration": "30d", "stragglers": {"fraction": 0.1, "slowdown": 0.5}},
     "run.stragglers.slowdown"),
    ({"duration": "30d", "min_dp": 65}, "run.min_dp"),
    ({"duration": "30d", "checkpointing": {}}, "run.checkpointing"),
])
def test_bad_input_names_the_key(run: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_run(run, job=J, file="train.yaml")
    msg = str(info.value)
    assert "\n" not in msg
    assert f"key '{key}'" in msg
    assert msg.startswith("train.yaml")


def test_unknown_model_lists_the_registry() -> None:
    with pytest.raises(ConfigError, match="allowed: llama3, exponential, weibull"):
        build_failure_model({"model": "gamma"})


def test_checkpoint_that_fits_is_accepted_and_times_follow_bandwidth() -> None:
    cfg = parse_run({"duration": "30d", "checkpoint": {
        "storage_capacity": "15TB", "storage_write_bandwidth": "1TB/s", "interval_s": "30m"}},
        job=J)
    # 7.29 TB at min(1 TB/s, 512 GPUs x 20 GB/s = 10.24 TB/s)
    assert cfg.checkpoint.write_s == pytest.approx(7.29)
    assert cfg.checkpoint.interval_s == 1800
    assert cfg.spares == 0


def test_auto_interval_is_daly() -> None:
    from simulator.longrun import daly_interval_s

    cfg = parse_run({"duration": "30d", "checkpoint": {"write_s": 30}}, job=J)
    assert cfg.failures is not None
    mttf = 1 / cfg.failures.job_rate_per_s(num_gpus=512, gpus_per_node=8)
    assert cfg.checkpoint.interval_s == pytest.approx(daly_interval_s(stall_s=30, mttf_s=mttf))


def test_registries_hold_one_module_per_policy() -> None:
    from simulator.longrun.checkpoint_modes import CHECKPOINT_MODES
    from simulator.longrun.failure_models import FAILURE_MODELS

    assert FAILURE_MODELS.names() == ["llama3", "exponential", "weibull"]
    assert CHECKPOINT_MODES.names() == ["sync", "async", "multilevel"]
    modes = {m: parse_run({"duration": "30d", "checkpoint": {"mode": m, "interval_s": "1h"}},
                          job=J).checkpoint for m in CHECKPOINT_MODES.names()}
    assert modes["sync"].snapshot_s == 0 and modes["sync"].stall_s == modes["sync"].write_s
    assert 0 < modes["async"].snapshot_s < modes["multilevel"].snapshot_s
    assert modes["multilevel"].persistent_every == 5 and modes["async"].persistent_every == 1
    weibull = build_failure_model({"model": "weibull"})
    assert weibull.components[0].shape == 0.78


def test_failures_off_and_run_section_read_up_front() -> None:
    from simulator.longrun import RunSpec, read_run

    for off in (False, "none"):
        assert parse_run({"duration": "1d", "failures": off}, job=J).failures is None
    spec = read_run({"duration": "2h", "stragglers": {"fraction": 0.1, "slowdown": 1.5,
                                                      "duration_s": "5m"}})
    assert isinstance(spec, RunSpec) and spec.duration_s == 7200.0
    assert spec.stragglers is not None and spec.stragglers.mean_duration_s == 300.0
    with pytest.raises(ConfigError, match="train.yaml: key 'run.failures'.*allowed: a mapping"):
        read_run({"duration": "1d", "failures": True}, file="train.yaml")
