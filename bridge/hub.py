"""The fan-out: each tick, one payload per distinct filter set and one latest-wins mailbox per client.

The sampler (``bridge.sampler``) reads the source; the hub runs the tick, computes what each group of
clients asked for, and posts it. A source that fails and a bug of ours are told apart: the first is
a warning and a ``source_unavailable`` error to clients, the second a logged traceback and
``internal_error``; neither stops the stream.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from bridge import protocol
from bridge.categories import Mapping, Selection, Window, WindowSet, compute, compute_in_steps, fold_plan
from bridge.figures import ColumnFigures, DictFigures, dumps_figures
from bridge.folds import FoldCache
from bridge.sampler import Sampler, SourceUnavailable
from bridge.snapshot import Snapshot
from bridge.sources import Source

log = logging.getLogger("bridge")


TOGETHER_FROM = 7
"""Below this many windows a tick computes each on its own: computing windows together as arrays costs
a fixed ~1 ms (numpy's per-call overhead over every measure) and little per window, one window alone
about 0.13 ms. Measured with ``Hub.deliver`` in process: 2 windows 1.07 ms together against 0.52 ms one by
one, 6 windows 1.16 against 1.03, 8 windows 1.17 against 1.28 (benchmarks/HISTORY.md, twenty-second
session)."""


def _whole_seconds(seconds: float) -> bool:
    return abs(seconds - round(seconds)) < 1e-9


DELTA_FIELDS = (
    ("total_requests_per_sec", "throughput", "total_requests_per_sec"),
    ("total_tokens_per_sec", "throughput", "total_tokens_per_sec"),
    ("total_errors_per_sec", "error", "total_errors_per_sec"),
    ("active_streams_delta", "streaming", "active_streams"),
)


@dataclass(frozen=True)
class StreamSettings:
    min_interval: float = 0.5
    """The shortest cadence a client may ask for, and the finest sampling tick (see ``Hub.tick_seconds``)."""
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
    """Runs the tick (sample, then deliver) and fans the payloads out to the clients."""

    def __init__(
        self,
        source: Source,
        mapping: Mapping,
        settings: StreamSettings,
        *,
        clock: Callable[[], float] = time.time,
        slice_seconds: float = 0.001,
    ) -> None:
        self.mapping = mapping
        self.slice_seconds = slice_seconds
        """The longest a tick computes on the event loop before giving other tasks a turn."""
        self.settings = settings
        self.clock = clock
        self.sampler = Sampler(
            source, mapping, tick=settings.min_interval, history_seconds=settings.history_seconds, clock=clock
        )
        self.clients: set[Client] = set()
        self.failed_ticks = 0
        """Ticks whose source could not be read."""
        self.internal_errors = 0
        """Ticks that failed on a bug of ours (logged with their traceback)."""
        self._task: asyncio.Task[None] | None = None
        self._reported: str | None = None  # the error code clients were last told about, until a good tick
        self._history: dict[tuple[Any, ...], tuple[float, list[dict[str, Any]]]] = {}
        self.folds = FoldCache()
        """Sums over snapshots that windows share (``bridge.categories.Window``)."""
        self.together_from = TOGETHER_FROM
        """Windows that end at one snapshot are computed together (``WindowSet``) from this many on."""

    @property
    def ticks(self) -> int:
        return self.sampler.ticks

    # -- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            with contextlib.suppress(SourceUnavailable):  # a source down at start-up must not stop the server
                await self.sample()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="bridge-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def tick_seconds(self) -> float:
        """How often to sample and deliver: every ``min_interval`` only while some client's cadence needs it.

        Clients on whole seconds (the default is 1 s) and the history (points 1 s apart) need one sample a
        second; ticking every half second for them would double the sampling, the largest part of the
        stream's cost, for nothing. A client on a cadence of whole seconds is served at the tick nearest
        its due time, as on any tick.
        """
        tick = self.settings.min_interval
        if tick < 1.0 and all(_whole_seconds(c.filters.interval) for c in self.clients):
            return 1.0
        return tick

    async def _run(self) -> None:
        tick = self.tick_seconds()
        next_tick = time.monotonic() + tick
        while True:
            await asyncio.sleep(max(next_tick - time.monotonic(), 0.0))
            await self.tick()
            # Keep the cadence: the next tick is due a fixed step after the last, however long this took.
            tick = self.tick_seconds()
            next_tick += tick
            if next_tick < time.monotonic():
                next_tick = time.monotonic() + tick

    async def tick(self) -> None:
        """Sample and deliver once. Neither a failing source nor a bug of ours stops the stream."""
        try:
            await self.sample()
            await self.deliver(self.clock())
        except SourceUnavailable:
            pass  # counted, logged and reported by sample()
        except Exception:
            self.internal_errors += 1
            log.exception("metrics stream tick failed")
            self._report("internal_error", "The metrics stream failed to compute this update; see the server log.")
        else:
            self._reported = None

    async def sample(self) -> Snapshot:
        """Read the source once; a failure is counted, logged and reported once, then re-raised."""
        windows = {self.settings.window} | {c.filters.window for c in self.clients}
        try:
            return await self.sampler.sample(windows)
        except SourceUnavailable as exc:
            self.failed_ticks += 1
            log.warning("metrics stream source unavailable: %s", exc)
            self._report("source_unavailable", f"Metrics source unavailable: {exc}"[:300])
            raise

    def _report(self, code: str, message: str) -> None:
        """Tell every client once per failing streak (and again if the kind of failure changes)."""
        if self._reported != code:
            self._reported = code
            text = protocol.error(code, message, self.clock())
            for client in self.clients:
                client.post_reply(text)

    # -- clients ---------------------------------------------------------------------------------------
    def register(self, client: Client) -> None:
        self.clients.add(client)

    def unregister(self, client: Client) -> None:
        self.clients.discard(client)

    # -- payloads --------------------------------------------------------------------------------------
    def data(self, filters: protocol.Filters, end: Snapshot | None = None) -> dict[str, Any]:
        end = end or self.sampler.ring.latest
        if end is None:
            return {}
        start, end = self.sampler.window(filters.window, end)
        return self._compute(start, end, filters)

    def _compute(self, start: Snapshot, end: Snapshot, filters: protocol.Filters) -> dict[str, Any]:
        window = Window(start, end, self.mapping, Selection(filters.endpoints, filters.models), self.folds)
        return compute(window, filters.metric_types)

    async def _fold_in_turns(self, snapshots: tuple[Snapshot, ...], selection: Selection) -> None:
        """Fold ``snapshots`` into the cache, giving the loop a turn whenever ``slice_seconds`` have passed.

        Summing a snapshot's series (a fold, ~0.4 ms on a default server) is the longest single step, and
        every window new to the cache needs one: after a burst of subscribers, a hundred at once. Made
        here one by one, with turns between them, the computation finds them all in the cache."""
        plan = fold_plan(self.mapping, selection)
        due = time.perf_counter() + self.slice_seconds
        for snapshot in snapshots:
            self.folds.fold(snapshot, plan)
            if time.perf_counter() >= due:
                await asyncio.sleep(0)
                due = time.perf_counter() + self.slice_seconds

    async def _compute_together(
        self, starts: list[Snapshot], end: Snapshot, filters: protocol.Filters
    ) -> ColumnFigures | DictFigures:
        """The figures of windows from each of ``starts`` to ``end`` (all within one epoch), in order,
        measure by measure, the event loop given a turn whenever ``slice_seconds`` have passed."""
        selection = Selection(filters.endpoints, filters.models)
        await self._fold_in_turns((*starts, end), selection)
        due = time.perf_counter() + self.slice_seconds
        steps = compute_in_steps(WindowSet(starts, end, self.mapping, selection, self.folds), filters.metric_types)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return cast(ColumnFigures | DictFigures, done.value)
            if time.perf_counter() >= due:
                await asyncio.sleep(0)
                due = time.perf_counter() + self.slice_seconds

    async def history(self, filters: protocol.Filters) -> list[dict[str, Any]]:
        """The last ``history_seconds`` at 1 s spacing, oldest first; shared by clients with equal filters.

        Sixty points are sixty payloads: computed in slices, so a subscriber connecting does not hold up
        the requests being served."""
        latest = self.sampler.ring.latest
        if latest is None or self.sampler.windowed:
            return []  # a windowed source keeps no history of its own
        cached = self._history.get(filters.group_key)
        if cached is not None and cached[0] == latest.timestamp:
            return cached[1]
        points = []
        due = time.perf_counter() + self.slice_seconds
        for snapshot in self.sampler.ring.spaced(self.settings.history_seconds, 1.0):
            points.append({"timestamp": snapshot.timestamp, "data": self.data(filters, snapshot)})
            if time.perf_counter() >= due:
                await asyncio.sleep(0)
                due = time.perf_counter() + self.slice_seconds
        if len(self._history) > 64:
            self._history.clear()
        self._history[filters.group_key] = (latest.timestamp, points)
        return points

    async def historical_data(self, filters: protocol.Filters, now: float) -> str:
        history = await self.history(filters)
        return protocol.dumps(
            {
                "type": "historical_data",
                "timestamp": now,
                "window": filters.window,
                "data": self.data(filters),
                "history": history,
            }
        )

    async def deliver(self, now: float) -> int:
        """Post an update to every client that is due; each distinct filter set is computed once.

        Between two filter sets the event loop gets a turn whenever ``slice_seconds`` have passed, so a
        hundred distinct sets never hold requests and engine steps up for the whole computation.
        """
        # Half a tick of tolerance: ticks and wall-clock readings jitter by milliseconds.
        slack = self.tick_seconds() / 2
        groups: dict[tuple[Any, ...], list[Client]] = {}
        for client in self.clients:
            if client.next_due <= now + slack:
                groups.setdefault(client.filters.group_key, []).append(client)
        due_yield = time.perf_counter() + self.slice_seconds
        stamp = repr(now)
        latest = self.sampler.ring.latest
        # Filter sets whose windows begin at the same snapshot and select the same series have the same
        # figures: computed once. Long windows meet on the ring's coarse snapshots (ten seconds apart),
        # and windows longer than the server's life all begin at its oldest snapshot. Sets that select the
        # same series but begin at different snapshots (windows of 10 s, 30 s, 60 s...) end at the same one:
        # their figures are computed together (``WindowSet``), measure by measure.
        windows: dict[tuple[Any, ...], tuple[Snapshot, Snapshot, tuple[Any, ...]]] = {}  # start, end, shared
        together: dict[tuple[Any, ...], dict[int, Snapshot]] = {}  # starts not computed yet, by what they share
        if latest is not None:
            for key, clients in groups.items():
                start, end = self.sampler.window(clients[0].filters.window, latest)
                shared = self._shared(clients[0].filters, end)
                windows[key] = (start, end, shared)
                if start.epoch == end.epoch:
                    together.setdefault(shared, {})[id(start)] = start
        # Each payload's text, and the figures its deltas are taken from.
        computed: dict[tuple[Any, ...], tuple[dict[str, float], str]] = {}
        for key, clients in groups.items():
            filters = clients[0].filters
            if latest is None:
                figures: dict[str, float] = {}
                data_text = "{}"
            else:
                start, end, shared = windows[key]
                same = (id(start), *shared)
                if same not in computed:
                    pending = together.get(shared, {})
                    if id(start) in pending and len(pending) >= self.together_from:
                        starts = list(pending.values())
                        pending.clear()
                        payloads = await self._compute_together(starts, end, filters)
                        columns = [(name, payloads.column(cat, field)) for name, cat, field in DELTA_FIELDS]
                        names = [name for name, values in columns if values is not None]
                        present = [values for _, values in columns if values is not None]
                        rows = list(zip(*present, strict=True)) if present else [()] * len(starts)
                        for one, written, row in zip(starts, payloads.texts(), rows, strict=True):
                            computed[(id(one), *shared)] = (dict(zip(names, row, strict=True)), written)
                        due_yield = time.perf_counter() + self.slice_seconds
                    else:
                        pending.pop(id(start), None)
                        if start.epoch == end.epoch:  # a window across a counter reset folds only its end
                            await self._fold_in_turns((start, end), Selection(filters.endpoints, filters.models))
                        data = self._compute(start, end, filters)
                        deltas = {name: data[cat][field] for name, cat, field in DELTA_FIELDS if cat in data}
                        computed[same] = (deltas, dumps_figures(data))
                figures, data_text = computed[same]
            head = f'{{"type":"metrics_update","timestamp":{stamp},"window":{filters.window!r},"data":'
            # Clients that got the same last update (the same figures object) get the same text.
            texts: dict[int, str] = {}
            for client in clients:
                if client.filters.group_key != key or client not in self.clients:
                    continue  # re-subscribed or gone while another set was computed: nothing stale
                previous = client.previous
                text = texts.get(id(previous))
                if text is None:
                    deltas_text = dumps_figures(_deltas(figures, previous))
                    text = texts[id(previous)] = f'{head}{data_text},"deltas":{deltas_text}}}'
                client.previous = figures
                client.post_update(text)
                # On schedule: keep the client's own grid, quantized to ticks; late (first update, a new
                # interval): restart it.
                on_time = client.next_due >= now - slack
                client.next_due = (client.next_due if on_time else now) + client.filters.interval
            if time.perf_counter() >= due_yield:
                await asyncio.sleep(0)
                due_yield = time.perf_counter() + self.slice_seconds
        return len(groups)

    @staticmethod
    def _shared(filters: protocol.Filters, end: Snapshot) -> tuple[Any, ...]:
        """What windows must share to be computed together: their end and what they select."""
        return (id(end), filters.endpoints, filters.models, filters.metric_types)


def _deltas(figures: dict[str, float], previous: dict[str, float] | None) -> dict[str, float]:
    if previous is None:
        return {}
    return {k: round(v - previous[k], 4) for k, v in figures.items() if k in previous}
