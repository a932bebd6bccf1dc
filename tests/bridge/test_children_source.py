"""``ChildrenSource`` reads prometheus-client internals; it must give exactly what ``collect()`` gives."""

import asyncio
import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from support.snapshots import assert_same_snapshot

from bridge.snapshot import Interner, Wanted, take
from bridge.sources import ChildrenSource, RegistrySource

WANTED = Wanted(
    counters=frozenset({"c_requests", "c_plain"}),
    gauges=frozenset({"g_running"}),
    histograms=frozenset({"h_seconds", "h_signed", "h_unused"}),
)


def busy_registry(seed: int) -> tuple[CollectorRegistry, list]:
    rng = random.Random(seed)
    registry = CollectorRegistry()
    metrics = [
        Counter("c_requests", "labelled", ("endpoint", "model"), registry=registry),
        Counter("c_plain", "unlabelled", registry=registry),
        Gauge("g_running", "labelled gauge", ("model",), registry=registry),
        Histogram("h_seconds", "labelled", ("model",), buckets=(0.01, 0.1, 1.0, 10.0), registry=registry),
        Histogram("h_signed", "negative bounds: no _sum", ("model",), buckets=(-1.0, 0.0, 1.0), registry=registry),
        Histogram("h_unused", "no children yet", ("model",), registry=registry),
        Counter("c_not_wanted", "read by nobody", ("model",), registry=registry),
    ]
    requests, plain, running, seconds, signed, _, other = metrics
    for _ in range(500):
        model = rng.choice(("a", "b", 'we"ird\\'))
        requests.labels(rng.choice(("/v1/chat", "/v1/completions")), model).inc(rng.choice((1, 2.5)))
        plain.inc()
        running.labels(model).set(rng.uniform(-5, 5))
        seconds.labels(model).observe(rng.expovariate(1.0))
        signed.labels(model).observe(rng.uniform(-2, 2))
        other.labels(model).inc()
    return registry, metrics


@pytest.mark.parametrize("seed", range(3))
def test_reads_what_collect_gives(seed):
    registry, metrics = busy_registry(seed)
    direct = asyncio.run(ChildrenSource(metrics).snapshot(WANTED, 1.0, Interner()))
    families = asyncio.run(RegistrySource(registry).collect(WANTED.sample_names()))
    assert_same_snapshot(direct, take(families, WANTED, 1.0))
    assert len(direct.histograms["h_seconds"]) == 3 and direct.histograms["h_unused"] == {}
    assert direct.values["c_plain"] == {(): 500.0}


def test_label_keys_and_bounds_are_shared_between_snapshots():
    _, metrics = busy_registry(0)
    source, interner = ChildrenSource(metrics), Interner()
    first = asyncio.run(source.snapshot(WANTED, 1.0, interner))
    second = asyncio.run(source.snapshot(WANTED, 2.0, interner))
    for a, b in zip(first.values["c_requests"], second.values["c_requests"], strict=True):
        assert a is b
    h1, h2 = (next(s.histogram_series("h_seconds")) for s in (first, second))
    assert h1[1] is h2[1]  # the bounds
    assert first.bounds["h_seconds"] is second.bounds["h_seconds"]  # and the dict of them


def test_refuses_types_it_cannot_read():
    with pytest.raises(TypeError, match=r"s_seconds.*summary"):
        ChildrenSource([Summary("s_seconds", "a summary", registry=CollectorRegistry())])


def test_a_histogram_read_at_its_exposed_bounds_is_the_histogram_of_those_bounds():
    # A native histogram records at more bounds than it exposes (exporter.kept_bounds): the stream reads it
    # as if it had recorded at the exposed ones alone.
    own, recorded = (0.01, 0.1, 1.0, 10.0), (0.005, 0.01, 0.05, 0.1, 0.3, 1.0, 2.5, 10.0)
    plain = Histogram("h_seconds", "doc", ("model",), buckets=own, registry=None)
    keeping = Histogram("h_seconds", "doc", ("model",), buckets=recorded, registry=None)
    rng = random.Random(7)
    for _ in range(1_000):
        model, seconds = rng.choice(("a", "b")), rng.expovariate(1.0)
        plain.labels(model).observe(seconds)
        keeping.labels(model).observe(seconds)
    wanted = Wanted(histograms=frozenset({"h_seconds"}))
    expected = asyncio.run(ChildrenSource([plain]).snapshot(wanted, 1.0, Interner()))
    got = asyncio.run(ChildrenSource([keeping], exposed_bounds={"h_seconds": own}).snapshot(wanted, 1.0, Interner()))
    assert_same_snapshot(got, expected)
    unfolded = asyncio.run(ChildrenSource([keeping]).snapshot(wanted, 1.0, Interner()))
    assert len(next(unfolded.histogram_series("h_seconds"))[1]) == len(recorded) + 1  # the bounds
