"""Which native families the /metrics/stream categories read (the bridge itself knows no names)."""

from bridge.categories import Mapping

STREAM_MAPPING = Mapping(
    requests="fakeai_requests",
    responses="fakeai_responses",
    completion_tokens="fakeai_completion_tokens",
    prompt_tokens="fakeai_prompt_tokens",
    errors="fakeai_errors",
    request_latency="fakeai_request_duration_seconds",
    queue_time="fakeai_request_queue_time_seconds",
    ttft="fakeai_time_to_first_token_seconds",
    itl="fakeai_inter_token_latency_seconds",
    time_per_output_token="fakeai_request_time_per_output_token_seconds",
    cache_lookups="fakeai_prefix_cache_lookups",
    cache_lookup_hits="fakeai_prefix_cache_lookup_hits",
    cache_queries="fakeai_prefix_cache_queries",
    cache_hits="fakeai_prefix_cache_hits",
    waiting="fakeai_requests_waiting",
    running="fakeai_requests_running",
    active_streams="fakeai_active_streams",
    streams="fakeai_streams",
    lost_requests="fakeai_lost_requests",
    worker_restarts="fakeai_worker_restarts",
)
