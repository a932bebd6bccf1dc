"""Pure aggregation of collected native samples, grouped by a chosen set of labels."""

import functools
import operator
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from exporter.histogram import Reading, SeriesLabels
from exporter.kept_bounds import whole

FamilySource = Callable[[Collection[str]], Iterable[Metric]]
"""Native families by name: a view asks only for the families it reads."""
GroupKey = tuple[str, ...]

SCRAPED: ContextVar[list[Metric] | None] = ContextVar("fakeai_scraped_families", default=None)
"""The families a scrape in progress has collected so far (``exporter.exposition`` sets it)."""


def reusing_scrape(source: FamilySource) -> FamilySource:
    """``source``, except within a scrape: then the families the scrape has already collected, and from
    ``source`` only the rest. The native families are registered before the views, so a full scrape reads
    them once, and every view of that scrape derives from the same values the scrape exposes."""

    def read(names: Collection[str]) -> Iterable[Metric]:
        seen = SCRAPED.get()
        if seen is None:
            return source(names)
        # As collected for the view, with the bounds kept for it that the exposition hides; the families
        # recorded for views alone (never exposed, so never in the scrape) are read now.
        found = [whole(metric) for metric in seen if metric.name in names]
        missing = set(names) - {metric.name for metric in found}
        return [*found, *source(missing)] if missing else found

    return read


def only_models(source: FamilySource, models: Collection[str] | None) -> FamilySource:
    """``source``, keeping only the samples of ``models`` (and those with no model at all) when a view
    speaks for some of the served models; ``None``: every model, ``source`` itself. The scrape's own
    families are copied, never changed."""
    if models is None:
        return source
    allowed = frozenset(models)

    def served(labels: Mapping[str, str]) -> bool:
        return "model" not in labels or labels["model"] in allowed

    def read(names: Collection[str]) -> Iterable[Metric]:
        return [only_series(metric, served) for metric in source(names)]

    return read


def only_series(family: Metric, keep: Callable[[Mapping[str, str]], bool]) -> Metric:
    """A copy of ``family`` with only the series whose labels ``keep`` accepts (a histogram read as its
    series stays one, its samples unmade)."""
    if isinstance(family, Reading) and not family.made:
        return family.only(keep)
    copy = Metric(family.name, family.documentation, family.type, family.unit)
    copy.samples = [s for s in family.samples if keep(s.labels)]
    return copy


def index_families(metrics: Iterable[Metric]) -> dict[str, Metric]:
    """Families by name; several collectors may yield pieces of one family (multiprocess), so merge."""
    by_name: dict[str, Metric] = {}
    for metric in metrics:
        existing = by_name.get(metric.name)
        if existing is None:
            by_name[metric.name] = metric
        else:
            existing.samples.extend(metric.samples)
    return by_name


def engine_labels(family: Metric | None) -> tuple[str, ...]:
    """``("engine",)`` when a native family carries the engine label (several engines per model)."""
    if family is not None and family.samples and "engine" in family.samples[0].labels:
        return ("engine",)
    return ()


def sum_by(
    family: Metric | None,
    sample_name: str,
    by: Sequence[str],
    rename: Callable[[Mapping[str, str]], Mapping[str, str]] | None = None,
) -> dict[GroupKey, float]:
    """Sum the values of samples named ``sample_name`` grouped by the ``by`` labels."""
    totals: dict[GroupKey, float] = defaultdict(float)
    if family is None:
        return totals
    if (
        isinstance(family, Reading)
        and not family.made
        and sample_name in (family.name + "_count", family.name + "_sum")
    ):
        count = sample_name.endswith("_count")
        for series in family.series:
            labels: Mapping[str, str] = dict(zip(family.labelnames, series.values, strict=True))
            labels = rename(labels) if rename else labels
            totals[tuple(labels[k] for k in by)] += series.cumulative[-1] if count else series.total
        return totals
    for sample in family.samples:
        if sample.name != sample_name:
            continue
        labels = rename(sample.labels) if rename else sample.labels
        totals[tuple(labels[k] for k in by)] += sample.value
    return totals


