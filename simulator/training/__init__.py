"""Training-iteration simulator: one optimizer step of a parallel plan as a SimPy simulation."""

from simulator.training.plan import TrainingPlan
from simulator.training.results import Breakdown, StageRecord, TrainingResult
from simulator.training.scenario import TrainingScenario, apply_overrides, load_training_scenario
from simulator.training.simulate import simulate_iteration, simulate_training

__all__ = ["Breakdown", "StageRecord", "TrainingPlan", "TrainingResult", "TrainingScenario",
           "apply_overrides", "load_training_scenario", "simulate_iteration", "simulate_training"]
