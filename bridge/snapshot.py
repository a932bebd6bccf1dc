"""One sample of the registry: the wanted families' series, typed, keyed by their label sets."""

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from prometheus_client.metrics_core import Metric

LabelKey = tuple[tuple[str, str], ...]


def label_key(labels: dict[str, str]) -> LabelKey:
    return tuple(sorted(labels.items()))


@dataclass(frozen=True)
class Wanted:
    """The families a snapshot keeps, by the name they are registered under (counters without _total)."""

    counters: frozenset[str] = frozenset()
    gauges: frozenset[str] = frozenset()
    histograms: frozenset[str] = frozenset()

    def families(self) -> frozenset[str]:
        return self.counters | self.gauges | self.histograms

    def sample_names(self) -> set[str]:
        names = {c + "_total" for c in self.counters} | set(self.gauges)
        for h in self.histograms:
            names |= {h + "_bucket", h + "_sum", h + "_count"}
        return names


Histogram = np.ndarray
"""One histogram series' numbers in one float array: the cumulative count at each bound (``+Inf`` last),
then the sum, then the count. Its bounds are kept beside it, in ``Snapshot.bounds``.

One array, for the garbage collector: the ring keeps hundreds of snapshots of dozens of series, sampled
every second. An array is no container the collector walks, and neither is a dict that holds only arrays
and label keys it has seen: a snapshot's series add nothing to its lists. As an instance of a class, a
series stayed on them for good (a full collection walked 14,000 of them on a ring of 332 snapshots); as a
tuple of arrays and floats, each was one more allocation toward the next young collection (45 a sample)
and kept the dict holding it on the lists until a full collection (``tests/bridge/test_snapshot_gc.py``,
``benchmarks/gc_pauses.py``)."""


def histogram(cumulative: np.ndarray, total: float, count: float) -> Histogram:
    """A series' numbers from its cumulative counts (``+Inf`` last), sum and count."""
    numbers = np.empty(len(cumulative) + 2)
    numbers[:-2] = cumulative
    numbers[-2] = total
    numbers[-1] = count
    return numbers


@dataclass
class Snapshot:
    timestamp: float
    values: dict[str, dict[LabelKey, float]] = field(default_factory=dict)
    """Counters (by family name, without _total) and gauges."""
    histograms: dict[str, dict[LabelKey, Histogram]] = field(default_factory=dict)
    bounds: dict[str, dict[LabelKey, np.ndarray]] = field(default_factory=dict)
    """Each histogram series' bucket bounds (``+Inf`` last), by family and label key. Never changed once
    made: snapshots whose series are the same share one dict (``ChildrenSource``)."""
    epoch: int = 0
    """How many times a counter went back (a restart, a removed series) before this snapshot, as the
    sampler saw them: two snapshots of one epoch differ by increases only."""

    def histogram_series(self, name: str) -> Iterator[tuple[LabelKey, np.ndarray, np.ndarray, float, float]]:
        """Each series of histogram ``name``: its label key, bounds, cumulative counts, sum and count."""
        bounds = self.bounds.get(name, {})
        for key, numbers in self.histograms.get(name, {}).items():
            yield key, bounds[key], numbers[:-2], float(numbers[-2]), float(numbers[-1])


def went_back(before: Snapshot, after: Snapshot, counters: Iterable[str]) -> bool:
    """Whether any counter or histogram series of ``before`` is missing from ``after`` or lower there.

    Between two snapshots of one epoch every series only grew, so a window's increase summed over
    series equals the sum at its end minus the sum at its start: what lets windows share work.
    """
    for name in counters:
        later_values = after.values.get(name, {})
        for key, value in before.values.get(name, {}).items():
            later = later_values.get(key)
            if later is None or later < value:
                return True
    for name, series in before.histograms.items():
        later_histograms = after.histograms.get(name, {})
        for key, numbers in series.items():
            now = later_histograms.get(key)
            if now is None:
                return True
            if now is numbers:
                continue
            # The cumulative counts and the count; not the sum, which negative observations lower.
            if len(now) != len(numbers) or now[-1] < numbers[-1] or (now[:-2] < numbers[:-2]).any():
                return True
    return False


class Interner:
    """Hands out one shared object for equal label keys and bucket bounds, so the hundreds of snapshots a
    ring keeps share them instead of each holding copies (they were most of a snapshot's memory).
    Bounded: a source whose label values churn gets its table emptied, never grown without end."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._keys: dict[LabelKey, LabelKey] = {}
        self._bounds: dict[tuple[float, ...], np.ndarray] = {}

    def key(self, labels: dict[str, str]) -> LabelKey:
        key = label_key(labels)
        shared = self._keys.get(key)
        if shared is None:
            if len(self._keys) >= self.limit:
                self._keys.clear()
            shared = self._keys[key] = key
        return shared

    def bounds(self, values: tuple[float, ...]) -> np.ndarray:
        shared = self._bounds.get(values)
        if shared is None:
            if len(self._bounds) >= self.limit:
                self._bounds.clear()
            shared = self._bounds[values] = np.array(values)
            shared.flags.writeable = False  # shared by every snapshot: nobody may change it
        return shared


def take(families: Iterable[Metric], wanted: Wanted, timestamp: float, interner: Interner | None = None) -> Snapshot:
    """Turn collected families (from a registry or a parsed scrape) into a snapshot of what is wanted."""
    interner = interner or Interner()
    snapshot = Snapshot(timestamp, {name: {} for name in wanted.counters | wanted.gauges})
    counter_samples = {c + "_total": c for c in wanted.counters}
    partial: dict[str, dict[LabelKey, tuple[list[tuple[float, float]], list[float]]]] = {
        h: {} for h in wanted.histograms
    }
    suffixes = ("_bucket", "_sum", "_count")
    for family in families:
        for sample in family.samples:
            name = sample.name
            if name in counter_samples:
                snapshot.values[counter_samples[name]][interner.key(sample.labels)] = sample.value
            elif name in wanted.gauges:
                snapshot.values[name][interner.key(sample.labels)] = sample.value
            else:
                for suffix in suffixes:
                    base = name[: -len(suffix)]
                    if name.endswith(suffix) and base in partial:
                        labels = dict(sample.labels)
                        le = labels.pop("le", None)
                        buckets, totals = partial[base].setdefault(interner.key(labels), ([], [0.0, 0.0]))
                        if suffix == "_bucket" and le is not None:
                            buckets.append((float(le), sample.value))
                        elif suffix == "_sum":
                            totals[0] = sample.value
                        else:
                            totals[1] = sample.value
                        break
    for name, series in partial.items():
        built: dict[LabelKey, Histogram] = {}
        bounds: dict[LabelKey, np.ndarray] = {}
        for key, (buckets, (total, count)) in series.items():
            buckets.sort()
            if not buckets or not math.isinf(buckets[-1][0]):
                buckets.append((math.inf, count))
            bounds[key] = interner.bounds(tuple(b for b, _ in buckets))
            built[key] = histogram(np.array([c for _, c in buckets], dtype=float), total, count)
        snapshot.histograms[name] = built
        snapshot.bounds[name] = bounds
    return snapshot
