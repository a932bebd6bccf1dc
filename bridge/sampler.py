"""The sampler: one read of the source per tick, kept as a snapshot in a ring for the windows.

A source that fails (a scraped server down, Prometheus unreachable, a body that does not parse) raises
``SourceUnavailable``; anything else escaping ``sample`` is a bug of ours and is left to propagate,
so the hub can tell the two apart.
"""

import time
from collections.abc import Callable

from bridge import protocol
from bridge.categories import Mapping
from bridge.snapshot import Interner, Snapshot, take, went_back
from bridge.sources import SnapshotSource, Source, WindowedSource
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
        # Protocol checks are slow: made once.
        self.windowed_source = source if isinstance(source, WindowedSource) else None
        self.windowed = self.windowed_source is not None
        self.direct = source if isinstance(source, SnapshotSource) else None
        self.wanted = mapping.wanted()
        self._sample_names = self.wanted.sample_names()
        self._interner = Interner()
        self.ring = SnapshotRing(fine_seconds=max(history_seconds, 120.0), max_seconds=protocol.MAX_WINDOW, tick=tick)
        self.ticks = 0
        self.windows: dict[float, tuple[Snapshot, Snapshot]] = {}
        """For a windowed source: the (start, end) pair it computed for each window in use."""

    async def sample(self, windows: set[float]) -> Snapshot:
        """Read the source once (for a windowed source: once per window in ``windows``) and keep it."""
        if self.windowed_source is not None:
            return self._keep(await self._sample_windows(self.windowed_source, windows))
        if self.direct is not None:
            # Reads this process's own objects: a failure here is a bug of ours, not an unavailable source.
            return self._keep(await self.direct.snapshot(self.wanted, self.clock(), self._interner))
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
        previous = self.ring.latest
        if previous is not None and not self.windowed:  # a windowed source's pairs come from one query
            snapshot.epoch = previous.epoch + went_back(previous, snapshot, self.wanted.counters)
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
