"""The vllm and http views: exact names, label names and `le` bounds, values equal to the native families."""

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.views import ENDPOINTS, MODELS, build

from exporter import buckets
from exporter.facts import FinishedReason, RequestRecord, StreamOutcome
from exporter.metrics import ServerMetrics

# fmt: off
VLLM_TTFT = [
    "0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75", "1.0", "2.5",
    "5.0", "7.5", "10.0", "20.0", "40.0", "80.0", "160.0", "640.0", "2560.0", "+Inf",
]
VLLM_ITL = [
    "0.01", "0.025", "0.05", "0.075", "0.1", "0.15", "0.2", "0.3", "0.4", "0.5", "0.75", "1.0", "2.5", "5.0",
    "7.5", "10.0", "20.0", "40.0", "80.0", "+Inf",
]
VLLM_PHASE = [
    "0.3", "0.5", "0.8", "1.0", "1.5", "2.0", "2.5", "5.0", "10.0", "15.0", "20.0", "30.0", "40.0", "50.0",
    "60.0", "120.0", "240.0", "480.0", "960.0", "1920.0", "7680.0", "+Inf",
]
TOKENS_8192 = [
    "1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "100.0", "200.0", "500.0", "1000.0", "2000.0", "5000.0",
    "+Inf",
]
N_SET = ["1.0", "2.0", "5.0", "10.0", "20.0", "+Inf"]
ITERATION = [
    "1.0", "8.0", "16.0", "32.0", "64.0", "128.0", "256.0", "512.0", "1024.0", "2048.0", "4096.0", "8192.0",
    "16384.0", "+Inf",
]
# fmt: on

# Every name DESIGN section 4 lists, with vLLM's type and bucket set.
EXPECTED_HISTOGRAMS = {
    "vllm:time_to_first_token_seconds": VLLM_TTFT,
    "vllm:inter_token_latency_seconds": VLLM_ITL,
    "vllm:request_time_per_output_token_seconds": VLLM_ITL,
    "vllm:e2e_request_latency_seconds": VLLM_PHASE,
    "vllm:request_queue_time_seconds": VLLM_PHASE,
    "vllm:request_prefill_time_seconds": VLLM_PHASE,
    "vllm:request_decode_time_seconds": VLLM_PHASE,
    "vllm:request_inference_time_seconds": VLLM_PHASE,
    "vllm:request_prompt_tokens": TOKENS_8192,
    "vllm:request_generation_tokens": TOKENS_8192,
    "vllm:request_max_num_generation_tokens": TOKENS_8192,
    "vllm:request_params_max_tokens": TOKENS_8192,
    "vllm:request_params_n": N_SET,
    "vllm:iteration_tokens_total": ITERATION,
}
EXPECTED_COUNTERS = {
    "vllm:prompt_tokens",
    "vllm:generation_tokens",
    "vllm:request_success",
    "vllm:prefix_cache_queries",
    "vllm:prefix_cache_hits",
    "vllm:num_preemptions",
}
EXPECTED_GAUGES = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:cache_config_info",
}


def traffic(metrics: ServerMetrics) -> None:
    """Two endpoints of model-a with different latencies, one request of model-b."""
    for endpoint, ttft, gap in ((ENDPOINTS[0], 0.03, 0.02), (ENDPOINTS[1], 0.3, 0.2)):
        r = metrics.request(endpoint, "model-a")
        r.accepted(max_tokens=50, n=2)
        r.enqueued()
        r.scheduled(0.35)
        r.prefix_lookup(100, 32)
        r.prefilled(100, 32, ttft, 0.01)
        r.tokens(2, None)
        r.tokens(2, gap)
        r.left_engine(running=True)
        r.finished(
            RequestRecord(
                endpoint,
                "model-a",
                200,
                FinishedReason.LENGTH,
                arrival=0.0,
                finished=1.2,
                scheduled=0.35,
                first_token=0.4,
                last_token=1.1,
                prompt_tokens=100,
                completion_tokens=4,
                max_choice_tokens=2,
                stream_outcome=StreamOutcome.COMPLETED,
            )
        )
    b = metrics.request(ENDPOINTS[0], "model-b")
    b.accepted(max_tokens=None, n=1)
    b.finished(
        RequestRecord(
            ENDPOINTS[0], "model-b", 503, FinishedReason.ERROR, arrival=0.0, finished=0.01, error_type="server_error"
        )
    )
    metrics.model("model-a").steps(70, 1)
    metrics.model("model-a").kv_cache_usage(0.25)
    metrics.http_request(ENDPOINTS[0], "POST", 200, 0.2, 120, 900)
    metrics.http_request(ENDPOINTS[0], "POST", 503, 0.7, 80, 0)


def families(registry: CollectorRegistry):
    return {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}


def test_every_vllm_name_with_type_labels_and_exact_bounds():
    registry, metrics = build()
    traffic(metrics)
    found = families(registry)
    for name, bounds in EXPECTED_HISTOGRAMS.items():
        family = found[name]
        assert family.type == "histogram", name
        for model in MODELS:
            les = [
                s.labels["le"] for s in family.samples if s.name == name + "_bucket" and s.labels["model_name"] == model
            ]
            assert les == bounds, (name, model)
        assert {frozenset(s.labels) - {"le"} for s in family.samples} == {frozenset({"model_name", "engine"})}
    for name in EXPECTED_COUNTERS:
        assert found[name].type == "counter", name
        assert all(s.name == name + "_total" for s in found[name].samples)
    for name in EXPECTED_GAUGES:
        assert found[name].type == "gauge", name
    # Every engine-level family is labelled engine="0" (vLLM's server-wide ones have no engine label).
    engineless = {"vllm:scheduler_policy_info", "vllm:lora_requests_info"}
    engine_level = [f for f in found.values() if f.name.startswith("vllm:") and f.name not in engineless]
    assert {s.labels["engine"] for f in engine_level for s in f.samples} == {"0"}
    info = found["vllm:cache_config_info"].samples[0]
    assert info.labels["block_size"] == "16" and info.labels["num_gpu_blocks"] == "1024" and info.value == 1
    # Every label name is checked against vLLM's CacheConfig in test_vllm_sources.py.


