"""NVIDIA Dynamo's frontend metric names (``--metrics-dialect dynamo``), as its OpenAI-compatible frontend
exposes them, derived from the native families at scrape time.

Names, help, labels and bucket bounds are Dynamo's own: ``Metrics::build`` in
lib/llm/src/http/service/metrics.rs (ai-dynamo/dynamo, commit 0014908a25aecc8e9ce7455bbbaddf9f1521a1b4) and
the name constants of ``frontend_service`` in lib/runtime/src/metrics/prometheus_names.rs; both excerpts
are kept verbatim in tests/data/dynamo/, where SOURCES.md says which revisions, and the tests read the
expected names, labels and bounds from them. The frontend is Rust (the ``prometheus`` crate): every
counter is written under its own name, which already ends in ``_total``; a labelled series appears on
its first use; text format 0.0.4 whatever the scraper asks. The frontend serves many models, each
series labelled ``model``: any number of fakeai's models may speak this dialect.

What each family counts, in fakeai's terms:
- ``requests_started_total``: requests accepted; ``requests_total``: those that ended, with
  ``status`` ``success`` for a client that got its whole answer and ``error`` otherwise, ``error_type``
  from the status the client finally got (see ``error_type``); ``request_type`` ``stream`` when the
  client asked for a stream, ``unary`` otherwise. ``model_cancellation_total``: requests whose client
  went away (fakeai's 499); ``model_rejection_total``: requests refused for want of capacity (429);
  ``disconnected_clients``: clients that went away, all models.
- ``inflight_requests`` and ``active_requests``: accepted and not ended; ``queued_requests``: accepted
  with no first token yet (Dynamo's HTTP queue runs from the handler to the first token).
- the histograms: the native request duration, TTFT, inter-token gaps, prompt and completion lengths and
  cached prompt tokens at Dynamo's default bounds (``generate_log_buckets`` of each
  ``DYN_METRICS_*_{MIN,MAX,COUNT}`` default); ``embedding_latency_seconds``: the duration of
  ``/v1/embeddings`` requests.
- the ``model_*`` gauges: the served model's configuration (KV blocks, batch limits, context length, block
  size); fakeai migrates no request, so the migration limit is 0 and no migration series is created.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter import buckets
from exporter.views.aggregate import (
    DerivedView,
    FamilySource,
    GroupedHistogram,
    GroupKey,
    bare_counter_family,
    gauge_family,
    histogram_by,
    histogram_family,
    only_series,
    sum_by,
)

PREFIX = "dynamo_frontend_"
ENDPOINTS = {
    "/v1/chat/completions": "chat_completions",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
}
"""``Endpoint::as_str`` (metrics.rs) for the routes fakeai serves."""
EMBEDDINGS = "/v1/embeddings"
REQUEST_TYPES = {"true": "stream", "false": "unary"}
SUCCESS, ERROR = "success", "error"
REQUEST_LABELS = ("model", "endpoint", "request_type", "status", "error_type")
CLIENT_GONE, REJECTED = "499", "429"
REQUESTS, RESPONSES = "fakeai_requests", "fakeai_responses"
BY_KIND, ENDED_BY_KIND = "fakeai_requests_by_kind", "fakeai_responses_by_kind"
BEFORE_FIRST_TOKEN = "fakeai_requests_before_first_token"
COMPLETION_TOKENS = "fakeai_completion_tokens"
DURATION = "fakeai_request_duration_seconds"
EMBEDDING_LATENCY = buckets.dynamo_log_buckets(0.001, 10.0, 14)
# (Dynamo name, native family, bounds, help)
HISTOGRAMS = (
    ("request_duration_seconds", DURATION, buckets.DYNAMO_REQUEST_DURATION, "Duration of LLM requests"),
    (
        "input_sequence_tokens",
        "fakeai_request_prompt_tokens",
        buckets.DYNAMO_INPUT_SEQUENCE,
        "Input sequence length in tokens",
    ),
    (
        "output_sequence_tokens",
        "fakeai_request_completion_tokens",
        buckets.DYNAMO_OUTPUT_SEQUENCE,
        "Output sequence length in tokens",
    ),
    (
        "cached_tokens",
        "fakeai_request_cached_tokens",
        buckets.DYNAMO_INPUT_SEQUENCE,
        "Number of cached tokens (prefix cache hits) per request",
    ),
    (
        "time_to_first_token_seconds",
        "fakeai_time_to_first_token_seconds",
        buckets.DYNAMO_TTFT,
        "Time to first token in seconds",
    ),
    (
        "inter_token_latency_seconds",
        "fakeai_inter_token_latency_seconds",
        buckets.DYNAMO_ITL,
        "Inter-token latency in seconds",
    ),
)
EMBEDDING_LATENCY_HELP = (
    "End-to-end latency of /v1/embeddings requests, in seconds. Distinct from request_duration_seconds so the "
    "bucket range can cover sub-second pooling-model inference."
)
KEPT_BUCKETS = {source: bounds for _, source, bounds, _ in HISTOGRAMS if source != "fakeai_request_cached_tokens"}
KEPT_BUCKETS[DURATION] = buckets.merged(buckets.DYNAMO_REQUEST_DURATION, EMBEDDING_LATENCY)
"""The bounds the native histograms keep for this view (only when a model speaks it)."""
NOT_EXPOSED = {
    "tokenizer_latency_ms": "fakeai's tokenizer takes no simulated time",
    "images_per_request, videos_per_request, audio_per_request, image_tokens_per_request": (
        "fakeai counts a prompt's image and audio items only as multi-modal cache lookups, not per request"
    ),
    "model_migration_total, model_migration_duration_seconds, model_migration_max_seq_len_exceeded_total": (
        "fakeai migrates no request between workers, so Dynamo would create none of these series either"
    ),
    "worker_* gauges, router_queue_pending_requests, kv_hit_rate": "set by Dynamo's KV router, which fakeai has not",
    "model_ready": "its name constant is in no stored copy of prometheus_names.rs",
}


@dataclass(frozen=True)
class ModelConfig:
    """What the frontend reports of a served model's deployment card and runtime config."""

    total_kv_blocks: int
    max_num_seqs: int
    max_num_batched_tokens: int
    context_length: int
    kv_cache_block_size: int
    migration_limit: int = 0


