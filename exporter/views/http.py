"""The ``http`` view: the API-server families vLLM exposes through prometheus-fastapi-instrumentator.

Names, types, labels, help texts and bounds are the instrumentator's ``metrics.default()``
(src/prometheus_fastapi_instrumentator/metrics.py, v8.0.2 = commit c1c1fb6), with its defaults as vLLM
uses them: status codes grouped (``2xx``), ``http_request_duration_highr_seconds`` over every status.
"""

from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import CounterMetricFamily, Metric, SummaryMetricFamily

from exporter import buckets
from exporter.views.aggregate import DerivedView, histogram_by, histogram_family, sum_by

NATIVE = frozenset(
    {
        "fakeai_http_requests",
        "fakeai_http_request_duration_seconds",
        "fakeai_http_request_size_bytes",
        "fakeai_http_response_size_bytes",
    }
)
SIZES = (
    (
        "http_request_size_bytes",
        "fakeai_http_request_size_bytes",
        "Content length of incoming requests by handler. Only value of header is respected. Otherwise ignored. "
        "No percentile calculated. ",
    ),
    (
        "http_response_size_bytes",
        "fakeai_http_response_size_bytes",
        "Content length of outgoing responses by handler. Only value of header is respected. Otherwise ignored. "
        "No percentile calculated. ",
    ),
)


def _as_instrumentator(labels: Mapping[str, str]) -> Mapping[str, str]:
    status = labels.get("status", "")
    return {**labels, "handler": labels["endpoint"], "status": f"{status[:1]}xx" if status else ""}


class HttpView(DerivedView):
    """``http_requests_total{handler,method,status="2xx"}`` and ``http_request_duration_seconds``."""

    native = NATIVE

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
            "http_request_duration_seconds",
            "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ",
            by_route,
            groups,
        )
        highr = histogram_by(native.get("fakeai_http_request_duration_seconds"), buckets.HTTP_DURATION_HIGHR, ())
        yield histogram_family(
            "http_request_duration_highr_seconds",
            "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ",
            (),
            highr,
        )
        for name, source, doc in SIZES:
            summary = SummaryMetricFamily(name, doc, labels=["handler"])
            counts = sum_by(native.get(source), source + "_count", ("handler",), _as_instrumentator)
            sums = sum_by(native.get(source), source + "_sum", ("handler",), _as_instrumentator)
            for key, count in sorted(counts.items()):
                summary.add_metric(list(key), int(count), sums.get(key, 0.0))
            yield summary
