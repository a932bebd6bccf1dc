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
    """One ``collect()`` of only the families the categories need."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    async def collect(self, sample_names: set[str]) -> Iterable[Metric]:
        return list(self.registry.restricted_registry(sample_names).collect())


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
