"""The sampler: one read of the source per tick, kept as a snapshot in a ring for the windows.

A source that fails (a scraped server down, Prometheus unreachable, a body that does not parse) raises
``SourceUnavailable``; anything else escaping ``sample`` is a bug of ours and is left to propagate,
so the hub can tell the two apart.
"""

import time
from collections.abc import Callable

from bridge import protocol
from bridge.categories import Mapping
from bridge.snapshot import Interner, Snapshot, take
from bridge.sources import Source, WindowedSource
from bridge.windows import SnapshotRing


class SourceUnavailable(Exception):
    """The metrics source could not be read this tick."""


class Sampler:
    def __init__(
        self,
        source: Source,
        mapping: Mapping,
        *,
        tick: float,
        history_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.clock = clock
        self.windowed = isinstance(source, WindowedSource)  # a Protocol check is slow: made once
        self.wanted = mapping.wanted()
        self._sample_names = self.wanted.sample_names()
        self._interner = Interner()
        self.ring = SnapshotRing(fine_seconds=max(history_seconds, 120.0), max_seconds=protocol.MAX_WINDOW, tick=tick)
        self.ticks = 0
        self.windows: dict[float, tuple[Snapshot, Snapshot]] = {}
        """For a windowed source: the (start, end) pair it computed for each window in use."""

    async def sample(self, windows: set[float]) -> Snapshot:
        """Read the source once (for a windowed source: once per window in ``windows``) and keep it."""
        if isinstance(self.source, WindowedSource):
            return self._keep(await self._sample_windows(self.source, windows))
        try:
            families = await self.source.collect(self._sample_names)
        except Exception as exc:
            raise SourceUnavailable(str(exc) or type(exc).__name__) from exc
        return self._keep(take(families, self.wanted, self.clock(), self._interner))

    async def _sample_windows(self, source: WindowedSource, windows: set[float]) -> Snapshot:
        now = self.clock()
        try:
            pairs = {w: await source.window(self.wanted, w, now) for w in sorted(windows)}
        except Exception as exc:
            raise SourceUnavailable(str(exc) or type(exc).__name__) from exc
        self.windows = pairs
        return pairs[max(pairs)][1]

    def _keep(self, snapshot: Snapshot) -> Snapshot:
        self.ring.append(snapshot)
        self.ticks += 1
        return snapshot

    def window(self, seconds: float, end: Snapshot) -> tuple[Snapshot, Snapshot]:
        """The (start, end) snapshots of a window of ``seconds`` ending at ``end``."""
        if self.windowed:
            # The source computed this window itself; a window first asked for between two ticks
            # reads as empty until the next tick computes it.
            return self.windows.get(seconds, (end, end))
        return self.ring.at_or_before(end.timestamp - seconds) or end, end
