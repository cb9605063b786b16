"""End-of-iteration invariants of a simulated training iteration (cheap, always on).

A violation is a simulator bug, never a number to report: hwmodels.errors.InvariantError
(the CLI exits 4). Checked: every summary number finite and >= 0 (the iteration time > 0),
MFU <= HFU <= 1 (hardware FLOPs include the model's), each stage ends within the iteration,
and the timeline moves forward (every event starts at >= 0 with a duration >= 0, and the
events of one stage track, sorted by start, do not overlap: a stage runs one op at a time).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from hwmodels.errors import InvariantError
from simulator.training.engine import TraceEvent
from simulator.training.results import TrainingResult

REL_TOL = 1e-9
ABS_TOL_S = 1e-12


def _numbers(r: TrainingResult) -> Iterable[tuple[str, float]]:
    for name in ("iteration_time_s", "tokens_per_s", "tflops_per_gpu",
                 "hardware_tflops_per_gpu", "mfu", "hfu", "peak_memory_gib",
                 "memory_needed_gib", "memory_capacity_gib"):
        yield name, getattr(r, name)
    for name, value in r.breakdown.to_dict().items():
        if isinstance(value, dict):  # compute_terms: each part checked on its own
            for part, x in value.items():
                yield f"breakdown.{name}.{part}", x
        else:
            yield f"breakdown.{name}", value
    for i, value in enumerate(r.memory_per_stage):
        yield f"memory_per_stage[{i}]", value


def check_timeline(events: Iterable[TraceEvent], *, scenario: str | None = None) -> None:
    """Simulated time only moves forward: start >= 0, duration >= 0, finite; one stage's
    events do not overlap."""
    by_track: dict[str, list[TraceEvent]] = defaultdict(list)
    for e in events:
        if not (math.isfinite(e.start_s) and math.isfinite(e.duration_s)
                and e.start_s >= -ABS_TOL_S and e.duration_s >= -ABS_TOL_S):
            raise InvariantError("time moves forward",
                                 f"event '{e.name}' on '{e.track}' starts at {e.start_s!r} s "
                                 f"for {e.duration_s!r} s", scenario=scenario)
        by_track[e.track].append(e)
    for track, evs in by_track.items():
        if not track.startswith("stage "):
            continue  # links carry concurrent transfers
        evs.sort(key=lambda e: e.start_s)
        for prev, nxt in zip(evs, evs[1:], strict=False):
            end = prev.start_s + prev.duration_s
            if nxt.start_s < end - max(ABS_TOL_S, REL_TOL * end):
                raise InvariantError("one op at a time per stage",
                                     f"'{nxt.name}' starts at {nxt.start_s:.9g} s on '{track}' "
                                     f"before '{prev.name}' ends at {end:.9g} s",
                                     scenario=scenario)


def check_training_result(r: TrainingResult, *, scenario: str | None = None) -> None:
    """Raise InvariantError naming the scenario when an iteration's result cannot be right."""
    for name, value in _numbers(r):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise InvariantError("finite non-negative summary", f"{name} = {value!r}",
                                 scenario=scenario)
    if not r.iteration_time_s > 0:
        raise InvariantError("time moves forward", f"iteration_time_s = {r.iteration_time_s!r}",
                             scenario=scenario)
    if not r.mfu <= r.hfu * (1 + REL_TOL) + ABS_TOL_S or r.hfu > 1 + REL_TOL:
        raise InvariantError("MFU <= HFU <= 1", f"mfu {r.mfu!r}, hfu {r.hfu!r}",
                             scenario=scenario)
    limit = r.iteration_time_s * (1 + REL_TOL) + ABS_TOL_S
    for st in r.stages:
        if st.end_s > limit:
            raise InvariantError("stages end within the iteration",
                                 f"stage {st.stage} ends at {st.end_s!r} s after the "
                                 f"iteration's {r.iteration_time_s!r} s", scenario=scenario)
    if r.timeline:
        check_timeline(r.timeline, scenario=scenario)
