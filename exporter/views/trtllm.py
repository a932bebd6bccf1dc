"""TensorRT-LLM's metric names (``--metrics-dialect trtllm``), as ``trtllm-serve`` exposes them, derived from
the native families at scrape time.

Names, types, labels and default bucket bounds are TensorRT-LLM's own, from
``tensorrt_llm/metrics/collector.py`` (NVIDIA/TensorRT-LLM, commit 050f80def8df236e326949c8bd9dee10fd896a83;
``MetricsCollector.__init__`` is kept verbatim in tests/data/trtllm/, and the tests read the expected names
and bounds from it). ``trtllm-serve`` builds its collector with the labels ``model_name="undefined",
engine_type="undefined"`` whatever it serves (tensorrt_llm/serve/openai_server.py, commit
00057725d9a6591f033e44f31c219e2426827bb7, also kept): its series cannot tell models apart, so one server
speaks this dialect for one model (``fakeai.settings`` refuses more), and several engines of that model
(``--data-parallel-size``) add up into one series, as the executor's iteration stats do.

What each family counts, in fakeai's terms:
- ``request_success_total{finished_reason}``: every request that finished with a reason, as
  ``log_request_metrics_dict`` counts it; fakeai's reasons become TensorRT-LLM's ``CompletionOutput``
  reasons (``FINISHED_REASONS``); a request that ended in an engine error has none (TensorRT-LLM raises)
  and is counted only in ``request_error_total{http_code}``, which counts every error response by status.
- the seven request histograms: the native ones at TensorRT-LLM's bounds; ``time_per_output_token`` is the
  per-request mean (decode time over tokens after the first), as TensorRT-LLM's ``TPOT``.
- the iteration gauges: running requests (``numActiveRequests``), waiting ones, the KV pool's blocks
  (``maxNumBlocks``, ``usedNumBlocks``, ``freeNumBlocks``, ``tokensPerBlock``; utilization is used / max),
  and the batch limits of one engine (``max_num_active_requests`` and both ``max_batch_size_*``:
  ``--max-num-seqs``; ``max_num_tokens_runtime``: the step's token budget, ``--max-num-batched-tokens``).
"""

from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import Metric

from exporter.buckets import TRTLLM_PREFILL, TRTLLM_REQUEST_PHASE, TRTLLM_TPOT, TRTLLM_TTFT
from exporter.views.aggregate import (
    DerivedView,
    FamilySource,
    GroupKey,
    counter_family,
    engine_labels,
    gauge_family,
    histogram_by,
    histogram_family,
    sum_by,
)

PREFIX = "trtllm_"
METRICS_PATH = "/prometheus/metrics"
"""Where ``trtllm-serve`` mounts its Prometheus exposition (``OpenAIServer.mount_metrics``)."""
LABELS = ("model_name", "engine_type")
UNDEFINED = ("undefined", "undefined")
"""What ``trtllm-serve`` passes for both labels (``MetricsCollector({"model_name": "undefined", ...})``)."""
FINISHED_REASONS: Mapping[str, str] = {"stop": "stop", "length": "length", "abort": "cancelled", "repetition": "stop"}
"""fakeai's finish reasons as ``CompletionOutput.finish_reason`` (``Literal['stop', 'length', 'timeout',
'cancelled']``, tensorrt_llm/executor/result.py): a client abort is a cancelled request, and vLLM-style
repetition detection ends a sequence as a stop would."""

