"""The Prometheus text format (0.0.4), byte for byte what prometheus-client's ``generate_latest`` writes,
with each series' line prefix and each family's header written once and kept.

A scrape of the default server writes some 4,400 sample lines whose names and labels never change
between scrapes; only the values do. ``generate_latest`` re-escapes and re-sorts every label set on
every scrape, which was half the cost of ``/metrics``. ``TextWriter`` keeps the ``name{labels} ``
prefix of every series it has written, so a scrape formats values and little else.
``tests/exporter/test_textformat.py`` holds it to ``generate_latest``'s output.
"""

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import cast

from prometheus_client import metrics as client_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from exporter.histogram import Reading, SeriesLabels
from exporter.views.aggregate import GroupedHistogram, series_labels

# generate_latest's munging from OpenMetrics types into the text format's.
_TYPE_SUFFIX = {"counter": ("_total", "counter"), "info": ("_info", "gauge"), "stateset": ("", "gauge")}
_TYPE_RENAME = {"gaugehistogram": "histogram", "unknown": "untyped"}
# Samples OpenMetrics has and the text format moves into a gauge family of their own, after the family.
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")
_MAX_CACHED_VALUES = 4096
_MAX_CACHED_PREFIXES = 200_000
_MAX_CACHED_SERIES = 20_000


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


