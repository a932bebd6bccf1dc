"""``FilesCollector`` merges prometheus-client's multiprocess files from each file's entries parsed once, and
``FilesSource`` reads them straight into the stream's snapshot: they must give exactly what
``MultiProcessCollector`` (and ``take`` of its families) gives, on files written by prometheus-client's own
multiprocess values."""

import asyncio
import os
import random
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest, values
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from support.snapshots import assert_same_snapshot

from bridge.sampler import Sampler
from bridge.snapshot import Interner, Wanted, take
from exporter import multiprocess
from exporter.kept_bounds import HiddenBounds
from exporter.multiprocess import FilesCollector, FilesSource
from exporter.stream import STREAM_MAPPING

GAUGE_MODES = ("all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent", "livemostrecent")


def run_worker(folder, monkeypatch, pid: int, steps: int = 300) -> None:
    """What a worker process with ``pid`` writes in ``folder``: prometheus-client's own multiprocess values
    (its ``MultiProcessValue``, as in a process started with ``PROMETHEUS_MULTIPROC_DIR``), every kind of
    metric and every gauge mode."""
    with monkeypatch.context() as patch:
        patch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
        patch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: pid))
        rng = random.Random(pid)
        registry = CollectorRegistry()  # the files are what counts; the objects die with this call
        labels = ("endpoint", "model")
        requests = Counter("w_requests", "labelled counter", labels, registry=registry)
        plain = Counter("w_plain", "no labels", registry=registry)
        gauges = [
            Gauge(f"w_{mode}", f"gauge {mode}", ("model",), multiprocess_mode=mode, registry=registry)  # type: ignore[arg-type]
            for mode in GAUGE_MODES
        ]
        seconds = Histogram(
            "w_seconds", "labelled histogram", labels, buckets=(0.01, 0.1, 1.0, 10.0), registry=registry
        )
        sizes = Summary("w_sizes", "labelled summary", ("model",), registry=registry)
        for _ in range(steps):
            endpoint = rng.choice(("/v1/chat/completions", "/v1/completions"))
            model = rng.choice(("a", "b", 'we"ird\\', "\u00fcn\u00ef"))
            requests.labels(endpoint, model).inc(rng.choice((1, 2.5)))
            plain.inc()
            for gauge in gauges:
                gauge.labels(model).set(rng.uniform(-5, 5))
            seconds.labels(endpoint, model).observe(rng.expovariate(1.0))
            sizes.labels(model).observe(rng.uniform(0, 100))


def exposition(collector) -> bytes:
    registry = CollectorRegistry(support_collectors_without_names=True)
    registry.register(collector)
    return generate_latest(registry)


def test_gives_what_multiprocesscollector_gives_read_after_read(tmp_path, monkeypatch):
    """Byte for byte, as workers come, write more (101 again: its files hold more entries, and new values
    for old ones) and die (102: its live gauges' files go)."""
    files = FilesCollector(str(tmp_path))
    for pid, steps in ((101, 300), (102, 200), (101, 150), (103, 1)):
        run_worker(tmp_path, monkeypatch, pid, steps)
        if pid == 103:
            mark_process_dead(102, str(tmp_path))
        expected = exposition(MultiProcessCollector(None, str(tmp_path)))
        assert b'w_livemostrecent{model="a"}' in expected and b"w_sizes_count" in expected
        assert exposition(files) == expected
        assert exposition(files) == expected  # again, every file from the folder's cache
    assert len(files.folder._keys) > 50


def test_a_reader_of_some_families_merges_only_those(tmp_path, monkeypatch):
    run_worker(tmp_path, monkeypatch, 101)
    run_worker(tmp_path, monkeypatch, 102)
    names = {"w_seconds", "w_livesum", "w_requests"}
    whole = {family.name: family for family in MultiProcessCollector(None, str(tmp_path)).collect()}
    families = {family.name: family for family in FilesCollector(str(tmp_path)).read(names)}
    assert families.keys() == names
    for name in names:
        assert families[name].samples == whole[name].samples, name


def test_the_key_cache_is_bounded_and_starting_over_changes_nothing(tmp_path, monkeypatch):
    run_worker(tmp_path, monkeypatch, 103)
    expected = exposition(MultiProcessCollector(None, str(tmp_path)))
    monkeypatch.setattr(multiprocess, "KEY_LIMIT", 10)
    files = FilesCollector(str(tmp_path))
    for _ in range(3):
        files.folder._files.clear()  # every file parsed again
        assert exposition(files) == expected
        assert 0 < len(files.folder._keys) <= 11


