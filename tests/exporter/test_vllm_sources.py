"""The vllm view against vLLM's own source files, kept verbatim in tests/data/vllm (see SOURCES.md):
the expected bucket bounds are read from vLLM's ``buckets.py``, not transcribed by hand."""

import ast
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.views import MAX_MODEL_LEN, MODELS, build

from exporter import buckets
from exporter.facts import FinishedReason, RequestRecord

SOURCE = Path(__file__).resolve().parents[1] / "data" / "vllm" / "buckets.py.txt"
# Which bucket family each histogram draws from: the "Custom Histogram Buckets" table of vLLM's
# docs/usage/metrics.md (commit 044a0565bc59), the keys of buckets.py's BucketFamilyKey.
FAMILY_OF = {
    "vllm:e2e_request_latency_seconds": "request_latency",
    "vllm:request_queue_time_seconds": "request_latency",
    "vllm:request_inference_time_seconds": "request_latency",
    "vllm:request_prefill_time_seconds": "request_latency",
    "vllm:request_decode_time_seconds": "request_latency",
    "vllm:time_to_first_token_seconds": "time_to_first_token",
    "vllm:inter_token_latency_seconds": "inter_token_latency",
    "vllm:request_time_per_output_token_seconds": "inter_token_latency",
    "vllm:iteration_tokens_total": "iteration_tokens",
    "vllm:request_params_n": "request_params_n",
    "vllm:request_num_preemptions": "request_num_preemptions",
    "vllm:request_prompt_tokens": "request_tokens",
    "vllm:request_generation_tokens": "request_tokens",
    "vllm:request_max_num_generation_tokens": "request_tokens",
    "vllm:request_params_max_tokens": "request_tokens",
    "vllm:request_prefill_kv_computed_tokens": "request_tokens",
}


def vllm_buckets_module() -> dict:
    """vLLM's buckets.py, executed in a namespace of its own (it imports only ``typing``)."""
    namespace: dict = {}
    exec(compile(ast.parse(SOURCE.read_text()), str(SOURCE), "exec"), namespace)
    return namespace


VLLM = vllm_buckets_module()


def test_the_family_keys_of_the_table_are_vllms():
    assert set(FAMILY_OF.values()) <= VLLM["BUCKET_FAMILY_KEYS"]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (buckets.VLLM_REQUEST_PHASE, "REQUEST_LATENCY_BUCKETS"),
        (buckets.VLLM_TTFT, "TIME_TO_FIRST_TOKEN_BUCKETS"),
        (buckets.VLLM_ITL, "INTER_TOKEN_LATENCY_BUCKETS"),
        (buckets.VLLM_ITERATION_TOKENS, "ITERATION_TOKENS_BUCKETS"),
        (buckets.VLLM_PARAMS_N, "REQUEST_PARAMS_N_BUCKETS"),
        (buckets.VLLM_REQUEST_NUM_PREEMPTIONS, "REQUEST_NUM_PREEMPTIONS_BUCKETS"),
    ],
)
def test_our_constants_are_vllms(ours, theirs):
    assert tuple(float(b) for b in ours) == tuple(float(b) for b in VLLM[theirs])


@pytest.mark.parametrize("max_model_len", [1, 99, 100, 8192, 131072])
def test_token_buckets_follow_vllms_1_2_5_series(max_model_len):
    assert list(buckets.one_two_five(max_model_len)) == VLLM["build_1_2_5_buckets"](max_model_len)


