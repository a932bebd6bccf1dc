"""A bounded ring of snapshots: fine-grained for recent windows, coarse for long ones."""

from bisect import bisect_right
from collections import deque

from bridge.snapshot import Snapshot


class SnapshotRing:
    """Keeps every snapshot of the last ``fine_seconds`` and one per ``coarse_step`` up to ``max_seconds``.

    Memory is bounded by ``fine_seconds / tick + max_seconds / coarse_step`` snapshots, whatever the
    windows clients ask for.
    """

    def __init__(self, *, fine_seconds: float, max_seconds: float, tick: float, coarse_step: float = 10.0) -> None:
        self.fine_seconds = fine_seconds
        self.max_seconds = max_seconds
        self.coarse_step = coarse_step
        self._fine: deque[Snapshot] = deque(maxlen=int(fine_seconds / tick) + 2)
        self._coarse: deque[Snapshot] = deque(maxlen=int(max_seconds / coarse_step) + 2)
        # Each ring's timestamps beside it: a bisection over plain floats, not a key call per step.
        self._fine_times: deque[float] = deque(maxlen=self._fine.maxlen)
        self._coarse_times: deque[float] = deque(maxlen=self._coarse.maxlen)

    def __len__(self) -> int:
        return len(self._fine) + len(self._coarse)

    def append(self, snapshot: Snapshot) -> None:
        self._fine.append(snapshot)
        self._fine_times.append(snapshot.timestamp)
        if not self._coarse or snapshot.timestamp - self._coarse[-1].timestamp >= self.coarse_step:
            self._coarse.append(snapshot)
            self._coarse_times.append(snapshot.timestamp)

    @property
    def latest(self) -> Snapshot | None:
        return self._fine[-1] if self._fine else None

    def at_or_before(self, timestamp: float) -> Snapshot | None:
        """The newest snapshot taken at or before ``timestamp``; the oldest one when none is that old.

        Snapshots are appended in the order they are taken, so each ring is sorted by time: a bisection
        (a hundred filter sets ask for their window's start every tick)."""
        fine = bool(self._fine) and self._fine_times[0] <= timestamp
        ring, times = (self._fine, self._fine_times) if fine else (self._coarse, self._coarse_times)
        if not ring:
            return None
        after = bisect_right(times, timestamp)
        return ring[max(after - 1, 0)]

    def spaced(self, seconds: float, step: float) -> list[Snapshot]:
        """Snapshots of the last ``seconds`` about ``step`` apart, oldest first (for ``history``)."""
        if not self._fine:
            return []
        newest = self._fine[-1].timestamp
        chosen: list[Snapshot] = []
        for snapshot in self._fine:
            if snapshot.timestamp < newest - seconds - 1e-9:
                continue
            if not chosen or snapshot.timestamp - chosen[-1].timestamp >= step - 1e-6:
                chosen.append(snapshot)
        return chosen
