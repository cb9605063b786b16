"""CLI: closed-loop clients, --find-capacity and --sweep-rates (exit 0), bad input (one
line, exit 2), infeasible capacity (exit 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.fleetsim.test_cli_errors import one_line_error


def write(tmp_path: Path, workload: dict, slo: dict | None = None) -> str:  # type: ignore[type-arg]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "model": "llama3-8b", "cluster": {"device": "h100-sxm", "num_devices": 1},
        "serving": {"tp": 1}, "workload": workload,
        "slo": slo if slo is not None else {"ttft_s": 1.0, "tpot_s": 0.05}}))
    return str(path)


CLOSED = {"clients": 8, "think_time_s": 0.5, "input": 512, "output": 64, "duration_s": 30}


@pytest.mark.parametrize(("patch", "needle"), [
    ({"clients": 0}, "workload.clients.count"),
    ({"think_time_s": -1}, "workload.clients.think_time_s"),
    ({"clients": "many"}, "workload.clients"),
])
def test_bad_clients_one_line_exit_2(cli, tmp_path: Path, patch: dict, needle: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    code, _, err = cli("simulate", "serve", write(tmp_path, {**CLOSED, **patch}),
                       "--no-progress")
    one_line_error(code, err, needle, "s.yaml")


def test_closed_loop_json(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("simulate", "serve", write(tmp_path, CLOSED), "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["closed_loop"]["clients"] == 8 and s["completed"] == s["requests"] > 8


def test_sweep_rates_table_and_json(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, CLOSED)
    code, out, err = cli("simulate", "serve", path, "--sweep-rates", "1,4,16", "--probe-s",
                         "60", "--json")
    assert code == 0, err
    probes = json.loads(out)["probes"]
    assert [p["load"] for p in probes] == [1, 4, 16]
    tput = [p["throughput_tokens_per_s"] for p in probes]
    assert tput == sorted(tput)
    code, out, err = cli("simulate", "serve", path, "--sweep-rates", "1,4", "--probe-s", "60")
    assert code == 0 and "clients" in out and "verdict" in out, err


def test_find_capacity_json(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("simulate", "serve", write(tmp_path, CLOSED), "--find-capacity",
                         "--probe-s", "60", "--json")
    assert code == 0, err
    cap = json.loads(out)
    assert cap["load_kind"] == "clients" and cap["capacity"] >= 1
    assert cap["probe_s"] == 60 and cap["slo_percentile"] == 90


@pytest.mark.parametrize(("args", "needle"), [
    (("--sweep-rates", "1,x"), "--sweep-rates"),
    (("--sweep-rates", "0,2"), "--sweep-rates"),
    (("--find-capacity", "--probe-s", "-5"), "--probe-s"),
    (("--find-capacity", "--slo-percentile", "42"), "--slo-percentile"),
    (("--find-capacity", "--sweep-rates", "1"), "--find-capacity"),
])
def test_bad_load_options_exit_2(cli, tmp_path: Path, args: tuple, needle: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    code, _, err = cli("simulate", "serve", write(tmp_path, CLOSED), *args)
    one_line_error(code, err, needle)


def test_find_capacity_without_slo_exit_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("simulate", "serve", write(tmp_path, CLOSED, slo={}), "--find-capacity")
    one_line_error(code, err, "slo")


def test_find_capacity_infeasible_exit_3(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("simulate", "serve", write(tmp_path, CLOSED, slo={"ttft_s": 1e-6}),
                       "--find-capacity", "--probe-s", "30")
    assert code == 3, err
    assert "Traceback" not in err
