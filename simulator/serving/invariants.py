"""End-of-run invariants of every serving simulation (always on, O(requests + lanes)).

simulate_serving calls `check_run` on every result, so the CLI, the planners and the API all
get it: a violation is a fleetsim bug and raises hwmodels.errors.InvariantError naming the
scenario (CLI exit 4), never a number to report.

- every request ended exactly once: completed or dropped with a reason (running only when a
  horizon cut the run); the counts add up to the number of requests (RequestLog refuses a
  second ending as it happens);
- KV blocks: 0 <= used <= capacity on every lane pool (KVPool.alloc also refuses to
  over-allocate as it happens), and at the end of an uncut run only prefix-cache-owned blocks
  remain - no request-private or transfer-held block leaks;
- simulated time only moves forward: arrival <= first token <= finish per request, lane
  samples in time order, duration >= the last event;
- no NaN, inf or negative number in the summary (None where there is no data).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hwmodels.errors import InvariantError
from simulator.serving.replica import Lane
from simulator.serving.request import Status

# ending statuses; "running" only when a horizon cut the run
_ENDED = (Status.COMPLETED.value, Status.DROPPED.value)


def check_requests(records: pd.DataFrame, n_requests: int, *, cut: bool,
                   scenario: str | None = None) -> None:
    """Every request once, ended (unless cut), dropped ones with a reason, time forward."""
    status = records["status"].astype(str).to_numpy()
    if not cut and len(records) != n_requests:
        raise InvariantError("request_ends_once", f"{len(records)} records for "
                             f"{n_requests} requests", scenario=scenario)
    if records["request_id"].duplicated().any():
        raise InvariantError("request_ends_once", "a request has two records",
                             scenario=scenario)
    allowed = (*_ENDED, Status.RUNNING.value) if cut else _ENDED
    bad = ~np.isin(status, allowed)
    if bad.any():
        rids = records["request_id"].to_numpy()[bad][:5].tolist()
        raise InvariantError("request_ends_once",
                             f"{int(bad.sum())} of {len(records)} requests never ended "
                             f"(status {sorted(set(status[bad]))}, e.g. ids {rids})",
                             scenario=scenario)
    dropped = status == Status.DROPPED.value
    if (records["drop_reason"].to_numpy()[dropped] == "").any():
        raise InvariantError("drop_reason", "a dropped request has no drop reason",
                             scenario=scenario)
    arrival = records["arrival_s"].to_numpy(dtype=float)
    first = records["first_token_s"].to_numpy(dtype=float)
    finish = records["finish_s"].to_numpy(dtype=float)
    done = status == Status.COMPLETED.value
    if np.isnan(finish[done]).any() or np.isnan(first[done]).any():
        raise InvariantError("time_forward", "a completed request has no first-token or "
                             "finish time", scenario=scenario)
    has_first = ~np.isnan(first)
    eps = 1e-9
    if (first[has_first] < arrival[has_first] - eps).any():
        raise InvariantError("time_forward", "a first token before its request arrived",
                             scenario=scenario)
    if (finish[done] < first[done] - eps).any():
        raise InvariantError("time_forward", "a request finished before its first token",
                             scenario=scenario)


def check_lanes(lanes: Sequence[Lane], *, cut: bool, scenario: str | None = None) -> None:
    """KV pools within capacity and, at the end of an uncut run, holding only prefix-cache
    entries; lane samples in time order."""
    for lane in lanes:
        kv = lane.kv
        where = f"replica {lane.replica} lane {lane.lane}"
        if not 0 <= kv.used <= kv.total or kv.held < 0:
            raise InvariantError("kv_capacity", f"{where}: {kv.used} blocks used, "
                                 f"{kv.held} held, of {kv.total}", scenario=scenario)
        times = [s[0] for s in lane.stats.samples]
        if any(b < a for a, b in zip(times, times[1:], strict=False)):
            raise InvariantError("time_forward", f"{where}: samples out of time order",
                                 scenario=scenario)
        if cut or lane.dead:
            continue
        cached = lane.prefix.blocks if lane.prefix is not None else 0
        if kv.used != cached or kv.held:
            raise InvariantError("kv_leak", f"{where}: {kv.used} blocks in use at the end "
                                 f"({cached} owned by the prefix cache, {kv.held} held for "
                                 "transfers); every request ended, so only cache entries "
                                 "may remain", scenario=scenario)
        if lane.outstanding or lane.running or lane.waiting or lane.ready or lane.swapped:
            raise InvariantError("request_ends_once", f"{where}: requests left at the end "
                                 f"(outstanding {lane.outstanding}, running "
                                 f"{len(lane.running)}, waiting {len(lane.waiting)})",
                                 scenario=scenario)


def _numbers(value: Any, path: str) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _numbers(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{path}[{i}]")
    else:
        yield path, value


def check_summary(summary: Mapping[str, Any], *, scenario: str | None = None) -> None:
    """No NaN, inf or negative number anywhere in the summary (None is 'no data')."""
    for path, value in _numbers(summary, ""):
        if value is None or isinstance(value, (bool, str)):
            continue
        if isinstance(value, (int, float, np.integer, np.floating)):
            v = float(value)
            if math.isnan(v) or math.isinf(v) or v < 0:
                raise InvariantError("summary_finite", f"summary {path} = {value!r}",
                                     scenario=scenario)


def check_run(*, records: pd.DataFrame, n_requests: int, lanes: Sequence[Lane],
              summary: Mapping[str, Any], cut: bool, scenario: str | None = None) -> None:
    """All invariants of one finished run (see the module docstring)."""
    check_requests(records, n_requests, cut=cut, scenario=scenario)
    ended = summary.get("completed", 0) + summary.get("dropped", 0)
    if not cut and ended != summary.get("requests", ended):
        raise InvariantError("request_ends_once", f"completed {summary.get('completed')} + "
                             f"dropped {summary.get('dropped')} != requests "
                             f"{summary.get('requests')}", scenario=scenario)
    check_lanes(lanes, cut=cut, scenario=scenario)
    check_summary(summary, scenario=scenario)
