"""Every native ``fakeai_*`` family on one screen, registered on an injected registry.

Labels: ``endpoint`` is a route template and ``model`` a served model id; both are checked by the
server before a labelled child is created, so no label value comes from a client unchecked.
"""

import contextlib
import time
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.metrics_core import Metric

from exporter import buckets
from exporter.buckets import merged
from exporter.bulk import inc, observe, observe_many, observe_summary
from exporter.facts import FinishedReason, RequestRecord, StreamOutcome
from exporter.histogram import SeriesHistogram
from exporter.kept_bounds import HiddenBounds, hidden_labels

EM = ("endpoint", "model")
MAX_LORA_SERIES = 64
"""``lora_requests_info`` label sets kept: every combination of adapters leaves a series in vLLM."""
# vLLM's sleep states (vllm/v1/metrics/loggers.py, ``record_sleep_state``), and the level each stands for.
SLEEP_STATES = ("awake", "weights_offloaded", "discard_all")
SLEEP_LEVEL_STATES = {1: "weights_offloaded", 2: "discard_all"}
STEP_PHASES = ("prefill", "decode")
"""TGI's ``method`` label: a step that prefilled any prompt is a prefill call, the rest decode calls."""


def bucket_priority(priority: int) -> str:
    """vLLM's ``bucket_priority`` (vllm/v1/metrics/loggers.py; tested in tests/v1/metrics/
    test_priority_labels.py @ 4a02593f): -1, 0 and 1 kept, the rest "<-1" or ">1", so the label has five
    values whatever priorities clients send."""
    if priority < -1:
        return "<-1"
    if priority > 1:
        return ">1"
    return str(priority)


def _kind(stream: bool) -> str:
    return "true" if stream else "false"


