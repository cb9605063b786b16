"""The decoding requests of one lane in closed form, so decode-only steps between two batch
changes run as one SimPy timeout.

Every decode step adds one token to each decoding request. Instead of touching each request per
step the set keeps a step counter, the count of requests per (KV length - step) mod block_size
(the step at which each needs a new block), the sum of KV lengths at a reference step and a heap
of finishing steps; how many blocks k steps need, how many steps fit in the free blocks and
which requests are due are all O(block_size) or O(log n).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from simulator.serving.request import Phase, Seq


class DecodeSet:
    """Requests decoding on one lane; their KV holds kv_base + (step - step_base) tokens."""

    __slots__ = ("block_size", "step", "n", "phase_cnt", "members", "_kv_sum0", "_kv_step0",
                 "_heap")

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.step = 0  # decode steps executed on the lane
        self.n = 0
        self.phase_cnt = [0] * block_size  # requests by (kv - step) mod block_size
        self.members: dict[Seq, None] = {}  # admission order
        self._kv_sum0, self._kv_step0 = 0, 0  # sum of KV lengths at step _kv_step0
        self._heap: list[tuple[int, int, Seq]] = []

    def kv_tokens(self, seq: Seq) -> int:
        return seq.kv_base + self.step - seq.step_base

    def kv_sum(self) -> int:
        """Sum of the members' KV lengths now."""
        return self._kv_sum0 + self.n * (self.step - self._kv_step0)

    def add(self, seq: Seq, kv: int) -> None:
        """seq starts decoding with kv tokens of KV (seq.order set by the lane)."""
        step = self.step
        seq.phase = Phase.DECODE
        seq.kv_base = kv
        seq.step_base = step
        seq.done_at = step + (seq.output - seq.gen)
        self._kv_sum0 = self.kv_sum() + kv
        self._kv_step0 = step
        self.n += 1
        self.phase_cnt[(kv - step) % self.block_size] += 1
        self.members[seq] = None
        seq.home = self
        heapq.heappush(self._heap, (seq.done_at, seq.order, seq))

    def remove(self, seq: Seq) -> None:
        """seq stops decoding here (finished, preempted or migrated); its heap entry goes stale."""
        self._kv_sum0 = self.kv_sum() - self.kv_tokens(seq)
        self._kv_step0 = self.step
        self.n -= 1
        self.phase_cnt[(seq.kv_base - seq.step_base) % self.block_size] -= 1
        del self.members[seq]

    def new_blocks(self, k: int) -> int:
        """Blocks the members need over the next k steps."""
        if k <= 0 or not self.n:
            return 0
        B, cnt, s = self.block_size, self.phase_cnt, self.step
        full, rest = divmod(k, B)
        total = full * self.n
        for j in range(rest):
            total += cnt[(-(s + j)) % B]
        return total

    def steps_that_fit(self, available_blocks: int, limit: int) -> int:
        """Largest k <= limit whose new blocks fit in available_blocks."""
        if not self.n:
            return limit
        cycles = available_blocks // self.n
        B = self.block_size
        if cycles * B >= limit:
            return limit
        rest = available_blocks - cycles * self.n
        k = cycles * B
        cnt, s = self.phase_cnt, self.step
        for j in range(B):
            need = cnt[(-(s + j)) % B]
            if need > rest:
                break
            rest -= need
            k += 1
        return min(k, limit)

    def steps_to_next_finish(self) -> int:
        """Steps until the earliest member reaches its output length (1 if none is due)."""
        heap = self._heap
        return (heap[0][0] - self.step) if heap else 1

    def context_read(self, k: int) -> float:
        """Context tokens the next k steps read (each step reads KV + its new token)."""
        n = self.n
        return k * (self.kv_sum() + n) + n * k * (k - 1) / 2

    def due(self) -> Iterator[Seq]:
        """Members that reached their output length by now, popped lazily: the caller may
        finish each before the next is checked (a request can have two heap entries)."""
        step, heap = self.step, self._heap
        while heap and heap[0][0] <= step:
            done_at, _, seq = heapq.heappop(heap)
            if seq.phase is not Phase.DECODE or seq.done_at != done_at or seq.home is not self:
                continue  # stale entry (preempted, swapped or migrated since)
            yield seq

    def clear(self) -> None:
        """Everything lost (a crash); the step counter keeps counting."""
        self.members.clear()
        self._heap.clear()
        self.n = 0
        self.phase_cnt = [0] * self.block_size
        self._kv_sum0 = self._kv_step0 = 0
