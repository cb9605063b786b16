"""`import fleetsim`: every public name resolves, lazily, and the API runs end to end."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fleetsim


@pytest.mark.parametrize("name", fleetsim.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(fleetsim, name) is not None


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'simulate_everything'"):
        fleetsim.simulate_everything  # noqa: B018


def test_import_is_lazy() -> None:
    code = ("import sys, fleetsim; heavy = {'pandas', 'simpy', 'planners', 'simulator'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_python_dash_m_fleetsim_runs_the_cli() -> None:
    out = subprocess.run([sys.executable, "-m", "fleetsim", "hw", "show", "h100-sxm", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"h100-sxm"' in out.stdout


def test_api_estimate_matches_cli_contract() -> None:
    model = fleetsim.load_model("llama3-8b")
    device = fleetsim.load_device("h100-sxm")
    est = fleetsim.estimate_step(model, device, decode_context_lens=[1024] * 8)
    assert est.time_s > 0


def test_load_scenario_detects_the_kind() -> None:
    from pathlib import Path

    scen = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
    train = fleetsim.load_scenario(scen / "gpt3-175b-a100.yaml")
    assert type(train).__name__ == "TrainingScenario"
    serve = fleetsim.load_scenario(scen / "llama2-70b-h100-azure.yaml")
    assert type(serve).__name__ == "ServingScenario"
    it = fleetsim.simulate_training(train.plan())
    assert 0 < it.mfu < 1
    same = fleetsim.simulate_iteration(train.model, train.cluster, train.training, train.parallel)
    assert same.to_dict() == it.to_dict()
