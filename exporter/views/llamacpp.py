"""llama.cpp's metric names (``--metrics-dialect llamacpp``), as ``llama-server --metrics`` writes them,
derived from the native families at scrape time.

Names, types and help texts are llama.cpp's own, from ``server_routes::get_metrics`` in
``tools/server/server.cpp`` (ggml-org/llama.cpp; the excerpt is kept verbatim in tests/data/llamacpp/,
where SOURCES.md says which revision, and the tests read the expected names and types from it). The
exposition is hand-written there: eleven families, no labels, no histograms, every counter under its own
name (``llamacpp:n_tokens_max`` has no ``_total``), text format 0.0.4 whatever the scraper asks. A
llama-server serves one model, so a fakeai server speaks this dialect for one model (``fakeai.settings``
refuses more); several engines of it (``--data-parallel-size``) add up, as more slots would.

What each family counts, in fakeai's terms (llama.cpp keeps its times in milliseconds and writes
``(uint64_t) ms / 1.e3``: whole milliseconds, in seconds):
- ``prompt_tokens_total``: prompt tokens computed, those the prefix cache held excepted (llama.cpp
  processes only the part of a prompt its slot's cache lacks); ``prompt_seconds_total``: the requests'
  prefill times, summed.
- ``tokens_predicted_total``: tokens generated; ``tokens_predicted_seconds_total``: the requests'
  decode times (first token to last), summed.
- ``n_decode_total``: engine steps (one ``llama_decode()`` each); ``n_busy_slots_per_decode``: requests in
  a step's batch, on average; ``n_tokens_max``: the longest sequence (prompt and completion) of a
  finished request.
- ``prompt_tokens_seconds``, ``predicted_tokens_seconds``: tokens over those times since start (this
  revision resets its bucket only on request, never on a scrape).
- ``requests_processing``: requests in the running batch (busy slots); ``requests_deferred``: requests
  waiting for one.
"""

import math
from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.views.aggregate import DerivedView, bare_counter_family, sum_by

PREFIX = "llamacpp:"
RUNNING = "fakeai_requests_running"
WAITING = "fakeai_requests_waiting"
PROMPT_TOKENS = "fakeai_prompt_tokens"
CACHED_TOKENS = "fakeai_prompt_tokens_cached"
COMPLETION_TOKENS = "fakeai_completion_tokens"
PREFILL_TIME = "fakeai_request_prefill_time_seconds"
DECODE_TIME = "fakeai_request_decode_time_seconds"
STEPS = "fakeai_iteration_tokens"
STEP_REQUESTS = "fakeai_step_requests"
SEQUENCE_MAX = "fakeai_sequence_tokens_max"
NATIVE = frozenset(
    (
        RUNNING,
        WAITING,
        PROMPT_TOKENS,
        CACHED_TOKENS,
        COMPLETION_TOKENS,
        PREFILL_TIME,
        DECODE_TIME,
        STEPS,
        STEP_REQUESTS,
        SEQUENCE_MAX,
    )
)


def _total(native: Mapping[str, Metric], family: str, sample: str) -> float:
    return sum(sum_by(native.get(family), sample, ()).values())


def _whole_ms(seconds: float) -> float:
    return math.floor(seconds * 1000) / 1000


class LlamacppView(DerivedView):
    """A prometheus-client collector exposing the native families under llama-server's names."""

    native = NATIVE

    def _families(self, native: Mapping[str, Metric]) -> Iterator[Metric]:
        processed = _total(native, PROMPT_TOKENS, PROMPT_TOKENS + "_total") - _total(
            native, CACHED_TOKENS, CACHED_TOKENS + "_total"
        )
        prompt_seconds = _whole_ms(_total(native, PREFILL_TIME, PREFILL_TIME + "_sum"))
        predicted = _total(native, COMPLETION_TOKENS, COMPLETION_TOKENS + "_total")
        predicted_seconds = _whole_ms(_total(native, DECODE_TIME, DECODE_TIME + "_sum"))
        steps = _total(native, STEPS, STEPS + "_count")
        sequence_max = max(sum_by(native.get(SEQUENCE_MAX), SEQUENCE_MAX, ("model",)).values(), default=0.0)
        counters = (
            ("prompt_tokens_total", "Number of prompt tokens processed.", processed),
            ("prompt_seconds_total", "Prompt process time", prompt_seconds),
            ("tokens_predicted_total", "Number of generation tokens processed.", predicted),
            ("tokens_predicted_seconds_total", "Predict process time", predicted_seconds),
            ("n_decode_total", "Total number of llama_decode() calls", steps),
            ("n_tokens_max", "Largest observed n_tokens.", sequence_max),
            (
                "n_busy_slots_per_decode",
                "Average number of busy slots per llama_decode() call",
                _total(native, STEP_REQUESTS, STEP_REQUESTS + "_total") / max(steps, 1.0),
            ),
        )
        for name, doc, value in counters:
            yield bare_counter_family(PREFIX + name, doc, {(): value})
        gauges = (
            (
                "prompt_tokens_seconds",
                "Average prompt throughput in tokens/s.",
                processed / prompt_seconds if processed and prompt_seconds else 0.0,
            ),
            (
                "predicted_tokens_seconds",
                "Average generation throughput in tokens/s.",
                predicted / predicted_seconds if predicted and predicted_seconds else 0.0,
            ),
            ("requests_processing", "Number of requests processing.", _total(native, RUNNING, RUNNING)),
            ("requests_deferred", "Number of requests deferred.", _total(native, WAITING, WAITING)),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(PREFIX + name, doc, value=value)
