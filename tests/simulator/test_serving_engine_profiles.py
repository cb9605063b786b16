"""serving.engine: engine-defaulted serving keys, per-group engines, CLI output and errors, and
the direction presets move a replayed trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwmodels.catalog import load_device
from hwmodels.errors import ConfigError
from simulator.serving.assemble import build_group_setup
from simulator.serving.cluster_config import GroupSpec
from simulator.serving.plan import ServingConfig
from simulator.serving.scenario import parse_serving_section
from simulator.serving.schedulers import SchedulerKind

SERVE = str(Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
            / "llama2-70b-h100-azure.yaml")
WINDOW = ("--set", "workload.window=[0, 120]")


def test_unset_engine_keeps_todays_defaults() -> None:
    sv = ServingConfig()
    assert sv.engine is None and sv.engine_label == "kernel-only (default)"
    assert (sv.scheduler, sv.max_num_seqs, sv.max_batch_tokens, sv.prefix_caching) == \
        (SchedulerKind.VLLM, 256, 8192, False)
    assert str(sv.preemption) == "recompute" and str(sv.admission) == "recompute"


def test_engine_defaults_and_explicit_overrides() -> None:
    trt = ServingConfig(engine="trtllm")
    assert trt.scheduler is SchedulerKind.ORCA and trt.max_num_seqs == 2048
    assert str(trt.admission) == "no-evict"
    sg = ServingConfig(engine="sglang")
    assert sg.prefix_caching is True and sg.max_num_seqs == 1024
    own = ServingConfig(engine="sglang", prefix_caching=False, max_num_seqs=64,
                        scheduler="sarathi", preemption="swap")
    assert (own.prefix_caching, own.max_num_seqs, own.scheduler) == (False, 64,
                                                                     SchedulerKind.SARATHI)
    assert str(own.admission) == "swap"


def test_bad_engine_and_unsupported_scheduler() -> None:
    with pytest.raises(ConfigError) as err:
        ServingConfig(engine="vllm-9")
    assert err.value.key == "serving.engine" and "vllm-0.6" in err.value.allowed
    with pytest.raises(ConfigError, match="does not support scheduler vllm"):
        ServingConfig(engine="trtllm", scheduler="vllm")


def test_per_group_engine_reaches_the_step_cost() -> None:
    dev = load_device("h100-sxm")
    section = {"engine": "vllm-0.6", "replica_groups": [
        {"name": "old", "count": 1, "tp": 4, "engine": "vllm-0.2"},
        {"name": "new", "count": 1, "tp": 4}]}
    sv, groups = parse_serving_section(section, device=dev)
    assert [g.engine for g in groups] == ["vllm-0.2", None]
    with pytest.raises(ConfigError, match="replica_groups"):
        GroupSpec(name="x", engine="nope").resolve("serving.replica_groups[0]", device=dev,
                                                   tp=1, pp=1, name="x")
    from hwmodels.catalog import load_model
    from simulator.serving.plan import ServingPlan
    plan = ServingPlan(model=load_model("llama3-70b"), device=dev, serving=sv, groups=groups)
    old, new = (build_group_setup(plan, g) for g in groups)
    assert old.step_cost(0, 0, 8, 8000, 0, 0) > new.step_cost(0, 0, 8, 8000, 0, 0)


def test_cli_names_the_engine_and_presets_order_tpot(cli_json) -> None:
    base = cli_json("simulate", "serve", SERVE, *WINDOW)
    assert base["engine"] == "kernel-only (default)"
    old = cli_json("simulate", "serve", SERVE, *WINDOW, "--set", "serving.engine=vllm-0.2")
    new = cli_json("simulate", "serve", SERVE, *WINDOW, "--set", "serving.engine=vllm-0.6")
    assert old["engine"] == "vllm-0.2" and new["engine"] == "vllm-0.6"
    assert old["tpot_s"]["p50"] > new["tpot_s"]["p50"]
    assert old["ttft_s"]["p50"] > new["ttft_s"]["p50"]


def test_cli_bad_engine_is_one_line_exit_2(cli) -> None:
    code, _, err = cli("simulate", "serve", SERVE, "--set", "serving.engine=vllm-9")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "serving.engine" in err and "trtllm" in err and "vllm-0.6" in err
    code, _, err = cli("simulate", "serve", SERVE, "--set", "serving.engine=trtllm")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "does not support scheduler vllm" in err and "orca" in err