HISTOGRAMS = (
    (
        "trtllm_e2e_request_latency_seconds",
        "fakeai_request_duration_seconds",
        TRTLLM_REQUEST_PHASE,
        "Histogram of end to end request latency in seconds.",
    ),
    (
        "trtllm_time_to_first_token_seconds",
        "fakeai_time_to_first_token_seconds",
        TRTLLM_TTFT,
        "Histogram of time to first token in seconds.",
    ),
    (
        "trtllm_time_per_output_token_seconds",
        "fakeai_request_time_per_output_token_seconds",
        TRTLLM_TPOT,
        "Histogram of time per output token in seconds.",
    ),
    (
        "trtllm_request_queue_time_seconds",
        "fakeai_request_queue_time_seconds",
        TRTLLM_REQUEST_PHASE,
        "Histogram of time spent in WAITING phase for request.",
    ),
    (
        "trtllm_request_prefill_time_seconds",
        "fakeai_request_prefill_time_seconds",
        TRTLLM_PREFILL,
        "Histogram of prefill (context) phase duration in seconds (first_token_time - first_scheduled_time).",
    ),
    (
        "trtllm_request_decode_time_seconds",
        "fakeai_request_decode_time_seconds",
        TRTLLM_REQUEST_PHASE,
        "Histogram of decode (generation) phase duration in seconds (last_token_time - first_token_time).",
    ),
    (
        "trtllm_request_inference_time_seconds",
        "fakeai_request_inference_time_seconds",
        TRTLLM_REQUEST_PHASE,
        "Histogram of total inference duration in seconds (last_token_time - first_scheduled_time).",
    ),
)
COUNTERS = (
    ("trtllm_prompt_tokens", "fakeai_prompt_tokens", "Cumulative number of prompt (input) tokens processed."),
    (
        "trtllm_generation_tokens",
        "fakeai_completion_tokens",
        "Cumulative number of generation (output) tokens produced.",
    ),
    (
        "trtllm_prompt_cached_tokens",
        "fakeai_prompt_tokens_cached",
        "Process-lifetime total prompt tokens served from KV cache. Resets only when the serving process "
        "restarts, not when the KV cache is flushed or evicted.",
    ),
)
SPECULATIVE_COUNTERS = (
    (
        "trtllm_spec_decode_num_draft_tokens",
        "fakeai_spec_decode_draft_tokens",
        "Total number of draft tokens in speculative decoding",
    ),
    (
        "trtllm_spec_decode_num_accepted_tokens",
        "fakeai_spec_decode_accepted_tokens",
        "Total number of accepted tokens in speculative decoding",
    ),
)
KEPT_BUCKETS: Mapping[str, tuple[float, ...]] = {source: bounds for _, source, bounds, _ in HISTOGRAMS}
"""The bounds the native families keep for this view (all of them, since ``--custom-histogram-buckets``
may replace vLLM's defaults, which TensorRT-LLM's equal)."""
CREATED_UP_FRONT = "fakeai_prompt_tokens_cached"
"""``counter_tokens_cached_prompt.labels(**self.labels)`` in ``__init__``: the one child that exists at 0."""
FINISHED = "fakeai_finished_requests"
ERRORS = "fakeai_errors"
RUNNING = "fakeai_requests_running"
WAITING = "fakeai_requests_waiting"
KV_USAGE = "fakeai_kv_cache_usage_ratio"


