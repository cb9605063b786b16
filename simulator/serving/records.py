"""Typed outputs of a serving run: one RequestRecord per request and one EngineEvent per cluster
event, each becoming a pandas DataFrame in one call (`RequestLog.frame`, `events_frame`).

A run holds millions of requests, so RequestLog keeps them as typed columns (struct of arrays)
while the run updates them; RequestRecord is the schema - the `--records` columns, in order -
and `RequestLog.record(rid)` reads one request back as a record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from hwmodels._compat import StrEnum
from simulator.serving.request import DropReason, Status
from simulator.serving.run_errors import RunInvariantError


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """How one request ended (NaN times: never reached; replica -1: never routed)."""

    request_id: int
    arrival_s: float
    first_token_s: float
    finish_s: float
    input_tokens: int
    output_tokens: int  # generated if completed, else the requested length
    cached_tokens: int  # prefix-cache hit of its first prefill
    preemptions: int
    status: Status
    drop_reason: DropReason | None
    replica: int
    decode_replica: int  # -1 unless disaggregated
    retries: int
    kv_transfer_s: float


RECORD_COLUMNS = tuple(f.name for f in fields(RequestRecord))
_STATUSES = tuple(Status)  # a request's status code is its position here
_STATUS_CODE = {s: np.int8(i) for i, s in enumerate(_STATUSES)}


def status_code(status: Status) -> np.int8:
    """The int8 code RequestLog.status holds for `status` (for vectorised masks)."""
    return _STATUS_CODE[status]


_REASONS = (None, *DropReason)  # drop-reason code 0: not dropped
_REASON_CODE = {r: np.int8(i) for i, r in enumerate(_REASONS)}
_REASON_TEXT = np.array(["" if r is None else r.value for r in _REASONS], dtype=object)


class RequestLog:
    """Per-request outcome columns of one run, updated in place as requests end."""

    def __init__(self, arrival_s: np.ndarray, input_tokens: np.ndarray,
                 output_tokens: np.ndarray) -> None:
        n = len(arrival_s)
        self.n = n
        self.arrival_s = arrival_s
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens  # requested
        self.first_token_s = np.full(n, np.nan)
        self.finish_s = np.full(n, np.nan)
        self.status = np.full(n, _STATUS_CODE[Status.RUNNING], dtype=np.int8)
        self.reason = np.zeros(n, dtype=np.int8)
        self.replica = np.full(n, -1, dtype=np.int32)
        self.decode_replica = np.full(n, -1, dtype=np.int32)
        self.preemptions = np.zeros(n, dtype=np.int32)
        self.cached_tokens = np.zeros(n, dtype=np.int64)
        self.generated = np.zeros(n, dtype=np.int64)
        self.retries = np.zeros(n, dtype=np.int32)
        self.kv_transfer_s = np.zeros(n)

    def first_token(self, rid: int, now: float) -> None:
        """The client's first token (kept across retries: the earliest one counts)."""
        if self.first_token_s[rid] != self.first_token_s[rid]:  # NaN
            self.first_token_s[rid] = now

    def _ending(self, rid: int, how: str) -> None:
        """A request may end once: a second ending is a lifecycle bug, never a record."""
        if self.status[rid] != _STATUS_CODE[Status.RUNNING]:
            raise RunInvariantError("request_ends_once",
                                 f"request {rid} {how} after it already ended as "
                                 f"{_STATUSES[self.status[rid]].value}")

    def complete(self, rid: int, now: float, *, generated: int, preemptions: int,
                 cached_tokens: int) -> None:
        self._ending(rid, "completed")
        self.finish_s[rid] = now
        self.status[rid] = _STATUS_CODE[Status.COMPLETED]
        self.generated[rid] = generated
        self.preemptions[rid] += preemptions
        self.cached_tokens[rid] = max(self.cached_tokens[rid], cached_tokens)

    def drop(self, rid: int, reason: DropReason, *, preemptions: int = 0) -> None:
        self._ending(rid, f"dropped ({reason.value})")
        self.status[rid] = _STATUS_CODE[Status.DROPPED]
        self.reason[rid] = _REASON_CODE[reason]
        self.preemptions[rid] += preemptions

    def record(self, rid: int) -> RequestRecord:
        """Request rid as a typed record."""
        status = _STATUSES[self.status[rid]]
        return RequestRecord(
            request_id=rid, arrival_s=float(self.arrival_s[rid]),
            first_token_s=float(self.first_token_s[rid]), finish_s=float(self.finish_s[rid]),
            input_tokens=int(self.input_tokens[rid]),
            output_tokens=int(self.generated[rid] if status is Status.COMPLETED
                              else self.output_tokens[rid]),
            cached_tokens=int(self.cached_tokens[rid]), preemptions=int(self.preemptions[rid]),
            status=status, drop_reason=_REASONS[self.reason[rid]],
            replica=int(self.replica[rid]), decode_replica=int(self.decode_replica[rid]),
            retries=int(self.retries[rid]), kv_transfer_s=float(self.kv_transfer_s[rid]))

    def frame(self, *, arrived_by_s: float | None = None) -> pd.DataFrame:
        """Every request as one row (RECORD_COLUMNS; drop_reason "" when not dropped); with
        arrived_by_s only requests that arrived by then (a horizon cut the rest)."""
        completed = self.status == _STATUS_CODE[Status.COMPLETED]
        columns = {
            "request_id": np.arange(self.n),
            "arrival_s": self.arrival_s,
            "first_token_s": self.first_token_s,
            "finish_s": self.finish_s,
            "input_tokens": self.input_tokens,
            "output_tokens": np.where(completed, self.generated, self.output_tokens),
            "cached_tokens": self.cached_tokens,
            "preemptions": self.preemptions,
            "status": pd.Categorical.from_codes(self.status,
                                                categories=[s.value for s in _STATUSES]),
            "drop_reason": _REASON_TEXT[self.reason],
            "replica": self.replica,
            "decode_replica": self.decode_replica,
            "retries": self.retries,
            "kv_transfer_s": self.kv_transfer_s,
        }
        frame = pd.DataFrame({name: columns[name] for name in RECORD_COLUMNS})
        if arrived_by_s is not None:
            frame = frame[frame["arrival_s"] <= arrived_by_s].reset_index(drop=True)
        return frame


class EventKind(StrEnum):
    """What happened to a replica (or a power row, for CAP)."""

    STRAGGLER = "straggler"
    CRASH = "crash"
    REPAIR = "repair"
    PROVISION = "provision"
    SCALE_UP = "scale_up"
    DRAIN = "drain"
    RETIRE = "retire"
    CAP = "cap"
    MIGRATION = "migration"


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineEvent:
    """One cluster event; replica is the power row for CAP events."""

    time_s: float
    kind: EventKind
    replica: int
    detail: str = ""


EVENT_COLUMNS = tuple(f.name for f in fields(EngineEvent))


def events_frame(events: Iterable[EngineEvent]) -> pd.DataFrame:
    """Events as one DataFrame (kind as its string value)."""
    rows = [(e.time_s, e.kind.value, e.replica, e.detail) for e in events]
    return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))


__all__ = ["EVENT_COLUMNS", "RECORD_COLUMNS", "EngineEvent", "EventKind", "RequestLog",
           "RequestRecord", "events_frame"]
