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


@pytest.mark.parametrize("rate", [1.0, 10.0, 60.0])
def test_energy_without_and_with_empty_power_section_agree(rate: float) -> None:
    """Issue 13 defect 7: a run without a power: section (hwmodels.power at the mean achieved
    utilization) and one with an empty power: {} (per-step roofline power) are two estimates
    of the same energy; the issue saw ~2x between them. Measured within ~8%; held to 15%."""
    from simulator.serving import load_serving_scenario, simulate_serving
    from traces.synth import synthesize

    spec = {"num_requests": 300, "arrival": {"process": "poisson", "rate": rate},
            "input": {"dist": "uniform", "min": 100, "max": 2000},
            "output": {"dist": "uniform", "min": 10, "max": 400}}
    base = {"model": "llama3-8b", "cluster": {"device": "h100-sxm"},
            "serving": {"replicas": 2, "tp": 1}, "workload": {"synthetic": spec}}
    df = synthesize(spec, seed=0)
    plain = simulate_serving(load_serving_scenario(base), df).summary()["energy_kwh"]
    stepped = simulate_serving(load_serving_scenario({**base, "power": {}}),
                               df).summary()["energy_kwh"]
    assert plain > 0 and stepped > 0
    assert abs(stepped / plain - 1) < 0.15, (plain, stepped)
