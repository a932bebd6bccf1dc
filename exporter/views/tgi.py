"""Text Generation Inference's metric names (``--metrics-dialect tgi``), as its router exposes them, derived
from the native families at scrape time.

Names, help, labels and bucket bounds are TGI's own: the router's ``metrics::`` calls and its
``PrometheusBuilder`` set-up in router/src/server.rs, router/src/infer/mod.rs, router/src/validation.rs and
backends/v3/src (huggingface/text-generation-inference, commit db931fcf42da018a3657580c64bf2720f167f9ab;
the excerpts are kept verbatim in tests/data/tgi/, where the tests read them). The exposition is written
by Rust's metrics-exporter-prometheus (0.15): counters under their own names, no ``_total``; a family
appears once it is first recorded; text format 0.0.4 whatever the scraper asks. TGI serves one model and
labels none: a fakeai server speaks this dialect for one model (``fakeai.settings`` refuses more).

What each family counts, in fakeai's terms:
- ``tgi_request_count``: requests accepted; ``tgi_request_success``: those finished by stop or length;
  ``tgi_request_failure{err}``: ``dropped`` for a client that went away (status 499), ``overloaded`` for a
  429 or 503, ``validation`` for another 4xx, ``generation`` for a 5xx (an engine error, mid-stream too).
- the request histograms: the native phases at TGI's 35 duration bounds; ``validation``: arrival to the
  engine's queue (parsing and tokenizing); ``mean_time_per_token``: scheduled to last token over the
  tokens generated, as TGI divides its inference time; the token histograms at TGI's 100 bounds of
  ``max_input_tokens`` (``--max-model-len`` - 1, TGI's default) or ``max_total_tokens``
  (``--max-model-len``).
- ``method`` ``prefill`` or ``decode``: an engine step that prefilled any prompt is a prefill call, the
  rest are decode calls. ``forward``: the step's simulated forward pass; ``filter``: handing the step's
  tokens to the requests; ``inference``: both. ``tgi_batch_next_size``: requests a step admitted
  (``fakeai_step_admissions_total{admitted}``).
- gauges: the queue, the running batch, the KV tokens it holds (``batch_current_max_tokens``) and the
  pool's (``batch_max_total_tokens``).
"""

import bisect
import itertools
from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.buckets import TGI_BATCH_SIZE, tgi_durations, tgi_tokens
from exporter.views.aggregate import (
    DerivedView,
    FamilySource,
    GroupKey,
    HistogramGroup,
    bare_counter_family,
    engine_labels,
    histogram_by,
    histogram_family,
    sum_by,
)

DURATIONS = tgi_durations()
SUCCESS = ("stop", "length", "repetition")
CLIENT_GONE = "499"
FINISHED, ERRORS, RESPONSES = "fakeai_finished_requests", "fakeai_errors", "fakeai_responses"
REQUESTS, RUNNING, WAITING, KV_USAGE = (
    "fakeai_requests",
    "fakeai_requests_running",
    "fakeai_requests_waiting",
    "fakeai_kv_cache_usage_ratio",
)
STEP_TIMES = (
    ("tgi_batch_inference_duration", "fakeai_step_seconds", "Batch inference duration"),
    (
        "tgi_batch_forward_duration",
        "fakeai_step_forward_seconds",
        "Batch forward duration per method (prefill or decode)",
    ),
    (
        "tgi_batch_filter_duration",
        "fakeai_step_send_seconds",
        "Time spent filtering batches and sending generated tokens per method (prefill or decode)",
    ),
)
REQUEST_TIMES = (
    ("tgi_request_duration", "fakeai_request_duration_seconds", "Total time spent processing the request"),
    ("tgi_request_validation_duration", "fakeai_request_validation_time_seconds", "Time spent validating the request"),
    ("tgi_request_queue_duration", "fakeai_request_queue_time_seconds", "Time spent in the queue per request"),
    ("tgi_request_inference_duration", "fakeai_request_inference_time_seconds", "Request inference duration"),
    (
        "tgi_request_mean_time_per_token_duration",
        "fakeai_request_mean_time_per_token_seconds",
        "Mean time per token per request",
    ),
)
ADMISSIONS = "fakeai_step_admissions"
ADMITTED_AS = "tgi_batch_next_size"


def batch_sizes(steps: Mapping[GroupKey, float]) -> HistogramGroup:
    """``tgi_batch_next_size`` at TGI's bounds (1 ... 1024) from the steps counted by admitted requests
    (``{("3",): 12.0}``: twelve steps admitted three each): exact at every bound."""
    group = HistogramGroup(TGI_BATCH_SIZE)
    landed = [0.0] * len(TGI_BATCH_SIZE)
    for (admitted,), count in steps.items():
        size = int(admitted)
        position = bisect.bisect_left(TGI_BATCH_SIZE, size)  # the first bound >= size; beyond: +Inf only
        if position < len(landed):
            landed[position] += count
        group.count += count
        group.total += size * count
    group.cumulative = list(itertools.accumulate(landed))
    return group


