"""The six categories of docs/METRICS_STREAMING.md as a table of measures over a window of two snapshots.

A ``Mapping`` names the source families by role, so the bridge streams any registry that has such
families; the ``CATEGORIES`` table says which measure of which role fills each field.
"""

import dataclasses
import functools
import math
from collections import defaultdict
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np

from bridge.figures import ColumnFigures, DictFigures, FigureObject, round_figure
from bridge.folds import (
    MAX_SHAPES,
    Fold,
    FoldCache,
    FoldPlan,
    FoldShape,
    HistogramSum,
    Read,
    add_histogram,
    group_of,
    labels,
)
from bridge.math import (
    bucket_increase,
    histogram_summaries_of_layouts,
    histogram_summary,
    increase,
    mean,
    padded_summaries,
)
from bridge.snapshot import LabelKey, Snapshot, Wanted


@dataclass(frozen=True)
class Mapping:
    """Which family plays which role. Counters are named without ``_total``."""

    requests: str
    responses: str
    completion_tokens: str
    prompt_tokens: str
    errors: str
    request_latency: str
    queue_time: str
    ttft: str
    itl: str
    time_per_output_token: str
    cache_lookups: str
    cache_lookup_hits: str
    cache_queries: str
    cache_hits: str
    waiting: str
    running: str
    active_streams: str
    streams: str
    lost_requests: str | None = None
    """Requests a dead worker process had in flight (a server without workers has none)."""
    worker_restarts: str | None = None
    endpoint_label: str = "endpoint"
    model_label: str = "model"
    status_label: str = "status"
    outcome_label: str = "outcome"

    COUNTERS = (
        "requests",
        "responses",
        "completion_tokens",
        "prompt_tokens",
        "errors",
        "cache_lookups",
        "cache_lookup_hits",
        "cache_queries",
        "cache_hits",
        "streams",
        "lost_requests",
        "worker_restarts",
    )
    GAUGES = ("waiting", "running", "active_streams")
    HISTOGRAMS = ("request_latency", "queue_time", "ttft", "itl", "time_per_output_token")

    def __hash__(self) -> int:
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        """The hash a frozen dataclass computes, made once: ``fold_plan``'s cache hashes the mapping for
        every fold a tick looks up, hundreds with a hundred selections, and it has some twenty fields."""
        return hash(tuple(getattr(self, field.name) for field in dataclasses.fields(self)))

    def wanted(self) -> Wanted:
        return Wanted(
            counters=frozenset(name for r in self.COUNTERS if (name := getattr(self, r)) is not None),
            gauges=frozenset(getattr(self, r) for r in self.GAUGES),
            histograms=frozenset(getattr(self, r) for r in self.HISTOGRAMS),
        )


@dataclass(frozen=True)
class Selection:
    """Series filters: an empty set selects everything."""

    endpoints: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()

    def __hash__(self) -> int:
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        """Made once: a tick looks selections up a few times a filter set (``selection_of``)."""
        return hash((self.endpoints, self.models))


@functools.lru_cache(maxsize=4096)
def selection_of(endpoints: frozenset[str], models: frozenset[str]) -> Selection:
    """The one ``Selection`` of these endpoints and models: a dict lookup of a key that is the very
    object it holds takes no comparison of the two sets of names."""
    return Selection(endpoints, models)


@functools.lru_cache(maxsize=65536)
def _selected(key: LabelKey, selection: Selection, endpoint_label: str, model_label: str) -> bool:
    found = labels(key)
    return (not selection.endpoints or found.get(endpoint_label) in selection.endpoints) and (
        not selection.models or found.get(model_label) in selection.models
    )


MeasureRead = tuple[str, str, str | None]
"""What a measure reads: "values" or "histograms", a role, and the label role it groups by (or None)."""

_EMPTY = HistogramSum(np.array([math.inf]), np.zeros(1), 0.0, 0.0)


@functools.lru_cache(maxsize=1024)
def fold_plan(mapping: Mapping, selection: Selection) -> FoldPlan:
    """What the table's measures read (``READS``), by the mapping's names, over the selected series."""

    def reads(kind: str) -> tuple[Read, ...]:
        found = {
            (name, getattr(mapping, by) if by else None)
            for read_kind, role, by in READS
            if read_kind == kind and (name := getattr(mapping, role)) is not None
        }
        return tuple(sorted(found, key=lambda read: (read[0], read[1] or "")))

    def keep(key: LabelKey) -> bool:
        return _selected(key, selection, mapping.endpoint_label, mapping.model_label)

    selects = selection.endpoints or selection.models
    cells = (mapping.endpoint_label, mapping.model_label)
    return FoldPlan(reads("values"), reads("histograms"), keep if selects else None, cells)


def _label(mapping: Mapping, by: str | None) -> str | None:
    """The label a measure groups by (``by`` names a label role), or None for one group ""."""
    return getattr(mapping, by) if by else None


def _current(end: Fold, name: str | None, label: str | None) -> dict[str, float]:
    """Each group's sum at the fold's snapshot."""
    if name is None:  # a role the mapping leaves out: nothing to read
        return {}
    numbers = end.numbers
    return {group: numbers[position] for group, position in end.groups[(name, label)].items()}


