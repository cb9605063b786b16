"""Batch schedulers behind one registry keyed by SchedulerKind (one module per policy)."""

from __future__ import annotations

from hwmodels._compat import StrEnum
from hwmodels.errors import UnknownNameError
from simulator.serving.schedulers.base import Plan, Scheduler
from simulator.serving.schedulers.orca import OrcaScheduler
from simulator.serving.schedulers.sarathi import SarathiScheduler
from simulator.serving.schedulers.static import StaticScheduler
from simulator.serving.schedulers.vllm import VLLMScheduler


class SchedulerKind(StrEnum):
    VLLM = "vllm"
    SARATHI = "sarathi"
    ORCA = "orca"
    STATIC = "static"


REGISTRY: dict[SchedulerKind, type[Scheduler]] = {
    SchedulerKind.VLLM: VLLMScheduler,
    SchedulerKind.SARATHI: SarathiScheduler,
    SchedulerKind.ORCA: OrcaScheduler,
    SchedulerKind.STATIC: StaticScheduler,
}


def make_scheduler(name: str | SchedulerKind) -> Scheduler:
    """A fresh scheduler instance for one lane; unknown names list the valid ones."""
    try:
        kind = SchedulerKind(str(name))
    except ValueError:
        raise UnknownNameError("scheduler", str(name), [k.value for k in SchedulerKind],
                               key="serving.scheduler") from None
    return REGISTRY[kind]()


__all__ = ["Plan", "REGISTRY", "Scheduler", "SchedulerKind", "make_scheduler"]
