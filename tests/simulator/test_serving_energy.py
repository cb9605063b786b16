"""Energy of a serving run agrees with and without a power: section (one step-power model and
one utilization convention for the per-step series and the run-level fallback)."""

from __future__ import annotations

from importlib.resources import files

import pytest
import yaml

from simulator.serving import load_serving_scenario, load_workload, simulate_serving


def test_energy_with_and_without_power_section_agree() -> None:
    text = files("simulator").joinpath("scenarios/llama2-70b-h100-azure.yaml").read_text()
    mapping = {k: v for k, v in yaml.safe_load(text).items() if k != "power"}
    plain = load_serving_scenario(mapping)
    df = load_workload(plain).head(200)
    fallback = simulate_serving(plain, df).energy_j
    metered = simulate_serving(load_serving_scenario({**mapping, "power": {"bin_s": 1.0}}),
                               df).energy_j
    assert fallback == pytest.approx(metered, rel=0.15)