def test_request_success_has_all_five_reasons_at_start():
    registry, _ = build()
    success = families(registry)["vllm:request_success"]
    for model in MODELS:
        reasons = {s.labels["finished_reason"]: s.value for s in success.samples if s.labels["model_name"] == model}
        assert reasons == {"stop": 0, "length": 0, "abort": 0, "error": 0, "repetition": 0}


def test_vllm_values_equal_native_sums_over_endpoints():
    registry, metrics = build()
    traffic(metrics)
    value = registry.get_sample_value
    a = {"model_name": "model-a", "engine": "0"}
    assert value("vllm:prompt_tokens_total", a) == 200
    assert value("vllm:generation_tokens_total", a) == 8
    assert value("vllm:prefix_cache_hits_total", a) == 64
    assert value("vllm:request_success_total", {**a, "finished_reason": "length"}) == 2
    assert (
        value("vllm:request_success_total", {"model_name": "model-b", "engine": "0", "finished_reason": "error"}) == 1
    )
    assert value("vllm:time_to_first_token_seconds_count", a) == 2
    assert value("vllm:time_to_first_token_seconds_bucket", {**a, "le": "0.04"}) == 1
    assert value("vllm:time_to_first_token_seconds_bucket", {**a, "le": "0.5"}) == 2
    assert abs(value("vllm:time_to_first_token_seconds_sum", a) - 0.33) < 1e-9
    assert value("vllm:inter_token_latency_seconds_count", a) == 4
    assert value("vllm:e2e_request_latency_seconds_bucket", {**a, "le": "1.5"}) == 2
    assert value("vllm:request_params_n_bucket", {**a, "le": "2.0"}) == 2
    assert value("vllm:iteration_tokens_total_bucket", {**a, "le": "64.0"}) == 0
    assert value("vllm:iteration_tokens_total_bucket", {**a, "le": "128.0"}) == 1
    assert value("vllm:kv_cache_usage_perc", a) == 0.25
    assert value("vllm:num_requests_running", a) == 0


def test_http_view_groups_status_classes():
    registry, metrics = build()
    traffic(metrics)
    value = registry.get_sample_value
    labels = {"handler": ENDPOINTS[0], "method": "POST"}
    assert value("http_requests_total", {**labels, "status": "2xx"}) == 1
    assert value("http_requests_total", {**labels, "status": "5xx"}) == 1
    assert value("http_request_duration_seconds_bucket", {**labels, "le": "0.5"}) == 1
    assert value("http_request_duration_seconds_bucket", {**labels, "le": "1.0"}) == 2
    assert value("http_request_duration_seconds_count", labels) == 2


def test_legacy_names_only_when_asked():
    registry, metrics = build()
    assert "vllm:gpu_cache_usage_perc" not in families(registry)
    legacy, metrics = build(legacy=True)
    traffic(metrics)
    found = families(legacy)
    for name in (
        "vllm:time_per_output_token_seconds",
        "vllm:gpu_cache_usage_perc",
        "vllm:gpu_prefix_cache_queries",
        "vllm:gpu_prefix_cache_hits",
    ):
        assert name in found
    assert legacy.get_sample_value("vllm:gpu_cache_usage_perc", {"model_name": "model-a", "engine": "0"}) == 0.25


def test_every_finish_reason_and_sleep_state_of_every_model_exists_from_the_start():
    registry, metrics = build()
    for model in MODELS:
        labels = {"model_name": model, "engine": "0"}
        for reason in ("stop", "length", "abort", "error", "repetition"):  # vLLM's FINISH_REASON_STRINGS
            assert registry.get_sample_value("vllm:request_success_total", {**labels, "finished_reason": reason}) == 0
        assert registry.get_sample_value("vllm:engine_sleep_state", {**labels, "sleep_state": "awake"}) == 1
    traffic(metrics)
    counted = {"model_name": "model-a", "engine": "0", "finished_reason": "length"}
    assert registry.get_sample_value("vllm:request_success_total", counted) == 2


def test_http_sizes_and_the_high_resolution_latency_as_the_instrumentator_exposes_them():
    registry, metrics = build()
    traffic(metrics)
    found = families(registry)
    handler = {"handler": ENDPOINTS[0]}
    assert found["http_request_size_bytes"].type == found["http_response_size_bytes"].type == "summary"
    assert registry.get_sample_value("http_request_size_bytes_count", handler) == 2
    assert registry.get_sample_value("http_request_size_bytes_sum", handler) == 200
    assert registry.get_sample_value("http_response_size_bytes_sum", handler) == 900
    highr = found["http_request_duration_highr_seconds"]
    assert {frozenset(s.labels) - {"le"} for s in highr.samples} == {frozenset()}  # no labels at all
    bounds = [float(s.labels["le"]) for s in highr.samples if s.name.endswith("_bucket")]
    assert bounds == [*buckets.HTTP_DURATION_HIGHR, float("inf")]
    assert registry.get_sample_value("http_request_duration_highr_seconds_bucket", {"le": "0.5"}) == 1
    assert registry.get_sample_value("http_request_duration_highr_seconds_count") == 2