@dataclass
class HistogramGroup:
    """One group's cumulative counts at selected bounds, plus +Inf, sum and count."""

    bounds: Sequence[float]
    cumulative: list[float] = field(default_factory=list)
    total: float = 0.0
    count: float = 0.0

    def __post_init__(self) -> None:
        self.cumulative = [0.0] * len(self.bounds)


@functools.lru_cache(maxsize=256)
def _le_positions(bounds: tuple[float, ...]) -> dict[str, int]:
    """Each bound's index by its ``le`` label, as prometheus-client writes every bound (``floatToGoString``)."""
    return {floatToGoString(float(b)): i for i, b in enumerate(bounds)}  # type: ignore[no-untyped-call]


@functools.lru_cache(maxsize=256)
def _indices(recorded: tuple[float, ...], selected: tuple[float, ...]) -> list[int]:
    where = {float(b): i for i, b in enumerate(recorded)}
    return [where[float(b)] for b in selected]


def _regroup_series(
    reading: Reading,
    bounds: Sequence[float],
    by: Sequence[str],
    rename: Callable[[Mapping[str, str]], Mapping[str, str]] | None,
) -> dict[GroupKey, HistogramGroup]:
    """``histogram_by`` from a reading's series rather than its samples: the same groups."""
    groups: dict[GroupKey, HistogramGroup] = {}
    indices = _indices(reading.bounds, tuple(bounds))
    pick = operator.itemgetter(*indices) if indices else None  # of several indices a tuple; of one, the item
    has_sum = reading.bounds[0] >= 0  # as its samples: no _sum below a negative bound
    for series in reading.series:
        key: GroupKey = ()
        if by or rename is not None:
            labels: Mapping[str, str] = dict(zip(reading.labelnames, series.values, strict=True))
            labels = rename(labels) if rename else labels
            key = tuple(labels[k] for k in by)
        group = groups.get(key)
        if group is None:
            group = groups[key] = HistogramGroup(bounds)
        if pick is not None:
            picked = pick(series.cumulative)
            group.cumulative = list(map(operator.add, group.cumulative, picked if len(indices) > 1 else (picked,)))
        if has_sum:
            group.total += series.total
        group.count += series.cumulative[-1]
    return groups


def histogram_by(
    family: Metric | None,
    bounds: Sequence[float],
    by: Sequence[str],
    rename: Callable[[Mapping[str, str]], Mapping[str, str]] | None = None,
) -> dict[GroupKey, HistogramGroup]:
    """Regroup a histogram family at ``bounds``, which must all be bounds of the family itself.

    Because every selected bound is a native bound, each selected cumulative count is exact.
    """
    groups: dict[GroupKey, HistogramGroup] = {}
    if family is None:
        return groups
    if isinstance(family, Reading) and not family.made:
        return _regroup_series(family, bounds, by, rename)
    position = _le_positions(tuple(bounds))
    bucket, total, count = family.name + "_bucket", family.name + "_sum", family.name + "_count"
    one_group = not by and rename is None  # one group of every series: no key to read from each sample
    for sample in family.samples:
        index = None
        if sample.name == bucket:
            index = position.get(sample.labels["le"])
            if index is None:
                continue  # a bound this view does not expose: not worth grouping
        elif sample.name != total and sample.name != count:
            continue
        if one_group:
            key: GroupKey = ()
        else:
            labels = rename(sample.labels) if rename else sample.labels
            key = tuple(labels[k] for k in by)
        group = groups.get(key)
        if group is None:
            group = groups[key] = HistogramGroup(bounds)
        if index is not None:
            group.cumulative[index] += sample.value
        elif sample.name == total:
            group.total += sample.value
        else:
            group.count += sample.value
    return groups