def test_every_vllm_histogram_on_metrics_has_its_familys_bounds():
    registry, _ = build()
    exposed = {family.name: family for family in text_string_to_metric_families(generate_latest(registry).decode())}
    for name, key in FAMILY_OF.items():
        expected = [float(b) for b in VLLM["histogram_buckets"](key, max_model_len=MAX_MODEL_LEN)] + [float("inf")]
        family = exposed[name]
        assert family.type == "histogram", name
        bounds = sorted({float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")})
        assert bounds == expected, name


def test_prompt_tokens_by_source_add_up_to_the_prompt_tokens():
    registry, metrics = build()
    r = metrics.request("/v1/chat/completions", MODELS[0])
    r.prefilled(33, 32, 0.01, 0.01)  # all but the last token cached: vLLM counts that token recomputed
    r.prefilled(100, 48, 0.01, 0.01)
    r.prefilled(20, 0, 0.01, 0.01)
    labels = {"model_name": MODELS[0], "engine": "0"}

    def value(name: str, **extra: str) -> float:
        return registry.get_sample_value(name, {**labels, **extra})

    assert value("vllm:prompt_tokens_total") == 153
    assert value("vllm:prompt_tokens_cached_total") == 80
    assert value("vllm:prompt_tokens_recomputed_total") == 1
    assert value("vllm:prompt_tokens_by_source_total", source="local_compute") == 153 - 80
    # The last token of the fully cached prompt is computed (local_compute) and counted recomputed.
    assert value("vllm:prompt_tokens_by_source_total", source="local_cache_hit") == 80
    assert value("vllm:prompt_tokens_by_source_total", source="external_kv_transfer") == 0
    # The prefix cache is in (simulated) device memory: every cached token is a device hit, and the
    # tiers add up to vllm:prompt_tokens_cached.
    tiers = {s: value("vllm:prompt_tokens_cached_by_source_total", source=s) for s in cache_hit_sources()}
    assert tiers == {"device": 80, "host": 0, "p2p": 0, "disk": 0, "external_unspecified": 0}


def cache_hit_sources() -> list[str]:
    """The members of vLLM's ``CacheHitSource`` enum, read from cache_hit_source.py kept verbatim."""
    tree = ast.parse((SOURCE.parent / "cache_hit_source.py.txt").read_text())
    enum = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CacheHitSource")
    return [
        node.value.value for node in enum.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
    ]


def test_cache_hit_sources_are_vllms():
    from exporter.views.vllm import CACHE_HIT_SOURCES

    assert list(CACHE_HIT_SOURCES) == cache_hit_sources()


def test_per_request_preemptions_and_computed_prompt_tokens():
    registry, metrics = build()
    r = metrics.request("/v1/chat/completions", MODELS[1])
    for preemptions, cached in ((0, 0), (2, 32), (25, 96)):
        r.finished(
            RequestRecord(
                "/v1/chat/completions",
                MODELS[1],
                200,
                FinishedReason.STOP,
                arrival=0.0,
                finished=1.0,
                queued=0.0,
                prompt_tokens=100,
                cached_tokens=cached,
                preemptions=preemptions,
            )
        )
    r.finished(RequestRecord("/v1/chat/completions", MODELS[1], 429, FinishedReason.ERROR, 0.0, 0.1))  # never queued
    labels = {"model_name": MODELS[1], "engine": "0"}

    def bucket(name: str, le: str) -> float:
        return registry.get_sample_value(f"{name}_bucket", {**labels, "le": le})

    assert bucket("vllm:request_num_preemptions", "1.0") == 1  # the le=1 bucket holds 0 and 1, as in vLLM
    assert bucket("vllm:request_num_preemptions", "2.0") == 2
    assert bucket("vllm:request_num_preemptions", "20.0") == 2 and bucket("vllm:request_num_preemptions", "+Inf") == 3
    assert registry.get_sample_value("vllm:request_prefill_kv_computed_tokens_sum", labels) == 100 + 68 + 4


def test_waiting_by_reason_adds_up_to_waiting_and_unsimulated_caches_exist_at_zero():
    registry, metrics = build()
    r = metrics.request("/v1/completions", MODELS[0])
    r.enqueued()
    r.enqueued()
    labels = {"model_name": MODELS[0], "engine": "0"}
    assert registry.get_sample_value("vllm:num_requests_waiting_by_reason", {**labels, "reason": "capacity"}) == 2
    assert registry.get_sample_value("vllm:num_requests_waiting_by_reason", {**labels, "reason": "deferred"}) == 0
    assert registry.get_sample_value("vllm:num_requests_waiting", labels) == 2
    for model in MODELS:
        for name in (
            "external_prefix_cache_queries",
            "external_prefix_cache_hits",
            "mm_cache_queries",
            "mm_cache_hits",
        ):
            assert registry.get_sample_value(f"vllm:{name}_total", {"model_name": model, "engine": "0"}) == 0


def test_custom_buckets_replace_whole_families_in_the_view_and_keep_counts_exact():
    custom = {"request_latency": (0.01, 0.05, 0.1, 0.5), "request_tokens": (10.0, 100.0)}
    registry, metrics = build(custom_buckets=custom)
    r = metrics.request("/v1/chat/completions", MODELS[0])
    for duration in (0.004, 0.03, 0.3, 3.0):
        r.finished(
            RequestRecord("/v1/chat/completions", MODELS[0], 200, FinishedReason.STOP, 0.0, duration, queued=0.0)
        )
    exposed = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    for name, key in FAMILY_OF.items():
        bounds = sorted({float(s.labels["le"]) for s in exposed[name].samples if s.name.endswith("_bucket")})
        expected = custom.get(key) or VLLM["histogram_buckets"](key, max_model_len=MAX_MODEL_LEN)
        assert bounds == [*map(float, expected), float("inf")], name
    labels = {"model_name": MODELS[0], "engine": "0"}
    cumulative = [
        registry.get_sample_value("vllm:e2e_request_latency_seconds_bucket", {**labels, "le": le})
        for le in ("0.01", "0.05", "0.1", "0.5", "+Inf")
    ]
    assert cumulative == [1, 2, 2, 3, 4]


def cache_config_fields() -> list[str]:
    """The instance fields of vLLM's CacheConfig, in declaration order: what its metrics_info() gives."""
    tree = ast.parse((SOURCE.parent / "cache.py.txt").read_text())
    (config,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "CacheConfig"]
    return [
        statement.target.id
        for statement in config.body
        if isinstance(statement, ast.AnnAssign)
        and isinstance(statement.target, ast.Name)
        and "ClassVar" not in ast.unparse(statement.annotation)
    ]


def test_cache_config_info_has_every_field_of_vllms_cache_config():
    registry, _ = build()
    (family,) = [
        f
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        if f.name == "vllm:cache_config_info"
    ]
    (sample,) = family.samples
    fields = cache_config_fields()
    assert len(fields) > 30
    assert set(sample.labels) == {*fields, "engine"}
    assert sample.labels["kv_cache_size_tokens"] == str(1024 * 16)
    assert sample.labels["enable_prefix_caching"] == "True" and sample.labels["kv_cache_dtype_skip_layers"] == "[]"
