"""Hybrid sharding in scenarios and long runs: parallelism.fsdp_shard_size (N, node, slice),
its one-line errors, and the long-run iteration time when DP shrinks (whole shard groups)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import yaml

from fleetsim.cli.app import main
from hwmodels.errors import ConfigError
from simulator.longrun.simulate import SimulatedIterationTime
from simulator.training import load_training_scenario, simulate_training

SCEN = Path(__file__).resolve().parents[2] / "simulator" / "scenarios" / "llama3-8b-h100-hsdp.yaml"


def _raw(**par):
    raw = yaml.safe_load(SCEN.read_text())
    raw["cluster"]["num_devices"] = 32
    raw["training"]["global_batch"] = 64
    raw["parallelism"].update(par)
    return raw


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("value", "shard"), [("node", 8), ("slice", 8), (16, 16), (None, None)])
def test_shard_size_keys(value, shard):
    sc = load_training_scenario(_raw(fsdp_shard_size=value))
    assert sc.parallel.dp == 32 and sc.parallel.fsdp_shard_size == shard


def test_node_follows_the_model_parallel_ranks_in_a_node():
    sc = load_training_scenario(_raw(tp=2, fsdp_shard_size="node"))
    assert (sc.parallel.dp, sc.parallel.fsdp_shard_size) == (16, 4)


@pytest.mark.parametrize(("par", "needle"), [
    ({"fsdp_shard_size": 3}, "does not divide dp 32"),
    ({"fsdp_shard_size": "rack"}, "integer >= 1"),
    ({"fsdp_shard_size": 8, "zero": 1}, "needs zero: 3"),
])
def test_bad_shard_size_names_file_and_key(par, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        load_training_scenario(_raw(**par), file="s.yaml")
    assert err.value.key == "parallelism.fsdp_shard_size" and "s.yaml" in str(err.value)


def test_cli_bad_shard_size_exits_2_with_one_line():
    code, _, err = _cli("simulate", "train", str(SCEN), "--set", "parallelism.fsdp_shard_size=5")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "parallelism.fsdp_shard_size" in err and "llama3-8b-h100-hsdp.yaml" in err


def test_cli_simulates_the_bundled_scenario():
    code, out, _ = _cli("simulate", "train", str(SCEN), "--json")
    assert code == 0
    hsdp = json.loads(out)
    code, out, _ = _cli("simulate", "train", str(SCEN), "--set",
                        "parallelism.fsdp_shard_size=null", "--json")
    full = json.loads(out)
    assert hsdp["peak_memory_gib"] > full["peak_memory_gib"]
    assert hsdp["iteration_time_s"] != full["iteration_time_s"]


def test_long_run_keeps_whole_shard_groups():
    sc = load_training_scenario(_raw(fsdp_shard_size=8))
    f = SimulatedIterationTime(sc.model, sc.cluster, sc.training, sc.parallel)
    assert f(32) == pytest.approx(simulate_training(sc.plan()).iteration_time_s)
    # 31 ranks left: one shard group is broken, three run (24 ranks, same global batch)
    assert f(31) == f(24) > f(32)
    assert f(16) > f(24)
