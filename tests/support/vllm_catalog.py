"""vLLM's ``vllm:*`` families as vLLM's own sources declare them: name, type, label names and, where the
file was read whole, the help text. Transcribed by hand from the files below, independently of
``exporter.views.vllm``, so a test can hold the view against it.

Sources (``vllm-project/vllm``):
- L:  vllm/v1/metrics/loggers.py @ b3c1ea511d75d83129d47b05d7cd8ecad2426658 (``PrometheusStatLogger``)
- L0: vllm/v1/metrics/loggers.py @ a6f0308cfe806b7731ad4979c9bea6e470c35efd (the first v1 logger: the
      names older dashboards still query)
- W:  the newer ``PrometheusStatLogger`` that adds ``vllm:num_requests_waiting_by_reason`` (reasons
      ``capacity`` and ``deferred``) and ``vllm:request_num_preemptions`` (bucket family
      ``request_num_preemptions`` of vllm/v1/metrics/buckets.py @ 139b1c3f, kept in tests/data/vllm)
- C:  vllm/v1/metrics/cache_hit_source.py @ 8548f56c (``vllm:prompt_tokens_cached_by_source``; the KV Cache
      dashboard @ 5836216b queries it)
- P:  vllm/v1/metrics/perf.py (``PerfMetricsProm``), names as docs/usage/metrics.md @ 044a056 lists them
- S:  vllm/entrypoints/serve/dev/sleep/metrics.py @ 47e7f394 (kept in tests/data/vllm)
- M:  docs/usage/metrics.md (the priority scheduling section) and tests/v1/metrics/test_priority_labels.py
      @ 4a02593f: ``priority`` on the finished-request metrics, ``vllm:scheduler_policy_info``
- D:  vllm/v1/spec_decode/metrics.py @ 016a8587edb04ae53c913a1da9355a07dc0ca4ae (``SpecDecodingProm``)
"""

from dataclasses import dataclass

ENGINE = ("model_name", "engine")


@dataclass(frozen=True)
class Family:
    type: str
    labels: tuple[str, ...] | None
    """Label names, ``le`` aside; None where a test of its own checks them (cache_config_info)."""
    source: str
    doc: str | None = None
    """The help text, where the source was read whole."""


def _engine(kind: str, source: str, doc: str | None = None, *extra: str) -> Family:
    return Family(kind, (*ENGINE, *extra), source, doc)


