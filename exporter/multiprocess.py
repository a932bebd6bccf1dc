"""Reading the ``--workers`` metric files: what prometheus-client's ``MultiProcessCollector`` gives, without
parsing every file again on every read.

Each worker writes its values into memory-mapped files (``counter_<pid>.db``, ``gauge_livesum_<pid>.db``,
``histogram_<pid>.db``...), one entry per sample: the sample's key (a JSON list of family, sample name,
labels and help), its value and a timestamp. ``MultiProcessCollector`` reads them all and merges them
across workers on every collect: it decodes every entry and parses every key with ``json.loads`` each
time, and merges sample by sample (some 6,700 entries with two workers after some traffic: 65-85 ms).
Entries are only ever appended, and an entry's value stays where it was written, so ``Folder`` parses a
file's entries once while the file is the same and holds as much, and a read takes the values from where
they lie. On that:

- ``FilesCollector`` (``/metrics``, and a view's hidden families) merges exactly as
  ``MultiProcessCollector`` does, into the same families with the same samples in the same order, from
  each entry's merge worked out once;
- ``FilesSource`` (the stream) reads the files straight into its snapshot, on a thread.

The files are parsed with prometheus-client's own ``mmap_dict._read_all_values``, and
``tests/exporter/test_multiprocess.py`` holds both to ``MultiProcessCollector``'s output on files written
by prometheus-client's multiprocess values (every metric type and gauge mode, workers coming, writing
more and dying), so an upgrade that changes these internals fails CI instead of changing what is exposed
or streamed.
"""

import asyncio
import functools
import glob
import json
import math
import mmap
import os
import struct
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import _read_all_values
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from bridge.snapshot import Interner, LabelKey, Snapshot, Wanted, histogram

KEY_LIMIT = 200_000
"""The most parsed keys a ``Folder`` keeps (about 60 MB); past it the cache starts over. A default server
with two workers has some 6,700, and the labels are bounded: growth here means new series, not reads."""

Labels = tuple[tuple[str, str], ...]
ParsedKey = tuple[str, str, Labels, str]
"""A key's family name, sample name, sorted labels and help text."""


@dataclass(eq=False)
class FileEntries:
    """A file's entries, parsed once: valid while the file is the same one (``inode``) and holds as much
    (``used`` bytes). Readers keep what they work out of them in ``derived``, by their own key."""

    kind: str
    """``counter``, ``gauge``, ``histogram`` or ``summary``: the file's name's first part."""
    mode: str
    """A gauge file's multiprocess mode (``livesum``...), the second part; ``""`` for the others."""
    pid: str
    """A gauge file's worker, the third part (a gauge of mode ``all`` keeps it as a label)."""
    inode: int
    used: int
    keys: list[ParsedKey]
    positions: np.ndarray
    """Where each entry's value lies, in float64 words from the file's start (its timestamp is the next)."""
    derived: dict[Any, Any] = field(default_factory=dict)


