"""TextWriter writes exactly what prometheus-client's generate_latest writes, scrape after scrape."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, Summary, generate_latest
from prometheus_client import metrics as client_metrics
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, StateSetMetricFamily
from prometheus_client.registry import Collector

from exporter.exposition import collect_once
from exporter.histogram import SeriesHistogram
from exporter.metrics import ServerMetrics
from exporter.textformat import TextWriter
from exporter.views import CacheConfig, HttpView, VllmView
from exporter.views.aggregate import reusing_scrape

MODELS = ("model-a", "model-b")
ENDPOINTS = ("/v1/chat/completions", "/v1/completions")


class Odd(Collector):
    """Families generate_latest munges: stateset, gauge histogram, timestamps, odd label values."""

    def collect(self):
        stateset = StateSetMetricFamily("odd_state", "A state set.", labels=["who"])
        stateset.add_metric(["a"], {"on": True, "off": False})
        yield stateset
        gauge_histogram = GaugeHistogramMetricFamily("odd_gh", "A gauge histogram.", labels=["who"])
        gauge_histogram.add_metric(["b"], [("1.0", 2.0), ("+Inf", 3.0)], gsum_value=4.5)
        yield gauge_histogram
        gauge = GaugeMetricFamily("odd_gauge", "Back\\slash and\nnewline.", labels=["v"])
        gauge.add_metric(['quote " back \\ nl \n'], 12345678.9, timestamp=1700000000.5)
        gauge.add_metric(["nan"], float("nan"))
        gauge.add_metric(["inf"], float("-inf"))
        yield gauge


def busy_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, models=MODELS, endpoints=ENDPOINTS, max_model_len=2048)
    native = reusing_scrape(metrics.families.collect)
    registry.register(VllmView(native, bucket_families=metrics.buckets, cache_config=CacheConfig(16, 1024)))
    registry.register(HttpView(native))
    for i, model in enumerate(MODELS):
        request = metrics.request(ENDPOINTS[i], model)
        request.accepted(64, 2)
        request.prefilled(100 + i, 32, 0.0123, 0.004)
        request.tokens(17, 0.011)
        metrics.http_request(ENDPOINTS[i], "POST", 200, 0.02 * (i + 1), 100 + i, 2000 + i)
    Counter("plain", "No labels.", registry=registry).inc(3)
    Gauge("big", "A big value.", registry=registry).set(1.5e12)
    Histogram("h", "Default buckets.", registry=registry).observe(0.3)
    Summary("s", "A summary.", ["k"], registry=registry).labels("x").observe(2)
    Info("build", "Build info.", registry=registry).info({"version": "1"})
    registry.register(Odd())
    return registry


def test_the_writer_matches_generate_latest_byte_for_byte_and_keeps_matching():
    registry = busy_registry()
    writer = TextWriter()
    assert writer.write(collect_once(registry)) == generate_latest(registry)
    Counter("later", "Registered between scrapes.", ["k"], registry=registry).labels("new").inc()
    for _ in range(2):  # later scrapes come from the kept prefixes and values
        assert writer.write(collect_once(registry)) == generate_latest(registry)


def test_a_scrape_reads_the_native_families_once(monkeypatch):
    registry = busy_registry()
    calls = []
    real = {client_metrics.MetricWrapperBase: client_metrics.MetricWrapperBase.collect}
    real[SeriesHistogram] = SeriesHistogram.collect

    def counted(self):
        calls.append(self._name)
        return real[SeriesHistogram if isinstance(self, SeriesHistogram) else client_metrics.MetricWrapperBase](self)

    monkeypatch.setattr(client_metrics.MetricWrapperBase, "collect", counted)
    monkeypatch.setattr(SeriesHistogram, "collect", counted)
    collect_once(registry)
    assert calls.count("fakeai_requests") == 1 and calls.count("fakeai_time_to_first_token_seconds") == 1
    calls.clear()
    list(registry.collect())  # outside a scrape, the views still read for themselves
    assert calls.count("fakeai_time_to_first_token_seconds") == 2
