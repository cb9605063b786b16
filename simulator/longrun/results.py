"""Typed results of a long training run: one seed (RunResult) and many seeds (RunSummary)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hwmodels.frozen import FrozenMap
from simulator.longrun.spot import SpotOutcome

LOST_KEYS = ("restart", "rework", "checkpoint", "stragglers", "waiting_spare", "elastic")

# What each lost-time key means, and what would win it back (diagnose()'s hint).
LOST_MEANING = {
    "waiting_spare": ("waiting for repairs (no spare node)",
                      "add run.spares, or run.on_shortage: elastic"),
    "restart": ("detecting failures and restarting", "lower run.detection_s / run.restart_s"),
    "rework": ("recomputing work lost since the last checkpoint",
               "checkpoint more often (run.checkpoint.interval_s: auto)"),
    "checkpoint": ("stalled writing checkpoints",
                   "checkpoint less often or asynchronously (run.checkpoint.mode: async)"),
    "stragglers": ("slowed by stragglers", "evict them (run.stragglers.evict_after_s)"),
    "elastic": ("running with fewer data-parallel replicas", "add run.spares"),
}
# A lost-time share of the wall time at or above this is worth a hint.
HINT_SHARE = 0.25


def diagnose(*, ettr: float, wall_s: float, iterations: float,
             time_lost_s: dict[str, float]) -> str | None:
    """One line on what dominated the lost time, or None when nothing dominates (every
    loss below HINT_SHARE of the wall time and ETTR > 0). ETTR exactly 0 says why."""
    if wall_s <= 0:
        return None
    key, lost = max(time_lost_s.items(), key=lambda kv: kv[1], default=("", 0.0))
    share = lost / wall_s
    what, fix = LOST_MEANING.get(key, (key, ""))
    top = f"{share:.0%} of wall time {what}" + (f": {fix}" if fix else "")
    if ettr == 0.0:
        why = ("no iteration completed" if iterations == 0
               else "no completed iteration survived to the end of the run")
        return f"ETTR is 0: {why}; {top}" if lost > 0 else f"ETTR is 0: {why}"
    return top if share >= HINT_SHARE else None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """One simulated run: ETTR, goodput, interruptions and where the time went."""

    ettr: float  # productive time (surviving iterations x healthy iteration time) / wall time
    goodput_tokens_per_s: float  # surviving tokens / wall time
    ideal_tokens_per_s: float  # tokens per second with no failures, stalls or stragglers
    wall_s: float
    productive_s: float
    iterations: float
    tokens: float
    time_to_train_s: float | None  # wall time to reach the token budget (None: not reached)
    interruptions: FrozenMap[str, int]
    time_lost_s: FrozenMap[str, float]  # LOST_KEYS; productive_s + sum == wall_s
    job_mttf_s: float  # expected, from the failure model (inf without failures)
    iteration_time_s: float  # healthy, full data parallelism
    checkpoint_every_iterations: int
    checkpoint_interval_s: float  # compute time between checkpoints
    checkpoint_stall_s: float
    restart_overhead_s: float  # detection + restart + persistent load (no waiting)
    min_dp_seen: int
    seed: int
    seed_index: int | None = None  # i when seed is child i of a SeedSequence (simulate_many)
    progress_t_s: tuple[float, ...] = ()
    progress_tokens: tuple[float, ...] = ()
    interruption_events: tuple[tuple[float, str], ...] = ()  # (time_s, cause), as counted
    downtime_spans: tuple[tuple[float, float, str], ...] = ()  # (start_s, end_s, phase)
    spot: SpotOutcome | None = None  # with run.spot: preemptions and the bill

    @property
    def num_interruptions(self) -> int:
        return int(sum(self.interruptions.values()))

    def diagnosis(self) -> str | None:
        """What dominated the lost time (see diagnose), e.g. '94% of wall time waiting for
        repairs (no spare node): add run.spares, ...'."""
        return diagnose(ettr=self.ettr, wall_s=self.wall_s, iterations=self.iterations,
                        time_lost_s=dict(self.time_lost_s))

    def to_dict(self) -> dict[str, Any]:
        """The `run:` part of `fleetsim simulate train --json` (no time series)."""
        return {
            "ettr": self.ettr,
            "goodput_tokens_per_s": self.goodput_tokens_per_s,
            "ideal_tokens_per_s": self.ideal_tokens_per_s,
            "wall_s": self.wall_s,
            "tokens": self.tokens,
            "time_to_train_s": self.time_to_train_s,
            "interruptions": dict(sorted(self.interruptions.items())),
            "num_interruptions": self.num_interruptions,
            "time_lost_s": dict(self.time_lost_s),
            "job_mttf_s": self.job_mttf_s,
            "checkpoint_interval_s": self.checkpoint_interval_s,
            "checkpoint_every_iterations": self.checkpoint_every_iterations,
            "checkpoint_stall_s": self.checkpoint_stall_s,
            "restart_overhead_s": self.restart_overhead_s,
            "min_dp_seen": self.min_dp_seen,
            "seed": self.seed,
            **({"spot": self.spot.to_dict()} if self.spot is not None else {}),
        }

    def progress_df(self) -> pd.DataFrame:
        """Progress (tokens kept) against wall-clock time, one row per change point."""
        return pd.DataFrame({"t_s": self.progress_t_s, "tokens": self.progress_tokens})