class Window:
    """What the measures read: the selected series of one role, summed per group, over a window.

    Most windows lie within one epoch (no counter went back between their snapshots): then a group's
    increase is its sum at the end minus its sum at the start, and those sums ("folds",
    ``bridge.folds``) are kept in a ``FoldCache``. A window shares its end with every other window of
    the tick and its start with the windows of earlier ticks, so a hundred filter sets fold a couple of
    snapshots a tick, not a hundred. A window across a restart takes each series' own increase, as
    PromQL's ``increase`` does.
    """

    def __init__(
        self, start: Snapshot, end: Snapshot, mapping: Mapping, selection: Selection, cache: FoldCache | None = None
    ) -> None:
        self.start, self.end, self.mapping, self.selection = start, end, mapping, selection
        self.seconds = max(end.timestamp - start.timestamp, 0.0)
        self.folded = start.epoch == end.epoch
        self._memo: dict[tuple[str, str, str | None], Any] = {}  # measures read some roles several times
        self._cache = FoldCache(limit=2) if cache is None else cache
        self._plan = fold_plan(mapping, selection)
        self._folds: tuple[Fold, Fold] | None = None  # (start, end), made when first read

    def _start_and_end(self) -> tuple[Fold, Fold]:
        if self._folds is None:
            if self.folded:
                start, end = self._cache.fold_together((self.start, self.end), self._plan)
            else:  # only the end's current values are read from a fold
                start = end = self._cache.fold(self.end, self._plan)
            self._folds = (start, end)
        return self._folds

    def current(self, role: str, by: str | None = None) -> dict[str, float]:
        """Each group's sum of the selected series at the window's end (a gauge now, a counter so far)."""
        return _current(self._start_and_end()[1], getattr(self.mapping, role), _label(self.mapping, by))

    def increase(self, role: str, by: str | None = None) -> dict[str, float]:
        """Each group's increase of a counter over the window."""
        memo_key = ("increase", role, by)
        found: dict[str, float] | None = self._memo.get(memo_key)
        if found is None:
            found = self._memo[memo_key] = self._increase(role, by)
        return found

    def _increase(self, role: str, by: str | None) -> dict[str, float]:
        name, label = getattr(self.mapping, role), _label(self.mapping, by)
        if name is None:
            return {}
        if self.start is self.end:
            return dict.fromkeys(self._start_and_end()[1].groups[(name, label)], 0.0)
        if self.folded:
            start, end = self._start_and_end()
            at_end = end.numbers
            return {
                group: _difference(at_end[position], start.number(position))
                for group, position in end.groups[(name, label)].items()
            }
        before = self.start.values.get(name, {})
        grouped: dict[str, float] = defaultdict(float)
        for key, value in self.end.values.get(name, {}).items():
            if self._plan.keeps(key):
                grouped[group_of(key, label)] += increase(before.get(key, 0.0), value)
        return grouped

    def histogram_increase(self, role: str, by: str | None = None) -> dict[str, HistogramSum]:
        """Each group's histogram increase over the window. Series of one group with different bucket
        layouts cannot be added up: the group is the layout with the most observations in the window."""
        name, label = getattr(self.mapping, role), _label(self.mapping, by)
        layouts: dict[tuple[str, bytes], HistogramSum]
        if self.folded:
            start, end = self._start_and_end()
            numbers = end.numbers
            layouts = {}
            for layout, (bounds, position) in end.histograms[(name, label)].items():
                width = len(bounds)
                layouts[layout] = HistogramSum(
                    bounds,
                    end.vector[position : position + width] - start.block(position, width),
                    numbers[position + width] - start.number(position + width),
                    numbers[position + width + 1] - start.number(position + width + 1),
                )
        else:
            layouts = self._series_increases(name, label)
        groups: dict[str, HistogramSum] = {}
        for (group, _), merged in layouts.items():
            best = groups.get(group)
            if best is None or merged.count > best.count:
                groups[group] = merged
        return groups

    def _series_increases(self, name: str, label: str | None) -> dict[tuple[str, bytes], HistogramSum]:
        """The window's increase per series (each restart on its own), summed per group and layout."""
        start = self.start.histograms.get(name, {})
        layouts: dict[tuple[str, bytes], HistogramSum] = {}
        for key, bounds, cumulative, total, count in self.end.histogram_series(name):
            if not self._plan.keeps(key):
                continue
            before = start.get(key)
            delta = cumulative  # new, or restarted: all of it is new
            if before is not None and before[-1] <= count:  # ``before``: cumulative counts, sum, count
                delta = bucket_increase(before[:-2], cumulative)
                total, count = total - float(before[-2]), count - float(before[-1])
            add_histogram(layouts, (group_of(key, label), bounds.tobytes()), bounds, delta, total, count)
        return layouts


def _difference(after: float, before: float) -> float:
    """``after - before`` of two sums of one series set, with float noise below 1e-9 relative read as 0."""
    difference = after - before
    return 0.0 if abs(difference) <= 1e-9 * max(1.0, abs(after)) else difference


class PerWindow(Exception):
    """A ``WindowSet`` cannot compute its windows together (a group's series have several bucket
    layouts, so each window picks its own): compute them one by one."""


