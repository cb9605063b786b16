"""`fleetsim plan spot`: JSON report on the bundled spot scenario; bad flags exit 2, one line."""

from __future__ import annotations

import json

import pytest

from fleetsim.cli.app import main

SCENARIO = "simulator/scenarios/llama3-70b-h100-spot.yaml"


def test_json_report(capsys):
    assert main(["plan", "spot", SCENARIO, "--seeds", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["spot"]["cost_usd"] < out["on_demand"]["cost_usd"]
    assert out["checkpoint_interval_s"] > 0 and len(out["sweep"]) > 2


@pytest.mark.parametrize("flags", [["--preemptions-per-node-hour", "-1"],
                                   ["--warning-s", "-5"],
                                   ["--set", "run.spot.fraction=2"]])
def test_bad_input_exits_2_one_line(capsys, flags):
    assert main(["plan", "spot", SCENARIO, *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert "run.spot" in err and len(err.splitlines()) == 1


def test_missing_price_exits_2(tmp_path, capsys):
    text = open(SCENARIO).read().replace("    price_usd_per_gpu_hour: 2.50\n", "")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert main(["plan", "spot", str(path)]) == 2
    assert "price_usd_per_gpu_hour" in capsys.readouterr().err
