"""Serving simulation: replicas with continuous-batching schedulers, paged KV and prefix cache,
driven by real or synthetic traces (see scenario.simulate_serving)."""

from __future__ import annotations

from simulator.serving.engine import ReplicaSetup, ServingEngine
from simulator.serving.metrics import SUMMARY_KEYS, ServingResult
from simulator.serving.replica import Lane, LaneConfig, Replica
from simulator.serving.router import RouterKind, make_router
from simulator.serving.scenario import (
    ServingScenario,
    apply_overrides,
    build_replica_setup,
    load_serving_scenario,
    load_workload,
    simulate_serving,
)
from simulator.serving.schedulers import SchedulerKind, make_scheduler

__all__ = ["SUMMARY_KEYS", "Lane", "LaneConfig", "Replica", "ReplicaSetup", "RouterKind",
           "SchedulerKind", "ServingEngine", "ServingResult", "ServingScenario",
           "apply_overrides", "build_replica_setup", "load_serving_scenario", "load_workload",
           "make_router", "make_scheduler", "simulate_serving"]