@dataclass
class _Increases:
    """A group's histogram increase over each window of a ``WindowSet``: a row of counts per window."""

    bounds: np.ndarray
    counts: np.ndarray
    totals: np.ndarray
    observations: np.ndarray


@dataclass
class _Summaries:
    """A group's ``_Increases`` with each window's minimum and its quantiles at ``qs`` (those of every
    measure that reads the histogram: ``set_quantiles``)."""

    increases: _Increases
    minimums: np.ndarray
    quantiles: np.ndarray
    qs: tuple[float, ...]

    def at(self, qs: tuple[float, ...]) -> np.ndarray:
        """The quantiles at ``qs``: a column per q, a row per window."""
        if qs == self.qs:  # the usual case: a histogram only ``Quantiles`` reads
            return self.quantiles
        return self.quantiles[:, [self.qs.index(q) for q in qs]]


@dataclass(frozen=True, eq=False)
class HistogramTable:
    """Where the histogram groups of a fold's layout lie, for reading them all in one gather: a row per
    group, its bucket counts right-aligned in ``width`` columns (the padding on the left, at bound 0,
    as ``histogram_summaries_of_layouts`` pads), then its sum, then its count. The same for every tick
    until a group appears: made once (``histogram_table``), not per tick."""

    entries: tuple[tuple[Read, str, np.ndarray, tuple[float, ...]], ...]
    """Each group's read, name, bounds and quantiles, in the fold's order."""
    width: int
    index: np.ndarray
    """A group's positions in a fold's vector: a row of ``width + 2`` (the padding's read position 0)."""
    padding: np.ndarray
    """Where ``index`` holds no position of the group: read as 0."""
    bounds: np.ndarray
    """A group's bounds, padded with 0 on the left: a row of ``width``."""
    wanted: np.ndarray
    """A group's quantiles, its last repeated to the longest group's number of them."""
    apart: bool
    """Some layout is one that padding would change (its first bound 0 or below, no +Inf, a quantile
    outside (0, 1]): every group is then taken on its own."""


@functools.lru_cache(maxsize=MAX_SHAPES)
def histogram_table(shape: FoldShape, mapping: Mapping) -> HistogramTable:
    """The ``HistogramTable`` of the histogram groups of folds of ``shape``. Raises ``PerWindow`` when a
    group has several bucket layouts."""
    wanted = set_quantiles(mapping)
    layout = shape.layout
    entries = []
    positions = []
    for read, blocks in shape.signature:
        seen = set()
        for group, bucket_layout in blocks:
            if group in seen:
                raise PerWindow(f"{read[0]}: several bucket layouts in group {group!r}")
            seen.add(group)
            _, (bounds, position) = layout.block(read, group, bucket_layout, np.frombuffer(bucket_layout))
            entries.append((read, group, bounds, wanted[read]))
            positions.append(position)
    width = max((len(bounds) for _, _, bounds, _ in entries), default=0)
    most = max((len(qs) for *_, qs in entries), default=0)
    index = np.zeros((len(entries), width + 2), dtype=np.intp)
    padding = np.zeros((len(entries), width + 2), dtype=bool)
    padded_bounds = np.zeros((len(entries), width))
    padded_wanted = np.zeros((len(entries), most))
    apart = False
    for row, ((_, _, bounds, qs), position) in enumerate(zip(entries, positions, strict=True)):
        gap = width - len(bounds)
        index[row, gap:] = np.arange(position, position + len(bounds) + 2)
        padding[row, :gap] = True
        padded_bounds[row, gap:] = bounds
        padded_wanted[row] = [*qs, *[qs[-1]] * (most - len(qs))]  # the repeats are not returned
        paddable = len(bounds) >= 2 and bounds[0] > 0 and math.isinf(bounds[-1])
        apart = apart or not (paddable and bool(qs) and all(0 < q <= 1 for q in qs))
    return HistogramTable(tuple(entries), width, index, padding, padded_bounds, padded_wanted, apart)


