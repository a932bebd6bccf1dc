"""Where snapshots come from: a registry in this process, or another process's /metrics."""

import asyncio
import urllib.request
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families


class Source(Protocol):
    async def collect(self, sample_names: set[str]) -> Iterable[Metric]: ...


class RegistrySource:
    """One ``collect()`` of only the families the categories need.

    ``restrict=False`` collects everything, for registries whose collectors register no names (such
    as prometheus-client's ``MultiProcessCollector``); the snapshot keeps only what it needs anyway.
    """

    def __init__(self, registry: CollectorRegistry, *, restrict: bool = True) -> None:
        self.registry = registry
        self.restrict = restrict

    async def collect(self, sample_names: set[str]) -> Iterable[Metric]:
        source = self.registry.restricted_registry(sample_names) if self.restrict else self.registry
        return list(source.collect())


class ScrapeSource:
    """Scrapes a Prometheus text endpoint, as Prometheus would, and parses it with prometheus-client."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout

    def _fetch(self) -> str:
        request = urllib.request.Request(self.url, headers={"Accept": "text/plain; version=0.0.4"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return response.read().decode("utf-8")

    async def collect(self, sample_names: set[str]) -> Iterable[Metric]:
        text = await asyncio.to_thread(self._fetch)
        return text_string_to_metric_families(text)
