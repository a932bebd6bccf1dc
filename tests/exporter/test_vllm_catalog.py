"""Every ``vllm:*`` family the view exposes, held against vLLM's own declarations (tests/support/
vllm_catalog.py, transcribed from vLLM's sources): its name, type, label names and help text."""

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.vllm_catalog import CATALOG, NOT_SIMULATED

from exporter.facts import FinishedReason, RequestRecord
from exporter.metrics import ServerMetrics
from exporter.views import CacheConfig, VllmView
from exporter.vllm_releases import LEGACY_RELEASE, shown_retired

MODEL = "model-a"
ENDPOINT = "/v1/chat/completions"


def exposition() -> dict[str, tuple[str, set[str], str]]:
    """(type, label names, help) of each vllm:* family of a server with every optional family on, after
    one request of each kind of fact, so every family has samples whose labels can be read."""
    registry = CollectorRegistry()
    metrics = ServerMetrics(
        registry, models=[MODEL], endpoints=[ENDPOINT], max_model_len=4096, kv_cache_metrics=True, speculative_tokens=3
    )
    registry.register(
        VllmView(
            metrics.families.collect,
            bucket_families=metrics.buckets,
            cache_config=CacheConfig(block_size=16, num_gpu_blocks=64),
            retired=dict.fromkeys(shown_retired(LEGACY_RELEASE)),
            kv_cache_metrics=True,
            speculative=True,
            lora=True,
        )
    )
    recorder = metrics.request(ENDPOINT, MODEL)
    recorder.accepted(8, 1)
    recorder.prefilled(40, 16, 0.01, 0.01)
    recorder.finished(
        RequestRecord(ENDPOINT, MODEL, 200, FinishedReason.LENGTH, 0.0, 1.0, 0.1, 0.0, 0.2, 0.9, 40, 16, 1, 8, 8)
    )
    metrics.model(MODEL).kv_block_evicted(2.0, 0.5, [0.25])
    metrics.model(MODEL).speculative_step(1, 3, 2, [1, 1, 0])
    metrics.model(MODEL).adapters(1, ["sql"], ["chat"], 1)
    with metrics.sleep_operation("sleep"):
        pass
    families = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        if family.name.startswith("vllm:"):
            labels = {name for sample in family.samples for name in sample.labels if name != "le"}
            families[family.name] = (family.type, labels, family.documentation)
    return families


def test_every_exposed_family_is_vllms_with_its_type_labels_and_help():
    exposed = exposition()
    unknown = sorted(set(exposed) - set(CATALOG))
    assert not unknown, f"exposed, but not in vLLM's sources: {unknown}"
    for name, (kind, labels, doc) in exposed.items():
        expected = CATALOG[name]
        assert kind == expected.type, name
        if expected.labels is not None:
            assert labels == set(expected.labels), name
        if expected.doc is not None:
            assert doc == expected.doc, name


def test_every_family_of_the_catalog_is_exposed_and_none_of_the_unsimulated():
    exposed = exposition()
    assert sorted(set(CATALOG) - set(exposed)) == []
    assert sorted(set(NOT_SIMULATED) & set(exposed)) == []