class WindowSet:
    """Windows that end at one snapshot, each within one epoch: what a hundred filter sets with different
    windows, or selecting different series, ask for on one tick. Every measure is computed for all of
    them at once (an array with one value per window): the starts' folds stack into one matrix, so a
    group's increase over every window is the end's fold minus one column of it, and the figures are
    columns (``bridge.figures.ColumnFigures``): no pass over the series, lookup per role or dict per
    window.

    Windows over one ``selection``, or each over its own (``selections``, one per start): then the ends'
    folds differ but share their shape (their places and groups), as folds summed from one snapshot's
    cells do (``bridge.folds.CellsShape.shape``), and each window's increase is its end's row minus its
    start's.

    ``compute_many`` gives, window by window, exactly what ``compute`` gives for each ``Window``
    (``tests/bridge/test_window_set.py``)."""

    def __init__(
        self,
        starts: Sequence[Snapshot],
        end: Snapshot,
        mapping: Mapping,
        selection: Selection,
        cache: FoldCache,
        *,
        selections: Sequence[Selection] | None = None,
        folds: Sequence[Fold] | None = None,
    ) -> None:
        """``folds``: with one selection, those of ``starts`` and then ``end``, made already (``Hub``
        makes them in turns); looked up in ``cache`` when not given, or not all in its layout."""
        if any(start.epoch != end.epoch for start in starts):
            raise ValueError("every window of a WindowSet lies within one epoch")
        self.starts, self.end, self.mapping, self._cache = starts, end, mapping, cache
        self.selections = list(selections) if selections is not None else [selection] * len(starts)
        self._ends: np.ndarray
        """The end's fold (a row), or each window's (a row each)."""
        if selections is None or len(set(selections)) == 1:
            if folds is None or any(made.layout is not cache.layout for made in folds):
                folds = cache.fold_together([*starts, end], fold_plan(mapping, self.selections[0]))
            *start_folds, self._end = folds
            # Columns past the end's vector are never read (the end has every group read); a fold made
            # before the layout grew is shorter, and reads 0 where it ends.
            width = len(self._end.vector)
            self._starts = _stacked([start.vector for start in start_folds], width)
            self._ends = self._end.vector.reshape(1, width)
        else:
            plans = [fold_plan(mapping, selection) for selection in self.selections]
            self._end, self._ends, self._starts = cache.select_together(starts, end, plans)
        self.seconds = np.maximum(end.timestamp - np.array([start.timestamp for start in starts], dtype=float), 0.0)
        self._memo: dict[tuple[str, str, str | None], Any] = {}
        self._summaries: dict[Read, dict[str, _Summaries]] | None = None
        self._increases: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def windows(self) -> list[Window]:
        """Each window on its own (for ``PerWindow``)."""
        return [
            Window(start, self.end, self.mapping, selection, self._cache)
            for start, selection in zip(self.starts, self.selections, strict=True)
        ]

    def current(self, role: str, by: str | None = None) -> dict[str, Any]:
        """As ``Window.current``: the end's, the same for every window (a number per group), or with
        several selections each window's end's (an array per group)."""
        if len(self._ends) == 1:
            return _current(self._end, getattr(self.mapping, role), _label(self.mapping, by))
        name = getattr(self.mapping, role)
        if name is None:
            return {}
        return {
            group: self._ends[:, position]
            for group, position in self._end.groups[(name, _label(self.mapping, by))].items()
        }

    def increase(self, role: str, by: str | None = None) -> dict[str, np.ndarray]:
        """``Window.increase`` of every window: each group's increases, one per window."""
        memo_key = ("increase", role, by)
        found: dict[str, np.ndarray] | None = self._memo.get(memo_key)
        if found is None:
            names, increases = self.increase_block(role, by)
            found = self._memo[memo_key] = dict(zip(names, increases.T, strict=True))
        return found

    def increase_block(self, role: str, by: str | None = None) -> tuple[list[str], np.ndarray]:
        """``increase`` as the groups' names, in the fold's order, and one array: a row per window, a
        column per group (a measure over every group is then one array operation, not one per group)."""
        memo_key = ("block", role, by)
        found: tuple[list[str], np.ndarray] | None = self._memo.get(memo_key)
        if found is not None:
            return found
        name = getattr(self.mapping, role)
        if name is None:
            found = self._memo[memo_key] = ([], np.zeros((len(self), 0)))
            return found
        if self._increases is None:
            self._increases = self._every_increase()
        groups, columns = self._end.shape.columns[(name, _label(self.mapping, by))]
        found = self._memo[memo_key] = (groups, self._increases[:, columns])
        return found

    def _every_increase(self) -> np.ndarray:
        """The increase of every number the end's fold has (``FoldShape.positions``, a column each),
        over every window (a row each), in one array operation."""
        positions = self._end.shape.positions
        after = self._ends[:, positions]
        differences: np.ndarray = after - self._starts[:, positions]
        # ``_difference``: float noise below 1e-9 relative is no increase.
        differences[np.abs(differences) <= 1e-9 * np.maximum(1.0, np.abs(after))] = 0.0
        return differences

    def summaries(self, role: str, by: str | None = None) -> dict[str, "_Summaries"]:
        """Each group's histogram increase over every window, with the minimum and the quantiles
        (``set_quantiles``) of each window's increase. Computed on the first call for every histogram the
        table reads, in one pass of array work (``HistogramTable``); raises ``PerWindow`` when a group's
        series have several bucket layouts."""
        if self._summaries is None:
            table = histogram_table(self._end.shape, self.mapping)
            self._summaries = self._summaries_together(table) or self._summaries_by_layout()
        return self._summaries[(getattr(self.mapping, role), _label(self.mapping, by))]

    def _summaries_together(self, table: "HistogramTable") -> dict[Read, dict[str, "_Summaries"]] | None:
        """``summaries`` from one gather of every group's counts, sum and count (``table.index``) out of
        the folds, padded as ``histogram_summaries_of_layouts`` pads them, so every figure is the one it
        gives. None when it cannot: a layout padding would change (``table.apart``), or a count below 0 in a
        window (a series gone since a start)."""
        if table.apart:
            return None
        summaries: dict[Read, dict[str, _Summaries]] = {read: {} for read in self._end.histograms}
        if not table.entries:
            return summaries
        windows, groups, width = len(self), len(table.entries), table.width
        gathered = self._ends[:, table.index] - self._starts[:, table.index]  # a window, a group, a column
        gathered[:, table.padding] = 0.0
        counts = gathered[:, :, :width].transpose(1, 0, 2).reshape(groups * windows, width)  # a group's windows
        if (counts < 0).any():
            return None
        minimums, quantiles = padded_summaries(
            np.repeat(table.wanted, windows, axis=0), np.repeat(table.bounds, windows, axis=0), counts
        )
        for slot, (read, group, bounds, qs) in enumerate(table.entries):
            block = gathered[:, slot]
            increases = _Increases(bounds, block[:, width - len(bounds) : width], block[:, width], block[:, width + 1])
            rows = slice(slot * windows, (slot + 1) * windows)
            summaries[read][group] = _Summaries(increases, minimums[rows], quantiles[rows, : len(qs)], qs)
        return summaries

    def _summaries_by_layout(self) -> dict[Read, dict[str, "_Summaries"]]:
        """``summaries``, each group's increase taken on its own (``histogram_summaries_of_layouts``
        decides which to pad together)."""
        increases = {read: self._histogram_increases(read) for read in self._end.histograms}
        wanted = set_quantiles(self.mapping)
        found = [(read, group, summed) for read, groups in increases.items() for group, summed in groups.items()]
        figures = histogram_summaries_of_layouts([(wanted[read], f.bounds, f.counts) for read, _, f in found])
        summaries: dict[Read, dict[str, _Summaries]] = {read: {} for read in increases}
        for (read, group, summed), (minimums, quantiles) in zip(found, figures, strict=True):
            summaries[read][group] = _Summaries(summed, minimums, quantiles, wanted[read])
        return summaries

    def _histogram_increases(self, read: Read) -> dict[str, _Increases]:
        groups: dict[str, _Increases] = {}
        name = read[0]
        for (group, _), (bounds, position) in self._end.histograms[read].items():
            if group in groups:
                raise PerWindow(f"{name}: several bucket layouts in group {group!r}")
            width = len(bounds)
            block = slice(position, position + width + 2)  # the counts, the sum, the count
            increases = self._ends[:, block] - self._starts[:, block]
            groups[group] = _Increases(bounds, increases[:, :width], increases[:, width], increases[:, width + 1])
        return groups


