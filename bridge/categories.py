"""The six categories of docs/METRICS_STREAMING.md as a table of measures over a window of two snapshots.

A ``Mapping`` names the source families by role, so the bridge streams any registry that has such
families; the ``CATEGORIES`` table says which measure of which role fills each field.
"""

import functools
import math
from collections import OrderedDict, defaultdict
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from bridge.math import bucket_increase, histogram_summaries, histogram_summary, increase, mean
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


@functools.lru_cache(maxsize=65536)
def _labels(key: LabelKey) -> dict[str, str]:
    """A series key as a dict, made once per series (keys are bounded by the source's cardinality).
    Callers only read it."""
    return dict(key)


@functools.lru_cache(maxsize=65536)
def _selected(key: LabelKey, selection: Selection, endpoint_label: str, model_label: str) -> bool:
    labels = _labels(key)
    return (not selection.endpoints or labels.get(endpoint_label) in selection.endpoints) and (
        not selection.models or labels.get(model_label) in selection.models
    )


@dataclass
class _Increase:
    """Cumulative bucket counts at ``bounds`` with their sum and count: a histogram's increase over a
    window, or the sum of a group's histograms at one snapshot (a fold)."""

    bounds: np.ndarray
    counts: np.ndarray
    total: float
    count: float

    def __iter__(self) -> Iterator[Any]:
        return iter((self.bounds, self.counts, self.total, self.count))

    def minus(self, earlier: "_Increase") -> "_Increase":
        counts = self.counts - earlier.counts
        return _Increase(self.bounds, counts, self.total - earlier.total, self.count - earlier.count)


_EMPTY = _Increase(np.array([math.inf]), np.zeros(1), 0.0, 0.0)


def _add(
    into: dict[tuple[str, bytes], _Increase],
    key: tuple[str, bytes],
    bounds: np.ndarray,
    counts: np.ndarray,
    total: float,
    count: float,
) -> None:
    found = into.get(key)
    if found is None:
        into[key] = _Increase(bounds, counts.astype(float), total, count)  # a copy: never the snapshot's array
    else:
        found.counts = found.counts + counts
        found.total += total
        found.count += count


