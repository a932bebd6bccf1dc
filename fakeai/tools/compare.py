"""What a client measured against what the server recorded for the same requests, said as honestly as a
histogram allows.

A histogram knows only which bucket a quantile's rank falls in: the server's side of a quantile is that
bucket, ``(lo, hi]``, and ``histogram_quantile``'s estimate inside it (a linear guess, not a measurement).
A client value agrees when it falls in the bucket, or within max(2 ms, 5%) of one of its bounds, where
the neighbouring bucket agrees too (a value that close to a bound is on either side of it by a client's
own scheduling noise). Counts have no such slack: requests by status, prompt and completion tokens agree
exactly or not at all.
"""

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bridge.reader import HistogramValue, MetricsSnapshot
from fakeai.traffic.client import Timing

QUANTILES = (0.5, 0.9, 0.99)
SERVER_FAMILIES = {
    "ttft": "fakeai_time_to_first_token_seconds",
    "itl": "fakeai_inter_token_latency_seconds",
    "e2e": "fakeai_request_duration_seconds",
}


def bucket_of(histogram: HistogramValue, q: float) -> tuple[float, float]:
    """The ``(lower, upper]`` bucket holding the q-quantile's rank, as ``histogram_quantile`` finds it."""
    rank = q * histogram.count
    lower = 0.0
    for upper, cumulative in histogram.buckets.items():
        if cumulative >= rank:
            return lower, upper
        lower = upper
    raise ValueError("rank beyond the +Inf bucket")


def agrees(value: float, bucket: tuple[float, float]) -> bool:
    """In the bucket, or within max(2 ms, 5%) of one of its bounds."""
    lower, upper = bucket
    return lower - max(0.002, 0.05 * lower) < value <= upper + max(0.002, 0.05 * upper)


@dataclass(frozen=True)
class QuantileRow:
    measure: str
    """``ttft``, ``itl`` or ``e2e``."""
    q: float
    client: float | None
    """Seconds; None when the client saw no such value (no streamed token, say)."""
    bucket: tuple[float, float] | None
    estimate: float | None
    """The server's ``histogram_quantile``, seconds."""

    @property
    def agrees(self) -> bool | None:
        if self.client is None or self.bucket is None:
            return None
        return agrees(self.client, self.bucket)


@dataclass(frozen=True)
class CountRow:
    name: str
    client: int
    server: int

    @property
    def agrees(self) -> bool:
        return self.client == self.server


@dataclass(frozen=True)
class Comparison:
    quantiles: list[QuantileRow]
    counts: list[CountRow]

    def disagreements(self, checked: Iterable[float]) -> list[str]:
        """What disagrees, each as a phrase: the quantiles in ``checked`` and every count."""
        qs = set(checked)
        found = [
            f"{row.measure} p{row.q * 100:g}: client {row.client * 1000:.1f} ms outside the server's bucket "
            f"({row.bucket[0] * 1000:g}, {row.bucket[1] * 1000:g}] ms"
            for row in self.quantiles
            if row.q in qs and row.agrees is False and row.client is not None and row.bucket is not None
        ]
        found += [f"{row.name}: client {row.client}, server {row.server}" for row in self.counts if not row.agrees]
        return found


def measured(timings: Sequence[Timing]) -> dict[str, list[float]]:
    """The client's latencies: TTFT and ITL of answered streams, end-to-end of every answered request."""
    answered = [t for t in timings if t.status == 200]
    return {
        "ttft": [t.ttft for t in answered if t.ttft is not None],
        "itl": [gap for t in answered for gap in t.itl],
        "e2e": [t.e2e for t in answered],
    }


def client_statuses(timings: Sequence[Timing]) -> Counter[int]:
    return Counter(t.status for t in timings if t.error is None)


def server_statuses(
    before: MetricsSnapshot, after: MetricsSnapshot, model: str, statuses: Iterable[int]
) -> Counter[int]:
    """Responses by status on the server, as its client sees them: a stream cut by an error event after its
    200 is a 200 to the server and a failure (500) to the client."""
    counts: Counter[int] = Counter()
    for status in statuses:
        labels = {"model": model, "status": str(status)}
        counts[status] = round(
            after.value("fakeai_responses_total", **labels) - before.value("fakeai_responses_total", **labels)
        )
    cut = round(
        after.value("fakeai_streams_total", model=model, outcome="failed")
        - before.value("fakeai_streams_total", model=model, outcome="failed")
    )
    counts[200] -= cut
    counts[500] += cut
    return +counts  # drop zero entries


def compare(timings: Sequence[Timing], before: MetricsSnapshot, after: MetricsSnapshot, model: str) -> Comparison:
    rows = []
    for measure, values in measured(timings).items():
        histogram = after.histogram(SERVER_FAMILIES[measure], model=model) - before.histogram(
            SERVER_FAMILIES[measure], model=model
        )
        for q in QUANTILES:
            client = float(np.quantile(values, q)) if values else None
            bucket = bucket_of(histogram, q) if histogram.count else None
            estimate = histogram.quantile(q) if histogram.count else None
            rows.append(
                QuantileRow(measure, q, client, bucket, None if estimate is None or math.isnan(estimate) else estimate)
            )
    statuses = client_statuses(timings)
    server = server_statuses(before, after, model, {*statuses, 200, 500})
    counts = [
        CountRow(f"responses {status}", statuses[status], server[status]) for status in sorted({*statuses, *server})
    ]

    def delta(name: str) -> int:
        return round(after.value(name, model=model) - before.value(name, model=model))

    counts += [
        CountRow("requests", len(timings), delta("fakeai_requests_total")),
        CountRow("prompt tokens", sum(t.prompt_tokens for t in timings), delta("fakeai_prompt_tokens_total")),
        CountRow(
            "completion tokens", sum(t.completion_tokens for t in timings), delta("fakeai_completion_tokens_total")
        ),
    ]
    return Comparison(rows, counts)