class NativeFamilies:
    """The native families themselves. ``ServerMetrics`` decides when each one moves."""

    def __init__(
        self,
        registry: CollectorRegistry,
        families: buckets.BucketFamilies,
        *,
        engine_label: bool = False,
        priority_label: bool = False,
        batch_calls: bool = False,
        frontend_requests: bool = False,
    ) -> None:
        # With several engines per model (--data-parallel-size, or --workers), every engine-level family
        # carries the engine's index; with one, it has no such label, as before. Under the priority
        # policy the per-request families also carry the request's priority, bucketed as vLLM does.
        engine = ("engine",) if engine_label else ()
        em, m = (*EM, *engine, *(("priority",) if priority_label else ())), ("model", *engine)
        self.engine_label = engine_label
        self.priority_label = priority_label
        self.hidden_bounds: dict[str, frozenset[str]] = {}
        """The ``le`` values each native histogram records for dialect views but does not expose."""
        self.exposed_bounds: dict[str, tuple[float, ...]] = {}
        """The bounds those histograms expose (their own, without the +Inf bucket)."""
        tokens = families.native("request_tokens")
        phase = families.native("request_latency", buckets.FINER_REQUEST_PHASE)
        itl = families.native("inter_token_latency", buckets.FINER_ITL)

        self.hidden_families: set[str] = set()
        """Families recorded for a dialect's view alone (``exposed=False``): read by the view, registered
        nowhere, so the ``fakeai_*`` families are the same whatever the dialects served."""

        def target(name: str, exposed: bool) -> CollectorRegistry | None:
            if not exposed:
                self.hidden_families.add(name)
            return registry if exposed else None

        def counter(name: str, doc: str, labels: Iterable[str] = em, *, exposed: bool = True) -> Counter:
            return Counter(name, doc, tuple(labels), registry=target(name, exposed))

        def gauge(
            name: str,
            doc: str,
            labels: Iterable[str] = em,
            mode: Literal["livesum", "livemax", "livemin", "sum", "max"] = "livesum",
            *,
            exposed: bool = True,
        ) -> Gauge:
            # How multiprocess mode (--workers) combines the workers' values; ignored in one process.
            return Gauge(name, doc, tuple(labels), registry=target(name, exposed), multiprocess_mode=mode)

        def histogram(
            name: str, doc: str, bounds: tuple[float, ...], labels: Iterable[str] = em, *, exposed: bool = True
        ) -> Histogram:
            recorded = buckets.merged(bounds, families.kept.get(name, ()))
            hidden = hidden_labels(recorded, bounds)
            if not hidden or not exposed:
                return SeriesHistogram(name, doc, tuple(labels), registry=target(name, exposed), buckets=recorded)
            # Bounds kept for a dialect's view only: recorded, never exposed (exporter.kept_bounds).
            family = SeriesHistogram(name, doc, tuple(labels), registry=None, buckets=recorded)
            registry.register(HiddenBounds(family, {name: hidden}))
            self.hidden_bounds[name] = hidden
            self.exposed_bounds[name] = tuple(float(b) for b in bounds)
            return family

        self.requests = counter("fakeai_requests", "Requests accepted for a served model, counted on arrival.")
        self.responses = counter(
            "fakeai_responses", "Responses completed, by HTTP status (499: client went away).", (*em, "status")
        )
        self.request_duration = histogram(
            "fakeai_request_duration_seconds", "Arrival to last byte (end to end).", phase
        )
        self.queue_time = histogram("fakeai_request_queue_time_seconds", "Time waiting for a scheduler slot.", phase)
        self.prefill_time = histogram("fakeai_request_prefill_time_seconds", "Scheduled to first token.", phase)
        self.decode_time = histogram("fakeai_request_decode_time_seconds", "First token to last token.", phase)
        self.inference_time = histogram("fakeai_request_inference_time_seconds", "Scheduled to last token.", phase)
        self.ttft = histogram(
            "fakeai_time_to_first_token_seconds",
            "Arrival to first token, streaming or not.",
            families.native("time_to_first_token", buckets.FINER_TTFT),
        )
        self.itl = histogram(
            "fakeai_inter_token_latency_seconds",
            "Every gap between two outputs of one choice (one token each, more with speculative decoding).",
            itl,
        )
        self.tpot = histogram(
            "fakeai_request_time_per_output_token_seconds",
            "Decode time / (generated tokens - 1), per request.",
            itl,
        )
        self.prompt_tokens = counter("fakeai_prompt_tokens", "Prompt tokens prefilled.")
        self.prompt_tokens_cached = counter(
            "fakeai_prompt_tokens_cached", "Prompt tokens of prefilled requests found in the prefix cache."
        )
        self.prompt_tokens_recomputed = counter(
            "fakeai_prompt_tokens_recomputed",
            "The last prompt token, computed again because the rest of the prompt was cached (as vLLM counts it).",
        )
        self.completion_tokens = counter("fakeai_completion_tokens", "Completion tokens, counted as emitted.")
        self.request_prompt_tokens = histogram("fakeai_request_prompt_tokens", "Prompt length per request.", tokens)
        self.request_completion_tokens = histogram(
            "fakeai_request_completion_tokens", "Generated tokens per request, all choices.", tokens
        )
        self.request_max_completion_tokens = histogram(
            "fakeai_request_max_completion_tokens", "Longest choice of the request, in tokens.", tokens
        )
        self.params_max_tokens = histogram(
            "fakeai_request_params_max_tokens", "The max_tokens parameter, when given.", tokens
        )
        self.params_n = histogram("fakeai_request_params_n", "The n parameter.", families.native("request_params_n"))
        self.request_prefill_computed_tokens = histogram(
            "fakeai_request_prefill_computed_tokens",
            "Prompt tokens computed in prefill (not cached), per request the engine finished.",
            tokens,
        )
        self.request_preemptions = histogram(
            "fakeai_request_preemptions",
            "Preemptions per request the engine finished.",
            families.native("request_num_preemptions"),
        )
        self.iteration_tokens = histogram(
            "fakeai_iteration_tokens",
            "Tokens per simulated engine step.",
            families.native("iteration_tokens"),
            m,
        )
        self.step_requests = counter(
            "fakeai_step_requests", "Requests in the batch of each engine step, summed over steps.", m
        )
        self.sequence_tokens_max = gauge(
            "fakeai_sequence_tokens_max", "Longest sequence (prompt and completion) of a finished request.", m, "max"
        )
        self.sequence_tokens_seen: dict[tuple[str, ...], int] = {}
        """The longest sequence per (model[, engine]) so far, kept here so a request reads no gauge."""
        # What TGI's router times that no other engine does, at TGI's bounds: recorded only when a model
        # speaks the tgi dialect (``batch_calls``), so no other server pays for them, and read by its view only.
        self.batch_calls = batch_calls
        if batch_calls:
            durations = buckets.tgi_durations()
            self.validation_time = histogram(
                "fakeai_request_validation_time_seconds",
                "Arrival to the engine's queue (parse, tokenize).",
                durations,
                exposed=False,
            )
            self.mean_time_per_token = histogram(
                "fakeai_request_mean_time_per_token_seconds",
                "Scheduled to last token, over the completion tokens.",
                durations,
                exposed=False,
            )
            step = (*m, "phase")
            self.step_time = histogram(
                "fakeai_step_seconds", "Engine step, schedule to tokens sent, by phase.", durations, step, exposed=False
            )
            self.step_forward_time = histogram(
                "fakeai_step_forward_seconds",
                "Engine step's simulated forward pass, by phase.",
                durations,
                step,
                exposed=False,
            )
            self.step_send_time = histogram(
                "fakeai_step_send_seconds",
                "Engine step's token hand-over to the requests, by phase.",
                durations,
                step,
                exposed=False,
            )
            # Steps by the number of requests they admitted, rather than a histogram at TGI's 1,024 bounds:
            # exact at every bound, and one series per count that happened (at most --max-num-seqs of them).
            self.step_admissions = counter(
                "fakeai_step_admissions",
                "Engine steps that admitted requests from the queue, by how many.",
                (*m, "admitted"),
                exposed=False,
            )
        # What Dynamo's frontend counts that no other engine does: recorded only when a model speaks the
        # dynamo dialect (``frontend_requests``), and read by its view only.
        self.frontend_requests = frontend_requests
        if frontend_requests:
            self.requests_by_kind = counter(
                "fakeai_requests_by_kind",
                "Requests accepted, by whether they asked to stream.",
                (*em, "stream"),
                exposed=False,
            )
            self.responses_by_kind = counter(
                "fakeai_responses_by_kind",
                "Requests ended, by whether they asked to stream and the status their client finally got.",
                (*em, "stream", "status"),
                exposed=False,
            )
            self.before_first_token = gauge(
                "fakeai_requests_before_first_token",
                "Accepted requests whose first token has not come yet.",
                exposed=False,
            )
            self.request_cached_tokens = histogram(
                "fakeai_request_cached_tokens",
                "Prompt tokens found in the prefix cache, per prefilled request.",
                buckets.DYNAMO_INPUT_SEQUENCE,
                exposed=False,
            )
        self.finished = counter("fakeai_finished_requests", "Finished requests by reason.", (*em, "finished_reason"))
        self.cache_queries = counter("fakeai_prefix_cache_queries", "Prompt tokens looked up in the prefix cache.")
        self.cache_hits = counter("fakeai_prefix_cache_hits", "Looked-up prompt tokens found in the prefix cache.")
        self.cache_lookups = counter("fakeai_prefix_cache_lookups", "Requests looked up in the prefix cache.")
        self.cache_lookup_hits = counter(
            "fakeai_prefix_cache_lookup_hits", "Requests that found at least one cached block."
        )
        self.running = gauge("fakeai_requests_running", "Requests in the running batch.")
        self.waiting = gauge("fakeai_requests_waiting", "Requests waiting for a scheduler slot.")
        self.active_streams = gauge("fakeai_active_streams", "Open server-sent-event streams.")
        self.streams = counter("fakeai_streams", "Finished streams by outcome.", (*em, "outcome"))
        self.errors = counter(
            "fakeai_errors", "Errors returned, by status and OpenAI error type.", (*em, "status", "type")
        )
        self.kv_cache_usage = gauge(
            "fakeai_kv_cache_usage_ratio", "Simulated KV block pool in use, 0-1.", m, mode="livemax"
        )
        self.preemptions = counter("fakeai_preemptions", "Running requests preempted for KV space.", m)
        self.gen_throughput = gauge(
            "fakeai_gen_throughput",
            "Generated tokens per second over the engine's last log interval (40 decode steps).",
            m,
            mode="livemax",
        )
        self.cache_hit_rate = gauge(
            "fakeai_cache_hit_rate",
            "Share of the last prefill batch's tokens found in the prefix cache; 0 after a decode log.",
            m,
            mode="livemax",
        )
        self.spec_decode_drafts = counter(
            "fakeai_spec_decode_drafts", "Speculative drafts verified (one per choice per decode step).", m
        )
        self.spec_decode_draft_tokens = counter(
            "fakeai_spec_decode_draft_tokens", "Draft tokens proposed for verification.", m
        )
        self.spec_decode_accepted_tokens = counter(
            "fakeai_spec_decode_accepted_tokens", "Draft tokens accepted by the target model.", m
        )
        self.spec_decode_accepted_per_position = counter(
            "fakeai_spec_decode_accepted_tokens_per_pos",
            "Drafts whose token at this position (from 0) was accepted.",
            (*m, "position"),
        )
        self.deferred = gauge(
            "fakeai_requests_deferred",
            "Waiting requests the last engine step skipped for a transient constraint (the LoRA budget).",
            m,
        )
        self.lora_requests_info = gauge(
            "fakeai_lora_requests_info",
            "Unix time the engine last reported these adapters running and waiting (vLLM's lora_requests_info).",
            ("max_lora", "waiting_lora_adapters", "running_lora_adapters"),
            mode="sum",
        )
        self.lora_series: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        """The lora_requests_info label sets in use, least recently reported first (bounded)."""
        self.mm_cache_queries = counter(
            "fakeai_mm_cache_queries", "Image and audio items looked up in the multi-modal cache.", m
        )
        self.mm_cache_hits = counter(
            "fakeai_mm_cache_hits", "Looked-up image and audio items found in the multi-modal cache.", m
        )
        residency = families.native("kv_cache_residency")
        self.kv_block_lifetime = histogram(
            "fakeai_kv_block_lifetime_seconds",
            "Sampled KV blocks: allocation to eviction (--kv-cache-metrics).",
            residency,
            m,
        )
        self.kv_block_idle_before_evict = histogram(
            "fakeai_kv_block_idle_before_evict_seconds",
            "Sampled KV blocks: last use to eviction (--kv-cache-metrics).",
            residency,
            m,
        )
        self.kv_block_reuse_gap = histogram(
            "fakeai_kv_block_reuse_gap_seconds",
            "Sampled KV blocks: gaps between their last uses (--kv-cache-metrics).",
            residency,
            m,
        )
        self.sleep_operation_duration = histogram(
            "fakeai_sleep_mode_operation_duration_seconds",
            "Duration of each sleep-mode call (/sleep, /wake_up), every worker's engines included.",
            merged(buckets.VLLM_SLEEP_MODE_OPERATION, buckets.FINER_REQUEST_PHASE),
            ("operation",),
        )
        self.sleep_operations_in_flight = gauge(
            "fakeai_sleep_mode_operations_in_flight", "Sleep-mode calls being served.", ("operation",)
        )
        self.loaded = gauge(
            "fakeai_engine_loaded",
            "1 once the model's engine has loaded (--startup-seconds after start), 0 before.",
            m,
            mode="livemin",
        )
        self.sleep_state = gauge(
            "fakeai_engine_sleep_state",
            "1 for the engine's sleep state (awake, weights_offloaded at level 1, discard_all at level 2), "
            "as vLLM records it.",
            (*m, "sleep_state"),
            mode="livemax",
        )
        self.scenario_phase = gauge(
            "fakeai_scenario_phase_info",
            "1 for the phase of the running scenario (--scenario, POST /admin/scenario).",
            ("scenario", "phase"),
            mode="livemax",
        )
        self.http_requests = counter(
            "fakeai_http_requests",
            "Every HTTP request but /metrics, by route template.",
            ("endpoint", "method", "status"),
        )
        self.http_request_size = Summary(
            "fakeai_http_request_size_bytes",
            "Content-Length of requests (0 without one) by route template.",
            ("endpoint",),
            registry=registry,
        )
        self.http_response_size = Summary(
            "fakeai_http_response_size_bytes",
            "Content-Length of responses (0 without one, as a stream) by route template.",
            ("endpoint",),
            registry=registry,
        )
        self.http_duration = histogram(
            "fakeai_http_request_duration_seconds",
            "HTTP request duration by route template.",
            buckets.HTTP_REQUEST_DURATION,
            ("endpoint", "method"),
        )

    def all(self) -> list[Counter | Gauge | Histogram | Summary]:
        return [value for value in vars(self).values() if isinstance(value, Counter | Gauge | Histogram | Summary)]

    def named(self, names: Collection[str]) -> list[Counter | Gauge | Histogram | Summary]:
        """The families registered under ``names`` (counters without ``_total``)."""
        return [family for family in self.all() if family._name in names]

    def collect(self, names: Collection[str] | None = None) -> Iterator[Metric]:
        """The native families (those in ``names``, when given), as a derived view reads them."""
        if names is None:
            for family in self.all():
                yield from family.collect()
            return
        by_name: dict[str, Counter | Gauge | Histogram | Summary] | None = self.__dict__.get("_by_name")
        if by_name is None:  # every family exists once __init__ is done: look them up by name from then on
            by_name = self.__dict__["_by_name"] = {family._name: family for family in self.all()}
        for name in names:
            named = by_name.get(name)
            if named is not None:
                yield from named.collect()


