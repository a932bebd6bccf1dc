"""The sampler and the fan-out: one snapshot per tick, one payload per distinct filter set, one
latest-wins mailbox per client."""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge import protocol
from bridge.categories import Mapping, Selection, Window, compute
from bridge.snapshot import Snapshot, take
from bridge.sources import Source, WindowedSource
from bridge.windows import SnapshotRing

log = logging.getLogger("bridge")
DELTA_FIELDS = (
    ("total_requests_per_sec", "throughput", "total_requests_per_sec"),
    ("total_tokens_per_sec", "throughput", "total_tokens_per_sec"),
    ("total_errors_per_sec", "error", "total_errors_per_sec"),
    ("active_streams_delta", "streaming", "active_streams"),
)


@dataclass(frozen=True)
class StreamSettings:
    min_interval: float = 0.5
    """Also the sampling tick: no client can be served more often."""
    window: float = 10.0
    history_seconds: float = 60.0
    send_timeout: float = 10.0
    max_message: int = 64 * 1024
    max_messages_per_second: int = 50
    max_clients: int = 2000
    token: str | None = None
    allowed_origins: tuple[str, ...] = ()

    @property
    def close_grace(self) -> float:
        """How long a close frame may wait for a stuck subscriber to read again before the connection
        is dropped without one (its buffers stay bounded meanwhile: nothing more is written)."""
        return max(30.0, 6 * self.send_timeout)

    @property
    def default_filters(self) -> protocol.Filters:
        return protocol.Filters(interval=max(1.0, self.min_interval), window=self.window)


@dataclass(eq=False)
class Client:
    """One subscriber's state. The server's sender task drains ``replies`` then ``update``."""

    filters: protocol.Filters
    replies: deque[str] = field(default_factory=deque)
    update: str | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    next_due: float = 0.0
    previous: dict[str, float] | None = None

    def post_reply(self, text: str) -> None:
        self.replies.append(text)
        self.wake.set()

    def post_update(self, text: str) -> None:
        self.update = text  # latest wins: an unsent older update is replaced, never queued
        self.wake.set()