def _stacked(vectors: list[np.ndarray], width: int) -> np.ndarray:
    """Fold vectors as the rows of one matrix ``width`` wide: a shorter one (made before the layout grew)
    reads 0 where it ends."""
    if all(len(vector) == width for vector in vectors):  # the usual case: one array call
        return np.array(vectors).reshape(len(vectors), width)
    stacked = np.zeros((len(vectors), width))
    for row, vector in zip(stacked, vectors, strict=True):
        row[: len(vector)] = vector[:width]
    return stacked


# -- measures -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """Per-second increase of a counter over the window: a total, or a map by a label."""

    role: str
    by: str | None = None  # a label role such as "endpoint_label"

    @property
    def reads(self) -> tuple[MeasureRead, ...]:
        return (("values", self.role, self.by),)

    def compute(self, w: Window) -> Any:
        grouped = w.increase(self.role, self.by)
        if self.by is None:
            return round_figure(grouped.get("", 0.0) / w.seconds) if w.seconds else 0.0
        return {k: round_figure(v / w.seconds) for k, v in sorted(grouped.items()) if v > 0 and w.seconds}

    def compute_many(self, ws: WindowSet, out: ColumnFigures) -> int | FigureObject:
        timed = ws.seconds > 0
        if self.by is None:
            found = ws.increase(self.role).get("")
            if found is None:
                return out.figure(0.0)
            return out.figure(np.divide(found, ws.seconds, out=np.zeros(len(ws)), where=timed))
        # Every group at once: a column each.
        groups, increases = ws.increase_block(self.role, self.by)
        timed = timed[:, None]
        figures = out.figures(np.divide(increases, ws.seconds[:, None], out=np.zeros(increases.shape), where=timed))
        masks = out.masks((increases > 0) & timed)
        rates = FigureObject()
        for index in sorted(range(len(groups)), key=groups.__getitem__):
            rates.add(groups[index], figures[index], masks[index])
        return rates


@dataclass(frozen=True)
class Total:
    """Current value summed over the selected series (a gauge now, or a counter since start)."""

    role: str
    where: tuple[str, str] | None = None  # (label role, value)

    @property
    def reads(self) -> tuple[MeasureRead, ...]:
        return (("values", self.role, self.where[0] if self.where else None),)

    def compute(self, w: Window) -> float:
        return round_figure(self._at_end(w.current))

    def compute_many(self, ws: WindowSet, out: ColumnFigures) -> int:
        return out.figure(self._at_end(ws.current))  # the end's: the same for every window

    def _at_end(self, current: Callable[[str, str | None], dict[str, float]]) -> float:
        if self.where is None:
            return sum(current(self.role, None).values())
        by, wanted = self.where
        return current(self.role, by).get(wanted, 0.0)


@dataclass(frozen=True)
class Percent:
    """100 x increase(numerator) / increase(denominator) over the window; 0 when nothing happened."""

    numerator: str
    denominator: str
    scale: float = 100.0

    @property
    def reads(self) -> tuple[MeasureRead, ...]:
        return (("values", self.numerator, None), ("values", self.denominator, None))

    def compute(self, w: Window) -> float:
        den = sum(w.increase(self.denominator).values())
        num = sum(w.increase(self.numerator).values())
        return round_figure(self.scale * num / den) if den > 0 else 0.0

    def compute_many(self, ws: WindowSet, out: ColumnFigures) -> int:
        # ``sum`` over the groups' arrays: the same additions, in the same order, as ``compute``'s.
        den = _per_window(sum(ws.increase(self.denominator).values()), len(ws))
        num = _per_window(sum(ws.increase(self.numerator).values()), len(ws))
        return out.figure(np.divide(self.scale * num, den, out=np.zeros(len(ws)), where=den > 0))


