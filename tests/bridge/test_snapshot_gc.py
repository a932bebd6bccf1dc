"""The stream's ring keeps hundreds of snapshots, one more every second: the garbage collector must not
walk them.

A collection walks every tracked container, on the event loop. What a snapshot holds (dicts from label
keys to floats, histogram series as float arrays, their bounds) is never on the collector's lists once
the label keys have been seen by a collection: a snapshot adds four objects, itself and its three dicts
of families (a dict holding dicts is tracked), whatever it holds. An instance of a
class (the old ``Histogram`` dataclass, 45 a snapshot on the default server) never left them; a tuple
of arrays and floats (the form after it) left them at the next collection, and the dict holding it only
at a full one.
"""

import asyncio
import gc
import random
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bridge.folds import FoldCache, FoldPlan
from bridge.snapshot import Interner, Snapshot, Wanted, take
from bridge.sources import ChildrenSource, RegistrySource

WANTED = Wanted(
    counters=frozenset({"c_requests"}),
    gauges=frozenset({"g_running"}),
    histograms=frozenset({"h_seconds", "h_signed"}),
)


def busy_registry() -> tuple[CollectorRegistry, list]:
    rng = random.Random(3)
    registry = CollectorRegistry()
    requests = Counter("c_requests", "labelled", ("endpoint", "model"), registry=registry)
    running = Gauge("g_running", "labelled gauge", ("model",), registry=registry)
    seconds = Histogram("h_seconds", "labelled", ("model",), buckets=(0.01, 0.1, 1.0, 10.0), registry=registry)
    signed = Histogram("h_signed", "no _sum", ("model",), buckets=(-1.0, 0.0, 1.0), registry=registry)
    for _ in range(200):
        model = rng.choice(("a", "b", "c"))
        requests.labels(rng.choice(("/v1/chat", "/v1/completions")), model).inc()
        running.labels(model).set(rng.uniform(0, 5))
        seconds.labels(model).observe(rng.expovariate(1.0))
        signed.labels(model).observe(rng.uniform(-2, 2))
    return registry, [requests, running, seconds, signed]


def still_tracked(snapshot: Snapshot) -> list[object]:
    """The containers of ``snapshot``'s figures that the collector walks, beside the snapshot and its three
    dicts of families."""
    families: list[dict] = [*snapshot.values.values(), *snapshot.histograms.values(), *snapshot.bounds.values()]
    parts: list[object] = [*families]
    parts += [key for series in families for key in series]
    parts += [series for family in snapshot.histograms.values() for series in family.values()]
    return [part for part in parts if gc.is_tracked(part)]


def sampler(how: str) -> Callable[[float], Snapshot]:
    """Snapshots of one busy registry, as the stream's sampler takes them."""
    registry, metrics = busy_registry()
    interner = Interner()
    if how == "children":  # the server's own registry, read directly
        source = ChildrenSource(metrics)
        return lambda t: asyncio.run(source.snapshot(WANTED, t, interner))
    # a registry's collect(), or a scrape parsed into the same families
    families = asyncio.run(RegistrySource(registry).collect(WANTED.sample_names()))
    return lambda t: take(families, WANTED, t, interner)


def sampled(how: str) -> list[Snapshot]:
    sample = sampler(how)
    return [sample(float(t)) for t in range(5)]


@pytest.mark.parametrize("how", ["children", "collected"])
def test_a_kept_snapshot_leaves_the_collectors_lists(how):
    snapshots = sampled(how)
    assert all(snapshot.histograms["h_seconds"] for snapshot in snapshots)  # something to walk
    for _ in range(3):  # a label key is a tuple of tuples: one level of nesting a collection
        gc.collect()
    for snapshot in snapshots:
        assert still_tracked(snapshot) == []


@pytest.mark.parametrize("how", ["children", "collected"])
def test_a_snapshot_after_the_first_never_enters_the_collectors_lists(how):
    sample = sampler(how)
    sample(1.0)
    for _ in range(3):  # the label keys made for the first snapshot are seen
        gc.collect()
    gc.disable()  # nothing may untrack what the next snapshot makes before it is looked at
    try:
        later = sample(2.0)
        assert later.histograms["h_seconds"] and later.bounds["h_seconds"]  # something to walk
        assert still_tracked(later) == []
    finally:
        gc.enable()


def test_a_fold_after_the_first_is_made_of_what_the_collector_has_seen():
    snapshots = sampled("children")
    plan = FoldPlan(
        values=(("c_requests", "endpoint"),), histograms=(("h_seconds", "model"), ("h_signed", None)), keep=None
    )
    cache = FoldCache()
    cache.fold(snapshots[0], plan)  # the layout's places, made once
    gc.collect()
    later = cache.fold(snapshots[1], plan)
    assert all(later.histograms.values())  # something placed
    # Each read's dict of places holds only the layout's tuples, seen by a collection already: it is
    # never tracked, with no collection since it was made.
    assert [read for read, placed in later.histograms.items() if gc.is_tracked(placed)] == []
    numbers = later.numbers  # made when a window computed alone first reads them
    gc.collect()
    assert not gc.is_tracked(numbers)  # a tuple of floats, untracked by its first collection
