"""Read metrics the way a test asserts on them: by name and labels, from a scrape or a registry."""

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

SeriesKey = tuple[str, frozenset[tuple[str, str]]]


def _describe(name: str, labels: Mapping[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


@dataclass(frozen=True)
class HistogramValue:
    """One histogram summed over the matching series: cumulative ``buckets`` by upper bound, ``count``, ``sum``."""

    buckets: dict[float, float]
    count: float
    sum: float


@dataclass(frozen=True)
class MetricsSnapshot:
    """Every sample of one scrape, keyed by sample name and label set."""

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
    import httpx

    response = httpx.get(base_url + "/metrics", timeout=timeout)
    response.raise_for_status()
    return MetricsSnapshot.from_text(response.text)


@dataclass
class Delta:
    """What changed between the start and the end of a ``with metrics.delta() as d:`` block."""

    before: MetricsSnapshot
    after: MetricsSnapshot | None = None

    def value(self, name: str, **labels: str) -> float:
        assert self.after is not None, "read a delta after its with-block"
        return self.after.value(name, **labels) - self.before.value(name, **labels)

    def histogram(self, name: str, **labels: str) -> HistogramValue:
        assert self.after is not None, "read a delta after its with-block"
        a, b = self.after.histogram(name, **labels), self.before.histogram(name, **labels)
        buckets = {le: v - b.buckets.get(le, 0.0) for le, v in a.buckets.items()}
        return HistogramValue(buckets, a.count - b.count, a.sum - b.sum)


@dataclass
class Metrics:
    """Assertions on a server's metrics: ``value``, ``histogram`` and ``delta()``.

    Built on a URL (``Metrics.of_server(url)``, reads /metrics) or on a ``CollectorRegistry`` in the
    test's own process (``Metrics.of_registry(registry)``).
    """

    read: Callable[[], MetricsSnapshot]
    _known: set[str] = field(default_factory=set)

    @classmethod
    def of_server(cls, base_url: str) -> "Metrics":
        return cls(lambda: scrape(base_url))

    @classmethod
    def of_registry(cls, registry: CollectorRegistry) -> "Metrics":
        return cls(lambda: MetricsSnapshot.from_families(registry.collect()))

    def snapshot(self) -> MetricsSnapshot:
        return self.read()

    def _checked(self, snapshot: MetricsSnapshot, name: str) -> MetricsSnapshot:
        names = snapshot.names()
        if name not in names and name + "_count" not in names:
            close = sorted(n for n in names if n.split("_")[:2] == name.split("_")[:2])[:8]
            raise KeyError(f"no metric named {name!r}" + (f"; similar: {', '.join(close)}" if close else ""))
        return snapshot

    def value(self, name: str, **labels: str) -> float:
        """Current value of ``name`` (a sample name such as ``fakeai_requests_total``), summed over the
        series whose labels include ``labels``."""
        return self._checked(self.read(), name).value(name, **labels)

    def histogram(self, name: str, **labels: str) -> HistogramValue:
        """Cumulative buckets, count and sum of histogram ``name`` (without ``_bucket``)."""
        return self._checked(self.read(), name).histogram(name, **labels)

    @contextlib.contextmanager
    def delta(self) -> Iterator[Delta]:
        """``with metrics.delta() as d: ...`` then ``d.value(name, **labels)``: the change inside the block."""
        change = Delta(self.read())
        yield change
        change.after = self.read()

    def assert_value(self, name: str, expected: float, *, delta: Delta | None = None, **labels: str) -> None:
        """Assert a value (or a delta's change) with a message naming the metric and labels."""
        got = delta.value(name, **labels) if delta is not None else self.value(name, **labels)
        if not math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9):
            what = "changed by" if delta is not None else "is"
            raise AssertionError(f"{_describe(name, labels)} {what} {got:g}, expected {expected:g}")
