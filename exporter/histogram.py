"""A prometheus-client ``Histogram`` collected as its series, with no sample made unless asked for.

prometheus-client's ``collect()`` of a labelled histogram builds a ``Sample`` per bucket in the child,
again in the parent (merging the series labels into a new dict), and a third time in ``Metric.add_sample``,
formatting every bound with ``floatToGoString`` on the way: most of a default server's scrape, whose
native histograms hold some 3,000 bucket samples. ``SeriesHistogram.collect()`` reads each child's
buckets once into a ``Reading``: ``exporter.textformat`` writes the text format from its series, and
``exporter.views.aggregate`` regroups them, neither making a sample. Any other reader of ``samples``
(another exposition format, a test) gets exactly what ``Histogram.collect()`` gives (names, labels in the
same order, values, exemplars, ``_created``), made then, with each series' label dicts made once and
reused by every later scrape. The dicts are shared between scrapes: readers copy a sample's labels before
changing them (as every reader here does).

It reads prometheus-client internals (``_metrics``, ``_buckets``, ``_sum``, ``_created``,
``_upper_bounds``, the module's ``_use_created``); ``tests/exporter/test_histogram.py`` holds it to
``Histogram.collect()`` for the same observations, so an upgrade that changes them fails CI.
"""

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from prometheus_client import Histogram
from prometheus_client import metrics as client_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString
from prometheus_client.values import MutexValue

SeriesLabels = tuple[list[dict[str, str]], dict[str, str]]
"""A histogram series' label dicts: each bucket's (``le`` last), then the series' own."""


def _read(value: Any) -> float:
    # The lock of an in-process value guards writes from other threads; fakeai writes on the loop's.
    return float(value._value) if value.__class__ is MutexValue else float(value.get())


def _exemplar(value: Any) -> Any:
    return value._exemplar if value.__class__ is MutexValue else value.get_exemplar()


@dataclass(slots=True)
class Series:
    """One labelled child as read at one instant: the cumulative count at each bound, +Inf last."""

    values: tuple[str, ...]
    cumulative: list[float]
    total: float
    created: float
    child: Histogram
    """Its exemplars are read from it if its samples are made (fakeai records none; the format fakeai
    writes, text 0.0.4, has none)."""


class SeriesHistogram(Histogram):
    def read(self) -> list[Series]:
        """Every labelled child's counts, read once."""
        with self._lock:
            children = cast(list[tuple[tuple[str, ...], Histogram]], list(self._metrics.items()))
        read = []
        for values, child in children:
            if child._sum.__class__ is MutexValue:  # see _read: one attribute per bucket, no call
                counts = [bucket._value for bucket in child._buckets]
            else:
                counts = [bucket.get() for bucket in child._buckets]
            read.append(Series(values, list(itertools.accumulate(counts)), _read(child._sum), child._created, child))
        return read

    def series_labels(self, values: tuple[str, ...]) -> SeriesLabels:
        """A series' label dicts, each bucket's (``le`` last) and its own, made once for every scrape."""
        cache: dict[tuple[str, ...], SeriesLabels] | None = self.__dict__.get("_series_labels")
        if cache is None:
            cache = self.__dict__["_series_labels"] = {}
        labels = cache.get(values)
        if labels is None:
            own = dict(zip(self._labelnames, values, strict=True))
            by_bound = [{**own, "le": floatToGoString(b)} for b in self._upper_bounds]  # type: ignore[no-untyped-call]
            labels = cache[values] = (by_bound, own)
        return labels

    def samples_of(self, series: list[Series], positions: Sequence[int] | None = None) -> list[Sample]:
        """The family's samples, as ``Histogram.collect()`` gives them; with ``positions``, only the
        buckets at those indices of the bounds (+Inf is the last index)."""
        samples: list[Sample] = []
        add = samples.append
        name = self._name
        bucket_name, count_name, sum_name, created_name = (name + s for s in ("_bucket", "_count", "_sum", "_created"))
        has_sum = self._upper_bounds[0] >= 0
        with_created = client_metrics._use_created
        every = range(len(self._upper_bounds))
        for one in series:
            by_bound, own = self.series_labels(one.values)
            buckets = one.child._buckets
            for index in every if positions is None else positions:
                add(Sample(bucket_name, by_bound[index], one.cumulative[index], None, _exemplar(buckets[index])))
            add(Sample(count_name, own, one.cumulative[-1], None, None))
            if has_sum:
                add(Sample(sum_name, own, one.total, None, None))
            if with_created:
                add(Sample(created_name, own, one.created, None, None))
        return samples

    def collect(self) -> Iterable[Metric]:
        if not self._is_parent():  # type: ignore[no-untyped-call]
            return super().collect()
        return [Reading(self, self.read())]


class Reading(Metric):
    """A ``SeriesHistogram`` family as read at one instant, kept as its series: its samples are made
    only when something reads them. ``exporter.textformat`` writes it from its series, and
    ``exporter.views.aggregate`` regroups them, neither making a sample. With ``positions``, the family
    as exposed: only the buckets at those indices of the bounds (``exporter.kept_bounds``)."""

    def __init__(
        self, histogram: SeriesHistogram, series: list[Series], positions: Sequence[int] | None = None
    ) -> None:
        super().__init__(histogram._name, histogram._documentation, "histogram", histogram._unit)
        self.histogram = histogram
        self.series = series
        self.positions = positions
        self.labelnames: tuple[str, ...] = tuple(histogram._labelnames)
        self.bounds: tuple[float, ...] = tuple(histogram._upper_bounds)
        self._samples: list[Sample] | None = None

    def only(self, keep: Callable[[Mapping[str, str]], bool]) -> "Reading":
        """The same reading with only the series whose labels ``keep`` accepts."""
        series = [one for one in self.series if keep(self.histogram.series_labels(one.values)[1])]
        return Reading(self.histogram, series, self.positions)

    def entire(self) -> "Reading":
        """The same reading with every bound it records."""
        return self if self.positions is None else Reading(self.histogram, self.series)

    @property
    def made(self) -> bool:
        """Whether its samples were made (then they, possibly extended, are the family)."""
        return self._samples is not None

    @property
    def samples(self) -> list[Sample]:
        if self._samples is None:
            self._samples = self.histogram.samples_of(self.series, self.positions)
        return self._samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._samples = value  # Metric.__init__ sets an empty list, then __init__ sets None: made when read