def error_type(status: str) -> str:
    """Dynamo's ``error_type`` for the HTTP status a client finally got ("" for a success)."""
    code = int(status)
    if code < 400:
        return ""
    return {
        499: "cancelled",
        404: "not_found",
        429: "overload",
        529: "overload",
        501: "not_implemented",
        503: "unavailable",
    }.get(code, "validation" if code < 500 else "internal")


class DynamoView(DerivedView):
    """A prometheus-client collector exposing the native families under Dynamo's frontend names."""

    native = frozenset(
        [
            REQUESTS,
            RESPONSES,
            BY_KIND,
            ENDED_BY_KIND,
            BEFORE_FIRST_TOKEN,
            COMPLETION_TOKENS,
            *(source for _, source, _, _ in HISTOGRAMS),
        ]
    )

    def __init__(self, source: FamilySource, *, models: tuple[str, ...], config: ModelConfig) -> None:
        super().__init__(source)
        self._models = models
        self.set_config(config)

    def set_config(self, config: ModelConfig) -> None:
        """The models' configuration, also after a runtime change."""
        self._config = config

    def _families(self, native: Mapping[str, Metric]) -> Iterator[Metric]:
        def by(family: str, sample: str, labels: tuple[str, ...]) -> dict[GroupKey, float]:
            return sum_by(native.get(family), sample, labels)

        started = by(BY_KIND, BY_KIND + "_total", ("model", "endpoint", "stream"))
        ended = by(ENDED_BY_KIND, ENDED_BY_KIND + "_total", ("model", "endpoint", "stream", "status"))
        requests: dict[GroupKey, float] = {}
        cancelled: dict[GroupKey, float] = {}
        rejected: dict[GroupKey, float] = {}
        for (model, endpoint, stream, status), count in ended.items():
            path, kind = ENDPOINTS.get(endpoint, endpoint), REQUEST_TYPES[stream]
            outcome = (model, path, kind, SUCCESS if status == "200" else ERROR, error_type(status))
            requests[outcome] = requests.get(outcome, 0.0) + count
            if status == CLIENT_GONE:
                cancelled[(model, path, kind)] = cancelled.get((model, path, kind), 0.0) + count
            if status == REJECTED:
                rejected[(model, path)] = rejected.get((model, path), 0.0) + count
        starts = {(m, ENDPOINTS.get(e, e), REQUEST_TYPES[s]): v for (m, e, s), v in started.items()}
        counters = (
            ("requests_total", "Total number of LLM requests processed", REQUEST_LABELS, requests),
            (
                "requests_started_total",
                "Total number of LLM requests accepted by the frontend handler",
                ("model", "endpoint", "request_type"),
                starts,
            ),
            (
                "output_tokens_total",
                "Total number of output tokens generated (updates in real-time)",
                ("model",),
                by(COMPLETION_TOKENS, COMPLETION_TOKENS + "_total", ("model",)),
            ),
            (
                "model_cancellation_total",
                "Total number of request cancellations",
                ("model", "endpoint", "request_type"),
                cancelled,
            ),
            (
                "model_rejection_total",
                "Total number of requests rejected due to resource exhaustion",
                ("model", "endpoint"),
                rejected,
            ),
        )
        # The prometheus crate creates a labelled series on first use: a model's appear with its first request.
        served = {key[0] for key in starts if starts[key]}
        for name, doc, labels, values in counters:
            shown = {key: value for key, value in values.items() if key[0] in served}
            yield from _created(bare_counter_family(PREFIX + name, doc, shown, labels), native)
        accepted = by(REQUESTS, REQUESTS + "_total", ("model",))
        answered = by(RESPONSES, RESPONSES + "_total", ("model",))
        inflight = {key: accepted[key] - answered.get(key, 0.0) for key in accepted if key[0] in served}
        queued = by(BEFORE_FIRST_TOKEN, BEFORE_FIRST_TOKEN, ("model",))
        waiting = {key: queued.get(key, 0.0) for key in inflight}
        gauges = (
            ("inflight_requests", "Number of inflight requests", inflight),
            (
                "active_requests",
                "Number of requests currently being handled by the frontend, from HTTP handler entry to response "
                "completion",
                inflight,
            ),
            (
                "queued_requests",
                "Number of requests in HTTP processing queue",
                waiting,
            ),
        )
        for name, doc, values in gauges:
            yield from _created(gauge_family(PREFIX + name, doc, ("model",), values), native)
        yield GaugeMetricFamily(
            PREFIX + "disconnected_clients",
            "Number of disconnected clients",
            value=sum(cancelled.values()),
        )
        config = self._config
        for name, doc, value in (
            (
                "model_total_kv_blocks",
                "Total KV cache blocks available for a worker serving the model",
                config.total_kv_blocks,
            ),
            ("model_max_num_seqs", "Maximum number of sequences for a worker serving the model", config.max_num_seqs),
            (
                "model_max_num_batched_tokens",
                "Maximum number of batched tokens for a worker serving the model",
                config.max_num_batched_tokens,
            ),
            (
                "model_context_length",
                "Maximum context length in tokens for a worker serving the model",
                config.context_length,
            ),
            (
                "model_kv_cache_block_size",
                "KV cache block size in tokens for a worker serving the model",
                config.kv_cache_block_size,
            ),
            (
                "model_migration_limit",
                "Maximum number of request migrations allowed for the model",
                config.migration_limit,
            ),
        ):
            yield gauge_family(PREFIX + name, doc, ("model",), {(model,): float(value) for model in self._models})
        # Every request has a duration; the token histograms count generation requests (Dynamo observes them
        # from a response's tokens); the embedding latency, /v1/embeddings requests.
        # (name, native family, bounds, help, None: every route, else whether only /v1/embeddings or none of it)
        histograms: list[tuple[str, str, tuple[float, ...], str, bool | None]] = [
            (name, source, bounds, doc, None if source == DURATION else False)
            for name, source, bounds, doc in HISTOGRAMS
        ]
        histograms.append(("embedding_latency_seconds", DURATION, EMBEDDING_LATENCY, EMBEDDING_LATENCY_HELP, True))
        for name, source, bounds, doc, embeddings in histograms:
            family = native.get(source)
            if embeddings is not None:
                family = _samples(family, embeddings=embeddings)
            groups = histogram_by(family, bounds, ("model",))
            observed = {key: group for key, group in groups.items() if group.count}
            yield from _created(histogram_family(PREFIX + name, doc, ("model",), observed), native)


def _samples(family: Metric | None, *, embeddings: bool) -> Metric | None:
    """A copy of ``family`` with only the series of /v1/embeddings, or only those of the other routes."""
    if family is None:
        return None
    return only_series(family, lambda labels: (labels.get("endpoint") == EMBEDDINGS) == embeddings)


def _created(family: Metric, native: Mapping[str, Metric]) -> Iterator[Metric]:
    """``family`` once it has a series: the prometheus crate leaves a vector without children out of its
    exposition. (Without native families this is ``describe``, which needs every name.) A grouped
    histogram is asked its groups: its samples, made, would be written the slow way."""
    if (family.groups if isinstance(family, GroupedHistogram) else family.samples) or not native:
        yield family
