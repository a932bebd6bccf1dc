"""Prefix cache: chained block hashes in an LRU, as vLLM's automatic prefix caching keys its blocks."""

from collections import OrderedDict
from collections.abc import Hashable, Sequence

from fakeai.engine.residency import BlockResidency


def block_hashes(tokens: Sequence[Hashable], block_size: int) -> list[int]:
    """Hash of each full block, chained so a block's hash identifies the whole prefix up to it."""
    hashes: list[int] = []
    parent = 0
    for start in range(0, len(tokens) - block_size + 1, block_size):
        parent = hash((parent, tuple(tokens[start : start + block_size])))
        hashes.append(parent)
    return hashes


class PrefixCache:
    def __init__(self, block_size: int, num_blocks: int, residency: BlockResidency | None = None) -> None:
        if block_size < 1 or num_blocks < 1:
            raise ValueError("block_size and num_blocks must be positive")
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.residency = residency
        """Sampled block lifetimes (``--kv-cache-metrics``), or None."""
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def resize(self, num_blocks: int) -> None:
        """A new pool size (``PATCH /admin/config``): a smaller one evicts the least recently used blocks."""
        if num_blocks < 1:
            raise ValueError("num_blocks must be positive")
        self.num_blocks = num_blocks
        self._evict()

    def reset(self) -> None:
        """Forget every cached block (the KV cache was discarded)."""
        self._blocks.clear()
        if self.residency is not None:
            self.residency.forget()

    def lookup_and_insert(self, tokens: Sequence[Hashable]) -> int:
        """Cached tokens: the longest prefix of whole blocks already present. Then cache every block."""
        hashes = block_hashes(tokens, self.block_size)
        # As in vLLM, the last prompt token is always computed, so a full hit stops one block short.
        hit_blocks = 0
        for h in hashes[: (len(tokens) - 1) // self.block_size]:
            if h not in self._blocks:
                break
            hit_blocks += 1
        residency = self.residency
        for h in hashes:
            if residency is not None:
                (residency.touched if h in self._blocks else residency.allocated)(h)
            self._blocks[h] = None
            self._blocks.move_to_end(h)
        self._evict()
        return hit_blocks * self.block_size

    def _evict(self) -> None:
        residency = self.residency
        while len(self._blocks) > self.num_blocks:
            evicted, _ = self._blocks.popitem(last=False)
            if residency is not None:
                residency.evicted(evicted)
