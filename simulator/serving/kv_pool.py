"""A lane's paged KV-block pool: allocation (evicting unreferenced prefix-cache entries when
short), blocks held for outgoing transfers, and the peak for the lanes frame."""

from __future__ import annotations

from simulator.serving.prefix_cache import PrefixCache
from simulator.serving.run_errors import RunInvariantError


class KVPool:
    """Counts blocks only: which request owns what is on the request (Seq.private/shared)."""

    __slots__ = ("total", "block_size", "prefix", "used", "peak_used", "held")

    def __init__(self, total_blocks: int, block_size: int, prefix: PrefixCache | None) -> None:
        self.total = total_blocks
        self.block_size = block_size
        self.prefix = prefix  # its entries occupy pool blocks (counted in used)
        self.used = 0  # request-private + prefix-cache + held blocks
        self.peak_used = 0
        self.held = 0  # kept for KV transfers still in flight

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def available(self) -> int:
        """Blocks an allocation could get now (free + evictable prefix-cache entries)."""
        prefix = self.prefix
        return self.total - self.used + (prefix.evictable_blocks if prefix is not None else 0)

    def alloc(self, blocks: int) -> None:
        """Take `blocks`, evicting least recently released prefix entries if needed."""
        free = self.total - self.used
        while free < blocks:
            prefix = self.prefix
            if prefix is None or not prefix.lru:
                raise RunInvariantError("kv_capacity", f"allocating {blocks} blocks with "
                                     f"{self.total - self.used} free of {self.total}")
            prefix.evict_one()
            self.used -= prefix.kv_blocks
            free += prefix.kv_blocks
        self.used += blocks
        if self.used > self.peak_used:
            self.peak_used = self.used

    def free(self, blocks: int) -> None:
        self.used -= blocks
        if self.used < 0:
            raise RunInvariantError("kv_capacity", f"freed {blocks} blocks, pool now at "
                                 f"{self.used}")

    def hold(self, blocks: int) -> None:
        """Keep blocks allocated for an outgoing KV transfer."""
        self.used += blocks
        self.held += blocks
        if self.used > self.total:
            raise RunInvariantError("kv_capacity", f"holding {blocks} blocks for a transfer "
                                    f"puts the pool at {self.used} of {self.total}")

    def release_held(self, blocks: int) -> None:
        self.used -= blocks
        self.held -= blocks

    def usage(self) -> float:
        """Fraction of the pool allocated (prefix-cache entries included)."""
        return self.used / self.total

    def clear(self) -> None:
        """Everything lost (a crash); the peak stays for the report."""
        self.used = self.held = 0
        if self.prefix is not None:
            self.prefix.clear()