def _per_window(total: float | np.ndarray, windows: int) -> np.ndarray:
    """A sum over groups as one float per window: the sum of none (0) in every window."""
    return total if isinstance(total, np.ndarray) else np.full(windows, float(total))


SUMMARY_QUANTILES = (1.0, 0.5, 0.9, 0.99)


def _summary(bounds: np.ndarray, counts: np.ndarray, total: float, count: float, scale: float) -> dict[str, float]:
    minimum, quantiles = histogram_summary(SUMMARY_QUANTILES, bounds, counts)
    return _summary_figures(minimum, quantiles, total, count, scale)


SUMMARY_KEYS = ("avg", "min", "max", "p50", "p90", "p99")


def _summary_object(
    summaries: _Summaries, scale: float, keys: tuple[str, ...], out: ColumnFigures
) -> tuple[FigureObject, np.ndarray]:
    """``{k: _summary(...)[k] for k in keys} | {"count": ...}`` of each window's increase, 0 for each
    figure of a window without observations but its count; and where there were observations."""
    found = summaries.increases
    observed = found.observations > 0
    # ``mean``, where there are observations (elsewhere the figure is 0, whatever this holds).
    means = np.divide(found.totals, found.observations, out=np.zeros(len(observed)), where=observed)
    every = np.column_stack((means, summaries.minimums, summaries.at(SUMMARY_QUANTILES)))  # SUMMARY_KEYS' order
    block = every if keys == SUMMARY_KEYS else every[:, [SUMMARY_KEYS.index(key) for key in keys]]
    scaled = np.multiply(block, scale, out=np.zeros(block.shape), where=observed[:, None])
    summary = FigureObject()
    for key, figure in zip(keys, out.figures(scaled), strict=True):
        summary.add(key, figure)
    summary.add("count", out.figure(found.observations))
    return summary, observed


def _summary_figures(
    minimum: float, quantiles: Sequence[float], total: float, count: float, scale: float
) -> dict[str, float]:
    maximum, p50, p90, p99 = quantiles  # the order of SUMMARY_KEYS
    return {
        "avg": round_figure(mean(total, count) * scale),
        "min": round_figure(minimum * scale),
        "max": round_figure(maximum * scale),
        "p50": round_figure(p50 * scale),
        "p90": round_figure(p90 * scale),
        "p99": round_figure(p99 * scale),
    }


@dataclass(frozen=True)
class Quantiles:
    """avg, min, max, p50, p90, p99 of a histogram over the window, in milliseconds (``scale``)."""

    role: str
    by_endpoint: bool = False
    scale: float = 1000.0
    keys: tuple[str, ...] = ("avg", "min", "max", "p50", "p90", "p99")
    QUANTILES: ClassVar[tuple[float, ...]] = SUMMARY_QUANTILES

    @property
    def reads(self) -> tuple[MeasureRead, ...]:
        return (("histograms", self.role, "endpoint_label" if self.by_endpoint else None),)

    def compute(self, w: Window) -> Any:
        groups = w.histogram_increase(self.role, "endpoint_label" if self.by_endpoint else None)
        if not self.by_endpoint:
            bounds, counts, total, count = groups.get("", _EMPTY)
            summary = _summary(bounds, counts, total, count, self.scale) if count > 0 else {}
            return {k: summary.get(k, 0.0) for k in self.keys} | {"count": round_figure(count)}
        result = {}
        for endpoint, (bounds, counts, total, count) in sorted(groups.items()):
            if count > 0:
                summary = _summary(bounds, counts, total, count, self.scale)
                result[endpoint] = {k: summary[k] for k in self.keys} | {"count": round_figure(count)}
        return result

    def compute_many(self, ws: WindowSet, out: ColumnFigures) -> FigureObject:
        groups = ws.summaries(self.role, "endpoint_label" if self.by_endpoint else None)
        if not self.by_endpoint:
            found = groups.get("")
            if found is None:
                zeros = FigureObject()
                for key in (*self.keys, "count"):
                    zeros.add(key, out.figure(0.0))
                return zeros
            return _summary_object(found, self.scale, self.keys, out)[0]
        by_endpoint = FigureObject()
        for endpoint, found in sorted(groups.items()):
            summary, observed = _summary_object(found, self.scale, self.keys, out)
            by_endpoint.add(endpoint, summary, out.mask(observed))
        return by_endpoint


