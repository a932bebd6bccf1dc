"""Native histograms record at the bounds dialect views need, and expose only their own."""

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import metrics as client_metrics
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import collect_once
from exporter.histogram import Reading, SeriesHistogram
from exporter.kept_bounds import HiddenBounds, Shown, hidden_labels, whole
from exporter.textformat import TextWriter
from fakeai.settings import METRICS_DIALECTS

OWN = (0.01, 0.1, 1.0, 10.0)
KEPT = (0.005, 0.05, 0.3, 2.5)
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def observed(histogram: Histogram, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2_000):
        histogram.labels(rng.choice(("a", "b"))).observe(rng.expovariate(2.0))


def exposition(registry: CollectorRegistry) -> list[str]:
    """The text format, less the creation times (two histograms are never made at the same instant)."""
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


@pytest.mark.parametrize("kind", [Histogram, SeriesHistogram])
@pytest.mark.parametrize("seed", range(3))
def test_exposes_exactly_what_a_histogram_of_its_own_bounds_exposes(seed, kind, monkeypatch):
    plain, wrapped = CollectorRegistry(), CollectorRegistry()
    observed(Histogram("h_seconds", "doc", ("model",), buckets=OWN, registry=plain), seed)
    recording = kind("h_seconds", "doc", ("model",), buckets=sorted(OWN + KEPT), registry=None)
    wrapped.register(HiddenBounds(recording, {"h_seconds": hidden_labels(sorted(OWN + KEPT), OWN)}))
    observed(recording, seed)
    # Same observations, byte for byte the same exposition (cumulative counts are exact at any subset),
    # through prometheus-client's writer and through ours (which writes a reading from its series).
    assert exposition(wrapped) == exposition(plain)
    monkeypatch.setattr(client_metrics, "_use_created", False)
    assert TextWriter().write(collect_once(wrapped)) == generate_latest(plain)
    (shown,) = [metric for metric in wrapped.collect() if metric.name == "h_seconds"]
    assert isinstance(shown, Shown if kind is Histogram else Reading)
    bounds = {s.labels["le"] for s in whole(shown).samples if s.name == "h_seconds_bucket"}
    assert {"0.005", "0.05", "0.3", "2.5"} <= bounds  # what the views read keeps them


def test_families_without_hidden_bounds_pass_through():
    registry = CollectorRegistry()
    inner = CollectorRegistry()
    Histogram("other_seconds", "doc", buckets=OWN, registry=inner).observe(0.2)
    registry.register(HiddenBounds(inner, {"h_seconds": frozenset({"0.3"})}))
    (family,) = [m for m in registry.collect() if m.name == "other_seconds"]
    assert not isinstance(family, Shown) and whole(family) is family


def native_structure(text: str) -> dict[str, tuple[str, frozenset[str], tuple[str, ...]]]:
    """Each fakeai_* family: type, label names and bucket bounds."""
    structure = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("fakeai_"):
            continue
        labels = frozenset(k for s in family.samples for k in s.labels if k != "le")
        bounds = tuple(sorted({s.labels["le"] for s in family.samples if s.name.endswith("_bucket")}, key=float))
        structure[family.name] = (family.type, labels, bounds)
    return structure


async def native_after_traffic(app_client, dialect: str) -> dict[str, tuple[str, frozenset[str], tuple[str, ...]]]:
    async with app_client(no_delay=True, models=(MODEL,), metrics_dialect=(dialect,)) as (client, _):
        for stream in (False, True):
            body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": stream}
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        return native_structure((await client.get("/metrics")).text)


async def test_the_native_families_are_the_same_whatever_the_dialect(app_client):
    # Names, types, label names and bucket bounds: what a dialect's view reads beyond them (TGI's step
    # times, Dynamo's requests by kind, other engines' bounds) is recorded, never exposed as fakeai_*.
    reference = await native_after_traffic(app_client, "vllm")
    assert len(reference) > 30
    for dialect in (d for d in METRICS_DIALECTS if d != "vllm"):
        spoken = await native_after_traffic(app_client, dialect)
        assert spoken.keys() == reference.keys(), dialect
        differing = {name: (reference[name], spoken[name]) for name in reference if reference[name] != spoken[name]}
        assert not differing, dialect
