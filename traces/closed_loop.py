"""Closed-loop clients: N clients, each sending its next request think_time_s after its
previous one ended (vLLM `benchmark_serving --max-concurrency`, genai-perf `--concurrency`).

Spec (the scenario's workload.clients, or `clients: N` with these keys beside it):

    count: 64                      # concurrent clients (>= 1)
    think_time_s: 0.0              # after a response ends, before the next request (>= 0)
    think: fixed | exponential     # think time distribution (mean think_time_s)
    duration_s: 900 | num_requests: 5000     # stop issuing after this (one of them)
    input: 1024 | {dist: ...}      # lengths as in traces.synth (an int: fixed)
    output: 128 | {dist: ...}
    prefix: {...}                  # shared system prompts as in traces.synth

Arrival times exist only while simulating, so this module gives the spec and a seeded length
sampler; the serving engine issues the requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from hwmodels.units import parse_duration_s
from traces.synth import MAX_SYNTH_REQUESTS, length_section, sample_lengths, sample_prefixes

CLIENT_KEYS = ("count", "think_time_s", "think", "duration_s", "num_requests", "input",
               "output", "prefix")
_WHERE = "workload.clients"
# lengths drawn per refill of a sampler: amortises numpy calls without drawing far ahead
_CHUNK = 4096


class ThinkDist(StrEnum):
    FIXED = "fixed"
    EXPONENTIAL = "exponential"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientsSpec:
    """A validated closed-loop workload (lengths kept as traces.synth sections)."""

    count: int
    think_time_s: float = 0.0
    think: ThinkDist = ThinkDist.FIXED
    duration_s: float | None = None
    num_requests: int | None = None
    input: Mapping[str, Any]
    output: Mapping[str, Any]
    prefix: Mapping[str, Any] | None = None
    file: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ConfigError(f"needs at least one client, got {self.count!r}", file=self.file,
                              key=f"{_WHERE}.count", allowed="an integer >= 1")
        t = self.think_time_s
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not np.isfinite(t) or t < 0:
            raise ConfigError(f"must be a duration >= 0, got {t!r}", file=self.file,
                              key=f"{_WHERE}.think_time_s")
        if (self.duration_s is None) == (self.num_requests is None):
            raise ConfigError("give exactly one of duration_s and num_requests (when the "
                              "clients stop issuing)", file=self.file, key=_WHERE,
                              allowed=["duration_s", "num_requests"])
        if self.duration_s is not None and not self.duration_s > 0:
            raise ConfigError(f"must be > 0, got {self.duration_s!r}", file=self.file,
                              key=f"{_WHERE}.duration_s")
        n = self.num_requests
        if n is not None and (isinstance(n, bool) or not isinstance(n, int)
                              or not 1 <= n <= MAX_SYNTH_REQUESTS):
            raise ConfigError(f"expected an integer in 1 .. {MAX_SYNTH_REQUESTS:,}, got {n!r}",
                              file=self.file, key=f"{_WHERE}.num_requests")

    def with_stop(self, *, duration_s: float | None = None,
                  num_requests: int | None = None) -> ClientsSpec:
        """The same clients stopping after another duration or request count."""
        return replace(self, duration_s=duration_s, num_requests=num_requests)

    def with_count(self, count: int) -> ClientsSpec:
        return replace(self, count=count)


def parse_clients(value: Any, siblings: Mapping[str, Any] | None = None, *,
                  file: str | None = None) -> ClientsSpec:
    """`clients: N` (with the other keys beside it in workload:) or `clients: {count, ...}`
    -> a ClientsSpec; every bad key raises ConfigError naming it."""
    if isinstance(value, Mapping):
        raw = dict(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        raw = {"count": value}
    else:
        raise ConfigError(f"expected a client count or a mapping, got {value!r}", file=file,
                          key=_WHERE, allowed=["an integer >= 1", "{count, think_time_s, ...}"])
    for k, v in (siblings or {}).items():
        if v is None:
            continue
        if k in raw:
            raise ConfigError(f"'{k}' given both in workload.clients and beside it", file=file,
                              key=f"workload.{k}")
        raw[k] = v
    for k in raw:
        if k not in CLIENT_KEYS:
            raise ConfigError(f"unknown key '{k}'", file=file, key=f"{_WHERE}.{k}",
                              allowed=list(CLIENT_KEYS))
    if "count" not in raw:
        raise ConfigError("missing the client count", file=file, key=f"{_WHERE}.count")
    think = raw.get("think_time_s", 0.0)
    if isinstance(think, str):
        think = parse_duration_s(think, key=f"{_WHERE}.think_time_s", file=file)
    duration = raw.get("duration_s")
    if isinstance(duration, str):
        duration = parse_duration_s(duration, key=f"{_WHERE}.duration_s", file=file)
    try:
        dist = ThinkDist(str(raw.get("think", "fixed")))
    except ValueError:
        raise ConfigError(f"unknown value {raw.get('think')!r}", file=file,
                          key=f"{_WHERE}.think", allowed=[d.value for d in ThinkDist]) from None
    sections = {}
    for key in ("input", "output"):
        if raw.get(key) is None:
            raise ConfigError("missing request lengths", file=file, key=f"{_WHERE}.{key}",
                              allowed=["an integer (fixed)", "{dist: ...} as in synthetic"])
        sections[key] = length_section(raw[key], f"{_WHERE}.{key}", file)
    spec = ClientsSpec(count=raw["count"], think_time_s=think, think=dist,
                       duration_s=duration, num_requests=raw.get("num_requests"),
                       input=sections["input"], output=sections["output"],
                       prefix=raw.get("prefix"), file=file)
    # draw once so a bad length or prefix section fails at load time, not mid-run
    LengthSampler(spec, np.random.default_rng(0), chunk=1).next()
    return spec


class LengthSampler:
    """Seeded (input_tokens, output_tokens, prefix_hashes) per issued request, drawn in chunks
    from the traces.synth samplers (one Generator per column, like synthesize)."""

    def __init__(self, spec: ClientsSpec, rng: np.random.Generator, *,
                 chunk: int = _CHUNK) -> None:
        self.spec = spec
        self.chunk = chunk
        self._rng_in, self._rng_out, self._rng_pre, self._rng_think = rng.spawn(4)
        self._buf: list[tuple[int, int, list[int]]] = []
        self._pos = 0
        self.block_tokens: int | None = None
        if spec.prefix is not None:
            self.block_tokens = sample_prefixes(spec.prefix, 1, np.random.default_rng(0),
                                                f"{_WHERE}.prefix", spec.file)[2]

    def _refill(self) -> None:
        s, n, file = self.spec, self.chunk, self.spec.file
        inputs = sample_lengths(s.input, n, self._rng_in, f"{_WHERE}.input", file,
                                "input_tokens")
        outputs = sample_lengths(s.output, n, self._rng_out, f"{_WHERE}.output", file,
                                 "output_tokens")
        hashes: list[list[int]] = [[] for _ in range(n)]
        if s.prefix is not None:
            hashes, shared, _ = sample_prefixes(s.prefix, n, self._rng_pre,
                                                f"{_WHERE}.prefix", file)
            inputs = inputs + shared  # the shared prompt precedes the user's tokens
        self._buf = list(zip(inputs.tolist(), outputs.tolist(), hashes, strict=True))
        self._pos = 0

    def next(self) -> tuple[int, int, list[int]]:
        """The next request's (input_tokens, output_tokens, prefix_hashes)."""
        if self._pos >= len(self._buf):
            self._refill()
        out = self._buf[self._pos]
        self._pos += 1
        return out

    def think_s(self) -> float:
        """One client's think time before its next request."""
        s = self.spec
        if s.think is ThinkDist.FIXED or s.think_time_s == 0:
            return float(s.think_time_s)
        return float(self._rng_think.exponential(s.think_time_s))
