"""Reading the ``--workers`` metric files: prometheus-client's ``MultiProcessCollector``, without parsing
every series' key again on every read.

Each worker writes its values into memory-mapped files (``counter_<pid>.db``, ``histogram_<pid>.db``...),
one entry per sample: the sample's key (a JSON list of family, sample name, labels and help) and its
value. ``MultiProcessCollector`` reads them all and merges them across workers on every collect, and
parses every key with ``json.loads`` each time: a third of its time on a default server (some 6,700
entries with two workers). Keys never change once written, and a label set's key is the same in every
worker's file, so ``FilesCollector`` keeps each key's parse for good (bounded: ``KEY_LIMIT``), and a
reader that needs a few families (a view's hidden families) merges only those. Its merging is
prometheus-client's own (``MultiProcessCollector._accumulate_metrics``).

The stream's sampler needs no families, only their numbers: ``FilesSource`` reads the files straight
into its snapshot, each file's entries parsed once while the file holds the same ones, on a thread.

Both read the files with prometheus-client's own ``mmap_dict`` functions, and
``tests/exporter/test_multiprocess.py`` holds them to ``MultiProcessCollector``'s output on files written by
prometheus-client's multiprocess values, so an upgrade that changes these internals fails CI instead of
changing what is exposed or streamed.
"""

import asyncio
import glob
import json
import math
import mmap
import os
import struct
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, _read_all_values
from prometheus_client.multiprocess import MultiProcessCollector

from bridge.snapshot import Interner, LabelKey, Snapshot, Wanted, histogram

KEY_LIMIT = 200_000
"""The most parsed keys kept (about 60 MB); past it the cache starts over. A default server with two
workers has some 6,700, and the labels are bounded: growth here means new series, not new reads."""

ParsedKey = tuple[str, str, tuple[tuple[str, str], ...], str]
"""A key's family name, sample name, sorted labels and help text."""


class FilesCollector(MultiProcessCollector):
    """``MultiProcessCollector`` of the folder ``path`` (default: ``PROMETHEUS_MULTIPROC_DIR``), registered
    with no registry (register it where it is read)."""

    def __init__(self, path: str | None = None) -> None:
        super().__init__(None, path)  # type: ignore[no-untyped-call]
        self._keys: dict[str, ParsedKey] = {}

    def collect(self) -> Iterable[Metric]:
        return self.read(None)

    def read(self, names: Collection[str] | None) -> Iterable[Metric]:
        """The merged families, every one or only those in ``names``."""
        files = glob.glob(os.path.join(self._path, "*.db"))
        merged: Iterable[Metric] = MultiProcessCollector._accumulate_metrics(self._read(files, names), True)  # type: ignore[no-untyped-call]
        return merged

    def parse(self, key: str) -> ParsedKey:
        """A file entry's key: its family, sample name, sorted labels and help, parsed once."""
        parsed = self._keys.get(key)
        if parsed is None:
            if len(self._keys) > KEY_LIMIT:
                self._keys.clear()
            family, sample, labels, help_text = json.loads(key)
            parsed = self._keys[key] = (family, sample, tuple(sorted(labels.items())), help_text)
        return parsed

    def _read(self, files: list[str], names: Collection[str] | None) -> dict[str, Metric]:
        """``MultiProcessCollector._read_metrics`` (its samples in its order), with the parsed keys kept."""
        keys = self._keys
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
                    parsed = self.parse(key)
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


# What a file entry adds to a snapshot (``FilesSource``): a counter's or a summed gauge's value, a
# gauge by another mode, a histogram's bucket or sum; entries of families nobody wants are left out.
_ADD, _MAX, _MIN, _LATEST, _EACH, _BUCKET, _SUM = range(7)
_GAUGE_OPS = {
    "sum": _ADD,
    "livesum": _ADD,
    "max": _MAX,
    "livemax": _MAX,
    "min": _MIN,
    "livemin": _MIN,
    "mostrecent": _LATEST,
    "livemostrecent": _LATEST,
    "all": _EACH,
    "liveall": _EACH,
}

Entry = tuple[int, int, str, LabelKey, float]
"""Where its value is (in float64 words from the file's start), what it adds to (``_ADD``...), its
family, its series' label key (a gauge of mode ``all`` with its ``pid``) and, for a bucket, its bound."""


@dataclass
class _FilePlan:
    """A file's wanted entries, parsed once: valid while the file is the same and holds as much."""

    inode: int
    used: int
    wanted: Wanted
    entries: list[Entry]
    positions: np.ndarray
    """Where each entry's value lies, in float64 words from the file's start (the entries' first items)."""


