"""The multi-modal processor cache: vLLM keeps the processed form of each image or audio item, keyed by a
hash of its content, so a prompt that repeats an item skips processing it again. Its lookups are what
``vllm:mm_cache_queries`` and ``vllm:mm_cache_hits`` count, in items."""

import hashlib
from collections import OrderedDict
from collections.abc import Iterable

MM_CACHE_ITEMS = 1024
"""Items kept, least recently used first out. vLLM bounds the cache in bytes (``--mm-processor-cache-gb``,
4 GiB by default); fakeai processes no pixels, so it bounds the count instead."""


def item_key(content: str) -> bytes:
    """A fixed-size key for an item's content (a URL, or inline base64 data), whatever its length."""
    return hashlib.blake2b(content.encode(), digest_size=16).digest()


class MultiModalCache:
    def __init__(self, capacity: int = MM_CACHE_ITEMS) -> None:
        self.capacity = capacity
        self._items: OrderedDict[bytes, None] = OrderedDict()

    def look_up(self, keys: Iterable[bytes]) -> tuple[int, int]:
        """(queries, hits) of one request's items, each then cached as the most recently used."""
        queries = hits = 0
        for key in keys:
            queries += 1
            if key in self._items:
                hits += 1
                self._items.move_to_end(key)
            else:
                self._items[key] = None
                if len(self._items) > self.capacity:
                    self._items.popitem(last=False)
        return queries, hits
