"""End-of-run invariants of a simulated long run (cheap, always on).

A violation is a simulator bug, never a number to report: hwmodels.errors.InvariantError
(the CLI exits 4). Checked: every summary number finite and >= 0, ETTR in [0, 1], wall time
>= productive time, productive + lost time == wall time, goodput <= the ideal throughput,
and the progress series' clock only moves forward.
"""

from __future__ import annotations

import math

from hwmodels.errors import InvariantError
from simulator.longrun.results import RunResult

REL_TOL = 1e-6  # the lost-time ledger sums many float intervals
ABS_TOL_S = 1e-6


def check_run_result(r: RunResult, *, scenario: str | None = None) -> None:
    """Raise InvariantError naming the scenario when a run's result cannot be right."""
    numbers = {"ettr": r.ettr, "goodput_tokens_per_s": r.goodput_tokens_per_s,
               "ideal_tokens_per_s": r.ideal_tokens_per_s, "wall_s": r.wall_s,
               "productive_s": r.productive_s, "iterations": r.iterations, "tokens": r.tokens,
               "iteration_time_s": r.iteration_time_s,
               "checkpoint_interval_s": r.checkpoint_interval_s,
               "checkpoint_stall_s": r.checkpoint_stall_s,
               "restart_overhead_s": r.restart_overhead_s,
               **{f"time_lost_s.{k}": v for k, v in r.time_lost_s.items()}}
    if r.time_to_train_s is not None:
        numbers["time_to_train_s"] = r.time_to_train_s
    for name, value in numbers.items():
        if not (math.isfinite(value) and value >= 0):
            raise InvariantError("finite non-negative summary", f"{name} = {value!r}",
                                 scenario=scenario)
    if not 0.0 <= r.ettr <= 1.0 + REL_TOL:
        raise InvariantError("ETTR in [0, 1]", f"ettr = {r.ettr!r}", scenario=scenario)
    tol = ABS_TOL_S + REL_TOL * r.wall_s
    if r.productive_s > r.wall_s + tol:
        raise InvariantError("wall time >= productive time",
                             f"productive {r.productive_s!r} s > wall {r.wall_s!r} s",
                             scenario=scenario)
    booked = r.productive_s + sum(r.time_lost_s.values())
    if abs(booked - r.wall_s) > tol:
        raise InvariantError("productive + lost time == wall time",
                             f"{r.productive_s!r} + {sum(r.time_lost_s.values())!r} s != "
                             f"{r.wall_s!r} s", scenario=scenario)
    if r.goodput_tokens_per_s > r.ideal_tokens_per_s * (1 + REL_TOL):
        raise InvariantError("goodput <= throughput",
                             f"goodput {r.goodput_tokens_per_s!r} > ideal "
                             f"{r.ideal_tokens_per_s!r} tokens/s", scenario=scenario)
    ts = r.progress_t_s
    for a, b in zip(ts, ts[1:], strict=False):
        if b < a - ABS_TOL_S:
            raise InvariantError("time moves forward",
                                 f"progress clock goes back from {a!r} s to {b!r} s",
                                 scenario=scenario)