class FilesSource:
    """The stream's snapshot of every worker's files (``--workers``), read straight into it on a thread.

    What ``take(HiddenBounds(MultiProcessCollector).collect())`` gives, without the collector's families:
    each file's wanted entries are parsed once (while the file holds the same entries), and a tick reads
    their values where they lie and merges them as ``MultiProcessCollector`` does (files and entries in
    the same order, so every sum is the same float): 4 ms where the collector and ``take`` took 110 on a
    default server with two workers after some traffic. A worker's
    hub samples once a second whether or not anyone subscribes (the history a subscriber gets), so this
    is most of an idle worker's CPU. ``tests/exporter/test_multiprocess.py`` holds it to that
    collector-and-``take`` path on real workers' files.

    ``exposed_bounds``: as ``bridge.sources.ChildrenSource``'s, the bounds a histogram exposes where it
    records at more (the rest left out, as ``HiddenBounds`` leaves them out; +Inf always kept).
    """

    def __init__(self, path: str | None = None, *, exposed_bounds: Mapping[str, Sequence[float]] | None = None) -> None:
        self.collector = FilesCollector(path)
        self._path: str = self.collector._path
        self._shown = {
            name: frozenset(map(float, bounds)) | {math.inf} for name, bounds in (exposed_bounds or {}).items()
        }
        self._plans: dict[str, _FilePlan] = {}

    async def collect(self, sample_names: set[str]) -> Iterable[Metric]:
        """The public API's view of the same files (for callers that want families)."""
        return await asyncio.to_thread(lambda: list(self.collector.collect()))

    async def snapshot(self, wanted: Wanted, timestamp: float, interner: Interner) -> Snapshot:
        return await asyncio.to_thread(self.read, wanted, timestamp, interner)

    def read(self, wanted: Wanted, timestamp: float, interner: Interner) -> Snapshot:
        """The snapshot of what ``wanted`` names, summed over every worker's files as they are now."""
        values: dict[str, dict[LabelKey, float]] = {name: {} for name in wanted.counters | wanted.gauges}
        latest: dict[tuple[str, LabelKey], float] = {}  # a ``mostrecent`` gauge's time, by series
        buckets: dict[tuple[str, LabelKey], dict[float, float]] = {}
        sums: dict[tuple[str, LabelKey], float] = {}
        paths = glob.glob(os.path.join(self._path, "*.db"))
        for path in paths:
            found = self._entries(path, wanted, interner)
            if found is None:
                continue
            plan, words = found
            for (where, op, family, key, bound), value in zip(
                plan.entries, words[plan.positions].tolist(), strict=True
            ):
                if op == _BUCKET:
                    series = buckets.get((family, key))
                    if series is None:
                        series = buckets[(family, key)] = {}
                    series[bound] = series.get(bound, 0.0) + value
                elif op == _SUM:
                    sums[(family, key)] = sums.get((family, key), 0.0) + value
                else:
                    into = values[family]
                    if op == _ADD:
                        into[key] = into.get(key, 0.0) + value
                    elif op == _EACH:
                        into[key] = value
                    elif op == _LATEST:
                        at = float(words[where + 1] or 0)  # its timestamp, beside the value
                        if latest.get((family, key), 0.0) < at:
                            into[key], latest[(family, key)] = value, at
                    else:
                        current = into.setdefault(key, value)
                        if (value > current) if op == _MAX else (value < current):
                            into[key] = value
        present = set(paths)
        self._plans = {path: plan for path, plan in self._plans.items() if path in present}  # files gone
        snapshot = Snapshot(timestamp, values)
        for name in wanted.histograms:
            snapshot.histograms[name] = {}
            snapshot.bounds[name] = {}
        for (family, key), series in buckets.items():
            bounds = sorted(series)
            cumulative = np.cumsum([series[bound] for bound in bounds])
            shown = self._shown.get(family)
            if shown is not None:
                kept = [i for i, bound in enumerate(bounds) if bound in shown]
                bounds, cumulative = [bounds[i] for i in kept], cumulative[kept]
            snapshot.histograms[family][key] = histogram(cumulative, sums.get((family, key), 0.0), cumulative[-1])
            snapshot.bounds[family][key] = interner.bounds(tuple(bounds))
        return snapshot

    def _entries(self, path: str, wanted: Wanted, interner: Interner) -> tuple[_FilePlan, np.ndarray] | None:
        """The plan of the file at ``path`` (its wanted entries) and the file's words (float64), or None if
        it went (a dead worker's live gauges, removed since the glob)."""
        parts = os.path.basename(path).split("_")
        try:
            with open(path, "rb") as file:
                inode = os.fstat(file.fileno()).st_ino
                data = file.read(mmap.PAGESIZE)
                used = struct.unpack_from("i", data, 0)[0]
                if used > len(data):
                    data += file.read(used - len(data))
        except FileNotFoundError:
            if parts[0] == "gauge" and parts[1].startswith("live"):
                return None
            raise
        words = np.frombuffer(data, dtype=np.float64, count=len(data) // 8)
        plan = self._plans.get(path)
        if plan is None or plan.inode != inode or plan.used != used or plan.wanted is not wanted:
            entries = self._plan(parts, data, used, wanted, interner)
            positions = np.array([entry[0] for entry in entries], dtype=np.intp)
            plan = self._plans[path] = _FilePlan(inode, used, wanted, entries, positions)
        return plan, words

    def _plan(self, parts: list[str], data: bytes, used: int, wanted: Wanted, interner: Interner) -> list[Entry]:
        """The entries of a file (named ``parts``, split at ``_``) that ``wanted`` reads, in file order."""
        kind = parts[0]
        entries: list[Entry] = []
        for key, _, _, position in _read_all_values(data, used):  # type: ignore[no-untyped-call]
            family, sample, labels, _ = self.collector.parse(key)
            where = position // 8
            if kind == "counter":
                if family in wanted.counters and sample == family + "_total":
                    entries.append((where, _ADD, family, interner.key(dict(labels)), math.nan))
            elif kind == "gauge":
                if family in wanted.gauges and sample == family:
                    op = _GAUGE_OPS[parts[1]]
                    series = dict(labels) if op != _EACH else {**dict(labels), "pid": parts[2][:-3]}
                    entries.append((where, op, family, interner.key(series), math.nan))
            elif kind == "histogram" and family in wanted.histograms:
                series = dict(labels)
                if sample == family + "_bucket":
                    bound = float(series.pop("le"))
                    entries.append((where, _BUCKET, family, interner.key(series), bound))
                elif sample == family + "_sum":
                    entries.append((where, _SUM, family, interner.key(series), math.nan))
        return entries
