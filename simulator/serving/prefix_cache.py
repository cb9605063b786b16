"""Prefix cache over hashed KV blocks: reference-counted entries, LRU eviction of free ones.

An entry is one prefix hash (a Mooncake hash_id, or a synthetic shared-prompt block) covering
`block_tokens` tokens = `kv_blocks` paged-KV blocks of the replica's pool. Hashes chain (equal
ids mean an equal prefix), so a request hits the longest run of its leading hashes present.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.serving.request import Seq


class PrefixCache:
    """Pinned entries (in use by running requests) never leave; unpinned ones are evicted
    least-recently-released first when the pool needs their blocks (vLLM's evictor)."""

    __slots__ = ("block_tokens", "kv_blocks", "pinned", "lru", "lookups_tokens",
                 "hit_tokens")

    def __init__(self, block_tokens: int, kv_blocks: int) -> None:
        self.block_tokens = block_tokens
        self.kv_blocks = kv_blocks
        self.pinned: dict[int, int] = {}
        self.lru: OrderedDict[int, None] = OrderedDict()
        self.lookups_tokens = 0
        self.hit_tokens = 0

    @property
    def blocks(self) -> int:
        """Pool blocks held by cached entries, pinned or not."""
        return (len(self.pinned) + len(self.lru)) * self.kv_blocks

    @property
    def evictable_blocks(self) -> int:
        return len(self.lru) * self.kv_blocks

    def usable(self, hashes: list[int] | tuple[int, ...], prompt: int) -> int:
        """Leading hashes that cover full blocks of the prompt, leaving >= 1 token to compute."""
        return min(len(hashes), (prompt - 1) // self.block_tokens)

    def match(self, hashes: list[int] | tuple[int, ...], prompt: int) -> int:
        """Number of leading usable hashes present."""
        n = 0
        for h in hashes[:self.usable(hashes, prompt)]:
            if h in self.pinned or h in self.lru:
                n += 1
            else:
                break
        return n

    def pin(self, h: int) -> bool:
        """Take a reference; True if the entry existed, False if it was created (pinned)."""
        count = self.pinned.get(h)
        if count is not None:
            self.pinned[h] = count + 1
            return True
        existed = self.lru.pop(h, 0) is None
        self.pinned[h] = 1
        return existed

    def unpin(self, h: int) -> None:
        count = self.pinned[h] - 1
        if count:
            self.pinned[h] = count
        else:
            del self.pinned[h]
            self.lru[h] = None

    def evict_one(self) -> None:
        """Drop the least recently released unpinned entry."""
        self.lru.popitem(last=False)

    def hit_rate(self) -> float:
        return self.hit_tokens / self.lookups_tokens if self.lookups_tokens else 0.0

    def clear(self) -> None:
        """Forget every entry (the replica's GPU memory was lost)."""
        self.pinned.clear()
        self.lru.clear()

    # -- a request's view ------------------------------------------------------------------------

    def lookup(self, seq: Seq) -> tuple[int, int]:
        """(cached tokens, shared blocks) the cache would give seq now."""
        if not seq.hashes:
            return 0, 0
        n = self.match(seq.hashes, seq.target)
        return n * self.block_tokens, n * self.kv_blocks

    def pin_cost_blocks(self, seq: Seq, matched: int) -> int:
        """Pool blocks that pinning seq's first `matched` entries takes off the evictable list."""
        lru, kv = self.lru, self.kv_blocks
        return sum(kv for h in seq.hashes[:matched] if h in lru)

    def attach(self, seq: Seq, matched: int) -> None:
        """Admission: pin seq's first `matched` entries, count the lookup (first prefill only)."""
        if matched:
            for h in seq.hashes[:matched]:
                self.pin(h)
            seq.pinned = list(seq.hashes[:matched])
            seq.shared = matched * self.kv_blocks
            seq.cached = matched * self.block_tokens
        else:
            seq.shared = seq.cached = 0
        if seq.hashes and seq.gen == 0:
            self.lookups_tokens += seq.prompt
            self.hit_tokens += seq.cached

    def detach(self, seq: Seq) -> None:
        """seq releases its entries (they stay cached, evictable once unreferenced)."""
        for h in seq.pinned:
            self.unpin(h)

    def adopt(self, seq: Seq) -> None:
        """After prefill, seq's full prefix blocks become cache entries (shared blocks)."""
        if not seq.hashes:
            return
        kv = self.kv_blocks
        for h in seq.hashes[len(seq.pinned):self.usable(seq.hashes, seq.target)]:
            if seq.private < kv:
                break
            if not self.pin(h):  # created: ownership of its blocks moves from seq to the cache
                seq.private -= kv
                seq.shared += kv
            seq.pinned.append(h)