@dataclass(frozen=True)
class InverseQuantiles:
    """Per-stream decode rate (tokens/s) from the time-per-output-token histogram: quantiles of 1/x
    are 1/x of the mirrored quantiles; the average is the harmonic one (count / sum).

    ``min`` is 1/(the largest TPOT, the 1-quantile) and ``max`` is 1/(the smallest TPOT, the lower edge
    of the lowest non-empty bucket). When that bucket starts at 0 the fastest stream has no finite
    bound; ``max`` is then 1/(that bucket's upper edge), the rate every stream in it reached.
    """

    role: str
    QUANTILES = (1.0, 0.5, 0.1, 0.01)  # the slowest stream, then the median, p90 and p99 rates' mirrors
    KEYS = ("avg", "min", "max", "p50", "p90", "p99")

    @property
    def reads(self) -> tuple[MeasureRead, ...]:
        return (("histograms", self.role, None),)

    def compute(self, w: Window) -> dict[str, float]:
        bounds, counts, total, count = w.histogram_increase(self.role).get("", _EMPTY)
        if count <= 0:
            return dict.fromkeys(self.KEYS, 0.0)
        fastest, quantiles = histogram_summary(self.QUANTILES, bounds, counts)
        return self._figures(fastest, quantiles, total, count, float(bounds[0]))

    def compute_many(self, ws: WindowSet, out: ColumnFigures) -> FigureObject:
        summaries = ws.summaries(self.role).get("")
        rates = FigureObject()
        if summaries is None:
            for key in self.KEYS:
                rates.add(key, out.figure(0.0))
            return rates
        found = summaries.increases
        quantiles = summaries.at(self.QUANTILES).T
        fastest = np.where(summaries.minimums <= 0, found.bounds[0], summaries.minimums)
        with np.errstate(divide="ignore", invalid="ignore"):
            # avg, min (the slowest), max (the fastest), p50, p90, p99: the order of KEYS.
            seconds = (found.totals / found.observations, quantiles[0], fastest, *quantiles[1:])
        observed = found.observations > 0
        for key, values in zip(self.KEYS, seconds, strict=True):
            inverse = np.divide(1.0, values, out=np.zeros(len(ws)), where=observed & (values > 0))
            rates.add(key, out.figure(inverse))
        return rates

    @staticmethod
    def _figures(
        fastest: float, quantiles: Sequence[float], total: float, count: float, first_bound: float
    ) -> dict[str, float]:
        def inverse(seconds: float) -> float:
            return 1.0 / seconds if seconds > 0 else 0.0

        slowest, p50, p90, p99 = quantiles
        if fastest <= 0:
            fastest = first_bound
        return {
            "avg": round_figure(inverse(mean(total, count))),
            "min": round_figure(inverse(slowest)),
            "max": round_figure(inverse(fastest)),
            "p50": round_figure(inverse(p50)),
            "p90": round_figure(inverse(p90)),
            "p99": round_figure(inverse(p99)),
        }


@dataclass(frozen=True)
class CacheByEndpoint:
    ROLES = ("cache_lookups", "cache_lookup_hits", "cache_queries", "cache_hits")

    @property
    def reads(self) -> tuple[MeasureRead, ...]:
        return tuple(("values", role, "endpoint_label") for role in self.ROLES)

    def compute(self, w: Window) -> dict[str, dict[str, float]]:
        sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for role in self.ROLES:
            for endpoint, value in w.increase(role, "endpoint_label").items():
                sums[endpoint][role] += value
        result = {}
        for endpoint, s in sorted(sums.items()):
            if s["cache_lookups"] > 0:
                result[endpoint] = _cache_figures(*(s[role] for role in self.ROLES))
        return result

    def compute_many(self, ws: WindowSet, out: ColumnFigures) -> FigureObject:
        sums: dict[str, dict[str, np.ndarray]] = {}
        for role in self.ROLES:
            for endpoint, values in ws.increase(role, "endpoint_label").items():
                by_role = sums.setdefault(endpoint, {})
                by_role[role] = by_role.get(role, 0.0) + values  # 0.0 + first, as compute's defaultdict
        by_endpoint = FigureObject()
        none = np.zeros(len(ws))
        for endpoint, by_role in sorted(sums.items()):
            lookups, lookup_hits, queries, hits = (by_role.get(role, none) for role in self.ROLES)
            looked = lookups > 0
            if not looked.any():
                continue
            # Figures only where the endpoint was looked up (the key is absent elsewhere): no NaN to round.
            columns = (
                np.divide(100 * lookup_hits, lookups, out=np.zeros(len(ws)), where=looked),
                np.divide(100 * hits, queries, out=np.zeros(len(ws)), where=queries != 0),
                lookups,
                lookup_hits,
            )
            figures = FigureObject()
            for key, values in zip(_CACHE_KEYS, columns, strict=True):
                figures.add(key, out.figure(values))
            by_endpoint.add(endpoint, figures, out.mask(looked))
        return by_endpoint


_CACHE_KEYS = ("hit_rate", "token_reuse_rate", "lookups", "hits")


def _cache_figures(lookups: float, lookup_hits: float, queries: float, hits: float) -> dict[str, float]:
    return {
        "hit_rate": round_figure(100 * lookup_hits / lookups),
        "token_reuse_rate": round_figure(100 * hits / queries) if queries else 0.0,
        "lookups": round_figure(lookups),
        "hits": round_figure(lookup_hits),
    }


# -- the table ------------------------------------------------------------------------------------------