class FoldCache:
    """The per-group sums ("folds") of recently used (snapshot, selection) pairs, least recently used
    dropped first: a fold is about 14 KiB on a default server, so ``limit`` bounds their memory whatever
    the number of filter sets and the length of their windows."""

    def __init__(self, limit: int = 512) -> None:
        self.limit = limit
        self._entries: OrderedDict[tuple[int, Selection], tuple[Snapshot, dict[Any, Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def folds(self, snapshot: Snapshot, selection: Selection) -> dict[Any, Any]:
        key = (id(snapshot), selection)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is snapshot:  # the snapshot itself is held: its id is not reused
            self._entries.move_to_end(key)
            return entry[1]
        folds: dict[Any, Any] = {}
        self._entries[key] = (snapshot, folds)
        if len(self._entries) > self.limit:
            self._entries.popitem(last=False)
        return folds


class Window:
    """What the measures read: the selected series of one role, summed per group, over a window.

    Most windows lie within one epoch (no counter went back between their snapshots): then a group's
    increase is its sum at the end minus its sum at the start, and those sums ("folds") are kept in a
    ``FoldCache``. A window shares its end with every other window of the tick and its start with the
    windows of earlier ticks, so a hundred filter sets fold a couple of snapshots a tick, not a
    hundred. A window across a restart takes each series' own increase, as PromQL's ``increase`` does.
    """

    def __init__(
        self, start: Snapshot, end: Snapshot, mapping: Mapping, selection: Selection, cache: FoldCache | None = None
    ) -> None:
        self.start, self.end, self.mapping, self.selection = start, end, mapping, selection
        self.seconds = max(end.timestamp - start.timestamp, 0.0)
        self.folded = start.epoch == end.epoch
        self._memo: dict[tuple[str, str, str | None], Any] = {}  # measures read some roles several times
        self._start_folds: dict[Any, Any] = {} if cache is None else cache.folds(start, selection)
        self._end_folds: dict[Any, Any] = {} if cache is None else cache.folds(end, selection)

    def _keep(self, key: LabelKey) -> bool:
        selection = self.selection
        if not selection.endpoints and not selection.models:
            return True
        return _selected(key, selection, self.mapping.endpoint_label, self.mapping.model_label)

    def _group(self, by: str | None) -> str | None:
        """The label a measure groups by (``by`` names a label role), or None for one group ""."""
        return getattr(self.mapping, by) if by else None

    def current(self, role: str, by: str | None = None) -> dict[str, float]:
        """Each group's sum of the selected series at the window's end (a gauge now, a counter so far)."""
        return self._fold_values(self.end, getattr(self.mapping, role), self._group(by))

    def increase(self, role: str, by: str | None = None) -> dict[str, float]:
        """Each group's increase of a counter over the window."""
        memo_key = ("increase", role, by)
        found: dict[str, float] | None = self._memo.get(memo_key)
        if found is None:
            found = self._memo[memo_key] = self._increase(role, by)
        return found

    def _increase(self, role: str, by: str | None) -> dict[str, float]:
        name, label = getattr(self.mapping, role), self._group(by)
        after = self._fold_values(self.end, name, label)
        if self.start is self.end:
            return dict.fromkeys(after, 0.0)
        if self.folded:
            before = self._fold_values(self.start, name, label)
            return {group: _difference(value, before.get(group, 0.0)) for group, value in after.items()}
        start = self.start.values.get(name, {})
        grouped: dict[str, float] = defaultdict(float)
        for key, value in self.end.values.get(name, {}).items():
            if self._keep(key):
                grouped[_group_of(key, label)] += increase(start.get(key, 0.0), value)
        return grouped

    def histogram_increase(self, role: str, by: str | None = None) -> dict[str, _Increase]:
        """Each group's histogram increase over the window. Series of one group with different bucket
        layouts cannot be added up: the group is the layout with the most observations in the window."""
        name, label = getattr(self.mapping, role), self._group(by)
        after = self._fold_histograms(self.end, name, label)
        layouts: dict[tuple[str, bytes], _Increase]
        if self.folded:
            before = self._fold_histograms(self.start, name, label)
            layouts = {}
            for layout, total in after.items():
                earlier = before.get(layout)
                layouts[layout] = total if earlier is None else total.minus(earlier)
        else:
            layouts = self._series_increases(name, label)
        groups: dict[str, _Increase] = {}
        for (group, _), merged in layouts.items():
            best = groups.get(group)
            if best is None or merged.count > best.count:
                groups[group] = merged
        return groups

    def _series_increases(self, name: str, label: str | None) -> dict[tuple[str, bytes], _Increase]:
        """The window's increase per series (each restart on its own), summed per group and layout."""
        start = self.start.histograms.get(name, {})
        layouts: dict[tuple[str, bytes], _Increase] = {}
        for key, after in self.end.histograms.get(name, {}).items():
            if not self._keep(key):
                continue
            before = start.get(key)
            if before is None or before.count > after.count:  # new, or restarted: all of it is new
                delta, total, count = after.cumulative, after.total, after.count
            else:
                delta = bucket_increase(before.cumulative, after.cumulative)
                total, count = after.total - before.total, after.count - before.count
            _add(layouts, (_group_of(key, label), after.bounds.tobytes()), after.bounds, delta, total, count)
        return layouts

    def _fold_values(self, snapshot: Snapshot, name: str | None, label: str | None) -> dict[str, float]:
        if name is None:  # a role the mapping leaves out: nothing to read
            return {}
        folds = self._end_folds if snapshot is self.end else self._start_folds
        fold_key = ("values", name, label)
        folded: dict[str, float] | None = folds.get(fold_key)
        if folded is None:
            sums: dict[str, float] = defaultdict(float)
            for key, value in snapshot.values.get(name, {}).items():
                if self._keep(key):
                    sums[_group_of(key, label)] += value
            folded = folds[fold_key] = dict(sums)
        return folded

    def _fold_histograms(self, snapshot: Snapshot, name: str, label: str | None) -> dict[tuple[str, bytes], _Increase]:
        folds = self._end_folds if snapshot is self.end else self._start_folds
        fold_key = ("histograms", name, label)
        folded: dict[tuple[str, bytes], _Increase] | None = folds.get(fold_key)
        if folded is None:
            folded = {}
            for key, h in snapshot.histograms.get(name, {}).items():
                if self._keep(key):
                    group = _group_of(key, label)
                    _add(folded, (group, h.bounds.tobytes()), h.bounds, h.cumulative, h.total, h.count)
            folds[fold_key] = folded
        return folded


def _group_of(key: LabelKey, label: str | None) -> str:
    return _labels(key).get(label, "") if label else ""


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


class WindowSet:
    """Windows that end at one snapshot, over one selection, each within one epoch: what a hundred
    filter sets with different windows ask for on one tick. Every measure is computed for all of them
    at once (an array with one value per window) from the folds the ``FoldCache`` keeps anyway: a
    window's increase is the fold at the shared end minus the fold at its start, so the per-window work
    is one lookup per role and the figures' rounding, not a pass over the series.

    ``compute_many`` gives, window by window, exactly what ``compute`` gives for each ``Window``
    (``tests/bridge/test_window_set.py``)."""

    def __init__(
        self, starts: Sequence[Snapshot], end: Snapshot, mapping: Mapping, selection: Selection, cache: FoldCache
    ) -> None:
        self.windows = [Window(start, end, mapping, selection, cache) for start in starts]
        if not all(window.folded for window in self.windows):
            raise ValueError("every window of a WindowSet lies within one epoch")
        self.end = end
        self.seconds = np.array([window.seconds for window in self.windows])
        self._memo: dict[tuple[str, str, str | None], Any] = {}

    def __len__(self) -> int:
        return len(self.windows)

    def current(self, role: str, by: str | None = None) -> dict[str, float]:
        """As ``Window.current``: the end's, the same for every window."""
        return self.windows[0].current(role, by)

    def increase(self, role: str, by: str | None = None) -> dict[str, np.ndarray]:
        """``Window.increase`` of every window: each group's increases, one per window."""
        memo_key = ("increase", role, by)
        found: dict[str, np.ndarray] | None = self._memo.get(memo_key)
        if found is not None:
            return found
        first = self.windows[0]
        name, label = getattr(first.mapping, role), first._group(by)
        after = first._fold_values(self.end, name, label)
        fold_key = ("values", name, label)
        # Most starts were folded on earlier ticks (they ended windows then): read from the cache.
        befores = [
            folded
            if (folded := window._start_folds.get(fold_key)) is not None
            else window._fold_values(window.start, name, label)
            for window in self.windows
        ]
        found = {}
        for group, value in after.items():
            difference = value - np.array([before.get(group, 0.0) for before in befores])
            # ``_difference``: float noise below 1e-9 relative is no increase.
            difference[np.abs(difference) <= 1e-9 * max(1.0, abs(value))] = 0.0
            found[group] = difference
        self._memo[memo_key] = found
        return found

    def histogram_increase(self, role: str, by: str | None = None) -> dict[str, _Increases]:
        """``Window.histogram_increase`` of every window; raises ``PerWindow`` when a group's series
        have several bucket layouts."""
        first = self.windows[0]
        name, label = getattr(first.mapping, role), first._group(by)
        after = first._fold_histograms(self.end, name, label)
        befores = [window._fold_histograms(window.start, name, label) for window in self.windows]
        groups: dict[str, _Increases] = {}
        for (group, layout), total in after.items():
            if group in groups:
                raise PerWindow(f"{name}: several bucket layouts in group {group!r}")
            zero = np.zeros_like(total.counts)
            earlier = [before.get((group, layout)) for before in befores]
            counts = total.counts - np.array([zero if e is None else e.counts for e in earlier])
            totals = total.total - np.array([0.0 if e is None else e.total for e in earlier])
            observations = total.count - np.array([0.0 if e is None else e.count for e in earlier])
            groups[group] = _Increases(total.bounds, counts, totals, observations)
        return groups


# -- measures -------------------------------------------------------------------------------------------


def _round(value: float) -> float:
    """To four decimals, half to even on ``value * 10**4`` (so numpy can do it alike: ``_rounded``);
    0.0 for what JSON cannot carry."""
    if not math.isfinite(value):
        return 0.0
    scaled = value * 10000.0
    return round(scaled) / 10000.0 if math.isfinite(scaled) else value


def _rounded(values: np.ndarray) -> list[float]:
    """``_round`` of every value, by array operations: ``np.rint`` is ``round`` (half to even), and
    ``+ 0.0`` turns the -0.0 of a small negative into the 0.0 that ``round`` gives."""
    finite = np.isfinite(values)
    scaled = np.where(finite, values, 0.0) * 10000.0
    with np.errstate(invalid="ignore"):
        rounded = np.where(np.isfinite(scaled), np.rint(scaled) / 10000.0 + 0.0, values)
    return cast(list[float], rounded.tolist())


@dataclass(frozen=True)
class Rate:
    """Per-second increase of a counter over the window: a total, or a map by a label."""

    role: str
    by: str | None = None  # a label role such as "endpoint_label"

    def compute(self, w: Window) -> Any:
        grouped = w.increase(self.role, self.by)
        if self.by is None:
            return _round(grouped.get("", 0.0) / w.seconds) if w.seconds else 0.0
        return {k: _round(v / w.seconds) for k, v in sorted(grouped.items()) if v > 0 and w.seconds}

    def compute_many(self, ws: WindowSet) -> list[Any]:
        grouped = ws.increase(self.role, self.by)
        timed = ws.seconds > 0

        def per_second(increases: np.ndarray) -> list[float]:
            return _rounded(np.divide(increases, ws.seconds, out=np.zeros(len(ws)), where=timed))

        if self.by is None:
            found = grouped.get("")
            return [0.0] * len(ws) if found is None else per_second(found)
        rows: list[dict[str, float]] = [{} for _ in range(len(ws))]
        for group, increases in sorted(grouped.items()):
            rates = per_second(increases)
            for index in np.flatnonzero((increases > 0) & timed).tolist():
                rows[index][group] = rates[index]
        return rows


@dataclass(frozen=True)
class Total:
    """Current value summed over the selected series (a gauge now, or a counter since start)."""

    role: str
    where: tuple[str, str] | None = None  # (label role, value)

    def compute(self, w: Window) -> float:
        if self.where is None:
            return _round(sum(w.current(self.role).values()))
        by, wanted = self.where
        return _round(w.current(self.role, by).get(wanted, 0.0))

    def compute_many(self, ws: WindowSet) -> list[float]:
        return [self.compute(ws.windows[0])] * len(ws)  # the end's: the same for every window


@dataclass(frozen=True)
class Percent:
    """100 x increase(numerator) / increase(denominator) over the window; 0 when nothing happened."""

    numerator: str
    denominator: str
    scale: float = 100.0

    def compute(self, w: Window) -> float:
        den = sum(w.increase(self.denominator).values())
        num = sum(w.increase(self.numerator).values())
        return _round(self.scale * num / den) if den > 0 else 0.0

    def compute_many(self, ws: WindowSet) -> list[float]:
        shape = (len(ws),)
        # ``sum`` over the groups' arrays: the same additions, in the same order, as ``compute``'s.
        den = np.broadcast_to(sum(ws.increase(self.denominator).values()), shape).astype(float)
        num = np.broadcast_to(sum(ws.increase(self.numerator).values()), shape).astype(float)
        return _rounded(np.divide(self.scale * num, den, out=np.zeros(shape), where=den > 0))


SUMMARY_QUANTILES = (1.0, 0.5, 0.9, 0.99)


def _summary(bounds: np.ndarray, counts: np.ndarray, total: float, count: float, scale: float) -> dict[str, float]:
    minimum, quantiles = histogram_summary(SUMMARY_QUANTILES, bounds, counts)
    return _summary_figures(minimum, quantiles, total, count, scale)


SUMMARY_KEYS = ("avg", "min", "max", "p50", "p90", "p99")


def _summary_rows(found: _Increases, scale: float, keys: tuple[str, ...]) -> list[dict[str, float] | None]:
    """``{k: _summary(...)[k] for k in keys} | {"count": ...}`` of each window's increase, or None for
    a window without observations: each figure computed for all windows at once, a column at a time."""
    observed = found.observations > 0
    if not observed.any():
        return [None] * len(observed)
    minimums, quantiles = histogram_summaries(SUMMARY_QUANTILES, found.bounds, found.counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = found.totals / found.observations  # ``mean``, where there are observations
    columns = dict(zip(SUMMARY_KEYS, (means, minimums, *quantiles.T), strict=True))
    figures = [_rounded(columns[key] * scale) for key in keys]
    figures.append(_rounded(found.observations))
    names = (*keys, "count")
    return [
        dict(zip(names, row, strict=True)) if seen else None
        for row, seen in zip(zip(*figures, strict=True), observed.tolist(), strict=True)
    ]


def _summary_figures(
    minimum: float, quantiles: Sequence[float], total: float, count: float, scale: float
) -> dict[str, float]:
    maximum, p50, p90, p99 = quantiles  # the order of SUMMARY_KEYS
    return {
        "avg": _round(mean(total, count) * scale),
        "min": _round(minimum * scale),
        "max": _round(maximum * scale),
        "p50": _round(p50 * scale),
        "p90": _round(p90 * scale),
        "p99": _round(p99 * scale),
    }


@dataclass(frozen=True)
class Quantiles:
    """avg, min, max, p50, p90, p99 of a histogram over the window, in milliseconds (``scale``)."""

    role: str
    by_endpoint: bool = False
    scale: float = 1000.0
    keys: tuple[str, ...] = ("avg", "min", "max", "p50", "p90", "p99")

    def compute(self, w: Window) -> Any:
        groups = w.histogram_increase(self.role, "endpoint_label" if self.by_endpoint else None)
        if not self.by_endpoint:
            bounds, counts, total, count = groups.get("", _EMPTY)
            summary = _summary(bounds, counts, total, count, self.scale) if count > 0 else {}
            return {k: summary.get(k, 0.0) for k in self.keys} | {"count": _round(count)}
        result = {}
        for endpoint, (bounds, counts, total, count) in sorted(groups.items()):
            if count > 0:
                summary = _summary(bounds, counts, total, count, self.scale)
                result[endpoint] = {k: summary[k] for k in self.keys} | {"count": _round(count)}
        return result

    def compute_many(self, ws: WindowSet) -> list[Any]:
        groups = ws.histogram_increase(self.role, "endpoint_label" if self.by_endpoint else None)
        if not self.by_endpoint:
            found = groups.get("")
            if found is None:
                return [dict.fromkeys(self.keys, 0.0) | {"count": 0.0} for _ in range(len(ws))]
            summaries = _summary_rows(found, self.scale, self.keys)
            if None not in summaries:
                return cast(list[Any], summaries)
            # Windows without observations: zeros, and their count as ``compute`` rounds it.
            counts = _rounded(found.observations)
            return [
                dict.fromkeys(self.keys, 0.0) | {"count": count} if summary is None else summary
                for summary, count in zip(summaries, counts, strict=True)
            ]
        rows: list[dict[str, Any]] = [{} for _ in range(len(ws))]
        for endpoint, found in sorted(groups.items()):
            for row, summary in zip(rows, _summary_rows(found, self.scale, self.keys), strict=True):
                if summary is not None:
                    row[endpoint] = summary
        return rows


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

    def compute(self, w: Window) -> dict[str, float]:
        bounds, counts, total, count = w.histogram_increase(self.role).get("", _EMPTY)
        if count <= 0:
            return dict.fromkeys(self.KEYS, 0.0)
        fastest, quantiles = histogram_summary(self.QUANTILES, bounds, counts)
        return self._figures(fastest, quantiles, total, count, float(bounds[0]))

    def compute_many(self, ws: WindowSet) -> list[dict[str, float]]:
        found = ws.histogram_increase(self.role).get("")
        if found is None or not (observed := found.observations > 0).any():
            return [dict.fromkeys(self.KEYS, 0.0) for _ in range(len(ws))]
        fastest, quantiles = histogram_summaries(self.QUANTILES, found.bounds, found.counts)
        fastest = np.where(fastest <= 0, found.bounds[0], fastest)
        with np.errstate(divide="ignore", invalid="ignore"):
            seconds = (found.totals / found.observations, *quantiles.T[:1], fastest, *quantiles.T[1:])

        def inverse(values: np.ndarray) -> list[float]:
            return _rounded(np.divide(1.0, values, out=np.zeros(len(values)), where=values > 0))

        # avg, min (the slowest), max (the fastest), p50, p90, p99: the order of KEYS.
        columns = [inverse(values) for values in seconds]
        return [
            dict(zip(self.KEYS, row, strict=True)) if seen else dict.fromkeys(self.KEYS, 0.0)
            for row, seen in zip(zip(*columns, strict=True), observed.tolist(), strict=True)
        ]

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
            "avg": _round(inverse(mean(total, count))),
            "min": _round(inverse(slowest)),
            "max": _round(inverse(fastest)),
            "p50": _round(inverse(p50)),
            "p90": _round(inverse(p90)),
            "p99": _round(inverse(p99)),
        }


@dataclass(frozen=True)
class CacheByEndpoint:
    ROLES = ("cache_lookups", "cache_lookup_hits", "cache_queries", "cache_hits")

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

    def compute_many(self, ws: WindowSet) -> list[dict[str, dict[str, float]]]:
        sums: dict[str, dict[str, np.ndarray]] = {}
        for role in self.ROLES:
            for endpoint, values in ws.increase(role, "endpoint_label").items():
                by_role = sums.setdefault(endpoint, {})
                by_role[role] = by_role.get(role, 0.0) + values  # 0.0 + first, as compute's defaultdict
        rows: list[dict[str, dict[str, float]]] = [{} for _ in range(len(ws))]
        none = np.zeros(len(ws))
        for endpoint, by_role in sorted(sums.items()):
            lookups, lookup_hits, queries, hits = (by_role.get(role, none) for role in self.ROLES)
            looked = lookups > 0
            if not looked.any():
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                columns = (
                    _rounded(100 * lookup_hits / lookups),
                    _rounded(np.divide(100 * hits, queries, out=np.zeros(len(ws)), where=queries != 0)),
                    _rounded(lookups),
                    _rounded(lookup_hits),
                )
            for index in np.flatnonzero(looked).tolist():
                rows[index][endpoint] = dict(zip(_CACHE_KEYS, (column[index] for column in columns), strict=True))
        return rows


_CACHE_KEYS = ("hit_rate", "token_reuse_rate", "lookups", "hits")


def _cache_figures(lookups: float, lookup_hits: float, queries: float, hits: float) -> dict[str, float]:
    return {
        "hit_rate": _round(100 * lookup_hits / lookups),
        "token_reuse_rate": _round(100 * hits / queries) if queries else 0.0,
        "lookups": _round(lookups),
        "hits": _round(lookup_hits),
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
    steps = compute_in_steps(windows, metric_types)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast(list[dict[str, Any]], done.value)


def compute_in_steps(windows: WindowSet, metric_types: frozenset[str]) -> Generator[None, None, list[dict[str, Any]]]:
    """``compute_many``, pausing after each measure (0.3 to 2 ms for a hundred windows on the slow 2-core
    machine, the histograms' quantiles the longest): the hub gives the event loop a turn between steps.
    Returns the rows."""
    try:
        rows: list[dict[str, Any]] = [{} for _ in range(len(windows))]
        for category, fields in CATEGORIES.items():
            if category not in metric_types:
                continue
            if fields[0][0] is None:  # the measure's map is the category itself
                values = fields[0][1].compute_many(windows)
                yield
            else:
                columns = []
                for _, measure in fields:
                    columns.append(measure.compute_many(windows))
                    yield
                names = [name for name, _ in fields]
                values = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
            for row, value in zip(rows, values, strict=True):
                row[category] = value
        return rows
    except PerWindow:
        alone = []
        for window in windows.windows:
            alone.append(compute(window, metric_types))
            yield
        return alone
