"""Prefix cache over hashed KV blocks: reference-counted entries, LRU eviction of free ones.

An entry is one prefix hash (a Mooncake hash_id, or a synthetic shared-prompt block) covering
`block_tokens` tokens = `kv_blocks` paged-KV blocks of the replica's pool. Hashes chain (equal
ids mean an equal prefix), so a request hits the longest run of its leading hashes present.
"""

from __future__ import annotations

from collections import OrderedDict


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
