"""The seam between the serving engine and its extensions (failures, autoscaling, live
migration, power capping): an extension is an EngineExtension whose start() gets the engine as
a Cluster - the few facts and actions below - so no extension imports the engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import simpy

if TYPE_CHECKING:
    from simulator.serving.power import PowerMeter
    from simulator.serving.records import EventKind, RequestLog
    from simulator.serving.replica import Replica
    from simulator.serving.replica_setup import ReplicaSetup


class Cluster(Protocol):
    """What an extension may read and do on a running engine."""

    env: simpy.Environment
    replicas: list[Replica]  # every replica ever built, by index
    setups: list[ReplicaSetup]  # the initial replicas' setups
    setup_of: list[ReplicaSetup]  # per replica index
    entry: list[Replica]  # live replicas taking new requests
    decode_pool: list[Replica]  # live decode replicas (disaggregated)
    requests: RequestLog
    meter: PowerMeter | None
    fail_ss: np.random.SeedSequence  # the failure streams' seed

    @property
    def unrouted(self) -> int:
        """Requests waiting for any live replica."""

    def event(self, kind: EventKind, replica: int, detail: str = "") -> None:
        """Log a cluster event at the current time."""

    def crash(self, rep: Replica) -> None: ...

    def activate(self, rep: Replica, *, event: EventKind = ...) -> None: ...

    def provision(self, setup: ReplicaSetup) -> Replica: ...

    def decommission(self, rep: Replica) -> None: ...

    def migrate(self, src: Replica, dst: Replica, count: int) -> None: ...


class EngineExtension(ABC):
    """A cluster behaviour attached to one run; start() returns the processes it runs (the
    engine then runs until every request is done rather than until no event is left)."""

    @abstractmethod
    def start(self, cluster: Cluster) -> Sequence[simpy.Process]:
        """Start the extension's processes on the cluster."""


__all__ = ["Cluster", "EngineExtension"]