class TrtllmView(DerivedView):
    """A prometheus-client collector exposing the native families under ``trtllm-serve``'s names."""

    def __init__(
        self,
        source: FamilySource,
        *,
        block_size: int,
        num_blocks: int,
        max_num_seqs: int,
        max_num_tokens: int,
        speculative: bool,
    ) -> None:
        super().__init__(source)
        self.set_limits(
            block_size=block_size, num_blocks=num_blocks, max_num_seqs=max_num_seqs, max_num_tokens=max_num_tokens
        )
        self._counters = COUNTERS + (SPECULATIVE_COUNTERS if speculative else ())
        tables = HISTOGRAMS + self._counters
        self.native = frozenset([row[1] for row in tables] + [FINISHED, ERRORS, RUNNING, WAITING, KV_USAGE])

    def set_limits(self, *, block_size: int, num_blocks: int, max_num_seqs: int, max_num_tokens: int) -> None:
        """The pool and batch limits (per engine), also after a runtime change: the iteration gauges follow."""
        self._block_size, self._num_blocks = block_size, num_blocks
        self._max_num_seqs, self._max_num_tokens = max_num_seqs, max_num_tokens

    def _families(self, native: Mapping[str, Metric]) -> Iterator[Metric]:
        engines = sum_by(native.get(RUNNING), RUNNING, ("model", *engine_labels(native.get(RUNNING))))
        running = sum(engines.values())
        waiting = sum(sum_by(native.get(WAITING), WAITING, ()).values())
        max_blocks = self._num_blocks * len(engines)
        used_blocks = round(sum(sum_by(native.get(KV_USAGE), KV_USAGE, ()).values()) * self._num_blocks)
        finished = sum_by(native.get(FINISHED), FINISHED + "_total", ("finished_reason",))
        yield from (
            gauge_family(PREFIX + "num_requests_running", "Number of active requests", LABELS, {UNDEFINED: running}),
            gauge_family(PREFIX + "num_requests_waiting", "Number of queued requests", LABELS, {UNDEFINED: waiting}),
            *(
                gauge_family(PREFIX + name, doc, LABELS, {UNDEFINED: float(limit)})
                for name, doc, limit in (
                    ("max_num_active_requests", "Maximum number of active requests", self._max_num_seqs),
                    ("max_batch_size_static", "Static maximum batch size", self._max_num_seqs),
                    ("max_batch_size_runtime", "Runtime maximum batch size", self._max_num_seqs),
                    ("max_num_tokens_runtime", "Runtime maximum number of tokens", self._max_num_tokens),
                )
            ),
            gauge_family(
                PREFIX + "kv_cache_utilization",
                "KV cache utilization",
                LABELS,
                {UNDEFINED: used_blocks / max_blocks if max_blocks else 0.0},
            ),
            gauge_family(
                PREFIX + "kv_cache_max_blocks", "Maximum number of KV cache blocks", LABELS, {UNDEFINED: max_blocks}
            ),
            gauge_family(
                PREFIX + "kv_cache_free_blocks",
                "Number of free KV cache blocks",
                LABELS,
                {UNDEFINED: max_blocks - used_blocks},
            ),
            gauge_family(
                PREFIX + "kv_cache_used_blocks", "Number of used KV cache blocks", LABELS, {UNDEFINED: used_blocks}
            ),
            gauge_family(
                PREFIX + "kv_cache_tokens_per_block",
                "Number of tokens per KV cache block",
                LABELS,
                {UNDEFINED: float(self._block_size)},
            ),
        )
        # TensorRT-LLM creates a labelled child on its first increment (only prompt_cached_tokens is
        # created up front), so a counter with nothing counted yet has no series, as there.
        completed = sum(finished.values())
        yield counter_family(
            PREFIX + "num_requests_completed",
            "Total number of completed requests across iterations",
            LABELS,
            {UNDEFINED: completed} if completed else {},
        )
        successes: dict[GroupKey, float] = {}
        for (reason,), count in finished.items():
            if count and (mapped := FINISHED_REASONS.get(reason)) is not None:
                successes[(*UNDEFINED, mapped)] = successes.get((*UNDEFINED, mapped), 0.0) + count
        yield counter_family(
            PREFIX + "request_success",
            "Count of successfully processed requests.",
            (*LABELS, "finished_reason"),
            successes,
        )
        errors = sum_by(native.get(ERRORS), ERRORS + "_total", ("status",))
        yield counter_family(
            PREFIX + "request_error",
            "Total request errors, labeled by HTTP status code.",
            (*LABELS, "http_code"),
            {(*UNDEFINED, status): count for (status,), count in errors.items() if count},
        )
        for name, source, doc in self._counters:
            total = sum(sum_by(native.get(source), source + "_total", ()).values())
            always = source == CREATED_UP_FRONT and bool(native)
            yield counter_family(name, doc, LABELS, {UNDEFINED: total} if total or always else {})
        for name, source, bounds, doc in HISTOGRAMS:
            group = histogram_by(native.get(source), bounds, ()).get(())
            yield histogram_family(name, doc, LABELS, {UNDEFINED: group} if group is not None and group.count else {})