def _mean_spot(runs: tuple[RunResult, ...]) -> dict[str, float | None]:
    """Mean over seeds of every spot field (None when any seed has None)."""
    rows = [r.spot.to_dict() for r in runs if r.spot is not None]
    return {k: None if any(row[k] is None for row in rows)
            else float(np.mean([row[k] for row in rows])) for k in rows[0]}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """Several seeds of the same run: mean and 5-95% band of ETTR, per-seed results."""

    runs: tuple[RunResult, ...]

    def _values(self, name: str) -> np.ndarray:
        return np.array([getattr(r, name) for r in self.runs], dtype=float)

    @property
    def ettr_mean(self) -> float:
        return float(self._values("ettr").mean())

    @property
    def ettr_p5(self) -> float:
        return float(np.percentile(self._values("ettr"), 5))

    @property
    def ettr_p95(self) -> float:
        return float(np.percentile(self._values("ettr"), 95))

    @property
    def interruptions_mean(self) -> float:
        return float(np.mean([r.num_interruptions for r in self.runs]))

    def diagnosis(self) -> str | None:
        """diagnose() over the mean of the seeds."""
        return diagnose(ettr=self.ettr_mean, wall_s=float(self._values("wall_s").mean()),
                        iterations=float(self._values("iterations").mean()),
                        time_lost_s={k: float(np.mean([r.time_lost_s[k] for r in self.runs]))
                                     for k in self.runs[0].time_lost_s})

    def to_dict(self) -> dict[str, Any]:
        """Mean over seeds of the contract fields plus the ETTR band."""
        causes = sorted({c for r in self.runs for c in r.interruptions})
        n = len(self.runs)
        ttt = [r.time_to_train_s for r in self.runs if r.time_to_train_s is not None]
        return {
            "ettr": self.ettr_mean,
            "ettr_p5": self.ettr_p5,
            "ettr_p95": self.ettr_p95,
            "goodput_tokens_per_s": float(self._values("goodput_tokens_per_s").mean()),
            "time_to_train_s": float(np.mean(ttt)) if len(ttt) == n else None,
            "interruptions": {c: sum(r.interruptions.get(c, 0) for r in self.runs) / n
                              for c in causes},
            "num_interruptions": self.interruptions_mean,
            "time_lost_s": {k: float(np.mean([r.time_lost_s[k] for r in self.runs]))
                            for k in self.runs[0].time_lost_s},
            "seeds": n,
            **({"spot": _mean_spot(self.runs)} if self.runs[0].spot is not None else {}),
        }

    def to_df(self) -> pd.DataFrame:
        """One row per seed."""
        return pd.DataFrame([{k: v for k, v in r.to_dict().items()
                              if not isinstance(v, dict)} for r in self.runs])
