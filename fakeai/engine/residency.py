"""KV-block residency, sampled as vLLM's ``--kv-cache-metrics`` samples it (vllm/v1/core/kv_cache_metrics.py).

A sampled block remembers when it was allocated, when it was last touched and its last four touches; when
it is evicted, its lifetime (allocation to eviction), its idle time (last touch to eviction) and the
gaps between its recorded touches are handed over.
"""

import itertools
import random
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

Record = Callable[[float, float, list[float]], None]
"""(lifetime, idle time before eviction, reuse gaps), in seconds."""


@dataclass
class _Life:
    born: float
    last: float
    touches: deque[float] = field(default_factory=lambda: deque(maxlen=4))  # vLLM's bounded history


class BlockResidency:
    def __init__(
        self, sample: float, rng: random.Random, record: Record, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sample = sample
        self.rng = rng
        self.record = record
        self.clock = clock
        self._tracked: dict[Hashable, _Life] = {}

    def allocated(self, block: Hashable) -> None:
        if self.rng.random() < self.sample:
            now = self.clock()
            self._tracked[block] = _Life(now, now)

    def touched(self, block: Hashable) -> None:
        life = self._tracked.get(block)
        if life is not None:
            life.last = self.clock()
            life.touches.append(life.last)

    def evicted(self, block: Hashable) -> None:
        life = self._tracked.pop(block, None)
        if life is not None:
            now = self.clock()
            self.record(now - life.born, now - life.last, [b - a for a, b in itertools.pairwise(life.touches)])

    def forget(self) -> None:
        """The whole cache was discarded (sleep): nothing of it is evicted one block at a time."""
        self._tracked.clear()
