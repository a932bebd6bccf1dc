"""The one reader of a Prometheus exposition: fetch ``/metrics`` and look samples up by name and labels.

The stream's scrape source fetches through it; ``fakeai.testing`` (assertions) and ``fakeai load
--compare`` (server-side quantiles) read through it. Pure apart from ``fetch_text``; imports no fakeai.
"""

import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from bridge.math import histogram_quantile

SeriesKey = tuple[str, frozenset[tuple[str, str]]]
TEXT_FORMAT = "text/plain; version=0.0.4"


def fetch_text(url: str, timeout: float = 10.0) -> str:
    """GET a text exposition, as Prometheus would (the classic text format, no compression)."""
    request = urllib.request.Request(url, headers={"Accept": TEXT_FORMAT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text: str = response.read().decode("utf-8")
        return text


@dataclass(frozen=True)
class HistogramValue:
    """One histogram summed over the matching series: cumulative ``buckets`` by upper bound, ``count``, ``sum``."""

    buckets: dict[float, float]
    count: float
    sum: float

    def __sub__(self, earlier: "HistogramValue") -> "HistogramValue":
        """The observations made between ``earlier`` and this reading of the same histogram."""
        buckets = {le: v - earlier.buckets.get(le, 0.0) for le, v in self.buckets.items()}
        return HistogramValue(buckets, self.count - earlier.count, self.sum - earlier.sum)

    def quantile(self, q: float) -> float:
        """PromQL's ``histogram_quantile(q, ...)`` over these buckets (NaN when there are none)."""
        bounds = np.array(list(self.buckets), dtype=float)
        return histogram_quantile(q, bounds, np.array(list(self.buckets.values()), dtype=float))


@dataclass(frozen=True)
class MetricsSnapshot:
    """Every sample of one read, keyed by sample name and label set."""

    samples: Mapping[SeriesKey, float]

    @classmethod
    def from_families(cls, families: Iterable[Metric]) -> "MetricsSnapshot":
        return cls({(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples})

    @classmethod
    def from_text(cls, text: str) -> "MetricsSnapshot":
        return cls.from_families(text_string_to_metric_families(text))

    def value(self, name: str, **labels: str) -> float:
        """The sum over every series of ``name`` whose labels include ``labels`` (0 when none match)."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def histogram(self, name: str, **labels: str) -> HistogramValue:
        """Histogram ``name`` (without ``_bucket``) summed over the series whose labels include ``labels``."""
        wanted = set(labels.items())
        buckets: dict[float, float] = {}
        for (n, ls), v in self.samples.items():
            if n == name + "_bucket" and wanted <= ls:
                bound = float(dict(ls)["le"])
                buckets[bound] = buckets.get(bound, 0.0) + v
        return HistogramValue(
            dict(sorted(buckets.items())), self.value(name + "_count", **labels), self.value(name + "_sum", **labels)
        )

    def names(self) -> set[str]:
        return {n for n, _ in self.samples}

    def series(self, name: str | None = None) -> set[SeriesKey]:
        return {key for key in self.samples if name is None or key[0] == name}

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(ls)[label] for n, ls in self.samples if n == name and label in dict(ls)}


def scrape(base_url: str, timeout: float = 10.0) -> MetricsSnapshot:
    """Read ``base_url``'s ``/metrics``."""
    return MetricsSnapshot.from_text(fetch_text(base_url.rstrip("/") + "/metrics", timeout))