class TextWriter:
    """Writes collected families in the text format (from one thread: the event loop's).

    Every metric and label name must be a valid legacy Prometheus name (as fakeai's all are): those are
    written unchanged, as ``generate_latest`` writes them.
    """

    def __init__(self) -> None:
        self._prefixes: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self._headers: dict[tuple[str, str, str], str] = {}
        self._values: dict[float, str] = {}
        self._series: dict[tuple[object, ...], list[str]] = {}
        self._line_values: dict[float, str] = {}

    def _prefix(self, name: str, labels: dict[str, str]) -> str:
        key = (name, tuple(labels.items()))
        prefix = self._prefixes.get(key)
        if prefix is None:
            if labels:
                inner = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in sorted(labels.items()))
                prefix = f"{name}{{{inner}}} "
            else:
                prefix = name + " "
            if len(self._prefixes) >= _MAX_CACHED_PREFIXES:
                self._prefixes.clear()  # series that come and go must not grow memory without end
            self._prefixes[key] = prefix
        return prefix

    def _header(self, name: str, kind: str, documentation: str) -> str:
        key = (name, kind, documentation)
        header = self._headers.get(key)
        if header is None:
            header = f"# HELP {name} {_escape_help(documentation)}\n# TYPE {name} {kind}\n"
            self._headers[key] = header
        return header

    def _value(self, value: float) -> str:
        # Most values repeat from scrape to scrape (zero buckets, unchanged counters).
        text = self._values.get(value)
        if text is None:
            text = floatToGoString(value)  # type: ignore[no-untyped-call]
            if len(self._values) >= _MAX_CACHED_VALUES:
                self._values.clear()
            self._values[value] = text
        return text

    def _lines(self, prefixes: Sequence[str], values: Sequence[float]) -> str:
        """``prefix value`` lines, one for each value (the first ``len(values)`` prefixes)."""
        texts = list(map(self._line_values.get, values))
        if None in texts:
            texts = [text or self._line_value(value) for text, value in zip(texts, values, strict=True)]
        # Interleaved by slice assignment: half the time of joining prefix + value strings made one by one.
        lines: list[str | None] = [None] * (2 * len(texts))
        lines[::2] = prefixes[: len(texts)]
        lines[1::2] = texts
        return "".join(cast(list[str], lines))

    def _line_value(self, value: float) -> str:
        text = self._value(value) + "\n"
        if len(self._line_values) >= _MAX_CACHED_VALUES:
            self._line_values.clear()
        self._line_values[value] = text
        return text

    def _series_prefixes(
        self, cache_key: tuple[object, ...], name: str, labels: Callable[[], SeriesLabels], suffixes: tuple[str, ...]
    ) -> list[str]:
        """A histogram series' line prefixes: each bucket's, then each of ``suffixes``'s (``_count``, ...),
        made from ``labels`` (its buckets' label dicts and its own) the first time the series is written."""
        prefixes = self._series.get(cache_key)
        if prefixes is None:
            by_bucket, own = labels()
            prefixes = [self._prefix(name + "_bucket", bucket) for bucket in by_bucket]
            prefixes += [self._prefix(name + suffix, own) for suffix in suffixes]
            if len(self._series) >= _MAX_CACHED_SERIES:
                self._series.clear()
            self._series[cache_key] = prefixes
        return prefixes

    def _grouped_histogram(self, metric: GroupedHistogram) -> str:
        """The same lines as from its samples, written from its groups: no sample or label dict made."""
        output = [self._header(metric.name, "histogram", metric.documentation)]
        name, labelnames = metric.name, metric.labelnames
        for key, group in metric.groups:
            bounds = tuple(group.bounds)
            values = [*group.cumulative, group.count]
            if not bounds or bounds[0] >= 0:  # as add_metric: no count and sum below a negative bound
                values += [group.count, group.total]
            prefixes = self._series_prefixes(
                (name, labelnames, key, bounds),
                name,
                partial(series_labels, labelnames, key, bounds),
                ("_count", "_sum"),
            )
            output.append(self._lines(prefixes, values))
        return "".join(output)

    def _reading_labels(self, reading: Reading, values: tuple[str, ...]) -> SeriesLabels:
        """A native series' label dicts, its exposed buckets' only (they are the same at every scrape)."""
        by_bound, own = reading.histogram.series_labels(values)
        if reading.positions is not None:
            by_bound = [by_bound[index] for index in reading.positions]
        return by_bound, own

    def _reading(self, reading: Reading) -> str:
        """The same lines as from its samples, written from its series: no sample made."""
        output = [self._header(reading.name, "histogram", reading.documentation)]
        created: list[str] = []
        positions = reading.positions
        has_sum = reading.bounds[0] >= 0
        with_created = client_metrics._use_created
        for series in reading.series:
            prefixes = self._series_prefixes(
                (reading.name, series.values),
                reading.name,
                partial(self._reading_labels, reading, series.values),
                ("_count", "_sum", "_created"),
            )
            cumulative = series.cumulative
            values = cumulative if positions is None else [cumulative[index] for index in positions]
            values = [*values, cumulative[-1]]  # then _count
            if has_sum:
                values.append(series.total)
            output.append(self._lines(prefixes, values))
            if with_created:
                created.append(f"{prefixes[-1]}{self._value(series.created)}\n")
        if created:  # as generate_latest: the creation times as a gauge family of their own, after
            output.append(self._header(reading.name + "_created", "gauge", reading.documentation))
            output.extend(created)
        return "".join(output)

    def family(self, metric: Metric) -> str:
        """One family's lines, as ``generate_latest`` writes them."""
        if isinstance(metric, GroupedHistogram) and metric._samples is None:
            return self._grouped_histogram(metric)
        if isinstance(metric, Reading) and not metric.made:
            return self._reading(metric)
        output: list[str] = []
        append = output.append
        prefix_of, value_of = self._prefixes.get, self._values.get
        name, kind = metric.name, metric.type
        if kind == "counter" and metric.samples and metric.samples[0].name == name:
            suffix = ""  # a counter named without _total, as engines outside prometheus-client write them
        else:
            suffix, kind = _TYPE_SUFFIX.get(kind, ("", _TYPE_RENAME.get(kind, kind)))
        append(self._header(name + suffix, kind, metric.documentation))
        moved = {name + om: om for om in _OM_SUFFIXES}
        extra: dict[str, list[str]] = {}
        for sample in metric.samples:
            labels = sample.labels
            prefix = prefix_of((sample.name, tuple(labels.items()))) or self._prefix(sample.name, labels)
            value = value_of(sample.value) or self._value(sample.value)
            stamp = "" if sample.timestamp is None else f" {int(float(sample.timestamp) * 1000):d}"
            line = f"{prefix}{value}{stamp}\n"
            om = moved.get(sample.name)
            if om is None:
                append(line)
            else:
                extra.setdefault(om, []).append(line)
        for om, lines in sorted(extra.items()):
            append(self._header(name + om, "gauge", metric.documentation))
            output.extend(lines)
        return "".join(output)

    def write(self, families: Iterable[Metric]) -> bytes:
        return "".join(self.family(metric) for metric in families).encode("utf-8")
