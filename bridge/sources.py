"""Where snapshots come from: a registry in this process, or another process's /metrics."""

import asyncio
import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from bridge.reader import fetch_text
from bridge.snapshot import Histogram, LabelKey, Snapshot, Wanted, label_key, take


class Source(Protocol):
    async def collect(self, sample_names: set[str]) -> Iterable[Metric]: ...


@runtime_checkable
class WindowedSource(Protocol):
    """A source that computes a window's start and end snapshots itself."""

    async def window(self, wanted: Wanted, window: float, at: float) -> tuple[Snapshot, Snapshot]: ...


class RegistrySource:
    """One ``collect()`` of only the families the categories need, in slices: the registry lives on the
    event loop that serves requests, so the sampler yields to it every ``slice_seconds``.

    ``restrict=False`` collects everything, for registries whose collectors register no names (such
    as prometheus-client's ``MultiProcessCollector``); the snapshot keeps only what it needs anyway.
    """

    def __init__(self, registry: CollectorRegistry, *, restrict: bool = True, slice_seconds: float = 0.001) -> None:
        self.registry = registry
        self.restrict = restrict
        self.slice_seconds = slice_seconds

    async def collect(self, sample_names: set[str]) -> Iterable[Metric]:
        source = self.registry.restricted_registry(sample_names) if self.restrict else self.registry
        families = []
        due = time.perf_counter() + self.slice_seconds
        for family in source.collect():
            families.append(family)
            if time.perf_counter() >= due:
                await asyncio.sleep(0)
                due = time.perf_counter() + self.slice_seconds
        return families


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
        start = Snapshot(at - window)
        for name, values in end.values.items():
            changes = delta.values.get(name, {})
            is_counter = name in wanted.counters
            start.values[name] = {k: v - changes.get(k, 0.0) if is_counter else v for k, v in values.items()}
        for name, histograms in end.histograms.items():
            increments = delta.histograms.get(name, {})
            start.histograms[name] = {}
            for key, h in histograms.items():
                d = increments.get(key)
                if d is None or len(d.cumulative) != len(h.cumulative):
                    start.histograms[name][key] = h
                else:
                    start.histograms[name][key] = Histogram(
                        h.bounds, h.cumulative - d.cumulative, h.total - d.total, h.count - d.count
                    )
        return start, end

    async def collect(self, sample_names: set[str]) -> Iterable[Metric]:
        current, _ = await asyncio.to_thread(self._fetch, sample_names, 60.0, time.time())
        return current
