"""sweep: grid keys, metric and scenario kind are checked before any point runs; a sweep
where every point fails is an error; serving scenarios sweep too."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hwmodels.errors import ConfigError
from planners.sweep import check_outcome, check_sweep, scenario_kind

SCEN = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
TRAIN = str(SCEN / "gpt3-175b-a100.yaml")
SERVE = str(SCEN / "llama2-70b-h100-azure.yaml")
SMALL = ("--set", "cluster.num_devices=128", "--set", "training.global_batch=256")


def test_unknown_metric_is_one_error_naming_the_allowed(cli, tmp_path) -> None:
    code, _, err = cli("sweep", TRAIN, *SMALL, "--grid", "parallelism.tp=4,8", "--metric",
                       "speed", "--out", str(tmp_path / "s.csv"))
    assert code == 2 and "--metric" in err and "tokens_per_s" in err, err
    assert not (tmp_path / "s.csv").exists()


def test_unknown_grid_key_is_one_error(cli, tmp_path) -> None:
    code, _, err = cli("sweep", TRAIN, *SMALL, "--grid", "parallelism.tpp=4,8",
                       "--out", str(tmp_path / "s.csv"))
    assert code == 2 and "--grid" in err and "parallelism.tpp" in err, err
    assert "overlap_param_gather" in err  # the allowed keys of the section


def test_every_point_failing_exits_non_zero_with_the_first_error(cli, tmp_path) -> None:
    code, _, err = cli("sweep", TRAIN, *SMALL, "--grid", "parallelism.tp=3,5",
                       "--out", str(tmp_path / "s.csv"))
    assert code == 2 and "all 2 sweep points failed" in err and "divisible" in err, err


def test_partial_failure_reports_the_count(cli, tmp_path) -> None:
    code, out, _ = cli("sweep", TRAIN, *SMALL, "--grid", "parallelism.tp=3,8",
                       "--out", str(tmp_path / "s.csv"))
    assert code == 0 and "1 of 2 points failed" in out
    code, out, _ = cli("sweep", TRAIN, *SMALL, "--grid", "parallelism.tp=3,8",
                       "--out", str(tmp_path / "s.csv"), "--json")
    assert code == 0 and json.loads(out)["failed"] == 1


def test_serving_scenario_sweeps(cli, tmp_path) -> None:
    code, out, err = cli("sweep", SERVE, "--set", "workload.window.end_s=30",
                         "--grid", "serving.max_num_seqs=64,128",
                         "--out", str(tmp_path / "s.csv"), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["failed"] == 0 and all(r["goodput_rps"] > 0 for r in data["rows"])


def test_scenario_kind_and_check_sweep() -> None:
    assert scenario_kind({"model": "x", "training": {}}) == "training"
    assert scenario_kind({"model": "x", "serving": {}}) == "serving"
    with pytest.raises(ConfigError, match="scenario"):
        scenario_kind({"model": "x"})
    with pytest.raises(ConfigError, match="--metric"):
        check_sweep({"model": "x", "serving": {}}, {"serving.tp": [1]}, metric="mfu")


def test_check_outcome() -> None:
    ok = pd.DataFrame({"ok": [True, False], "error": ["", "boom"]})
    assert check_outcome(ok) == 1
    with pytest.raises(ConfigError, match="first: boom"):
        check_outcome(pd.DataFrame({"ok": [False, False], "error": ["boom", "bang"]}))