CATALOG: dict[str, Family] = {
    # Scheduler state (L)
    "vllm:num_requests_running": _engine("gauge", "L", "Number of requests in model execution batches."),
    "vllm:num_requests_waiting": _engine("gauge", "L", "Number of requests waiting to be processed."),
    "vllm:num_requests_waiting_by_reason": _engine("gauge", "W", None, "reason"),
    "vllm:engine_sleep_state": _engine(
        "gauge",
        "L",
        "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
        "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
        "sleep_state",
    ),
    "vllm:kv_cache_usage_perc": _engine("gauge", "L", "KV-cache usage. 1 means 100 percent usage."),
    # Caches (L)
    "vllm:prefix_cache_queries": _engine("counter", "L", "Prefix cache queries, in terms of number of queried tokens."),
    "vllm:prefix_cache_hits": _engine("counter", "L", "Prefix cache hits, in terms of number of cached tokens."),
    "vllm:external_prefix_cache_queries": _engine(
        "counter",
        "L",
        "External prefix cache queries from KV connector cross-instance cache sharing, "
        "in terms of number of queried tokens.",
    ),
    "vllm:external_prefix_cache_hits": _engine(
        "counter",
        "L",
        "External prefix cache hits from KV connector cross-instance cache sharing, "
        "in terms of number of cached tokens.",
    ),
    "vllm:mm_cache_queries": _engine("counter", "L", "Multi-modal cache queries, in terms of number of queried items."),
    "vllm:mm_cache_hits": _engine("counter", "L", "Multi-modal cache hits, in terms of number of cached items."),
    # Counters (L)
    "vllm:num_preemptions": _engine("counter", "L", "Cumulative number of preemption from the engine."),
    "vllm:prompt_tokens": _engine("counter", "L", "Number of prefill tokens processed."),
    "vllm:prompt_tokens_by_source": _engine("counter", "L", "Number of prompt tokens by source.", "source"),
    "vllm:prompt_tokens_cached": _engine("counter", "L", "Number of cached prompt tokens (local + external)."),
    "vllm:prompt_tokens_recomputed": _engine("counter", "L", "Number of cached tokens recomputed for forward pass."),
    "vllm:prompt_tokens_cached_by_source": _engine("counter", "C", None, "source"),
    "vllm:generation_tokens": _engine("counter", "L", "Number of generation tokens processed."),
    "vllm:request_success": _engine("counter", "L", "Count of successfully processed requests.", "finished_reason"),
    # Histograms of counts (L, W)
    "vllm:request_prompt_tokens": _engine("histogram", "L", "Number of prefill tokens processed."),
    "vllm:request_generation_tokens": _engine("histogram", "L", "Number of generation tokens processed."),
    "vllm:iteration_tokens_total": _engine("histogram", "L", "Histogram of number of tokens per engine_step."),
    "vllm:request_max_num_generation_tokens": _engine(
        "histogram", "L", "Histogram of maximum number of requested generation tokens."
    ),
    "vllm:request_params_n": _engine("histogram", "L", "Histogram of the n request parameter."),
    "vllm:request_params_max_tokens": _engine("histogram", "L", "Histogram of the max_tokens request parameter."),
    "vllm:request_prefill_kv_computed_tokens": _engine(
        "histogram", "L", "Histogram of new KV tokens computed during prefill (excluding cached tokens)."
    ),
    "vllm:request_num_preemptions": _engine("histogram", "W"),
    # Histograms of timing intervals (L)
    "vllm:time_to_first_token_seconds": _engine("histogram", "L", "Histogram of time to first token in seconds."),
    "vllm:inter_token_latency_seconds": _engine("histogram", "L", "Histogram of inter-token latency in seconds."),
    "vllm:request_time_per_output_token_seconds": _engine(
        "histogram", "L", "Histogram of time_per_output_token_seconds per request."
    ),
    "vllm:e2e_request_latency_seconds": _engine("histogram", "L", "Histogram of e2e request latency in seconds."),
    "vllm:request_queue_time_seconds": _engine(
        "histogram", "L", "Histogram of time spent in WAITING phase for request."
    ),
    "vllm:request_inference_time_seconds": _engine(
        "histogram", "L", "Histogram of time spent in RUNNING phase for request."
    ),
    "vllm:request_prefill_time_seconds": _engine(
        "histogram", "L", "Histogram of time spent in PREFILL phase for request."
    ),
    "vllm:request_decode_time_seconds": _engine(
        "histogram", "L", "Histogram of time spent in DECODE phase for request."
    ),
    # KV-cache residency, with --kv-cache-metrics (L)
    "vllm:kv_block_lifetime_seconds": _engine(
        "histogram",
        "L",
        "Histogram of KV cache block lifetime from allocation to eviction. "
        "Sampled metrics (controlled by --kv-cache-metrics-sample).",
    ),
    "vllm:kv_block_idle_before_evict_seconds": _engine(
        "histogram",
        "L",
        "Histogram of idle time before KV cache block eviction. "
        "Sampled metrics (controlled by --kv-cache-metrics-sample).",
    ),
    "vllm:kv_block_reuse_gap_seconds": _engine(
        "histogram",
        "L",
        "Histogram of time gaps between consecutive KV cache block accesses. Only the most recent accesses "
        "are recorded (ring buffer). Sampled metrics (controlled by --kv-cache-metrics-sample).",
    ),
    # Info (L): labels are CacheConfig.metrics_info() plus engine, checked against vllm/config/cache.py
    "vllm:cache_config_info": Family("gauge", None, "L", "Information of the LLMEngine CacheConfig"),
    # MFU (P)
    "vllm:estimated_flops_per_gpu": _engine("counter", "P"),
    "vllm:estimated_read_bytes_per_gpu": _engine("counter", "P"),
    "vllm:estimated_write_bytes_per_gpu": _engine("counter", "P"),
    # Speculative decoding, with --speculative-config (D)
    "vllm:spec_decode_num_drafts": _engine("counter", "D", "Number of spec decoding drafts."),
    "vllm:spec_decode_num_draft_tokens": _engine("counter", "D", "Number of draft tokens."),
    "vllm:spec_decode_num_accepted_tokens": _engine("counter", "D", "Number of accepted tokens."),
    "vllm:spec_decode_num_accepted_tokens_per_pos": _engine(
        "counter", "D", "Accepted tokens per draft position.", "position"
    ),
    # LoRA, with --enable-lora (L): no model or engine label; the value is a Unix time
    "vllm:lora_requests_info": Family(
        "gauge", ("max_lora", "waiting_lora_adapters", "running_lora_adapters"), "L", "Running stats on lora requests."
    ),
    # Scheduler policy (docs/usage/metrics.md, "Priority Scheduling Metrics"; help text not in the sources
    # read): one series per policy, always exposed
    "vllm:scheduler_policy_info": Family("gauge", ("policy",), "M"),
    # Sleep-mode operations (S): the API server's, without engine labels
    "vllm:sleep_mode_operation_duration_seconds": Family("histogram", ("operation",), "S"),
    "vllm:sleep_mode_operations_in_flight": Family("gauge", ("operation",), "S"),
    # Names of older releases, behind --vllm-legacy-names (L0)
    "vllm:gpu_cache_usage_perc": _engine("gauge", "L0"),
    "vllm:gpu_prefix_cache_queries": _engine("counter", "L0"),
    "vllm:gpu_prefix_cache_hits": _engine("counter", "L0"),
    "vllm:time_per_output_token_seconds": _engine("histogram", "L0"),
}

NOT_SIMULATED: dict[str, str] = {
    "vllm:corrupted_requests": "only with VLLM_COMPUTE_NANS_IN_LOGITS; fakeai computes no logits",
    "vllm:num_requests_kv_fetch_by_stage": "a KV connector's async loads",
}
"""Families vLLM registers only with a feature fakeai does not simulate (yet): never exposed."""