CATEGORIES: dict[str, tuple[tuple[str | None, Any], ...]] = {
    "throughput": (
        ("requests_per_sec", Rate("requests", by="endpoint_label")),
        ("responses_per_sec", Rate("responses", by="endpoint_label")),
        ("tokens_per_sec", Rate("completion_tokens", by="endpoint_label")),
        ("prompt_tokens_per_sec", Rate("prompt_tokens", by="endpoint_label")),
        ("total_requests_per_sec", Rate("requests")),
        ("total_responses_per_sec", Rate("responses")),
        ("total_tokens_per_sec", Rate("completion_tokens")),
        ("total_prompt_tokens_per_sec", Rate("prompt_tokens")),
    ),
    # ``None``: the measure's map is the category itself, {endpoint: {...}}.
    "latency": ((None, Quantiles("request_latency", by_endpoint=True)),),
    "cache": (
        ("hit_rate", Percent("cache_lookup_hits", "cache_lookups")),
        ("token_reuse_rate", Percent("cache_hits", "cache_queries")),
        ("avg_prefix_length", Percent("cache_hits", "cache_lookup_hits", scale=1.0)),
        ("total_lookups", Total("cache_lookups")),
        ("cache_hits", Total("cache_lookup_hits")),
        ("by_endpoint", CacheByEndpoint()),
    ),
    "queue": (
        ("queue_depth", Total("waiting")),
        ("active_requests", Total("running")),
        ("active_streams", Total("active_streams")),
        ("queue_time", Quantiles("queue_time", keys=("avg", "p50", "p90", "p99"))),
    ),
    "streaming": (
        ("active_streams", Total("active_streams")),
        ("completed_streams", Total("streams", where=("outcome_label", "completed"))),
        ("failed_streams", Total("streams", where=("outcome_label", "failed"))),
        ("cancelled_streams", Total("streams", where=("outcome_label", "cancelled"))),
        ("ttft", Quantiles("ttft")),
        ("itl", Quantiles("itl")),
        ("tokens_per_second", InverseQuantiles("time_per_output_token")),
    ),
    "error": (
        ("errors_per_sec", Rate("errors", by="endpoint_label")),
        ("total_errors_per_sec", Rate("errors")),
        ("error_rate", Percent("errors", "responses")),
        ("by_status", Rate("errors", by="status_label")),
        ("lost_requests", Total("lost_requests")),
        ("worker_restarts", Total("worker_restarts")),
    ),
}
METRIC_TYPES: tuple[str, ...] = tuple(CATEGORIES)
READS: frozenset[MeasureRead] = frozenset(
    read for fields in CATEGORIES.values() for _, measure in fields for read in measure.reads
)
"""What the table's measures read (each a ``MeasureRead``)."""


@functools.lru_cache(maxsize=64)
def set_quantiles(mapping: Mapping) -> dict[Read, tuple[float, ...]]:
    """The quantiles a ``WindowSet`` computes for each histogram the table reads, by the mapping's names:
    those of every measure that reads it (``Quantiles``' or ``InverseQuantiles``', or both). Callers
    only read the dict."""
    wanted: dict[Read, list[float]] = {}
    for fields in CATEGORIES.values():
        for _, measure in fields:
            for kind, role, by in measure.reads:
                name = getattr(mapping, role)
                if kind == "histograms" and name is not None:
                    found = wanted.setdefault((name, _label(mapping, by)), [])
                    found.extend(q for q in measure.QUANTILES if q not in found)
    return {read: tuple(qs) for read, qs in wanted.items()}


def compute(window: Window, metric_types: frozenset[str]) -> dict[str, Any]:
    """The ``data`` object of a message: every selected category, field by field from the table."""
    data: dict[str, Any] = {}
    for category, fields in CATEGORIES.items():
        if category not in metric_types:
            continue
        values: dict[str, Any] = {}
        for name, measure in fields:
            result = measure.compute(window)
            if name is None:
                values = result
            else:
                values[name] = result
        data[category] = values
    return data


def compute_many(windows: WindowSet, metric_types: frozenset[str]) -> list[dict[str, Any]]:
    """``compute`` of each window of the set, in order, the measures computed for all at once."""
    return compute_figures(windows, metric_types).rows()


def compute_figures(windows: WindowSet, metric_types: frozenset[str]) -> ColumnFigures | DictFigures:
    """``compute_in_steps`` without the pauses."""
    steps = compute_in_steps(windows, metric_types)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast(ColumnFigures | DictFigures, done.value)


def compute_in_steps(
    windows: WindowSet, metric_types: frozenset[str]
) -> Generator[None, None, ColumnFigures | DictFigures]:
    """``compute_many``, as figures ready to be written, pausing after each measure (0.1 to 1 ms for a
    hundred windows on the slow 2-core machine, the histograms' quantiles the longest): the hub gives the
    event loop a turn between steps."""
    try:
        out = ColumnFigures(len(windows))
        for category, fields in CATEGORIES.items():
            if category not in metric_types:
                continue
            if fields[0][0] is None:  # the measure's map is the category itself
                values = fields[0][1].compute_many(windows, out)
                yield
            else:
                values = FigureObject()
                for name, measure in fields:
                    values.add(cast(str, name), measure.compute_many(windows, out))
                    yield
            out.root.add(category, values)
        return out
    except PerWindow:
        alone = []
        for window in windows.windows:
            alone.append(compute(window, metric_types))
            yield
        return DictFigures(alone)