@functools.lru_cache(maxsize=4096)
def series_labels(labels: tuple[str, ...], key: GroupKey, bounds: tuple[float, ...]) -> SeriesLabels:
    """One series' label dicts, each bucket's (``le`` last, +Inf included) and the series' own: made once
    for every later scrape (``HistogramMetricFamily.add_metric`` makes and formats them per scrape)."""
    series = dict(zip(labels, key, strict=True))
    by_bound = [{**series, "le": floatToGoString(b)} for b in bounds]  # type: ignore[no-untyped-call]
    return [*by_bound, {**series, "le": "+Inf"}], series


class GroupedHistogram(HistogramMetricFamily):
    """A derived histogram family kept as its groups. ``exporter.textformat`` writes its lines straight
    from them; its samples, exactly those ``HistogramMetricFamily.add_metric`` would make of each group
    (``tests/exporter/test_aggregate.py`` holds it to that), are made only when something reads them."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], groups: Mapping[GroupKey, HistogramGroup]
    ) -> None:
        super().__init__(name, documentation, labels=list(labels))
        self.labelnames = tuple(labels)
        self.groups = sorted(groups.items())
        self._samples: list[Sample] | None = None

    @property
    def samples(self) -> list[Sample]:
        if self._samples is None:
            self._samples = list(self._made())
        return self._samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._samples = value  # Metric.__init__ sets an empty list, then __init__ sets None: made when read

    def _made(self) -> Iterator[Sample]:
        bucket, count, total = self.name + "_bucket", self.name + "_count", self.name + "_sum"
        for key, group in self.groups:
            bounds = tuple(group.bounds)
            by_bucket, series = series_labels(self.labelnames, key, bounds)
            for bucket_labels, value in zip(by_bucket, [*group.cumulative, group.count], strict=True):
                yield Sample(bucket, bucket_labels, value, None, None)
            if not bounds or bounds[0] >= 0:  # as add_metric: no count and sum below a negative bound
                yield Sample(count, series, group.count, None)
                yield Sample(total, series, group.total, None)


def histogram_family(
    name: str, documentation: str, labels: Sequence[str], groups: Mapping[GroupKey, HistogramGroup]
) -> GroupedHistogram:
    """Each group a series; readers copy a sample's labels before changing them (the dicts are shared)."""
    return GroupedHistogram(name, documentation, labels, groups)


_Labelled = TypeVar("_Labelled", GaugeMetricFamily, CounterMetricFamily)


def _filled(family: _Labelled, values: Mapping[GroupKey, float]) -> _Labelled:
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def gauge_family(
    name: str, documentation: str, labels: Sequence[str], values: Mapping[GroupKey, float]
) -> GaugeMetricFamily:
    return _filled(GaugeMetricFamily(name, documentation, labels=list(labels)), values)


def counter_family(
    name: str, documentation: str, labels: Sequence[str], values: Mapping[GroupKey, float]
) -> CounterMetricFamily:
    """A counter family (exposed as ``name_total``, as prometheus-client names every counter)."""
    return _filled(CounterMetricFamily(name, documentation, labels=list(labels)), values)


class DerivedView:
    """A prometheus-client collector whose families are derived, at scrape time, from the native families
    named in ``native`` (the only ones it reads)."""

    native: Collection[str] = ()

    def __init__(self, source: FamilySource) -> None:
        self._source = source

    def describe(self) -> Iterator[Metric]:
        """Names only, so registration can detect clashes without reading the native families."""
        yield from self._families({})

    def collect(self) -> Iterator[Metric]:
        yield from self._families(index_families(self._source(self.native)))

    def _families(self, native: Mapping[str, Metric]) -> Iterator[Metric]:
        raise NotImplementedError


def bare_counter_family(
    name: str, documentation: str, values: Mapping[GroupKey, float], labels: Sequence[str] = ()
) -> Metric:
    """A counter whose samples are named as the family, with no ``_total``: what exporters other than
    prometheus-client write (llama.cpp's hand-written exposition, Rust's metrics-exporter-prometheus).
    ``exporter.textformat`` writes its ``# TYPE`` line under that same name."""
    family = Metric(name, documentation, "counter")
    for key, value in sorted(values.items()):
        family.add_sample(name, dict(zip(labels, key, strict=True)), value)
    return family
