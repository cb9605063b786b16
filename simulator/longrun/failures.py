"""Failure models: per-component failure processes and a vectorized sampler over a whole job.

A component class (faulty GPU, HBM, NIC, switch/cable, software bug, ...) fails per unit
(one GPU, one node or one leaf switch) as a renewal process with Weibull inter-failure times
(shape 1 = exponential, < 1 infant mortality, > 1 ageing) whose mean is 1/rate. A switch
failure is correlated: it takes down every node under that switch.

The default model (`llama3`) is built from Table 5 of "The Llama 3 Herd of Models"
(arXiv 2407.21783): 419 unexpected interruptions over 16,384 H100 GPUs (2,048 nodes of 8)
in 54 days, split by component. GPU-side causes become rates per GPU-hour, host-side and
software causes rates per node-day, network switch/cable a rate per leaf switch-day
(32 nodes per leaf, our cluster default), so a job of any size gets rates that scale with it.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError

DAY_S = 86400.0
HOUR_S = 3600.0

# Llama 3 405B pre-training (arXiv 2407.21783, Section 3.3.4 and Table 5).
LLAMA3_GPUS = 16384
LLAMA3_GPUS_PER_NODE = 8
LLAMA3_DAYS = 54.0
LLAMA3_NODES_PER_SWITCH = 32  # assumption: our rail-optimized default, nodes under one leaf
LLAMA3_CSV = "failures_llama3_405b_54d.csv"

# Repair times (assumptions, not published by Meta): a failed GPU/host goes back to the pool
# after an RMA-style swap; unplanned maintenance after a day; a switch/cable in two hours.
REPAIR_HARDWARE_S = 3 * DAY_S
REPAIR_MAINTENANCE_S = 1 * DAY_S
REPAIR_SWITCH_S = 2 * HOUR_S

# The Weibull shapes a failure process may have. Field fits of time between failures fall in
# 0.3-3 (Schroeder & Gibson, DSN'06: 0.7-0.8); below 0.2 gamma(1 + 1/shape) explodes
# (overflow past 1/shape ~ 171) and nearly every interval is ~0 s, above 20 the process is a
# clock. Outside [WEIBULL_SHAPE_MIN, WEIBULL_SHAPE_MAX] is refused, not approximated.
WEIBULL_SHAPE_MIN = 0.2
WEIBULL_SHAPE_MAX = 20.0
# A unit failing more than once a second is not a failure model (and its Weibull scale
# underflows towards 0 s, which would stall simulated time).
MAX_RATE_PER_UNIT_S = 1.0


def check_weibull_shape(shape: float, key: str) -> None:
    """ConfigError naming `key` unless WEIBULL_SHAPE_MIN <= shape <= WEIBULL_SHAPE_MAX."""
    if isinstance(shape, bool) or not isinstance(shape, (int, float)) \
            or not WEIBULL_SHAPE_MIN <= shape <= WEIBULL_SHAPE_MAX:
        raise ConfigError(f"Weibull shape must be in [{WEIBULL_SHAPE_MIN:g}, "
                          f"{WEIBULL_SHAPE_MAX:g}], got {shape!r}", key=key,
                          allowed=f"{WEIBULL_SHAPE_MIN:g} <= shape <= {WEIBULL_SHAPE_MAX:g} "
                                  "(1 = exponential, < 1 infant mortality, > 1 ageing)")


class FailureModelKind(StrEnum):
    """The failure-model registry keys (`run.failures.model`); one module per model in
    simulator/longrun/failure_models/."""

    LLAMA3 = "llama3"
    EXPONENTIAL = "exponential"
    WEIBULL = "weibull"


class Scope(StrEnum):
    """What one failing unit is: a GPU, a node, or a leaf switch (which takes its nodes down)."""

    GPU = "gpu"
    NODE = "node"
    SWITCH = "switch"


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentFailure:
    """One component class: failures per unit-second, Weibull shape, what a failure costs."""

    cause: str
    scope: Scope
    rate_per_unit_s: float  # 1 / mean time between failures of one unit
    shape: float = 1.0
    replace: bool = True  # hardware: the affected nodes leave the job until repaired
    repair_s: float = REPAIR_HARDWARE_S
    nodes_per_switch: int = 0  # SWITCH scope: blast radius in nodes; 0 -> cluster nodes_per_leaf

    def __post_init__(self) -> None:
        key = f"run.failures.components.{self.cause}"
        if not (0 < self.rate_per_unit_s <= MAX_RATE_PER_UNIT_S):
            raise ConfigError(f"failure rate must be > 0 and at most {MAX_RATE_PER_UNIT_S:g} "
                              f"per unit-second, got {self.rate_per_unit_s!r}",
                              key=key + ".rate")
        check_weibull_shape(self.shape, key + ".shape")
        if not (self.repair_s >= 0 and math.isfinite(self.repair_s)):
            raise ConfigError(f"repair time must be >= 0, got {self.repair_s!r}",
                              key=key + ".repair_s")
        if self.nodes_per_switch < 0:
            raise ConfigError("must be >= 0", key=key + ".nodes_per_switch")

    @property
    def weibull_scale_s(self) -> float:
        """Weibull scale so that the mean inter-failure time is 1/rate."""
        return 1.0 / (self.rate_per_unit_s * math.gamma(1.0 + 1.0 / self.shape))


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureModel:
    """A set of independent component failure processes."""

    kind: FailureModelKind
    components: tuple[ComponentFailure, ...]

    def __post_init__(self) -> None:
        if not self.components:
            raise ConfigError("a failure model needs at least one component",
                              key="run.failures.components")

    def job_rate_per_s(self, *, num_gpus: int, gpus_per_node: int,
                       nodes_per_leaf: int = LLAMA3_NODES_PER_SWITCH) -> float:
        """Mean failures per second hitting a job of num_gpus (1 / job MTTF)."""
        return sum(c.rate_per_unit_s * unit_count(c, num_gpus=num_gpus,
                                                  gpus_per_node=gpus_per_node,
                                                  nodes_per_leaf=nodes_per_leaf)
                   for c in self.components)

    def expected_interruptions(self, *, num_gpus: int, gpus_per_node: int, duration_s: float,
                               nodes_per_leaf: int = LLAMA3_NODES_PER_SWITCH) -> float:
        """Expected failures in duration_s (exact for exponential; long-run mean otherwise)."""
        return duration_s * self.job_rate_per_s(num_gpus=num_gpus, gpus_per_node=gpus_per_node,
                                                nodes_per_leaf=nodes_per_leaf)


def num_nodes_of(num_gpus: int, gpus_per_node: int) -> int:
    """Nodes holding num_gpus."""
    return max(1, -(-num_gpus // gpus_per_node))


def switch_size(c: ComponentFailure, nodes_per_leaf: int) -> int:
    """Nodes one switch of component c takes down."""
    return c.nodes_per_switch or nodes_per_leaf


def unit_count(c: ComponentFailure, *, num_gpus: int, gpus_per_node: int,
               nodes_per_leaf: int) -> int:
    """How many units of c's scope a job of num_gpus has."""
    nodes = num_nodes_of(num_gpus, gpus_per_node)
    if c.scope is Scope.GPU:
        return num_gpus
    if c.scope is Scope.NODE:
        return nodes
    return -(-nodes // switch_size(c, nodes_per_leaf))


# ---------------------------------------------------------------- the Llama 3 table

def _slug(text: str) -> str:
    out = "".join(ch if ch.isalnum() else "_" for ch in text.lower())
    return "_".join(p for p in out.split("_") if p)


def load_llama3_table() -> list[dict[str, object]]:
    """Rows of the bundled Llama 3 Table 5 copy: component, category, unexpected_interruptions."""
    text = resources.files("simulator.data").joinpath(LLAMA3_CSV).read_text()
    rows = list(csv.DictReader(text.splitlines()))
    return [{"component": r["component"], "category": r["category"],
             "count": int(r["unexpected_interruptions"])} for r in rows]


def _llama3_component(component: str, category: str, count: int) -> ComponentFailure:
    """Map one Table 5 row to a per-unit process (scope and repair by category)."""
    nodes = LLAMA3_GPUS // LLAMA3_GPUS_PER_NODE
    exposure_s = LLAMA3_DAYS * DAY_S
    cause = _slug(component)
    if category == "GPU":
        return ComponentFailure(cause=cause, scope=Scope.GPU,
                                rate_per_unit_s=count / (LLAMA3_GPUS * exposure_s))
    if category == "Network":
        switches = nodes // LLAMA3_NODES_PER_SWITCH
        return ComponentFailure(cause=cause, scope=Scope.SWITCH,
                                rate_per_unit_s=count / (switches * exposure_s),
                                repair_s=REPAIR_SWITCH_S,
                                nodes_per_switch=LLAMA3_NODES_PER_SWITCH)
    rate = count / (nodes * exposure_s)
    if category in ("Dependency", "Unknown"):  # software: restart in place, no node lost
        return ComponentFailure(cause=cause, scope=Scope.NODE, rate_per_unit_s=rate,
                                replace=False, repair_s=0.0)
    if category == "Unplanned maintenance":
        return ComponentFailure(cause=cause, scope=Scope.NODE, rate_per_unit_s=rate,
                                repair_s=REPAIR_MAINTENANCE_S)
    return ComponentFailure(cause=cause, scope=Scope.NODE, rate_per_unit_s=rate)


def llama3_components() -> tuple[ComponentFailure, ...]:
    """The default per-component processes from Llama 3's Table 5."""
    return tuple(_llama3_component(str(r["component"]), str(r["category"]), int(r["count"]))
                 for r in load_llama3_table())


# Llama 3's all-cause rate: 419 / (2,048 nodes x 54 days) = 3.79 per 1,000 node-days (between
# Meta RSC-2's 2.34 and RSC-1's 6.50, Kokolis et al. HPCA'25).
LLAMA3_NODE_FAILURES_PER_1000_NODE_DAYS = 1000 * 419 / (LLAMA3_GPUS / LLAMA3_GPUS_PER_NODE
                                                        * LLAMA3_DAYS)


# ---------------------------------------------------------------- the sampler

class FailureSampler:
    """Next-failure clocks of every unit of every component, as numpy arrays (one per class).

    Each unit holds the absolute time of its next failure; a renewal draws a fresh Weibull
    interval from `now`. The next job failure is the minimum over all arrays, so 16k GPUs
    cost one argmin per class per event instead of 16k simulation processes.
    """

    def __init__(self, model: FailureModel, *, num_gpus: int, gpus_per_node: int,
                 nodes_per_leaf: int, rng: np.random.Generator) -> None:
        self.model = model
        self.gpus_per_node = gpus_per_node
        self.num_nodes = num_nodes_of(num_gpus, gpus_per_node)
        self.nodes_per_leaf = nodes_per_leaf
        self._rng = rng
        self._comps = model.components
        self._scale = [c.weibull_scale_s for c in self._comps]
        self._next = [self._draw(i, unit_count(c, num_gpus=num_gpus, gpus_per_node=gpus_per_node,
                                               nodes_per_leaf=nodes_per_leaf), 0.0)
                      for i, c in enumerate(self._comps)]
        self._min_idx = [int(np.argmin(a)) for a in self._next]

    def _draw(self, i: int, n: int, now: float) -> np.ndarray:
        shape = self._comps[i].shape
        if shape == 1.0:
            return now + self._rng.exponential(self._scale[i], n)
        return now + self._scale[i] * self._rng.weibull(shape, n)

    def next_failure(self) -> tuple[float, int, int]:
        """(time, component index, unit index) of the earliest pending failure."""
        best = min(range(len(self._next)), key=lambda i: self._next[i][self._min_idx[i]])
        unit = self._min_idx[best]
        return float(self._next[best][unit]), best, unit

    def component(self, i: int) -> ComponentFailure:
        return self._comps[i]

    def nodes_hit(self, i: int, unit: int) -> range:
        """Node slots a failure of unit `unit` of component i takes down."""
        c = self._comps[i]
        if c.scope is Scope.GPU:
            node = unit // self.gpus_per_node
            return range(node, node + 1)
        if c.scope is Scope.NODE:
            return range(unit, unit + 1)
        size = switch_size(c, self.nodes_per_leaf)
        return range(unit * size, min((unit + 1) * size, self.num_nodes))

    def _units_of_nodes(self, i: int, nodes: np.ndarray) -> np.ndarray:
        c = self._comps[i]
        if c.scope is Scope.GPU:
            g = self.gpus_per_node
            units = (nodes[:, None] * g + np.arange(g)[None, :]).ravel()
            # a job that holds part of its last node (4 GPUs of an 8-GPU node) has fewer
            # GPU units than slots x gpus_per_node
            return units[units < self._next[i].size]
        if c.scope is Scope.NODE:
            return nodes
        return np.empty(0, dtype=np.int64)  # switches are not part of a node

    def renew_unit(self, i: int, unit: int, now: float) -> None:
        """The unit restarts its clock (software restart, repaired switch)."""
        self._next[i][unit] = self._draw(i, 1, now)[0]
        self._min_idx[i] = int(np.argmin(self._next[i]))

    def set_nodes(self, nodes: np.ndarray, now: float, *, present: bool) -> None:
        """Fresh nodes fill these slots (present) or the slots are empty (never fail)."""
        for i in range(len(self._comps)):
            units = self._units_of_nodes(i, nodes)
            if units.size == 0:
                continue
            self._next[i][units] = self._draw(i, units.size, now) if present else np.inf
            self._min_idx[i] = int(np.argmin(self._next[i]))
