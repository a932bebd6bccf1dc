"""The six categories of docs/METRICS_STREAMING.md as a table of measures over a window of two snapshots.

A ``Mapping`` names the source families by role, so the bridge streams any registry that has such
families; the ``CATEGORIES`` table says which measure of which role fills each field.
"""

import functools
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.math import bucket_increase, histogram_min, histogram_quantile, increase, mean
from bridge.snapshot import Histogram, LabelKey, Snapshot, Wanted


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
    )
    GAUGES = ("waiting", "running", "active_streams")
    HISTOGRAMS = ("request_latency", "queue_time", "ttft", "itl", "time_per_output_token")

    def wanted(self) -> Wanted:
        return Wanted(
            counters=frozenset(getattr(self, r) for r in self.COUNTERS),
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


class Window:
    """What the measures read: the selected series of one role at the window's start and end.

    Several measures read one role (responses feed a rate, a rate by endpoint and the error rate), so
    each role's selected series are found once per window.
    """

    def __init__(self, start: Snapshot, end: Snapshot, mapping: Mapping, selection: Selection) -> None:
        self.start, self.end, self.mapping, self.selection = start, end, mapping, selection
        self.seconds = max(end.timestamp - start.timestamp, 0.0)
        self._values: dict[str, list[tuple[dict[str, str], float, float]]] = {}
        self._histograms: dict[str, list[tuple[dict[str, str], Histogram | None, Histogram]]] = {}

    def _keep(self, key: LabelKey) -> bool:
        selection = self.selection
        if not selection.endpoints and not selection.models:
            return True
        return _selected(key, selection, self.mapping.endpoint_label, self.mapping.model_label)

    def values(self, role: str) -> list[tuple[dict[str, str], float, float]]:
        """(labels, value at start, value at end) of each selected counter or gauge series."""
        found = self._values.get(role)
        if found is None:
            name = getattr(self.mapping, role)
            before = self.start.values.get(name, {})
            found = self._values[role] = [
                (_labels(key), before.get(key, 0.0), value)
                for key, value in self.end.values.get(name, {}).items()
                if self._keep(key)
            ]
        return found

    def histograms(self, role: str) -> list[tuple[dict[str, str], Histogram | None, Histogram]]:
        found = self._histograms.get(role)
        if found is None:
            name = getattr(self.mapping, role)
            before = self.start.histograms.get(name, {})
            found = self._histograms[role] = [
                (_labels(key), before.get(key), histogram)
                for key, histogram in self.end.histograms.get(name, {}).items()
                if self._keep(key)
            ]
        return found


# -- measures -------------------------------------------------------------------------------------------


def _round(value: float) -> float:
    return 0.0 if math.isnan(value) or math.isinf(value) else round(value, 4)


@dataclass(frozen=True)
class Rate:
    """Per-second increase of a counter over the window: a total, or a map by a label."""

    role: str
    by: str | None = None  # "endpoint" or a label role such as "status_label"

    def compute(self, w: Window) -> Any:
        if self.by is None:
            total = sum(increase(a, b) for _, a, b in w.values(self.role))
            return _round(total / w.seconds) if w.seconds else 0.0
        label = getattr(w.mapping, self.by)
        grouped: dict[str, float] = defaultdict(float)
        for labels, a, b in w.values(self.role):
            grouped[labels.get(label, "")] += increase(a, b)
        return {k: _round(v / w.seconds) for k, v in sorted(grouped.items()) if v > 0 and w.seconds}


@dataclass(frozen=True)
class Total:
    """Current value summed over the selected series (a gauge now, or a counter since start)."""

    role: str
    where: tuple[str, str] | None = None  # (label role, value)

    def compute(self, w: Window) -> float:
        label, wanted = (getattr(w.mapping, self.where[0]), self.where[1]) if self.where else (None, None)
        return _round(sum(b for labels, _, b in w.values(self.role) if label is None or labels.get(label) == wanted))


@dataclass(frozen=True)
class Percent:
    """100 x increase(numerator) / increase(denominator) over the window; 0 when nothing happened."""

    numerator: str
    denominator: str
    scale: float = 100.0

    def compute(self, w: Window) -> float:
        den = sum(increase(a, b) for _, a, b in w.values(self.denominator))
        num = sum(increase(a, b) for _, a, b in w.values(self.numerator))
        return _round(self.scale * num / den) if den > 0 else 0.0


@dataclass
class _Increase:
    """A histogram's increase over the window: bucket counts at ``bounds``, and its sum and count."""

    bounds: np.ndarray
    counts: np.ndarray
    total: float
    count: float

    def __iter__(self) -> Iterator[Any]:
        return iter((self.bounds, self.counts, self.total, self.count))


_EMPTY = _Increase(np.array([math.inf]), np.zeros(1), 0.0, 0.0)


def _merged(
    histograms: Iterable[tuple[dict[str, str], Histogram | None, Histogram]], by: str | None
) -> dict[str, _Increase]:
    """Window increase of histograms, summed per group (by label value, or all in one)."""
    groups: dict[str, _Increase] = {}
    for labels, before, after in histograms:
        if before is None or before.count > after.count:  # new, or restarted: all of it is new
            delta, total, count = after.cumulative, after.total, after.count
        else:
            delta = bucket_increase(before.cumulative, after.cumulative)
            total, count = after.total - before.total, after.count - before.count
        group = labels.get(by, "") if by else ""
        merged = groups.get(group)
        if merged is not None and len(merged.bounds) == len(after.bounds):
            merged.counts = merged.counts + delta
            merged.total += total
            merged.count += count
        else:
            groups[group] = _Increase(after.bounds, delta.astype(float), total, count)
    return groups


def _summary(bounds: np.ndarray, counts: np.ndarray, total: float, count: float, scale: float) -> dict[str, float]:
    return {
        "avg": _round(mean(total, count) * scale),
        "min": _round(histogram_min(bounds, counts) * scale),
        "max": _round(histogram_quantile(1.0, bounds, counts) * scale),
        "p50": _round(histogram_quantile(0.5, bounds, counts) * scale),
        "p90": _round(histogram_quantile(0.9, bounds, counts) * scale),
        "p99": _round(histogram_quantile(0.99, bounds, counts) * scale),
    }


@dataclass(frozen=True)
class Quantiles:
    """avg, min, max, p50, p90, p99 of a histogram over the window, in milliseconds (``scale``)."""

    role: str
    by_endpoint: bool = False
    scale: float = 1000.0
    keys: tuple[str, ...] = ("avg", "min", "max", "p50", "p90", "p99")

    def compute(self, w: Window) -> Any:
        by = w.mapping.endpoint_label if self.by_endpoint else None
        groups = _merged(w.histograms(self.role), by)
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


@dataclass(frozen=True)
class InverseQuantiles:
    """Per-stream decode rate (tokens/s) from the time-per-output-token histogram: quantiles of 1/x
    are 1/x of the mirrored quantiles; the average is the harmonic one (count / sum).

    ``min`` is 1/(the largest TPOT, the 1-quantile) and ``max`` is 1/(the smallest TPOT, the lower edge
    of the lowest non-empty bucket). When that bucket starts at 0 the fastest stream has no finite
    bound; ``max`` is then 1/(that bucket's upper edge), the rate every stream in it reached.
    """

    role: str

    def compute(self, w: Window) -> dict[str, float]:
        bounds, counts, total, count = _merged(w.histograms(self.role), None).get("", _EMPTY)
        if count <= 0:
            return {k: 0.0 for k in ("avg", "min", "max", "p50", "p90", "p99")}

        def inverse(seconds: float) -> float:
            return 1.0 / seconds if seconds > 0 else 0.0

        fastest = histogram_min(bounds, counts)
        if fastest <= 0:
            fastest = float(bounds[0])
        return {
            "avg": _round(inverse(mean(total, count))),
            "min": _round(inverse(histogram_quantile(1.0, bounds, counts))),
            "max": _round(inverse(fastest)),
            "p50": _round(inverse(histogram_quantile(0.5, bounds, counts))),
            "p90": _round(inverse(histogram_quantile(0.1, bounds, counts))),
            "p99": _round(inverse(histogram_quantile(0.01, bounds, counts))),
        }


@dataclass(frozen=True)
class CacheByEndpoint:
    def compute(self, w: Window) -> dict[str, dict[str, float]]:
        label = w.mapping.endpoint_label
        sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for role in ("cache_lookups", "cache_lookup_hits", "cache_queries", "cache_hits"):
            for labels, a, b in w.values(role):
                sums[labels.get(label, "")][role] += increase(a, b)
        result = {}
        for endpoint, s in sorted(sums.items()):
            if s["cache_lookups"] > 0:
                result[endpoint] = {
                    "hit_rate": _round(100 * s["cache_lookup_hits"] / s["cache_lookups"]),
                    "token_reuse_rate": _round(100 * s["cache_hits"] / s["cache_queries"])
                    if s["cache_queries"]
                    else 0.0,
                    "lookups": _round(s["cache_lookups"]),
                    "hits": _round(s["cache_lookup_hits"]),
                }
        return result


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
