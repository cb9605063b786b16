"""fleetsim: discrete-event cluster simulator and auto-configurator for LLM training and serving.

The public Python API, imported lazily so `import fleetsim` stays cheap (no pandas/SimPy until a
name is used)::

    import fleetsim
    sc = fleetsim.load_scenario("simulator/scenarios/gpt3-175b-a100.yaml")
    it = fleetsim.simulate_training(sc.plan())   # a TrainingResult
    df = fleetsim.read_trace("azure-conv-2023-sample")

The layers below (hwmodels, traces, calibration, simulator, planners) never import this package.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it (one place; `__all__` is derived from it)
_API: dict[str, str] = {
    # catalog and costs
    "load_device": "hwmodels.catalog",
    "load_link": "hwmodels.catalog",
    "load_model": "hwmodels.catalog",
    "list_devices": "hwmodels.catalog",
    "list_models": "hwmodels.catalog",
    "build_cluster": "hwmodels.cluster",
    "estimate_step": "hwmodels.step",
    "load_profile": "hwmodels.profile",
    "ProfileChoice": "simulator.profiles",
    "profile_choice": "fleetsim.api",
    # scenarios
    "load_scenario": "fleetsim.api",
    "load_training_scenario": "simulator.training",
    "load_serving_scenario": "simulator.serving",
    # simulation: the typed seams planners use too
    "TrainingPlan": "simulator.training",
    "TrainingResult": "simulator.training",
    "simulate_training": "simulator.training",
    "simulate_iteration": "simulator.training",
    "simulate_longrun": "simulator.longrun",
    "ServingPlan": "simulator.serving",
    "ServingConfig": "simulator.serving",
    "ServingResult": "simulator.serving",
    "StepRecord": "simulator.serving",
    "simulate_serving": "simulator.serving",
    # planning
    "plan_train": "planners.train",
    "plan_serve": "planners.serve",
    "plan_gpu_mix": "planners.gpu_mix",
    "plan_power": "planners.power",
    "plan_checkpoint": "planners.checkpoint",
    "sweep": "planners.sweep",
    "make_executor": "planners.executors",
    # traces
    "read_trace": "traces.readers",
    "synthesize": "traces.synth",
    "trace_stats": "traces.stats",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    """Import the defining module on first use of a public name (PEP 562)."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'fleetsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
