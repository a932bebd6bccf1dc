"""The stream's ring keeps hundreds of snapshots: the garbage collector must not walk them.

A full collection walks every tracked container, on the event loop. What a snapshot holds (dicts from
label keys to floats, histogram series as tuples of arrays and floats) leaves the collector's lists once
a collection has seen it: three objects a snapshot stay, whatever it holds. An instance of a class (the
old ``Histogram`` dataclass, 45 a snapshot on the default server) never leaves them.
"""

import asyncio
import gc
import random

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
    """The containers of ``snapshot``'s figures that the collector still walks, beside the snapshot and its
    two dicts of families (a dict of dicts stays tracked: three objects a snapshot, whatever it holds)."""
    families: list[dict] = [*snapshot.values.values(), *snapshot.histograms.values()]
    parts: list[object] = [*families, *(key for series in families for key in series)]
    parts += [series for family in snapshot.histograms.values() for series in family.values()]
    return [part for part in parts if gc.is_tracked(part)]


def sampled(how: str) -> list[Snapshot]:
    registry, metrics = busy_registry()
    interner = Interner()
    if how == "children":  # the server's own registry, read directly
        source = ChildrenSource(metrics)
        return [asyncio.run(source.snapshot(WANTED, float(t), interner)) for t in range(5)]
    # a registry's collect(), or a scrape parsed into the same families
    families = asyncio.run(RegistrySource(registry).collect(WANTED.sample_names()))
    return [take(families, WANTED, float(t), interner) for t in range(5)]


@pytest.mark.parametrize("how", ["children", "collected"])
def test_a_kept_snapshot_leaves_the_collectors_lists(how):
    snapshots = sampled(how)
    assert all(snapshot.histograms["h_seconds"] for snapshot in snapshots)  # something to walk
    for _ in range(3):  # dicts leave only in full collections, one level of nesting each
        gc.collect()
    for snapshot in snapshots:
        assert still_tracked(snapshot) == []


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
    gc.collect()
    assert not gc.is_tracked(later.numbers)  # a tuple of floats, untracked by its first collection
