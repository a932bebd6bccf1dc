"""The ``http`` view: the API-server families vLLM exposes through prometheus-fastapi-instrumentator."""

from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import CounterMetricFamily, Metric

from exporter import buckets
from exporter.views.aggregate import FamilySource, histogram_by, histogram_family, index_families, sum_by

NATIVE = frozenset({"fakeai_http_requests", "fakeai_http_request_duration_seconds"})


def _as_instrumentator(labels: Mapping[str, str]) -> Mapping[str, str]:
    status = labels.get("status", "")
    return {**labels, "handler": labels["endpoint"], "status": f"{status[:1]}xx" if status else ""}


class HttpView:
    """``http_requests_total{handler,method,status="2xx"}`` and ``http_request_duration_seconds``."""

    def __init__(self, source: FamilySource) -> None:
        self._source = source

    def describe(self) -> Iterator[Metric]:
        yield from self._families({})

    def collect(self) -> Iterator[Metric]:
        yield from self._families(index_families(self._source(NATIVE)))

    def _families(self, native: Mapping[str, Metric]) -> Iterator[Metric]:
        by = ("handler", "method", "status")
        requests = CounterMetricFamily(
            "http_requests", "Total number of requests by method, status and handler.", labels=list(by)
        )
        totals = sum_by(native.get("fakeai_http_requests"), "fakeai_http_requests_total", by, _as_instrumentator)
        for key, value in sorted(totals.items()):
            requests.add_metric(list(key), value)
        yield requests
        by_route = ("handler", "method")
        groups = histogram_by(
            native.get("fakeai_http_request_duration_seconds"), buckets.HTTP_DURATION, by_route, _as_instrumentator
        )
        yield histogram_family(
            "http_request_duration_seconds", "Latency with only few buckets by handler.", by_route, groups
        )
