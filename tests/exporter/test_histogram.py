"""``SeriesHistogram`` reads prometheus-client internals: it must collect what ``Histogram`` does."""

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import metrics as client_metrics
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from exporter.bulk import observe
from exporter.histogram import SeriesHistogram

BOUNDS = (0.01, 0.1, 1.0, 10.0)


def pair(labelnames: tuple[str, ...], bounds=BOUNDS) -> tuple[Histogram, Histogram]:
    return (
        Histogram("h_seconds", "doc", labelnames, buckets=bounds, registry=None),
        SeriesHistogram("h_seconds", "doc", labelnames, buckets=bounds, registry=None),
    )


def samples(histogram: Histogram) -> list:
    (family,) = histogram.collect()
    return [(family.name, family.type, family.documentation)] + [
        (s.name, list(s.labels.items()), s.value, s.timestamp, s.exemplar and s.exemplar[:2]) for s in family.samples
    ]


@pytest.mark.parametrize("seed", range(3))
def test_collects_what_histogram_collects(seed, monkeypatch):
    rng = random.Random(seed)
    public, caching = pair(("endpoint", "model"))
    for _ in range(3):  # the label dicts come from the cache after the first collect
        for _ in range(500):
            labels = (rng.choice(("/v1/chat", "/v1/completions")), rng.choice(("a", 'we"ird\\', "b")))
            seconds = rng.choice((rng.expovariate(1.0), 0.1, 20.0))
            public.labels(*labels).observe(seconds)
            observe(caching.labels(*labels), seconds)  # the hot path's own helper
        public.labels("/v1/chat", "a").observe(0.5, exemplar={"trace": "1"})
        caching.labels("/v1/chat", "a").observe(0.5, exemplar={"trace": "1"})
        got, expected = samples(caching), samples(public)
        # _created differs by construction time only: compare it apart.
        assert [s for s in got if not s[0].endswith("_created")] == [
            s for s in expected if not s[0].endswith("_created")
        ]
        assert [s[1] for s in got if s[0].endswith("_created")] == [s[1] for s in expected if s[0].endswith("_created")]
    monkeypatch.setattr(client_metrics, "_use_created", False)
    assert samples(caching) == samples(public)


def test_negative_bounds_have_no_sum_and_unlabelled_ones_collect_as_the_parent(monkeypatch):
    monkeypatch.setattr(client_metrics, "_use_created", False)
    public, caching = pair(("model",), bounds=(-1.0, 0.0, 1.0))
    for value in (-2.0, -0.5, 0.5, 3.0):
        public.labels("a").observe(value)
        caching.labels("a").observe(value)
    assert samples(caching) == samples(public)
    plain, cached = pair(())
    plain.observe(0.2)
    cached.observe(0.2)
    assert samples(cached) == samples(plain)


def test_expositions_are_byte_for_byte_the_same(monkeypatch):
    monkeypatch.setattr(client_metrics, "_use_created", False)
    registries = CollectorRegistry(), CollectorRegistry()
    for registry, kind in zip(registries, (Histogram, SeriesHistogram), strict=True):
        histogram = kind("h_seconds", "doc", ("model",), buckets=BOUNDS, registry=registry)
        for value in (0.005, 0.05, 0.5, 5.0, 50.0):
            histogram.labels("m").observe(value)
    assert generate_latest(registries[1]) == generate_latest(registries[0])
    assert openmetrics_latest(registries[1]) == openmetrics_latest(registries[0])
