"""Where snapshots come from: a registry in this process, or another process's /metrics."""

import asyncio
import json
import math
import operator
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np
import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from bridge.reader import fetch_text
from bridge.snapshot import Interner, LabelKey, Snapshot, Wanted, label_key, take
from bridge.turns import Turns


class Source(Protocol):
    async def collect(self, sample_names: set[str]) -> Iterable[Metric]: ...


@runtime_checkable
class WindowedSource(Protocol):
    """A source that computes a window's start and end snapshots itself."""

    async def window(self, wanted: Wanted, window: float, at: float) -> tuple[Snapshot, Snapshot]: ...


class RegistrySource:
    """One ``collect()`` of only the families the categories need, in slices: the registry lives on the
    event loop that serves requests, so the sampler yields to it every ``slice_seconds``. (The files of
    prometheus-client's multiprocess mode, which its collector reads in one call, are read by
    ``exporter.multiprocess.FilesSource``, on a thread.)
    """

    def __init__(self, registry: CollectorRegistry, *, slice_seconds: float = 0.001) -> None:
        self.registry = registry
        self.slice_seconds = slice_seconds

    async def collect(self, sample_names: set[str]) -> Iterable[Metric]:
        families = []
        turns = Turns(self.slice_seconds)
        for family in self.registry.restricted_registry(sample_names).collect():
            families.append(family)
            await turns.take()
        return families


@runtime_checkable
class SnapshotSource(Protocol):
    """A source that reads its series straight into a snapshot, with no exposition samples between."""

    async def snapshot(self, wanted: Wanted, timestamp: float, interner: Interner) -> Snapshot: ...


_VALUE = operator.attrgetter("_value")
"""A ``MutexValue``'s float (what its ``get()`` returns)."""


class ChildrenSource:
    """Reads the labelled children of prometheus-client metric objects directly.

    ``collect()`` builds a ``Sample`` per bucket of every histogram (a default server's stream families
    are about 1,800 samples: 5 ms a tick, most of an idle server's CPU with subscribers); reading the
    children's values is about a tenth of that. It reaches into prometheus-client's internals (``_metrics``,
    ``_value``, ``_buckets``, ``_sum``, ``_upper_bounds``), so ``tests/bridge/test_children_source.py``
    holds it to what ``collect()`` gives for the same registry: an upgrade that changes them fails CI.

    For one process only: in multiprocess mode a child's value is this process's own file, not the
    server's total (``exporter.multiprocess.FilesSource`` reads every worker's there). Counters, gauges set
    by ``set``/``inc``/``dec`` and histograms; other metric types are refused when the source is made.
    """

    TYPES = ("counter", "gauge", "histogram")

    def __init__(
        self,
        metrics: Iterable[MetricWrapperBase],
        *,
        exposed_bounds: Mapping[str, Sequence[float]] | None = None,
        slice_seconds: float = 0.001,
    ) -> None:
        """``exposed_bounds``: for a histogram that records at more bounds than it exposes, the bounds it
        exposes (the rest left out, as its exposition leaves them out; +Inf always kept)."""
        self.metrics = list(metrics)
        self._shown: dict[str, tuple[tuple[float, ...], np.ndarray]] = {}
        for metric in self.metrics:
            if metric._type not in self.TYPES:
                raise TypeError(f"{metric._name}: ChildrenSource reads {', '.join(self.TYPES)}, not {metric._type}")
            if exposed_bounds and metric._name in exposed_bounds:
                recorded = list(cast(prometheus_client.Histogram, metric)._upper_bounds)
                shown = [*(float(b) for b in exposed_bounds[metric._name]), math.inf]
                positions = np.array([recorded.index(b) for b in shown])
                self._shown[metric._name] = (tuple(shown), positions)
        self.slice_seconds = slice_seconds
        self._keys: dict[tuple[str, Sequence[str]], LabelKey] = {}
        self._bounds: dict[str, tuple[np.ndarray, dict[LabelKey, np.ndarray]]] = {}
        """Each histogram family's bounds, and the dict of them by series the last snapshot had: the next
        one shares the dict while the family's series and bounds stay the same."""

    async def collect(self, sample_names: set[str]) -> Iterable[Metric]:
        """The public API's view of the same metrics (for callers that want families)."""
        return [family for metric in self.metrics for family in metric.collect()]

    def _children(self, metric: MetricWrapperBase) -> list[tuple[Sequence[str], Any]]:
        if not metric._labelnames:
            return [((), metric)]
        with metric._lock:  # a child created meanwhile on another thread must not break the iteration
            return list(metric._metrics.items())

    def _key(self, metric: MetricWrapperBase, values: Sequence[str], interner: Interner) -> LabelKey:
        cached = self._keys.get((metric._name, values))
        if cached is None:
            if len(self._keys) >= interner.limit:
                self._keys.clear()
            labels = dict(zip(metric._labelnames, values, strict=True))
            cached = self._keys[(metric._name, values)] = interner.key(labels)
        return cached

    def _family_bounds(self, name: str, series: dict[LabelKey, Any], bounds: np.ndarray) -> dict[LabelKey, np.ndarray]:
        """``bounds`` for each of ``series``: the last snapshot's dict while it still fits."""
        last = self._bounds.get(name)
        if last is None or last[0] is not bounds or last[1].keys() != series.keys():
            last = self._bounds[name] = (bounds, dict.fromkeys(series, bounds))
        return last[1]

    async def snapshot(self, wanted: Wanted, timestamp: float, interner: Interner) -> Snapshot:
        snapshot = Snapshot(timestamp, {name: {} for name in wanted.counters | wanted.gauges})
        for name in wanted.histograms:
            snapshot.histograms[name] = {}
        turns = Turns(self.slice_seconds)
        for metric in self.metrics:
            name = metric._name
            if name in snapshot.histograms:
                histograms = snapshot.histograms[name]
                # One bucket layout per family.
                shown, positions = self._shown.get(name, (None, None))
                bounds = interner.bounds(shown or tuple(cast(prometheus_client.Histogram, metric)._upper_bounds))
                has_sum = bounds[0] >= 0  # as collect(): no _sum when a bucket lies below zero
                width = len(bounds)
                for values, child in self._children(metric):
                    # Each bucket's float read as its ``get()`` reads it, without taking the bucket's lock
                    # (a read of one attribute is atomic; the lock orders writers): a tick reads about
                    # 1,400 buckets, and these reads were a quarter of an idle server's CPU.
                    buckets = child._buckets
                    counts = np.fromiter(map(_VALUE, buckets), float, len(buckets))
                    numbers = np.empty(width + 2)  # ``snapshot.histogram``'s layout, filled in place
                    if positions is None:
                        np.cumsum(counts, out=numbers[:width])
                    else:
                        numbers[:width] = np.cumsum(counts)[positions]  # exact at any subset of bounds
                    numbers[width] = child._sum.get() if has_sum else 0.0
                    numbers[width + 1] = numbers[width - 1]
                    histograms[self._key(metric, values, interner)] = numbers
                snapshot.bounds[name] = self._family_bounds(name, histograms, bounds)
            elif name in snapshot.values:
                series = snapshot.values[name]
                for values, child in self._children(metric):
                    series[self._key(metric, values, interner)] = child._value.get()
            await turns.take()
        return snapshot