class RequestMetrics:
    """The children of one (endpoint, model[, engine]), resolved once and reused on the hot path."""

    def __init__(
        self, families: NativeFamilies, endpoint: str, model: str, engine: int = 0, priority: str = "0"
    ) -> None:
        self.families, self.endpoint, self.model = families, endpoint, model
        labels: tuple[str, ...] = (endpoint, model)
        if families.engine_label:
            labels = (*labels, str(engine))
        if families.priority_label:
            labels = (*labels, priority)
        self._labels = labels
        f = families
        self._requests = f.requests.labels(*labels)
        self._duration = f.request_duration.labels(*labels)
        self._queue_time = f.queue_time.labels(*labels)
        self._prefill_time = f.prefill_time.labels(*labels)
        self._decode_time = f.decode_time.labels(*labels)
        self._inference_time = f.inference_time.labels(*labels)
        self._ttft = f.ttft.labels(*labels)
        self._itl = f.itl.labels(*labels)
        self._tpot = f.tpot.labels(*labels)
        self._prompt_tokens = f.prompt_tokens.labels(*labels)
        self._prompt_tokens_cached = f.prompt_tokens_cached.labels(*labels)
        self._prompt_tokens_recomputed = f.prompt_tokens_recomputed.labels(*labels)
        self._request_prefill_computed_tokens = f.request_prefill_computed_tokens.labels(*labels)
        self._request_preemptions = f.request_preemptions.labels(*labels)
        self._completion_tokens = f.completion_tokens.labels(*labels)
        self._request_prompt_tokens = f.request_prompt_tokens.labels(*labels)
        self._request_completion_tokens = f.request_completion_tokens.labels(*labels)
        self._request_max_completion_tokens = f.request_max_completion_tokens.labels(*labels)
        self._params_max_tokens = f.params_max_tokens.labels(*labels)
        self._params_n = f.params_n.labels(*labels)
        self._cache_queries = f.cache_queries.labels(*labels)
        self._cache_hits = f.cache_hits.labels(*labels)
        self._cache_lookups = f.cache_lookups.labels(*labels)
        self._cache_lookup_hits = f.cache_lookup_hits.labels(*labels)
        self._running = f.running.labels(*labels)
        self._waiting = f.waiting.labels(*labels)
        self._active_streams = f.active_streams.labels(*labels)
        self._engine_key = (model, str(engine)) if families.engine_label else (model,)
        self._sequence_tokens_max = f.sequence_tokens_max.labels(*self._engine_key)
        if f.batch_calls:
            self._validation_time = f.validation_time.labels(*labels)
            self._mean_time_per_token = f.mean_time_per_token.labels(*labels)
        if f.frontend_requests:
            self._before_first_token = f.before_first_token.labels(*labels)
            self._request_cached_tokens = f.request_cached_tokens.labels(*labels)
        self._extra: dict[tuple[Counter, tuple[str, ...]], Counter] = {}
        # The two children every request ends on, by the record's own values (an int, a str enum): no
        # label text built and no key tuple made per request.
        self._responses_by_status: dict[int, Counter] = {}
        self._finished_by_reason: dict[str, Counter] = {}

    def accepted(self, max_tokens: int | None, n: int, stream: bool = False) -> None:
        inc(self._requests)
        if self.families.frontend_requests:
            inc(self._child(self.families.requests_by_kind, _kind(stream)))
            inc(self._before_first_token)
        if max_tokens is not None:
            observe(self._params_max_tokens, max_tokens)
        observe(self._params_n, n)

    def enqueued(self) -> None:
        inc(self._waiting)

    def ran_on_arrival(self, queue_time: float) -> None:
        """Scheduled and finished within one call (``--no-delay``): the running and waiting gauges
        would rise and fall with no await in between, which no scrape can see, so they are left alone."""
        observe(self._queue_time, queue_time)

    def scheduled(self, queue_time: float | None) -> None:
        """Left the waiting queue for the running batch; ``queue_time`` is None on a re-schedule."""
        self._waiting.dec()
        inc(self._running)
        if queue_time is not None:
            observe(self._queue_time, queue_time)

    def preempted(self) -> None:
        self._running.dec()
        inc(self._waiting)

    def left_engine(self, running: bool) -> None:
        """Removed from the engine before finishing normally (abort) or at its end."""
        (self._running if running else self._waiting).dec()

    def prefix_lookup(self, prompt_tokens: int, cached_tokens: int) -> None:
        inc(self._cache_queries, prompt_tokens)
        inc(self._cache_lookups)
        if cached_tokens:
            inc(self._cache_hits, cached_tokens)
            inc(self._cache_lookup_hits)

    def prefilled(self, prompt_tokens: int, cached_tokens: int, ttft: float | None, prefill_time: float) -> None:
        inc(self._prompt_tokens, prompt_tokens)
        if cached_tokens:
            inc(self._prompt_tokens_cached, cached_tokens)
            # vLLM's PromptTokenStats: a prompt cached but for its last token counts that token recomputed.
            if cached_tokens + 1 == prompt_tokens:
                inc(self._prompt_tokens_recomputed)
        observe(self._prefill_time, prefill_time)
        if ttft is not None:
            observe(self._ttft, ttft)
        if self.families.frontend_requests:
            observe(self._request_cached_tokens, cached_tokens)
            if ttft is not None:  # the first token comes with this step
                self._before_first_token.dec()

    def tokens(self, count: int, gap: float | None, gaps: int | None = None) -> None:
        """``count`` tokens emitted; ``gaps`` of them (all, by default) followed an earlier token of
        their choice by ``gap`` seconds. ``gap`` is None for first tokens."""
        inc(self._completion_tokens, count)
        if gap is not None:
            observe_many(self._itl, gap, count if gaps is None else gaps)

    def stream_opened(self) -> None:
        inc(self._active_streams)

    def stream_closed(self) -> None:
        self._active_streams.dec()

    def _child(self, family: Counter, *extra: str) -> Counter:
        """A child of a family with one more label (status, reason, ...), resolved once per value."""
        key = (family, extra)
        child = self._extra.get(key)
        if child is None:
            child = self._extra[key] = family.labels(*self._labels, *extra)
        return child

    def finished(self, record: RequestRecord) -> None:
        f = self.families
        status, reason = record.status, record.finished_reason
        responses = self._responses_by_status.get(status)
        if responses is None:
            responses = self._responses_by_status[status] = self._child(f.responses, str(status))
        inc(responses)
        finished = self._finished_by_reason.get(reason)
        if finished is None:
            finished = self._finished_by_reason[reason] = self._child(f.finished, reason.value)
        inc(finished)
        if record.error_type is not None:
            inc(self._child(f.errors, str(record.error_status or record.status), record.error_type))
        if record.stream_outcome is not None:
            inc(self._child(f.streams, record.stream_outcome.value))
        if f.frontend_requests:
            inc(self._child(f.responses_by_kind, _kind(record.stream), str(record.error_status or record.status)))
            if record.first_token is None:
                self._before_first_token.dec()
        observe(self._duration, record.duration)
        if f.batch_calls and record.queued is not None:
            observe(self._validation_time, record.queued - record.arrival)
        if record.queued is not None:  # the engine had it: as vLLM, every request the engine finishes
            observe(self._request_preemptions, record.preemptions)
            observe(self._request_prefill_computed_tokens, record.prompt_tokens - record.cached_tokens)
        if record.scheduled is None:
            return
        observe(self._request_prompt_tokens, record.prompt_tokens)
        observe(self._request_completion_tokens, record.completion_tokens)
        sequence = record.prompt_tokens + record.max_choice_tokens
        if sequence > f.sequence_tokens_seen.get(self._engine_key, 0):
            f.sequence_tokens_seen[self._engine_key] = sequence
            self._sequence_tokens_max.set(sequence)
        observe(self._request_max_completion_tokens, record.max_choice_tokens)
        if record.last_token is not None:
            observe(self._inference_time, record.last_token - record.scheduled)
            if f.batch_calls and record.completion_tokens:
                observe(self._mean_time_per_token, (record.last_token - record.scheduled) / record.completion_tokens)
        if record.first_token is not None and record.last_token is not None:
            decode = record.last_token - record.first_token
            observe(self._decode_time, decode)
            if record.max_choice_tokens > 1:
                observe(self._tpot, decode / (record.max_choice_tokens - 1))


