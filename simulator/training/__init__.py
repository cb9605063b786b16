"""Training-iteration simulator: one optimizer step of a parallel plan as a SimPy simulation."""

from simulator.training.results import Breakdown, IterationResult, StageRecord
from simulator.training.scenario import TrainingScenario, apply_overrides, load_training_scenario
from simulator.training.simulate import simulate_iteration

__all__ = ["Breakdown", "IterationResult", "StageRecord", "TrainingScenario", "apply_overrides",
           "load_training_scenario", "simulate_iteration"]
