"""Straggler populations: which nodes are slow, by how much, for how long.

A synchronous step runs at the pace of its slowest rank, so the job's iteration time is
multiplied by the largest slowdown among the nodes it runs on. Persistent stragglers are
slow from the moment they join (a node is slow with probability `fraction`); transient ones
come and go as episodes whose arrival rate keeps `fraction` of the nodes slow on average
(Little's law: rate = nodes * fraction / mean duration). Slowdowns are 1 + lognormal-spread
excess around `slowdown - 1`. Detect-and-evict swaps a slow node for a spare at the first
checkpoint after it has been slow for `evict_after_s`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from simulator.schema import Seconds, yaml_key

# A node more than 100x slower is down, not straggling; the lognormal spread of the excess is
# capped where a draw can still not overflow (exp(mu + 40 sigma) stays finite up to sigma 3).
MAX_SLOWDOWN = 100.0
MAX_SIGMA = 3.0


class StragglerKind(StrEnum):
    """Whether slow nodes stay slow or recover (`run.stragglers.kind`)."""

    PERSISTENT = "persistent"
    TRANSIENT = "transient"


@dataclass(frozen=True, slots=True, kw_only=True)
class StragglerSpec:
    """A fraction of slow nodes with a slowdown distribution (`run.stragglers`)."""

    fraction: float = 0.0
    slowdown: float = 1.0  # mean slowdown factor of a slow node (1.2 = 20% slower)
    sigma: float = 0.0  # lognormal spread of the excess (slowdown - 1)
    kind: StragglerKind = StragglerKind.PERSISTENT
    mean_duration_s: Seconds = field(default=600.0,  # transient episodes
                                     metadata=yaml_key("duration_s"))
    evict_after_s: Seconds | None = None  # None: never evicted

    def __post_init__(self) -> None:
        if not (0 <= self.fraction <= 1):
            raise ConfigError(f"must be in [0, 1], got {self.fraction!r}",
                              key="run.stragglers.fraction")
        if not 1 <= self.slowdown <= MAX_SLOWDOWN:
            raise ConfigError(f"must be in [1, {MAX_SLOWDOWN:g}], got {self.slowdown!r}",
                              key="run.stragglers.slowdown")
        if not 0 <= self.sigma <= MAX_SIGMA:  # exp of a wider lognormal overflows to inf
            raise ConfigError(f"must be in [0, {MAX_SIGMA:g}], got {self.sigma!r}",
                              key="run.stragglers.sigma")
        if not (self.mean_duration_s > 0 and math.isfinite(self.mean_duration_s)):
            raise ConfigError(f"must be > 0, got {self.mean_duration_s!r}",
                              key="run.stragglers.duration_s")
        if self.evict_after_s is not None and not self.evict_after_s >= 0:
            raise ConfigError("must be >= 0", key="run.stragglers.evict_after_s")

    def draw_slowdowns(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Slowdown factors of n slow nodes."""
        excess = self.slowdown - 1.0
        if self.sigma == 0 or excess == 0:
            return np.full(n, self.slowdown)
        mu = math.log(excess) - self.sigma**2 / 2  # keeps the mean excess
        return 1.0 + np.minimum(rng.lognormal(mu, self.sigma, n), 10 * MAX_SLOWDOWN)

    def draw_nodes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Slowdown per node for n fresh nodes (1.0 = healthy); persistent kind only."""
        out = np.ones(n)
        if self.kind is StragglerKind.PERSISTENT and self.fraction > 0:
            slow = rng.random(n) < self.fraction
            out[slow] = self.draw_slowdowns(rng, int(slow.sum()))
        return out

    def episode_rate_per_s(self, num_nodes: int) -> float:
        """Transient episode arrivals per second over the job."""
        if self.kind is not StragglerKind.TRANSIENT:
            return 0.0
        return num_nodes * self.fraction / self.mean_duration_s