def token_histograms(max_model_len: int) -> tuple[tuple[str, str, tuple[float, ...], str], ...]:
    """TGI's token-count histograms, bounded by TGI's defaults for a model of this context length."""
    max_total_tokens = max_model_len
    max_input_tokens = max_model_len - 1
    return (
        (
            "tgi_request_input_length",
            "fakeai_request_prompt_tokens",
            tgi_tokens(max_input_tokens),
            "Input token length per request",
        ),
        (
            "tgi_request_generated_tokens",
            "fakeai_request_completion_tokens",
            tgi_tokens(max_total_tokens),
            "Generated tokens per request",
        ),
        (
            "tgi_request_max_new_tokens",
            "fakeai_request_params_max_tokens",
            tgi_tokens(max_total_tokens),
            "Maximum new tokens per request",
        ),
    )


def kept_buckets(max_model_len: int) -> dict[str, tuple[float, ...]]:
    """The bounds the native histograms keep for this view (only when a model speaks it)."""
    kept = {source: DURATIONS for _, source, _ in REQUEST_TIMES}
    kept |= {source: bounds for _, source, bounds, _ in token_histograms(max_model_len)}
    return kept


def _failure(status: str) -> str:
    code = int(status)
    if code in (429, 503):
        return "overloaded"
    return "validation" if code < 500 else "generation"


class TgiView(DerivedView):
    """A prometheus-client collector exposing the native families under TGI's router's names."""

    def __init__(self, source: FamilySource, *, max_model_len: int, block_size: int, num_blocks: int) -> None:
        super().__init__(source)
        self._tokens = token_histograms(max_model_len)
        self.set_pool(block_size=block_size, num_blocks=num_blocks)
        histograms = [row[1] for row in (*STEP_TIMES, *REQUEST_TIMES)] + [row[1] for row in self._tokens]
        self.native = frozenset(
            [*histograms, ADMISSIONS, FINISHED, ERRORS, RESPONSES, REQUESTS, RUNNING, WAITING, KV_USAGE]
        )

    def set_pool(self, *, block_size: int, num_blocks: int) -> None:
        """The KV pool, also after a runtime change: the batch token gauges follow it."""
        self._block_size, self._num_blocks = block_size, num_blocks

    def _families(self, native: Mapping[str, Metric]) -> Iterator[Metric]:
        def total(family: str, sample: str, by: tuple[str, ...] = ()) -> dict[GroupKey, float]:
            return sum_by(native.get(family), sample, by)

        requests = sum(total(REQUESTS, REQUESTS + "_total").values())
        finished = total(FINISHED, FINISHED + "_total", ("finished_reason",))
        success = sum(count for (reason,), count in finished.items() if reason in SUCCESS)
        failures: dict[GroupKey, float] = {}
        for (status,), count in total(ERRORS, ERRORS + "_total", ("status",)).items():
            failures[(_failure(status),)] = failures.get((_failure(status),), 0.0) + count
        dropped = total(RESPONSES, RESPONSES + "_total", ("status",)).get((CLIENT_GONE,), 0.0)
        if dropped:
            failures[("dropped",)] = dropped
        calls = total("fakeai_step_seconds", "fakeai_step_seconds_count", ("phase",))
        # metrics-rs creates a series on its first record: nothing counted yet, no series.
        counters = (
            ("tgi_request_count", "Total number of requests", (), {(): requests}),
            ("tgi_request_success", "Number of successful requests", (), {(): success}),
            ("tgi_request_failure", "", ("err",), failures),
            ("tgi_batch_inference_count", "Inference calls per method (prefill or decode)", ("method",), calls),
            (
                "tgi_batch_inference_success",
                "Number of successful inference calls per method (prefill or decode)",
                ("method",),
                calls,
            ),
        )
        for name, doc, labels, values in counters:
            recorded = {key: value for key, value in values.items() if value}
            if recorded or not native:
                yield bare_counter_family(name, doc, recorded, labels)
        usage = sum(total(KV_USAGE, KV_USAGE).values())
        engines = len(total(RUNNING, RUNNING, ("model", *engine_labels(native.get(RUNNING)))))
        gauges = (
            ("tgi_queue_size", "Current queue size", sum(total(WAITING, WAITING).values())),
            ("tgi_batch_current_size", "Current batch size", sum(total(RUNNING, RUNNING).values())),
            (
                "tgi_batch_current_max_tokens",
                "Maximum tokens for the current batch",
                round(usage * self._num_blocks) * self._block_size,
            ),
            ("tgi_batch_max_total_tokens", "", self._num_blocks * self._block_size * max(engines, 1)),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)
        # (TGI name, native family, bounds, help, native labels grouped by, TGI's labels for them)
        histograms: list[tuple[str, str, tuple[float, ...], str, tuple[str, ...], tuple[str, ...]]] = [
            *((name, source, DURATIONS, doc, ("phase",), ("method",)) for name, source, doc in STEP_TIMES),
            *((name, source, DURATIONS, doc, (), ()) for name, source, doc in REQUEST_TIMES),
            *((name, source, bounds, doc, (), ()) for name, source, bounds, doc in self._tokens),
        ]
        for name, source, bounds, doc, by, tgi_labels in histograms:
            groups = {key: group for key, group in histogram_by(native.get(source), bounds, by).items() if group.count}
            if groups or not native:
                yield histogram_family(name, doc, tgi_labels, groups)
        admitted = sum_by(native.get(ADMISSIONS), ADMISSIONS + "_total", ("admitted",))
        if admitted or not native:
            groups = {(): batch_sizes(admitted)} if admitted else {}
            yield histogram_family(ADMITTED_AS, "Batch size of the next batch", (), groups)
