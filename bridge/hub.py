"""The fan-out: each tick, one payload per distinct filter set and one latest-wins mailbox per client.

The sampler (``bridge.sampler``) reads the source; the hub runs the tick, computes what each group of
clients asked for, and posts it. A source that fails and a bug of ours are told apart: the first is
a warning and a ``source_unavailable`` error to clients, the second a logged traceback and
``internal_error``; neither stops the stream.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from bridge import protocol
from bridge.categories import Mapping, Selection, Window, WindowSet, compute, compute_in_steps, fold_plan
from bridge.figures import ColumnFigures, DictFigures, deltas_texts, join_entries
from bridge.folds import Fold, FoldCache, FoldPlan
from bridge.sampler import Sampler, SourceUnavailable
from bridge.snapshot import Snapshot
from bridge.sources import Source
from bridge.turns import Turns

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
DELTA_NAMES = tuple(name for name, _, _ in DELTA_FIELDS)

GroupKey = tuple[Any, ...]
"""``protocol.Filters.group_key``: the clients of one filter set."""
_Row = tuple[Snapshot, Selection, list[GroupKey]]
"""A window to compute: its start, what it selects, and the filter sets that get it."""


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
    previous: tuple[float, ...] | None = None
    """The figures the last update's deltas were taken from (``DELTA_FIELDS``'s), None before the first."""

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
        window = Window(start, end, self.mapping, filters.selection, self.folds)
        return compute(window, filters.metric_types)

    async def _fold_in_turns(self, snapshots: Sequence[Snapshot], selection: Selection) -> list[Fold]:
        """Fold each of ``snapshots`` for ``selection`` into the cache, giving the loop a turn whenever
        ``slice_seconds`` have passed; the folds, in order.

        Summing a snapshot's series in a pass over them (a fold, ~0.4 ms on a default server; one
        ``np.bincount`` when they are the series of the snapshot before, ``bridge.folds.SeriesIndex``) is
        the longest single step, and every window new to the cache needs a fold: after a burst of
        subscribers, a hundred at once. Made here one by one, with turns between them, the computation is
        handed them all."""
        turns = Turns(self.slice_seconds)
        plan = fold_plan(self.mapping, selection)
        folds = []
        for snapshot in snapshots:
            folds.append(self.folds.fold(snapshot, plan))
            await turns.take()
        return folds

    async def _cells_in_turns(self, snapshots: Sequence[Snapshot], plan: FoldPlan) -> None:
        """Make the ``CellFolds`` of each of ``snapshots`` (a snapshot's series summed per cell: ~0.8 ms on
        a default server in a pass over them, far less by ``SeriesIndex``) that the cache lacks, giving
        the loop a turn whenever ``slice_seconds`` have passed: a selection's windows are summed from them
        (``FoldCache.select_together``)."""
        turns = Turns(self.slice_seconds)
        for snapshot in {id(snapshot): snapshot for snapshot in snapshots}.values():
            self.folds.cells(snapshot, plan)
            await turns.take()

    async def _compute_together(
        self,
        starts: list[Snapshot],
        end: Snapshot,
        filters: protocol.Filters,
        selections: list[Selection] | None = None,
    ) -> ColumnFigures | DictFigures:
        """The figures of windows from each of ``starts`` to ``end`` (all within one epoch), in order,
        measure by measure, the event loop given a turn whenever ``slice_seconds`` have passed. The
        windows select what ``filters`` does, or each what its ``selections`` does (the ends' folds of
        one shape)."""
        folds = None
        if selections is None:
            folds = await self._fold_in_turns((*starts, end), filters.selection)
        else:  # summed from the snapshots' cells: each one's made in turn
            await self._cells_in_turns((end, *starts), fold_plan(self.mapping, selections[0]))
        windows = WindowSet(
            starts, end, self.mapping, filters.selection, self.folds, selections=selections, folds=folds
        )
        turns = Turns(self.slice_seconds)
        steps = compute_in_steps(windows, filters.metric_types)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return cast(ColumnFigures | DictFigures, done.value)
            await turns.take()

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
        turns = Turns(self.slice_seconds)
        for snapshot in self.sampler.ring.spaced(self.settings.history_seconds, 1.0):
            points.append({"timestamp": snapshot.timestamp, "data": self.data(filters, snapshot)})
            await turns.take()
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
        groups: dict[GroupKey, list[Client]] = {}
        for client in self.clients:
            if client.next_due <= now + slack:
                groups.setdefault(client.filters.group_key, []).append(client)
        stamp = repr(now)
        latest = self.sampler.ring.latest
        if latest is None:
            empty = (math.nan,) * len(DELTA_NAMES)
            nothing = [
                (key, clients, _Payload(_prefix(stamp, clients), "{}", empty)) for key, clients in groups.items()
            ]
            self._post(nothing, now, slack)
            return len(groups)
        computations, across = self._windows(groups, latest)
        turns = Turns(self.slice_seconds)
        for filters, end, rows in computations:
            for part in self._parts(rows):
                if len(part) >= self.together_from:
                    starts = [start for start, _, _ in part]
                    chosen = [selection for _, selection, _ in part]
                    if chosen.count(chosen[0]) == len(chosen):  # one selection (``count`` tries identity first)
                        figures = await self._compute_together(starts, end, _selecting(filters, chosen[0]))
                    else:
                        figures = await self._compute_together(starts, end, filters, chosen)
                    data = _Data(figures, filters)
                    updates = [
                        (key, groups[key], data.payload(row, groups[key], stamp))
                        for row, (_, _, keys) in enumerate(part)
                        for key in keys
                    ]
                    self._post(updates, now, slack)
                else:
                    for start, selection, keys in part:
                        await self._fold_in_turns((start, end), selection)
                        self._post_alone(start, end, _selecting(filters, selection), keys, groups, stamp, now, slack)
                        await turns.take()
                await turns.take()
        for start, end, key in across:  # a window across a counter reset folds only its end
            self._post_alone(start, end, groups[key][0].filters, [key], groups, stamp, now, slack)
            await turns.take()
        return len(groups)

    def _parts(self, rows: list["_Row"]) -> list[list["_Row"]]:
        """``rows`` in parts that can be computed together: with one selection, all of them; with several,
        those that keep every series (folded from the snapshots' series) apart from those that select
        some (summed from the snapshots' cells, so their folds share a shape)."""
        if len({id(selection) for _, selection, _ in rows}) == 1:
            return [rows]
        every: list[_Row] = []
        some: list[_Row] = []
        for row in rows:
            (every if fold_plan(self.mapping, row[1]).keep is None else some).append(row)
        return [part for part in (every, some) if part]

    def _windows(
        self, groups: dict[GroupKey, list[Client]], latest: Snapshot
    ) -> tuple[list[tuple[protocol.Filters, Snapshot, list["_Row"]]], list[tuple[Snapshot, Snapshot, GroupKey]]]:
        """Each group's window, by the snapshot it ends at, and then by start and selection (the series it
        selects); the windows across a counter reset apart. (A windowed source's windows end where it
        computed each.) Each end comes with the filters its windows are computed for: every category one
        of its sets asked for.

        Filter sets whose windows begin at the same snapshot and select the same series have the same
        figures: computed once, whichever categories each asked for (each gets its own). Long windows
        meet on the ring's coarse snapshots (ten seconds apart), and windows longer than the server's life
        all begin at its oldest snapshot. Windows that begin at different snapshots (10 s, 30 s, 60 s...)
        or select different series end at the same one: their figures are computed together
        (``WindowSet``), measure by measure."""
        computations: dict[int, tuple[protocol.Filters, Snapshot, dict[tuple[int, int], _Row]]] = {}
        across = []
        windows: dict[float, tuple[Snapshot, Snapshot]] = {}  # sets of one window look it up once
        for key, clients in groups.items():
            filters = clients[0].filters
            window = windows.get(filters.window)
            if window is None:
                window = windows[filters.window] = self.sampler.window(filters.window, latest)
            start, end = window
            if start.epoch != end.epoch:
                across.append((start, end, key))
                continue
            found = computations.get(id(end))
            if found is None:
                found = computations[id(end)] = (filters, end, {})
            elif not filters.metric_types <= found[0].metric_types:
                wider = replace(found[0], metric_types=found[0].metric_types | filters.metric_types)
                found = computations[id(end)] = (wider, end, found[2])
            rows = found[2]
            chosen = filters.selection  # one object per selection (``selection_of``): its id says which
            row = rows.get((id(start), id(chosen)))
            if row is None:
                rows[(id(start), id(chosen))] = (start, chosen, [key])
            else:
                row[2].append(key)
        return [(filters, end, list(rows.values())) for filters, end, rows in computations.values()], across

    def _post_alone(
        self,
        start: Snapshot,
        end: Snapshot,
        filters: protocol.Filters,
        keys: list[GroupKey],
        groups: dict[GroupKey, list[Client]],
        stamp: str,
        now: float,
        slack: float,
    ) -> None:
        """Compute one window for ``filters`` (for the sets ``keys``, which share it) and post it."""
        data = _Data(DictFigures([self._compute(start, end, filters)]), filters)
        self._post([(key, groups[key], data.payload(0, groups[key], stamp)) for key in keys], now, slack)

    def _post(self, updates: list[tuple[GroupKey, list[Client], "_Payload"]], now: float, slack: float) -> None:
        """Post each group's update to its clients, with each client's deltas, written at once for all.

        Deltas are written once per distinct (figures, previous) pair: clients that got the same last
        update get the same text, and sets that differ only in categories other than the deltas' share
        their deltas' figures (``_Data._delta_figures``), so a tick of a hundred such sets writes a few."""
        entries: list[tuple[_Payload, int, list[Client]]] = []  # a payload, its pair's index, its clients
        pairs: list[tuple[tuple[float, ...], tuple[float, ...] | None]] = []  # they keep the ids' objects alive
        pair_index: dict[tuple[int, int], int] = {}
        for key, clients, payload in updates:
            alike_of: dict[int, list[Client]] = {}  # by the id of the figures a client's last update had
            for client in clients:
                if client.filters.group_key != key or client not in self.clients:
                    continue  # re-subscribed or gone while another set was computed: nothing stale
                previous = client.previous
                alike = alike_of.get(id(previous))
                if alike is None:
                    alike = alike_of[id(previous)] = []
                    index = pair_index.setdefault((id(payload.figures), id(previous)), len(pairs))
                    if index == len(pairs):
                        pairs.append((payload.figures, previous))
                    entries.append((payload, index, alike))
                alike.append(client)
        deltas = deltas_texts(DELTA_NAMES, pairs)
        late = now - slack
        for payload, index, alike in entries:
            text = f'{payload.prefix}{payload.data},"deltas":{deltas[index]}}}'
            figures = payload.figures
            for client in alike:
                client.previous = figures
                client.post_update(text)
                # On schedule: keep the client's own grid, quantized to ticks; late (first update, a new
                # interval): restart it.
                due = client.next_due
                client.next_due = (due if due >= late else now) + client.filters.interval


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs four times as much, a set a tick
class _Payload:
    """One filter set's update but for its deltas (each client's own): the message's text before its data,
    the data's, and the figures the deltas are taken from (``DELTA_FIELDS``'s, NaN where the set's
    categories hold none)."""

    prefix: str
    data: str
    figures: tuple[float, ...]


def _selecting(filters: protocol.Filters, selection: Selection) -> protocol.Filters:
    """``filters`` (every category a computation's sets asked for) over the series ``selection`` selects."""
    if filters.selection is selection:
        return filters
    return replace(filters, endpoints=selection.endpoints, models=selection.models)


def _prefix(stamp: str, clients: list[Client]) -> str:
    """The text of an update to ``clients`` (a group: one window) before its data."""
    return f'{{"type":"metrics_update","timestamp":{stamp},"window":{clients[0].filters.window!r},"data":'


class _Data:
    """The figures of a computation's windows (a row each), as each filter set gets them: the whole text
    where the set asked for every category computed (the usual case), its own categories' texts joined
    otherwise; and the figures its deltas are taken from."""

    def __init__(self, figures: ColumnFigures | DictFigures, computed: protocol.Filters) -> None:
        self.figures = figures
        self.computed = computed.metric_types
        self._texts: list[str] | None = None
        self._entries: dict[str, list[str]] | None = None
        columns = [figures.column(category, field) for _, category, field in DELTA_FIELDS]
        absent = [math.nan] * figures.windows
        self._figures = list(zip(*(absent if column is None else column for column in columns), strict=True))
        self._made: dict[tuple[int, frozenset[str]], tuple[str, tuple[float, ...]]] = {}
        self._masked: dict[tuple[int, tuple[bool, ...]], tuple[float, ...]] = {}

    def payload(self, row: int, clients: list[Client], stamp: str) -> "_Payload":
        """The update of window ``row`` to ``clients`` (a group) but for its deltas."""
        types = clients[0].filters.metric_types
        if types is self.computed:  # the usual case: every set of the computation asked for everything
            if self._texts is None:
                self._texts = self.figures.texts()
            return _Payload(_prefix(stamp, clients), self._texts[row], self._figures[row])
        made = self._made.get((row, types))
        if made is None:
            made = self._made[(row, types)] = self._text(row, types), self._delta_figures(row, types)
        return _Payload(_prefix(stamp, clients), *made)

    def _text(self, row: int, types: frozenset[str]) -> str:
        if types == self.computed:
            if self._texts is None:
                self._texts = self.figures.texts()
            return self._texts[row]
        if self._entries is None:
            self._entries = self.figures.entry_texts()
        return join_entries({category: texts[row] for category, texts in self._entries.items() if category in types})

    def _delta_figures(self, row: int, types: frozenset[str]) -> tuple[float, ...]:
        """The figures of window ``row`` the deltas of a set asking for ``types`` are taken from: one object
        per row and deltas' categories asked for, whatever else each set asked for (``Hub._post`` writes
        the deltas of one pair of objects once)."""
        figures = self._figures[row]
        present = tuple(category in types for _, category, _ in DELTA_FIELDS)
        if all(present):
            return figures
        masked = self._masked.get((row, present))
        if masked is None:
            masked = self._masked[(row, present)] = tuple(
                figure if asked else math.nan for figure, asked in zip(figures, present, strict=True)
            )
        return masked