class ModelMetrics:
    """Engine-level facts of one model's engine."""

    def __init__(
        self,
        families: NativeFamilies,
        model: str,
        engine: int = 0,
        *,
        kv_cache_metrics: bool = False,
        speculative_tokens: int = 0,
    ) -> None:
        key = (model, str(engine)) if families.engine_label else (model,)
        self._iteration_tokens = families.iteration_tokens.labels(*key)
        self._step_requests = families.step_requests.labels(*key)
        if families.batch_calls:
            self._steps_by_phase = {
                phase: (
                    families.step_time.labels(*key, phase),
                    families.step_forward_time.labels(*key, phase),
                    families.step_send_time.labels(*key, phase),
                )
                for phase in STEP_PHASES
            }
            self._step_admissions: dict[int, Counter] = {}
            self._admissions_key = key
        self._kv_cache_usage = families.kv_cache_usage.labels(*key)
        self._preemptions = families.preemptions.labels(*key)
        self._gen_throughput = families.gen_throughput.labels(*key)
        self._cache_hit_rate = families.cache_hit_rate.labels(*key)
        self._families = families
        self.batch_calls = families.batch_calls
        """Whether ``batch_call`` records anything (a model speaks tgi): the engine times its steps only then."""
        self._deferred = families.deferred.labels(*key)
        self._mm_cache_queries = families.mm_cache_queries.labels(*key)
        self._mm_cache_hits = families.mm_cache_hits.labels(*key)
        self._sleep_state = {state: families.sleep_state.labels(*key, state) for state in SLEEP_STATES}
        self.sleep_state(asleep=False, level=0)
        if speculative_tokens:  # vLLM's SpecDecodingProm: only with a speculative config, every position at 0
            self._spec_drafts = families.spec_decode_drafts.labels(*key)
            self._spec_draft_tokens = families.spec_decode_draft_tokens.labels(*key)
            self._spec_accepted = families.spec_decode_accepted_tokens.labels(*key)
            self._spec_accepted_per_position = [
                families.spec_decode_accepted_per_position.labels(*key, str(position))
                for position in range(speculative_tokens)
            ]
        if kv_cache_metrics:  # vLLM registers these only with --kv-cache-metrics, then at 0 from start
            self._kv_block_lifetime = families.kv_block_lifetime.labels(*key)
            self._kv_block_idle = families.kv_block_idle_before_evict.labels(*key)
            self._kv_block_reuse_gap = families.kv_block_reuse_gap.labels(*key)
        self._loaded = families.loaded.labels(*key)
        self._loaded.set(1)

    def kv_block_evicted(self, lifetime: float, idle: float, reuse_gaps: list[float]) -> None:
        """A sampled KV block left the cache (vLLM's KVCacheEvictionEvent)."""
        observe(self._kv_block_lifetime, lifetime)
        observe(self._kv_block_idle, idle)
        for gap in reuse_gaps:
            observe(self._kv_block_reuse_gap, gap)

    def loading(self, loading: bool) -> None:
        """A starting engine: vLLM exposes none of its metrics until it has loaded."""
        self._loaded.set(0 if loading else 1)

    def sleep_state(self, *, asleep: bool, level: int) -> None:
        """vLLM's ``record_sleep_state(sleep, level)``: awake unless asleep; the level picks which of
        weights_offloaded (1) and discard_all (2) is set. Level 0 sets neither."""
        values = {"awake": 0 if asleep else 1, "weights_offloaded": 0, "discard_all": 0}
        if asleep and level in SLEEP_LEVEL_STATES:
            values[SLEEP_LEVEL_STATES[level]] = 1
        for state, value in values.items():
            self._sleep_state[state].set(value)

    def steps(self, tokens: int, count: int, requests: int = 1) -> None:
        """``count`` engine steps that each processed ``tokens`` tokens of ``requests`` requests."""
        observe_many(self._iteration_tokens, tokens, count)
        inc(self._step_requests, requests * count)

    def batch_call(self, phase: str, forward: float, send: float, admitted: int, count: int = 1) -> None:
        """``count`` engine steps of a phase (``prefill`` when a step prefilled any prompt, else ``decode``):
        the simulated forward pass, then the hand-over of the step's tokens; ``admitted`` requests joined
        from the queue. Kept only when the tgi dialect asks for them (``NativeFamilies.batch_calls``)."""
        if not self._families.batch_calls:
            return
        total, forward_time, send_time = self._steps_by_phase[phase]
        observe_many(total, forward + send, count)
        observe_many(forward_time, forward, count)
        observe_many(send_time, send, count)
        if admitted:
            child = self._step_admissions.get(admitted)
            if child is None:
                child = self._step_admissions[admitted] = self._families.step_admissions.labels(
                    *self._admissions_key, str(admitted)
                )
            inc(child)

    def kv_cache_usage(self, ratio: float) -> None:
        self._kv_cache_usage.set(ratio)

    def preemption(self) -> None:
        inc(self._preemptions)

    def prefill_logged(self, cache_hit_rate: float) -> None:
        """A prefill batch was scheduled: the share of its tokens the prefix cache held (SGLang's
        ``log_prefill_stats``)."""
        self._cache_hit_rate.set(cache_hit_rate)

    def decode_logged(self, tokens_per_second: float) -> None:
        """A decode log interval ended (SGLang's ``log_decode_stats``, which also zeroes the hit rate)."""
        self._gen_throughput.set(tokens_per_second)
        self._cache_hit_rate.set(0.0)

    def speculative_step(self, drafts: int, draft_tokens: int, accepted: int, per_position: list[int]) -> None:
        """One engine step's drafts (vLLM's ``SpecDecodingStats``)."""
        inc(self._spec_drafts, drafts)
        inc(self._spec_draft_tokens, draft_tokens)
        inc(self._spec_accepted, accepted)
        for child, count in zip(self._spec_accepted_per_position, per_position, strict=True):
            inc(child, count)

    def adapters(self, max_lora: int, running: list[str], waiting: list[str], deferred: int) -> None:
        """The engine's LoRA adapters for its coming step: vLLM sets ``lora_requests_info`` to the current
        time under the label set of the adapters running and waiting, so the newest set has the largest
        value; fakeai keeps the most recent MAX_LORA_SERIES sets."""
        self._deferred.set(deferred)
        key = (str(max_lora), ",".join(waiting), ",".join(running))
        series = self._families.lora_series
        series[key] = None
        series.move_to_end(key)
        self._families.lora_requests_info.labels(*key).set_to_current_time()
        while len(series) > MAX_LORA_SERIES:
            oldest, _ = series.popitem(last=False)
            self._families.lora_requests_info.remove(*oldest)

    def multimodal_items(self, queries: int, hits: int) -> None:
        """One request's image and audio items looked up in the multi-modal cache."""
        inc(self._mm_cache_queries, queries)
        inc(self._mm_cache_hits, hits)


