"""A request's mutable state inside a replica (slotted: millions of them per run)."""

from __future__ import annotations

from hwmodels._compat import StrEnum


class Status(StrEnum):
    """How a request ended: exactly one per request."""

    COMPLETED = "completed"
    DROPPED = "dropped"
    RUNNING = "running"  # still waiting, prefilling or decoding when the horizon came


class DropReason(StrEnum):
    FAILED_IN_TRACE = "failed_in_trace"  # BurstGPT rows logged as failed (zero response)
    PROMPT_TOO_LONG = "prompt_exceeds_max_model_len"
    # prompt + requested output > max_model_len: vLLM rejects the request up front (HTTP 400
    # "maximum context length"), it never silently shortens the output
    OUTPUT_TOO_LONG = "prompt_plus_output_exceeds_max_model_len"
    EXCEEDS_BATCH_TOKENS = "prompt_exceeds_max_batch_tokens"
    EXCEEDS_KV = "exceeds_kv_capacity"
    CLIENT_TIMEOUT = "client_timeout"  # still queued client_timeout_s after arrival
    RETRIES_EXHAUSTED = "replica_failure_retries_exhausted"  # crashed more than the budget


class Phase(StrEnum):
    WAITING = "waiting"
    PREFILL = "prefill"
    DECODE = "decode"
    SWAPPED = "swapped"
    DONE = "done"


class Seq:
    """One request as a replica sees it. Token bookkeeping (paged mode):
    target = tokens to prefill (prompt, or prompt + generated after a recompute preemption),
    computed = prefilled so far, gen = output tokens sampled so far; while decoding the KV
    holds kv_base + (lane.step - step_base) tokens and the request finishes at lane step
    done_at."""

    __slots__ = ("rid", "arrival_s", "prompt", "output", "hashes", "target", "computed",
                 "cached", "gen", "kv_base", "step_base", "done_at", "shared", "private",
                 "pinned", "preemptions", "first_token_s", "phase", "order", "swapped_blocks",
                 "first_cached", "session", "home")

    def __init__(self, rid: int, arrival_s: float, prompt: int, output: int,
                 hashes: list[int] | tuple[int, ...] = (), session: int = -1) -> None:
        self.rid = rid
        self.arrival_s = arrival_s
        self.prompt = prompt
        self.output = output
        self.hashes = hashes
        self.target = prompt
        self.computed = 0
        self.cached = 0
        self.first_cached = -1
        self.gen = 0
        self.kv_base = 0
        self.step_base = 0
        self.done_at = 0
        self.shared = 0  # KV blocks owned by the prefix cache (pinned by this request)
        self.private = 0  # blocks owned by this request while prefilling / non-paged
        self.pinned: list[int] = []
        self.preemptions = 0
        self.first_token_s = -1.0
        self.phase = Phase.WAITING
        self.order = 0
        self.swapped_blocks = 0
        self.session = session
        self.home: object = None  # the DecodeSet it decodes in (stale-heap-entry check)

    def __repr__(self) -> str:
        return (f"Seq(rid={self.rid}, phase={self.phase}, prompt={self.prompt}, "
                f"output={self.output}, gen={self.gen})")
