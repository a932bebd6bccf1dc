"""Assert on metrics by name and labels, from a server's /metrics or a registry in the test's process.

Reading is ``bridge.reader``'s (the one reader of an exposition); this module adds what a test needs
on top: deltas around a block and assertions whose message names the series.
"""

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from bridge.reader import HistogramValue, MetricsSnapshot, scrape


def _describe(name: str, labels: Mapping[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


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
        return self.after.histogram(name, **labels) - self.before.histogram(name, **labels)


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