class Folder:
    """The multiprocess folder ``path`` (default: ``PROMETHEUS_MULTIPROC_DIR``): its files as they are now,
    each parsed once while it holds the same entries, every key parsed once for good."""

    def __init__(self, path: str | None = None) -> None:
        path = path or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not path or not os.path.isdir(path):
            raise ValueError("env PROMETHEUS_MULTIPROC_DIR is not set or not a directory")
        self.path = path
        self._keys: dict[str, ParsedKey] = {}
        self._files: dict[str, FileEntries] = {}

    def read(self) -> list[tuple[FileEntries, np.ndarray]]:
        """Every file now in the folder, in ``MultiProcessCollector``'s order (``glob``'s), with its
        contents as float64 words."""
        paths = glob.glob(os.path.join(self.path, "*.db"))
        found = [read for read in map(self._read, paths) if read is not None]
        present = set(paths)
        if not present.issuperset(self._files):  # files gone (a dead worker's, settled)
            self._files = {path: entries for path, entries in self._files.items() if path in present}
        return found

    def _read(self, path: str) -> tuple[FileEntries, np.ndarray] | None:
        """The file at ``path``, or None if it went since the folder was listed (a dead worker's live
        gauges, which ``mark_process_dead`` removes)."""
        parts = os.path.basename(path)[: -len(".db")].split("_")
        kind = parts[0]
        try:
            with open(path, "rb") as file:
                inode = os.fstat(file.fileno()).st_ino
                data = file.read(mmap.PAGESIZE)  # as mmap_dict reads: the used size, then the rest of it
                used = struct.unpack_from("i", data, 0)[0]
                if used > len(data):
                    data += file.read(used - len(data))
        except FileNotFoundError:
            if kind == "gauge" and parts[1].startswith("live"):
                return None
            raise
        entries = self._files.get(path)
        if entries is None or entries.inode != inode or entries.used != used:
            keys, positions = [], []
            for key, _, _, position in _read_all_values(data, used):  # type: ignore[no-untyped-call]
                keys.append(self.parse(key))
                positions.append(position // 8)
            mode, pid = (parts[1], parts[2]) if kind == "gauge" else ("", "")  # gauge_<mode>_<pid>.db
            where = np.array(positions, dtype=np.intp)
            entries = self._files[path] = FileEntries(kind, mode, pid, inode, used, keys, where)
        return entries, np.frombuffer(data, dtype=np.float64, count=len(data) // 8)

    def parse(self, key: str) -> ParsedKey:
        """A file entry's key: its family, sample name, sorted labels and help, parsed once."""
        parsed = self._keys.get(key)
        if parsed is None:
            if len(self._keys) > KEY_LIMIT:
                self._keys.clear()
            family, sample, labels, help_text = json.loads(key)
            parsed = self._keys[key] = (family, sample, tuple(sorted(labels.items())), help_text)
        return parsed


# How an entry merges into its family (``MultiProcessCollector._accumulate_metrics``'s cases): added up
# (counters, summaries, a histogram's sum, gauges of mode sum), the least or the greatest, the most
# recently set, each worker's own (mode all: the series keeps its ``pid``), or a histogram's bucket.
_ADD, _MIN, _MAX, _LATEST, _EACH, _BUCKET = range(6)
_GAUGE_MERGES = {
    "sum": _ADD,
    "livesum": _ADD,
    "min": _MIN,
    "livemin": _MIN,
    "max": _MAX,
    "livemax": _MAX,
    "mostrecent": _LATEST,
    "livemostrecent": _LATEST,
}

Merge = tuple[str, str, str, int, Labels, tuple[str, Labels], float]
"""An entry's family, help and the type its file gives the family, how it merges, the series it merges
into (its labels without ``le``, and without ``pid`` but in mode ``all``), the sample it is (name and
labels) and, for a bucket, its bound."""


def _merges(entries: FileEntries) -> list[Merge]:
    """How each entry of a file merges, worked out as ``MultiProcessCollector`` does it for each sample."""
    merges: list[Merge] = []
    for family, sample, labels, help_text in entries.keys:
        how, bound = _ADD, math.nan
        if entries.kind == "gauge":
            labels = (*labels, ("pid", entries.pid))
            how = _GAUGE_MERGES.get(entries.mode, _EACH)
            if how != _EACH:
                labels = tuple(label for label in labels if label[0] != "pid")
        elif entries.kind == "histogram":
            le = next((value for name, value in labels if name == "le"), None)
            if le is not None:
                how, bound = _BUCKET, float(le)
                labels = tuple(label for label in labels if label[0] != "le")
        merges.append((family, help_text, entries.kind, how, labels, (sample, labels), bound))
    return merges


def _merges_of(entries: FileEntries) -> list[Merge]:
    """``_merges`` of a file's entries, worked out once while they stay the same (shared by readers)."""
    merges: list[Merge] | None = entries.derived.get(_merges)
    if merges is None:
        merges = entries.derived[_merges] = _merges(entries)
    return merges


def _merge(into: dict[Any, float], key: Any, how: int, value: float) -> None:
    """``value`` into ``into[key]`` as ``MultiProcessCollector`` merges a sample: added up, the least, the
    greatest, or (mode ``all``, one worker's own series) as it is."""
    if how == _ADD:
        into[key] = into.get(key, 0.0) + value
    elif how == _EACH:
        into[key] = value
    else:
        current = into.setdefault(key, value)
        if (value < current) if how == _MIN else (value > current):
            into[key] = value


class _Merged:
    """One family being merged: its samples by series, and a histogram's buckets by series."""

    __slots__ = ("buckets", "metric", "series", "times")

    def __init__(self, family: str, help_text: str, kind: str) -> None:
        self.metric = Metric(family, help_text, kind)
        self.series: dict[Labels, dict[tuple[str, Labels], float]] = {}
        self.buckets: dict[Labels, dict[float, float]] = {}
        self.times: dict[tuple[str, Labels], float] = {}

    def samples(self, bucket_samples: dict[tuple[str, Labels, float], tuple[str, Labels]]) -> Metric:
        """The family, as ``MultiProcessCollector`` writes it: each series' samples in the order they came,
        a histogram's cumulative buckets and count after them. ``bucket_samples``: each bucket's sample
        (name and labels) by family, series and bound, made once."""
        metric, bucket, count = self.metric, self.metric.name + "_bucket", self.metric.name + "_count"
        for labels, by_bound in self.buckets.items():
            samples = self.series.setdefault(labels, {})
            total = 0.0
            for bound in sorted(by_bound):
                total += by_bound[bound]
                sample = bucket_samples.get((bucket, labels, bound))
                if sample is None:
                    sample = bucket_samples[(bucket, labels, bound)] = (bucket, (*labels, ("le", _go_float(bound))))
                samples[sample] = total
            samples[(count, labels)] = total
        metric.samples = [
            Sample(name, dict(labels), value)
            for samples in self.series.values()
            for (name, labels), value in samples.items()
        ]
        return metric


@functools.lru_cache(maxsize=4096)
def _go_float(bound: float) -> str:
    """``floatToGoString`` (how prometheus-client writes a bound), once per bound."""
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return text


class FilesCollector(Collector):
    """What ``MultiProcessCollector`` collects from the folder ``path`` (default:
    ``PROMETHEUS_MULTIPROC_DIR``), read from its ``Folder``."""

    def __init__(self, path: str | None = None) -> None:
        self.folder = Folder(path)
        self._bucket_samples: dict[tuple[str, Labels, float], tuple[str, Labels]] = {}

    def collect(self) -> Iterable[Metric]:
        return self.read(None)

    def read(self, names: Collection[str] | None) -> list[Metric]:
        """The merged families, every one or only those in ``names``, in the collector's order."""
        merged: dict[str, _Merged] = {}
        for entries, words in self.folder.read():
            merges = _merges_of(entries)
            values = words[entries.positions].tolist()
            for index, (family, help_text, kind, how, labels, sample, bound) in enumerate(merges):
                if names is not None and family not in names:
                    continue
                into = merged.get(family)
                if into is None:
                    into = merged[family] = _Merged(family, help_text, kind)
                    if kind == "gauge":
                        into.metric._multiprocess_mode = entries.mode  # type: ignore[attr-defined]
                value = values[index]
                if how == _BUCKET:
                    by_bound = into.buckets.get(labels)
                    if by_bound is None:
                        by_bound = into.buckets[labels] = {}
                    by_bound[bound] = by_bound.get(bound, 0.0) + value
                    continue
                if how == _LATEST:
                    at = float(words[entries.positions[index] + 1] or 0)  # its timestamp, beside the value
                    if into.times.get(sample, 0.0) < at:
                        into.series.setdefault(labels, {})[sample] = value
                        into.times[sample] = at
                    continue
                samples = into.series.get(labels)
                if samples is None:
                    samples = into.series[labels] = {}
                _merge(samples, sample, how, value)
        if len(self._bucket_samples) > KEY_LIMIT:
            self._bucket_samples.clear()
        return [family.samples(self._bucket_samples) for family in merged.values()]


# What an entry adds to the stream's snapshot (``FilesSource``): the merges above, where a counter's
# ``_total``, a gauge and a histogram's buckets and sum are all the snapshot keeps.
SnapshotEntry = tuple[int, int, str, LabelKey, float]
"""The entry's index in its file, how it merges (a histogram's sum: ``_SUM``), its family, its series'
label key (a gauge of mode ``all`` with its ``pid``) and, for a bucket, its bound."""
_SUM = _BUCKET + 1


class FilesSource:
    """The stream's snapshot of every worker's files (``--workers``), read straight into it on a thread.

    What ``take(HiddenBounds(MultiProcessCollector).collect())`` gives, without the collector's families:
    each file's wanted entries are worked out once (while the file holds the same entries), and a tick
    reads their values where they lie and merges them as ``MultiProcessCollector`` does (files and
    entries in the same order, so every sum is the same float): 4 ms where the collector and ``take``
    took 110 on a default server with two workers after some traffic. A worker's hub samples once a
    second whether or not anyone subscribes (the history a subscriber gets), so this was most of an idle
    worker's CPU, and on the event loop, a stall of its requests every second.

    ``exposed_bounds``: as ``bridge.sources.ChildrenSource``'s, the bounds a histogram exposes where it
    records at more (the rest left out, as ``HiddenBounds`` leaves them out; +Inf always kept).
    """

    def __init__(
        self, collector: FilesCollector, *, exposed_bounds: Mapping[str, Sequence[float]] | None = None
    ) -> None:
        """``collector``: the one ``/metrics`` reads, whose ``Folder`` (each file parsed once) is shared."""
        self.collector = collector
        self._shown = {
            name: frozenset(map(float, bounds)) | {math.inf} for name, bounds in (exposed_bounds or {}).items()
        }

    async def collect(self, sample_names: set[str]) -> Iterable[Metric]:
        """The public API's view of the same files (for callers that want families)."""
        return await asyncio.to_thread(self.collector.read, None)

    async def snapshot(self, wanted: Wanted, timestamp: float, interner: Interner) -> Snapshot:
        return await asyncio.to_thread(self.read, wanted, timestamp, interner)

    def read(self, wanted: Wanted, timestamp: float, interner: Interner) -> Snapshot:
        """The snapshot of what ``wanted`` names, summed over every worker's files as they are now."""
        values: dict[str, dict[LabelKey, float]] = {name: {} for name in wanted.counters | wanted.gauges}
        latest: dict[tuple[str, LabelKey], float] = {}  # a ``mostrecent`` gauge's time, by series
        buckets: dict[tuple[str, LabelKey], dict[float, float]] = {}
        sums: dict[tuple[str, LabelKey], float] = {}
        for entries, words in self.collector.folder.read():
            plan = self._plan(entries, wanted, interner)
            read = words[entries.positions[plan[0]]].tolist()
            for (index, how, family, key, bound), value in zip(plan[1], read, strict=True):
                if how == _BUCKET:
                    series = buckets.get((family, key))
                    if series is None:
                        series = buckets[(family, key)] = {}
                    series[bound] = series.get(bound, 0.0) + value
                elif how == _SUM:
                    _merge(sums, (family, key), _ADD, value)
                elif how == _LATEST:
                    at = float(words[entries.positions[index] + 1] or 0)
                    if latest.get((family, key), 0.0) < at:
                        values[family][key], latest[(family, key)] = value, at
                else:
                    _merge(values[family], key, how, value)
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

    def _plan(self, entries: FileEntries, wanted: Wanted, interner: Interner) -> tuple[np.ndarray, list[SnapshotEntry]]:
        """The entries of a file that ``wanted`` reads, in file order (and their indexes), once per file
        and ``wanted``."""
        found = entries.derived.get((FilesSource, id(wanted)))
        if found is not None and found[0] is wanted:
            made: tuple[np.ndarray, list[SnapshotEntry]] = found[1]
            return made
        merges = _merges_of(entries)
        plan: list[SnapshotEntry] = []
        for index, (family, _, kind, how, labels, (sample, _), bound) in enumerate(merges):
            if kind == "counter" and family in wanted.counters and sample == family + "_total":
                plan.append((index, _ADD, family, interner.key(dict(labels)), bound))
            elif kind == "gauge" and family in wanted.gauges and sample == family:
                plan.append((index, how, family, interner.key(dict(labels)), bound))
            elif kind == "histogram" and family in wanted.histograms:
                if how == _BUCKET:
                    plan.append((index, _BUCKET, family, interner.key(dict(labels)), bound))
                elif sample == family + "_sum":
                    plan.append((index, _SUM, family, interner.key(dict(labels)), bound))
        made = (np.array([entry[0] for entry in plan], dtype=np.intp), plan)
        entries.derived[(FilesSource, id(wanted))] = (wanted, made)
        return made
