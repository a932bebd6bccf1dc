"""``FilesCollector`` reads prometheus-client's multiprocess files with its keys parsed once: it must give
exactly what ``MultiProcessCollector`` gives, on files written by real processes in multiprocess mode."""

import os
import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from exporter import multiprocess
from exporter.multiprocess import FilesCollector

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
    files = FilesCollector(str(tmp_path))
    for pid in (101, 102, 103):  # a new worker's files each time: new series and new values for old ones
        run_worker(tmp_path, monkeypatch, pid)
        expected = exposition(MultiProcessCollector(None, str(tmp_path)))
        assert b'w_livemostrecent{model="a"}' in expected and b"w_sizes_count" in expected
        assert exposition(files) == expected
        assert exposition(files) == expected  # again, every key from the cache
    assert len(files._keys) > 50


def test_a_reader_of_some_families_merges_only_those(tmp_path, monkeypatch):
    run_worker(tmp_path, monkeypatch, 101)
    run_worker(tmp_path, monkeypatch, 102)
    names = {"w_seconds", "w_livesum", "w_requests"}
    whole = {family.name: family for family in MultiProcessCollector(None, str(tmp_path)).collect()}
    for read in (FilesCollector(str(tmp_path), names=names).collect(), FilesCollector(str(tmp_path)).read(names)):
        families = {family.name: family for family in read}
        assert families.keys() == names
        for name in names:
            assert families[name].samples == whole[name].samples, name


def test_the_key_cache_is_bounded_and_starting_over_changes_nothing(tmp_path, monkeypatch):
    run_worker(tmp_path, monkeypatch, 103)
    expected = exposition(MultiProcessCollector(None, str(tmp_path)))
    monkeypatch.setattr(multiprocess, "KEY_LIMIT", 10)
    files = FilesCollector(str(tmp_path))
    assert exposition(files) == expected
    filled = len(files._keys)
    assert filled > 10
    assert exposition(files) == expected  # over the limit: cleared, parsed again
    assert len(files._keys) == filled


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