def test_a_file_replaced_by_another_of_the_same_size_is_parsed_again(tmp_path):
    """The same ``used`` size, other entries at the same places: only the file's identity tells."""
    path = tmp_path / "counter_7.db"

    def write(order: list[str], values: list[float]) -> None:
        staged = tmp_path / "staged"
        store = MmapedDict(str(staged))
        for model, value in zip(order, values, strict=True):
            store.write_value(mmap_key("w_requests", "w_requests_total", ["model"], [model], "help"), value, 0.0)
        store.close()
        os.replace(staged, path)  # as a settled file replaces a dead worker's: a new file

    write(["a", "b"], [1.0, 2.0])
    files = FilesCollector(str(tmp_path))
    assert exposition(files) == exposition(MultiProcessCollector(None, str(tmp_path)))
    write(["b", "a"], [5.0, 7.0])
    expected = exposition(MultiProcessCollector(None, str(tmp_path)))
    assert b'w_requests_total{model="a"} 7.0' in expected
    assert exposition(files) == expected


def test_a_dead_workers_live_gauge_file_removed_meanwhile_is_skipped(tmp_path, monkeypatch):
    run_worker(tmp_path, monkeypatch, 104)
    live = next(path for path in tmp_path.iterdir() if path.name.startswith("gauge_livesum_"))
    listed = [str(path) for path in tmp_path.glob("*.db")]
    live.unlink()  # mark_process_dead between the glob and the read
    monkeypatch.setattr(multiprocess.glob, "glob", lambda pattern: listed)
    names = {family.name for family in FilesCollector(str(tmp_path)).collect()}
    assert "w_livesum" not in names and "w_sum" in names
    os.remove(next(path for path in listed if "counter_" in path))
    with pytest.raises(FileNotFoundError):
        list(FilesCollector(str(tmp_path)).collect())


WANTED = Wanted(
    counters=frozenset({"w_requests", "w_plain", "w_absent"}),
    gauges=frozenset({f"w_{mode}" for mode in GAUGE_MODES}),
    histograms=frozenset({"w_seconds", "w_unrecorded"}),
)


@pytest.mark.parametrize("shown", [None, (0.1, 10.0)])
def test_the_streams_snapshot_of_the_files_is_what_the_collector_and_take_give(tmp_path, monkeypatch, shown):
    """Tick after tick, as workers come, write more and die: the same numbers as the collector's families
    (less the hidden bounds) made into a snapshot."""
    exposed = {"w_seconds": shown} if shown else {}
    hidden = {"w_seconds": frozenset({"0.01", "1.0"})} if shown else {}
    source = FilesSource(FilesCollector(str(tmp_path)), exposed_bounds=exposed)
    interner = Interner()
    for pid, steps in ((101, 300), (102, 200), (101, 150), (103, 1)):
        run_worker(tmp_path, monkeypatch, pid, steps)  # 101 again: the same files, more entries and values
        if pid == 103:
            mark_process_dead(102, str(tmp_path))  # its live gauges' files go
        collected = take(HiddenBounds(MultiProcessCollector(None, str(tmp_path)), hidden).collect(), WANTED, 1.0)
        direct = asyncio.run(source.snapshot(WANTED, 1.0, interner))
        assert_same_snapshot(direct, collected)
        assert direct.values["w_livesum"] and direct.histograms["w_seconds"] and direct.values["w_mostrecent"]
        if shown:
            assert {len(bounds) for bounds in direct.bounds["w_seconds"].values()} == {3}
    assert direct.histograms["w_unrecorded"] == {} and direct.values["w_absent"] == {}
    assert {pid for key in direct.values["w_all"] for label, pid in key if label == "pid"} == {"101", "102", "103"}
    families = asyncio.run(source.collect(set()))
    assert {family.name for family in families} >= {"w_requests", "w_seconds", "w_livesum"}


def test_the_streams_snapshot_is_read_on_a_thread_and_the_sampler_takes_it_as_one(tmp_path, monkeypatch):
    """The merge of every worker's files cannot be sliced: the loop that serves requests must not run it."""
    run_worker(tmp_path, monkeypatch, 101)
    source = FilesSource(FilesCollector(str(tmp_path)))
    assert Sampler(source, STREAM_MAPPING, tick=1.0, history_seconds=10).direct is source
    readers: list[int] = []
    listed = multiprocess.glob.glob
    monkeypatch.setattr(
        multiprocess.glob, "glob", lambda pattern: readers.append(threading.get_ident()) or listed(pattern)
    )

    async def read() -> int:
        await source.snapshot(WANTED, 1.0, Interner())
        return threading.get_ident()

    assert readers == [] and asyncio.run(read()) not in readers and len(readers) == 1