class ServerMetrics:
    """The server's metrics on one registry; hands out per-request and per-model recorders."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        models: Iterable[str],
        endpoints: Iterable[str],
        max_model_len: int,
        custom_buckets: Mapping[str, tuple[float, ...]] | None = None,
        kept_buckets: Mapping[str, tuple[float, ...]] | None = None,
        kv_cache_metrics: bool = False,
        speculative_tokens: int = 0,
        engines: Sequence[int] = (0,),
        engine_label: bool = False,
        priority_label: bool = False,
        batch_calls: bool = False,
        frontend_requests: bool = False,
    ) -> None:
        self.registry = registry
        self.kv_cache_metrics = kv_cache_metrics
        self.speculative_tokens = speculative_tokens
        """Draft tokens per step with --speculative-config (0: no speculative decoding)."""
        self.engines = tuple(engines)
        """Every model's engine indices in this process (data-parallel ranks, numbered across workers)."""
        self.buckets = buckets.BucketFamilies(max_model_len, dict(custom_buckets or {}), dict(kept_buckets or {}))
        self.families = NativeFamilies(
            registry,
            self.buckets,
            engine_label=engine_label,
            priority_label=priority_label,
            batch_calls=batch_calls,
            frontend_requests=frontend_requests,
        )
        self._requests: dict[tuple[str, str, int, str], RequestMetrics] = {}
        self._models: dict[tuple[str, int], ModelMetrics] = {}
        self._http: dict[tuple[str, str, int], tuple[Counter, Histogram, Summary, Summary]] = {}
        self.models = tuple(models)
        self.endpoints = tuple(endpoints)
        # Series that dashboards and alerts divide by exist at 0 from start-up, as vLLM's do.
        for model in self.models:
            for engine in self.engines:
                self.model(model, engine).kv_cache_usage(0.0)
                for endpoint in self.endpoints:
                    recorder = self.request(endpoint, model, engine)
                    for reason in FinishedReason:
                        recorder._child(self.families.finished, reason.value)
                    for outcome in StreamOutcome:
                        recorder._child(self.families.streams, outcome.value)

    def request(self, endpoint: str, model: str, engine: int = 0, priority: int = 0) -> RequestMetrics:
        bucket = bucket_priority(priority) if self.families.priority_label else "0"
        key = (endpoint, model, engine, bucket)
        recorder = self._requests.get(key)
        if recorder is None:
            recorder = self._requests[key] = RequestMetrics(self.families, endpoint, model, engine, bucket)
        return recorder

    def model(self, model: str, engine: int = 0) -> ModelMetrics:
        recorder = self._models.get((model, engine))
        if recorder is None:
            recorder = self._models[model, engine] = ModelMetrics(
                self.families,
                model,
                engine,
                kv_cache_metrics=self.kv_cache_metrics,
                speculative_tokens=self.speculative_tokens,
            )
        return recorder

    def scenario_phase(self, scenario: str | None, phase: str | None) -> None:
        """``fakeai_scenario_phase_info{scenario, phase} 1`` for the running phase (none when None)."""
        family = self.families.scenario_phase
        family.clear()
        if scenario is not None and phase is not None:
            family.labels(scenario, phase).set(1)

    @contextlib.contextmanager
    def sleep_operation(self, operation: str) -> Iterator[None]:
        """One sleep-mode call (vLLM's ``SleepModeOperationMetrics.record``): in flight while it runs,
        its duration observed when it ends. ``operation`` is one of vLLM's: sleep, wake."""
        in_flight = self.families.sleep_operations_in_flight.labels(operation)
        started = time.perf_counter()
        in_flight.inc()
        try:
            yield
        finally:
            in_flight.dec()
            self.families.sleep_operation_duration.labels(operation).observe(time.perf_counter() - started)

    def http_request(
        self, endpoint: str, method: str, status: int, duration: float, request_bytes: int, response_bytes: int
    ) -> None:
        """One HTTP request by route template; the sizes are the Content-Length headers (0 without one)."""
        key = (endpoint, method, status)
        children = self._http.get(key)
        if children is None:
            f = self.families
            children = self._http[key] = (
                f.http_requests.labels(endpoint, method, str(status)),
                f.http_duration.labels(endpoint, method),
                f.http_request_size.labels(endpoint),
                f.http_response_size.labels(endpoint),
            )
        inc(children[0])
        observe(children[1], duration)
        observe_summary(children[2], request_bytes)
        observe_summary(children[3], response_bytes)
