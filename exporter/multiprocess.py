"""Reading the ``--workers`` metric files: prometheus-client's ``MultiProcessCollector``, without parsing
every series' key again on every read.

Each worker writes its values into memory-mapped files (``counter_<pid>.db``, ``histogram_<pid>.db``...),
one entry per sample: the sample's key (a JSON list of family, sample name, labels and help) and its
value. ``MultiProcessCollector`` reads them all and merges them across workers on every collect, and
parses every key with ``json.loads`` each time: a third of its time on a default server (some 6,700
entries with two workers). Keys never change once written, and a label set's key is the same in every
worker's file, so ``FilesCollector`` keeps each key's parse for good (bounded: ``KEY_LIMIT``), and a
reader that needs a few families (the stream, a view's hidden families) merges only those.

The merging is prometheus-client's own (``MultiProcessCollector._accumulate_metrics``) and the files are
read with its ``MmapedDict``: ``tests/exporter/test_multiprocess.py`` holds ``FilesCollector`` to
``MultiProcessCollector``'s output on real workers' files, so an upgrade that changes these internals
fails CI instead of changing what is exposed.
"""

import glob
import json
import os
from collections.abc import Collection, Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

KEY_LIMIT = 200_000
"""The most parsed keys kept (about 60 MB); past it the cache starts over. A default server with two
workers has some 6,700, and the labels are bounded: growth here means new series, not new reads."""

ParsedKey = tuple[str, str, tuple[tuple[str, str], ...], str]
"""A key's family name, sample name, sorted labels and help text."""


class FilesCollector(MultiProcessCollector):
    """``MultiProcessCollector`` of the folder ``path`` (default: ``PROMETHEUS_MULTIPROC_DIR``), every
    family or only ``names``; registered with no registry (register it where it is read)."""

    def __init__(self, path: str | None = None, names: Collection[str] | None = None) -> None:
        super().__init__(None, path)  # type: ignore[no-untyped-call]
        self._names = frozenset(names) if names is not None else None
        self._keys: dict[str, ParsedKey] = {}

    def collect(self) -> Iterable[Metric]:
        return self.read(self._names)

    def read(self, names: Collection[str] | None) -> Iterable[Metric]:
        """The merged families, every one or only those in ``names``."""
        files = glob.glob(os.path.join(self._path, "*.db"))
        merged: Iterable[Metric] = MultiProcessCollector._accumulate_metrics(self._read(files, names), True)  # type: ignore[no-untyped-call]
        return merged

    def _read(self, files: list[str], names: Collection[str] | None) -> dict[str, Metric]:
        """``MultiProcessCollector._read_metrics`` (its samples in its order), with the parsed keys kept."""
        keys = self._keys
        if len(keys) > KEY_LIMIT:
            keys.clear()
        metrics: dict[str, Metric] = {}
        for path in files:
            parts = os.path.basename(path).split("_")
            kind = parts[0]
            try:
                entries = MmapedDict.read_all_values_from_file(path)  # type: ignore[no-untyped-call]
            except FileNotFoundError:
                if kind == "gauge" and parts[1].startswith("live"):
                    continue  # a dead worker's live gauges, removed since the glob (mark_process_dead)
                raise
            for key, value, timestamp, _ in entries:
                parsed = keys.get(key)
                if parsed is None:
                    family, sample, labels, help_text = json.loads(key)
                    parsed = keys[key] = (family, sample, tuple(sorted(labels.items())), help_text)
                family, sample, labels_key, help_text = parsed
                if names is not None and family not in names:
                    continue
                metric = metrics.get(family)
                if metric is None:
                    metric = metrics[family] = Metric(family, help_text, kind)
                if kind == "gauge":
                    metric._multiprocess_mode = parts[1]  # type: ignore[attr-defined]
                    metric.add_sample(sample, (*labels_key, ("pid", parts[2][:-3])), value, timestamp)  # type: ignore[arg-type]
                else:
                    metric.add_sample(sample, labels_key, value)  # type: ignore[arg-type]
        return metrics