class Hub:
    def __init__(
        self,
        source: Source,
        mapping: Mapping,
        settings: StreamSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.mapping = mapping
        self.settings = settings
        self.clock = clock
        self.clients: set[Client] = set()
        self.ring = SnapshotRing(
            fine_seconds=max(settings.history_seconds, 120.0),
            max_seconds=protocol.MAX_WINDOW,
            tick=settings.min_interval,
        )
        self.ticks = 0
        self.failed_ticks = 0
        self._wanted = mapping.wanted()
        self._sample_names = self._wanted.sample_names()
        self._task: asyncio.Task[None] | None = None
        self._source_failing = False
        self._history: dict[tuple, tuple[float, list[dict[str, Any]]]] = {}
        self._windows: dict[float, tuple[Snapshot, Snapshot]] = {}

    # -- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            try:
                await self.sample()
            except Exception as exc:  # a source that is down at start-up must not stop the server
                self.failed_ticks += 1
                log.warning("metrics stream source unavailable at start: %s", exc)
                self._source_failed(exc)
            self._task = asyncio.get_running_loop().create_task(self._run(), name="bridge-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        tick = self.settings.min_interval
        next_tick = time.monotonic() + tick
        while True:
            await asyncio.sleep(max(next_tick - time.monotonic(), 0.0))
            try:
                await self.sample()
                self.deliver(self.clock())
                self._source_recovered()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing tick must not stop the stream: log, count, carry on
                self.failed_ticks += 1
                log.warning("metrics stream tick failed: %s", exc)
                self._source_failed(exc)
            # Keep the cadence: the next tick is due a fixed step after the last, however long this took.
            next_tick += tick
            if next_tick < time.monotonic():
                next_tick = time.monotonic() + tick

    async def sample(self) -> Snapshot:
        if isinstance(self.source, WindowedSource):
            return await self._sample_windows()
        families = await self.source.collect(self._sample_names)
        snapshot = take(families, self._wanted, self.clock())
        self.ring.append(snapshot)
        self.ticks += 1
        return snapshot

    async def _sample_windows(self) -> Snapshot:
        """A source that computes windows itself (Prometheus): one (start, end) pair per window in use."""
        now = self.clock()
        windows = {self.settings.window} | {c.filters.window for c in self.clients}
        pairs = {w: await self.source.window(self._wanted, w, now) for w in sorted(windows)}
        self._windows = pairs
        end = pairs[self.settings.window][1]
        self.ring.append(end)
        self.ticks += 1
        return end

    def _source_failed(self, exc: Exception) -> None:
        if not self._source_failing:
            self._source_failing = True
            text = protocol.error("source_unavailable", f"Metrics source unavailable: {exc}"[:300], self.clock())
            for client in self.clients:
                client.post_reply(text)

    def _source_recovered(self) -> None:
        self._source_failing = False

    # -- clients ---------------------------------------------------------------------------------------
    def register(self, client: Client) -> None:
        self.clients.add(client)

    def unregister(self, client: Client) -> None:
        self.clients.discard(client)

    # -- payloads --------------------------------------------------------------------------------------
    def data(self, filters: protocol.Filters, end: Snapshot | None = None) -> dict[str, Any]:
        end = end or self.ring.latest
        if end is None:
            return {}
        if isinstance(self.source, WindowedSource):
            # The source computed this window itself; a window first asked for between two ticks
            # reads as empty until the next tick computes it.
            start, end = self._windows.get(filters.window, (end, end))
        else:
            start = self.ring.at_or_before(end.timestamp - filters.window) or end
        window = Window(start, end, self.mapping, Selection(filters.endpoints, filters.models))
        return compute(window, filters.metric_types)

    def history(self, filters: protocol.Filters) -> list[dict[str, Any]]:
        """The last ``history_seconds`` at 1 s spacing, oldest first; shared by clients with equal filters."""
        latest = self.ring.latest
        if latest is None or isinstance(self.source, WindowedSource):
            return []  # a windowed source keeps no history of its own
        cached = self._history.get(filters.group_key)
        if cached is not None and cached[0] == latest.timestamp:
            return cached[1]
        points = [
            {"timestamp": s.timestamp, "data": self.data(filters, s)}
            for s in self.ring.spaced(self.settings.history_seconds, 1.0)
        ]
        if len(self._history) > 64:
            self._history.clear()
        self._history[filters.group_key] = (latest.timestamp, points)
        return points

    def historical_data(self, filters: protocol.Filters, now: float) -> str:
        return protocol.dumps(
            {
                "type": "historical_data",
                "timestamp": now,
                "window": filters.window,
                "data": self.data(filters),
                "history": self.history(filters),
            }
        )

    def deliver(self, now: float) -> int:
        """Post an update to every client that is due; each distinct filter set is computed once."""
        # Half a tick of tolerance: ticks and wall-clock readings jitter by milliseconds.
        slack = self.settings.min_interval / 2
        due = [c for c in self.clients if c.next_due <= now + slack]
        shared: dict[tuple, tuple[str, dict[str, Any]]] = {}
        for client in due:
            filters = client.filters
            entry = shared.get(filters.group_key)
            if entry is None:
                data = self.data(filters)
                head = (
                    f'{{"type":"metrics_update","timestamp":{now!r},"window":{filters.window!r},'
                    f'"data":{protocol.dumps(data)},"deltas":'
                )
                entry = shared[filters.group_key] = (head, data)
            head, data = entry
            figures = {name: data[cat][key] for name, cat, key in DELTA_FIELDS if cat in data}
            deltas = (
                {}
                if client.previous is None
                else {k: round(v - client.previous[k], 4) for k, v in figures.items() if k in client.previous}
            )
            client.previous = figures
            client.post_update(head + protocol.dumps(deltas) + "}")
            # Stay on the client's own cadence, quantized to ticks.
            # On schedule: keep the client's own grid; late (first update, a new interval): restart it.
            on_time = client.next_due >= now - slack
            client.next_due = (client.next_due if on_time else now) + filters.interval
        return len(shared)
