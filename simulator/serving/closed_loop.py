"""Closed-loop arrivals: each of N clients issues its next request think time after its
previous one ended (completed or dropped), so the offered load follows the service rate
(vLLM `benchmark_serving --max-concurrency`, genai-perf `--concurrency`).

The engine's request columns and RequestLog are sized as requests are issued (doubling), so
the open-loop path keeps its preallocated arrays untouched. Request i's session id is its
client (a client is one conversation to session-affinity routers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.serving.records import RequestLog
from simulator.serving.request import Seq
from traces.closed_loop import ClientsSpec, LengthSampler

if TYPE_CHECKING:
    from simulator.serving.engine import ServingEngine

_INITIAL_PER_CLIENT = 8  # first allocation: requests per client before the first doubling


class ClosedLoopSource:
    """Issues the clients' requests into a ServingEngine and grows its request columns."""

    def __init__(self, engine: ServingEngine, spec: ClientsSpec, rng: np.random.Generator
                 ) -> None:
        self.engine = engine
        self.spec = spec
        self.sampler = LengthSampler(spec, rng)
        self.issued = 0
        self.active = spec.count  # clients that will still issue
        self.with_hashes = spec.prefix is not None
        cap = spec.num_requests if spec.num_requests is not None else \
            spec.count * _INITIAL_PER_CLIENT
        self._alloc(max(1, min(cap, spec.count * _INITIAL_PER_CLIENT)))

    # -- columns ------------------------------------------------------------------------------

    def _alloc(self, cap: int) -> None:
        """(Re)size the engine's request columns and log to `cap`, keeping issued rows."""
        eng, n = self.engine, self.issued
        arrival = np.full(cap, np.inf)  # not issued yet: never "arrived" (autoscale metric)
        prompt = np.zeros(cap, dtype=np.int64)
        output = np.ones(cap, dtype=np.int64)
        session = np.full(cap, -1, dtype=np.int64)
        old = getattr(eng, "requests", None)
        if old is not None:
            arrival[:n], prompt[:n], output[:n] = eng.arrival[:n], eng.prompt[:n], eng.output[:n]
            session[:n] = eng.session[:n]
        log = RequestLog(arrival, prompt, output)
        if old is not None:
            keep = {"arrival_s", "input_tokens", "output_tokens"}
            for name, value in vars(old).items():
                if isinstance(value, np.ndarray) and name not in keep:
                    getattr(log, name)[:n] = value[:n]
        eng.arrival, eng.prompt, eng.output, eng.session = arrival, prompt, output, session
        eng.failed = np.zeros(cap, dtype=bool)
        if self.with_hashes:
            eng.hashes = (eng.hashes or [])[:n] + [[] for _ in range(cap - n)]
        eng.requests = log
        self.cap = cap

    def trim(self) -> None:
        """Shrink the columns to the requests issued (before the records frame is built)."""
        if self.cap != self.issued:
            self._alloc(self.issued)
        self.engine.n = self.issued

    # -- clients ------------------------------------------------------------------------------

    def start(self) -> Any:
        """SimPy process: every client sends its first request at t = 0."""
        yield self.engine.env.timeout(0.0)
        for client in range(self.spec.count):
            self._issue(client)

    def _open(self, at_s: float) -> bool:
        s = self.spec
        if s.num_requests is not None:
            return self.issued < s.num_requests
        return at_s < s.duration_s  # type: ignore[operator]

    def _issue(self, client: int) -> None:
        eng = self.engine
        now = float(eng.env.now)
        if not self._open(now):
            self._retire()
            return
        if self.issued >= self.cap:
            self._alloc(self.cap * 2)
        rid = self.issued
        self.issued += 1
        eng.remaining += 1
        prompt, output, hashes = self.sampler.next()
        output = max(output, 1)
        eng.arrival[rid], eng.prompt[rid], eng.output[rid] = now, prompt, output
        eng.session[rid] = client
        if self.with_hashes:
            eng.hashes[rid] = hashes  # type: ignore[index]
        nr = len(eng.routers)
        eng._dispatch(Seq(rid, now, prompt, output, hashes, client), rid % nr if nr > 1 else 0)

    def ended(self, rid: int) -> None:
        """Request rid ended: its client thinks, then issues again (or retires)."""
        client = int(self.engine.session[rid])
        env = self.engine.env
        think = self.sampler.think_s()
        if not self._open(env.now + think):
            self._retire()
            return
        # always through the event queue, never inside the lane callback that ended rid
        env.timeout(think).callbacks.append(lambda _ev, c=client: self._issue(c))

    def _retire(self) -> None:
        self.active -= 1
        if self.active == 0:
            self.engine._end()  # the source's own count: no request will be issued anymore
