"""Native histograms expose their own bucket bounds, whatever other bounds they keep for dialect views.

A dialect's view (SGLang's, TensorRT-LLM's, TGI's, Dynamo's) selects its engine's bounds out of a native
histogram, exactly, only if the native histogram records at those bounds too: so the native family keeps
them (``BucketFamilies.kept``). Exposed, they would make the ``fakeai_*`` families change with the
dialects served (TGI alone adds some 1,700 bucket lines to a one-model server). ``HiddenBounds`` wraps a
collector and drops the bucket samples at the kept bounds from what it yields; the families the views
read (``whole``) keep them. A cumulative bucket count is exact whichever bounds lie below it, so
the exposed buckets are those of a histogram recorded at its own bounds alone.
"""

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from exporter.histogram import Reading, SeriesHistogram


class Shown(Metric):
    """A family as it is exposed, and the whole family it was cut from (what dialect views read)."""

    def __init__(self, whole: Metric, samples: list[Sample]) -> None:
        super().__init__(whole.name, whole.documentation, whole.type, whole.unit)
        self.samples = samples
        self.whole = whole


def whole(metric: Metric) -> Metric:
    """The family with every bound it keeps."""
    if isinstance(metric, Reading):
        return metric.entire()
    return metric.whole if isinstance(metric, Shown) else metric


def hidden_labels(bounds: Sequence[float], exposed: Sequence[float]) -> frozenset[str]:
    """The ``le`` values of the bounds in ``bounds`` that are not in ``exposed``."""
    shown = {float(b) for b in exposed}
    return frozenset(floatToGoString(b) for b in bounds if float(b) not in shown)  # type: ignore[no-untyped-call]


class HiddenBounds(Collector):
    """``collector``'s families, less the bucket samples at the hidden bounds of each family named in
    ``hidden`` (family name -> ``le`` values) and less the ``families`` recorded for dialect views alone
    (``NativeFamilies.hidden_families``); other families pass through unchanged."""

    def __init__(
        self, collector: Collector, hidden: Mapping[str, frozenset[str]], families: Collection[str] = ()
    ) -> None:
        self._collector = collector
        self._hidden = dict(hidden)
        self._families = frozenset(families)
        self._positions: dict[str, list[int]] = {}

    def describe(self) -> Iterable[Metric]:
        describe = getattr(self._collector, "describe", None)
        return describe() if describe is not None else []

    def collect(self) -> Iterator[Metric]:
        if isinstance(self._collector, SeriesHistogram):
            yield self._read(self._collector)
            return
        for metric in self._collector.collect():
            if metric.name in self._families:
                continue
            hidden = self._hidden.get(metric.name)
            if hidden is None:
                yield metric
                continue
            bucket = metric.name + "_bucket"
            shown = [s for s in metric.samples if s.name != bucket or s.labels["le"] not in hidden]
            yield Shown(metric, shown)

    def _read(self, histogram: SeriesHistogram) -> Reading:
        """One reading of the histogram, exposed at its own bounds (``whole``: at every bound)."""
        positions = self._positions.get(histogram._name)
        if positions is None:
            hidden = self._hidden.get(histogram._name, frozenset())
            labels = [floatToGoString(b) for b in histogram._upper_bounds]  # type: ignore[no-untyped-call]
            positions = self._positions[histogram._name] = [i for i, le in enumerate(labels) if le not in hidden]
        return Reading(histogram, histogram.read(), positions)
