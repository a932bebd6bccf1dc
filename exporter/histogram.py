"""A prometheus-client ``Histogram`` whose ``collect()`` builds each bucket sample once, not three times.

prometheus-client's ``collect()`` of a labelled histogram builds a ``Sample`` per bucket in the child,
again in the parent (merging the series labels into a new dict), and a third time in ``Metric.add_sample``,
formatting every bound with ``floatToGoString`` on the way: most of a default server's scrape, whose
native histograms hold some 3,000 bucket samples. ``LabelCachingHistogram`` yields the very same family
(names, labels in the same order, values, ``_created``) from one ``Sample`` per bucket, with each series'
label dicts made once and reused by every later scrape. The dicts are shared between scrapes: readers
copy a sample's labels before changing them (as every reader here does).

It reads prometheus-client internals (``_metrics``, ``_buckets``, ``_sum``, ``_created``,
``_upper_bounds``, the module's ``_use_created``); ``tests/exporter/test_histogram.py`` holds it to
``Histogram.collect()`` for the same observations, so an upgrade that changes them fails CI.
"""

from collections.abc import Iterable
from typing import Any, cast

from prometheus_client import Histogram
from prometheus_client import metrics as client_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString
from prometheus_client.values import MutexValue

_SeriesLabels = tuple[list[dict[str, str]], dict[str, str]]


def _read(value: Any) -> float:
    # The lock of an in-process value guards writes from other threads; fakeai writes on the loop's.
    return float(value._value) if value.__class__ is MutexValue else float(value.get())


def _exemplar(value: Any) -> Any:
    return value._exemplar if value.__class__ is MutexValue else value.get_exemplar()


class LabelCachingHistogram(Histogram):
    def collect(self) -> Iterable[Metric]:
        if not self._is_parent():  # type: ignore[no-untyped-call]
            return super().collect()
        cache: dict[tuple[str, ...], _SeriesLabels] | None = self.__dict__.get("_series_labels")
        if cache is None:
            cache = self.__dict__["_series_labels"] = {}
        metric: Metric = self._get_metric()  # type: ignore[no-untyped-call]
        add = metric.samples.append
        name = self._name
        bucket_name, count_name, sum_name, created_name = (name + s for s in ("_bucket", "_count", "_sum", "_created"))
        has_sum = self._upper_bounds[0] >= 0
        with_created = client_metrics._use_created
        with self._lock:
            children = cast(list[tuple[tuple[str, ...], Histogram]], list(self._metrics.items()))
        for values, child in children:
            labels = cache.get(values)
            if labels is None:
                series = dict(zip(self._labelnames, values, strict=True))
                bounds = [{**series, "le": floatToGoString(b)} for b in self._upper_bounds]  # type: ignore[no-untyped-call]
                labels = cache[values] = (bounds, series)
            bucket_labels, series_labels = labels
            total = 0.0
            for bucket, bucket_label in zip(child._buckets, bucket_labels, strict=True):
                total += _read(bucket)
                add(Sample(bucket_name, bucket_label, total, None, _exemplar(bucket)))
            add(Sample(count_name, series_labels, total, None, None))
            if has_sum:
                add(Sample(sum_name, series_labels, _read(child._sum), None, None))
            if with_created:
                add(Sample(created_name, series_labels, child._created, None, None))
        return [metric]
