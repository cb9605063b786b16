"""Batch schedulers: one module per policy, registered in SCHEDULERS keyed by SchedulerKind."""

from __future__ import annotations

from simulator.serving.schedulers import (  # noqa: F401  (each module registers its policy)
    orca,
    sarathi,
    static,
    vllm,
)
from simulator.serving.schedulers.base import SCHEDULERS, Plan, Scheduler, SchedulerKind


def make_scheduler(kind: SchedulerKind | str) -> Scheduler:
    """A fresh scheduler instance for one lane; unknown names list the valid ones."""
    return SCHEDULERS.get(kind)()


__all__ = ["SCHEDULERS", "Plan", "Scheduler", "SchedulerKind", "make_scheduler"]
