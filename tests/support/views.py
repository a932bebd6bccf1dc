"""A registry with the native families and both views over them, as the server builds it."""

from prometheus_client import CollectorRegistry

from exporter.metrics import ServerMetrics
from exporter.views import CacheConfig, HttpView, VllmView
from exporter.vllm_releases import LEGACY_RELEASE, shown_retired

MODELS = ("model-a", "model-b")
ENDPOINTS = ("/v1/chat/completions", "/v1/completions")
MAX_MODEL_LEN = 8192


def build(legacy: bool = False, custom_buckets=None) -> tuple[CollectorRegistry, ServerMetrics]:
    registry = CollectorRegistry()
    metrics = ServerMetrics(
        registry, models=MODELS, endpoints=ENDPOINTS, max_model_len=MAX_MODEL_LEN, custom_buckets=custom_buckets
    )
    registry.register(
        VllmView(
            metrics.families.collect,
            bucket_families=metrics.buckets,
            cache_config=CacheConfig(block_size=16, num_gpu_blocks=1024),
            retired=dict.fromkeys(shown_retired(LEGACY_RELEASE if legacy else None)),
        )
    )
    registry.register(HttpView(metrics.families.collect))
    return registry, metrics
