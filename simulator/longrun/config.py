"""Typed inputs of a long-run simulation: the job's shape and the resolved `run:` section."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from simulator.longrun.checkpoint import CheckpointPolicy
from simulator.longrun.failures import FailureModel, num_nodes_of
from simulator.longrun.spot import SpotConfig
from simulator.longrun.stragglers import StragglerSpec
from simulator.schema import Seconds, yaml_key


class ShortagePolicy(StrEnum):
    """What the job does when a failure leaves it short of nodes and no spare is free."""

    WAIT = "wait"  # wait for a repaired node
    ELASTIC = "elastic"  # continue with fewer data-parallel replicas


@dataclass(frozen=True, slots=True, kw_only=True)
class JobShape:
    """What the long-run engine needs to know about the training job."""

    num_gpus: int
    gpus_per_node: int
    dp: int  # data-parallel replicas when healthy
    gpus_per_replica: int  # tp * pp * cp
    tokens_per_iteration: float
    state_bytes: float  # one full checkpoint (weights + optimizer), all shards
    nodes_per_leaf: int = 32

    def __post_init__(self) -> None:
        for name in ("num_gpus", "gpus_per_node", "dp", "gpus_per_replica", "nodes_per_leaf"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"must be an integer >= 1, got {value!r}", key=f"job.{name}")
        if not (self.tokens_per_iteration > 0 and math.isfinite(self.tokens_per_iteration)):
            raise ConfigError("must be > 0", key="job.tokens_per_iteration")
        if not self.state_bytes >= 0:
            raise ConfigError("must be >= 0", key="job.state_bytes")

    @property
    def num_nodes(self) -> int:
        return num_nodes_of(self.num_gpus, self.gpus_per_node)

    def replicas_lost(self, missing_nodes: int) -> int:
        """DP replicas a set of missing nodes breaks (each node in a distinct replica: the
        common case for independent failures in a large job)."""
        per_node = max(1, self.gpus_per_node // self.gpus_per_replica)
        return min(self.dp, missing_nodes * per_node)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """The `run:` settings the YAML and the resolved RunConfig share: how long, recovery,
    stragglers, spares, seeds (field names are the YAML keys unless yaml_key says otherwise)."""

    duration_s: Seconds | None = field(default=None, metadata=yaml_key("duration"))
    token_budget: float | None = None
    detection_s: Seconds = 60.0
    restart_s: Seconds = 300.0
    stragglers: StragglerSpec | None = None
    spares: int = 0  # hot-spare nodes
    shortage: ShortagePolicy = field(default=ShortagePolicy.WAIT,
                                     metadata=yaml_key("on_shortage"))
    min_dp: int = 1  # elastic: below this many replicas, wait instead
    seeds: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.duration_s is None and self.token_budget is None:
            raise ConfigError("give a duration or a token budget", key="run.duration",
                              allowed="a duration like 54d, and/or token_budget")
        if self.duration_s is not None and not (self.duration_s > 0
                                                and math.isfinite(self.duration_s)):
            raise ConfigError(f"must be > 0, got {self.duration_s!r}", key="run.duration")
        if self.token_budget is not None and not self.token_budget > 0:
            raise ConfigError(f"must be > 0, got {self.token_budget!r}", key="run.token_budget")
        for name in ("detection_s", "restart_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"must be >= 0, got {value!r}", key=f"run.{name}")
        for name, minimum in (("spares", 0), ("min_dp", 1), ("seeds", 1), ("seed", 0)):
            if getattr(self, name) < minimum:
                raise ConfigError(f"must be >= {minimum}, got {getattr(self, name)}",
                                  key=f"run.{name}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig(RunSettings):
    """The resolved `run:` section: its settings plus what fails and the checkpoint times."""

    failures: FailureModel | None  # None: nothing fails
    checkpoint: CheckpointPolicy
    spot: SpotConfig | None = None  # None: every node on-demand, never preempted

    def check_job(self, job: JobShape, *, file: str | None = None) -> None:
        """Checks that need the job: spares within the cluster, min_dp within dp."""
        if self.spares > job.num_nodes:
            raise ConfigError(f"{self.spares} spare nodes exceed the cluster's {job.num_nodes} "
                              "nodes", file=file, key="run.spares",
                              allowed=f"0..{job.num_nodes}")
        if self.spot is not None and self.spot.events:
            n_spot = self.spot.spot_nodes(job.num_nodes)
            bad = [node for _, node, _ in self.spot.events if node >= n_spot]
            if bad:
                raise ConfigError(f"node {bad[0]} is not one of the job's {n_spot} spot nodes",
                                  file=file, key="run.spot.trace",
                                  allowed=f"0..{n_spot - 1}" if n_spot else "no node: fraction 0")
        if self.min_dp > job.dp:
            raise ConfigError(f"min_dp {self.min_dp} exceeds dp {job.dp}", file=file,
                              key="run.min_dp", allowed=f"1..{job.dp}")