class ScrapeSource:
    """Scrapes a Prometheus text endpoint, as Prometheus would, and parses it with prometheus-client."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout

    async def collect(self, sample_names: set[str]) -> Iterable[Metric]:
        text = await asyncio.to_thread(fetch_text, self.url, self.timeout)
        return list(text_string_to_metric_families(text))  # parsed here: a bad body is the source's failure


NAME_LABEL = "bridge_sample_name"


class PrometheusSource:
    """A fleet through a Prometheus server's HTTP API.

    For a window of ``w`` seconds it asks Prometheus for every wanted series now and for PromQL's own
    per-series ``increase(...[w])`` (which handles one replica restarting), sums the replicas
    (dropping ``instance`` and ``job``), and returns a start snapshot of ``now - increase`` and an end
    snapshot of ``now``: the categories then compute exactly what they compute on a local registry.
    """

    DROPPED = ("instance", "job")

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _query(self, expr: str, at: float) -> list[dict[str, Any]]:
        data = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"}).encode()
        request = urllib.request.Request(self.url + "/api/v1/query", data=data, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus: {body.get('error', 'query failed')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def _families(self, results: list[dict[str, Any]]) -> list[Metric]:
        """Prometheus series (replicas summed) as one untyped family per sample name."""
        summed: dict[tuple[str, LabelKey], float] = {}
        for series in results:
            labels = {k: v for k, v in series["metric"].items() if k not in self.DROPPED}
            name = labels.pop(NAME_LABEL, None) or labels.pop("__name__")
            series_key = (name, label_key(labels))
            summed[series_key] = summed.get(series_key, 0.0) + float(series["value"][1])
        family = Metric("prometheus", "series from prometheus", "untyped")
        for (name, key), value in summed.items():
            family.add_sample(name, dict(key), value)
        return [family]

    def _fetch(self, sample_names: set[str], window: float, at: float) -> tuple[list[Metric], list[Metric]]:
        names = sorted(sample_names)
        current = self._query('{__name__=~"' + "|".join(re.escape(n) for n in names) + '"}', at)
        # increase() drops the name, and `or` matches series on their labels without it, so each
        # family is tagged with its name in a label of its own: one query carries them all.
        increases = " or ".join(
            f'label_replace(increase({n}[{window:g}s]), "{NAME_LABEL}", "{n}", "", "")'
            for n in names
            if n.endswith(("_total", "_bucket", "_sum", "_count"))
        )
        return self._families(current), self._families(self._query(increases, at))

    async def window(self, wanted: Wanted, window: float, at: float) -> tuple[Snapshot, Snapshot]:
        current, increases = await asyncio.to_thread(self._fetch, wanted.sample_names(), window, at)
        end = take(current, wanted, at)
        delta = take(increases, wanted, at)
        start = Snapshot(at - window, epoch=end.epoch, bounds=end.bounds)  # end minus increases: one epoch
        for name, values in end.values.items():
            changes = delta.values.get(name, {})
            is_counter = name in wanted.counters
            start.values[name] = {k: v - changes.get(k, 0.0) if is_counter else v for k, v in values.items()}
        for name, histograms in end.histograms.items():
            increments = delta.histograms.get(name, {})
            start.histograms[name] = {}
            for key, numbers in histograms.items():
                added = increments.get(key)
                # The same layout: the cumulative counts, the sum and the count each less their increase.
                same = added is not None and len(added) == len(numbers)
                start.histograms[name][key] = numbers - added if same else numbers
        return start, end

    async def collect(self, sample_names: set[str]) -> Iterable[Metric]:
        current, _ = await asyncio.to_thread(self._fetch, sample_names, 60.0, time.time())
        return current
