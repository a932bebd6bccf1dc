"""SGLang's metric names (``--metrics-dialect sglang``), derived from the native families at scrape time.

Names, types, label names and default bucket bounds are SGLang's own, from
``python/sglang/srt/metrics/collector.py`` (sgl-project/sglang, commit
00ae9c1590d2d0bb6c0bfff39e312c34ae3dd538; the excerpts kept in tests/data/sglang/ are what the tests read
them from). Labels are those SGLang gives its two collectors on a single-node server:
- the scheduler's (one per data-parallel rank): ``model_name``, ``engine_type="unified"`` (no
  prefill/decode disaggregation), ``tp_rank``, ``pp_rank``, ``moe_ep_rank`` (all "0": one GPU rank per
  engine; the collector reads ``labels["moe_ep_rank"]``), and ``dp_rank`` when a model has more than one
  engine;
- the tokenizer manager's (one per server, above the ranks): ``model_name`` only
  (python/sglang/srt/managers/tokenizer_manager.py @c60799d0eb1b537e3fa09e45fc5c91b5861de957).

What each family counts, in fakeai's terms:
- ``num_running_reqs``, ``num_queue_reqs``: the engine's running batch and waiting queue.
- ``token_usage``: the share of the KV pool in use; ``num_used_tokens``: those blocks' tokens (fakeai's
  pool is block-granular); ``max_total_num_tokens``: ``num_blocks`` x ``block_size``; ``page_size`` and
  ``num_pages``: the pool's geometry, gauges SGLang emits once at start from v0.5.11 on
  (python/sglang/srt/observability/metrics_collector.py @016d8605e45876180312e29d6988e1de06562472).
- ``num_retracted_requests_total``: preemptions (SGLang retracts a running request to free KV, as vLLM
  preempts one).
- ``num_requests_total``: requests that finished, whatever the reason; ``num_aborted_requests_total``:
  those that ended aborted or in an engine error (see ``ABORTED``).
- ``inter_token_latency_seconds``: one observation per output, as the native family keeps it; SGLang
  observes each token of a step at interval / tokens, which differs only under speculative decoding.
"""

from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import Metric

from exporter.buckets import SGLANG_E2E, SGLANG_ITL, SGLANG_QUEUE_TIME, SGLANG_TOKENS, SGLANG_TTFT
from exporter.views.aggregate import (
    DerivedView,
    FamilySource,
    GroupKey,
    counter_family,
    gauge_family,
    histogram_by,
    histogram_family,
    sum_by,
)

SCHEDULER_LABELS = ("model_name", "engine_type", "tp_rank", "pp_rank", "moe_ep_rank")
"""The scheduler collector's labels on a single-node, unified (not disaggregated) server."""
TOKENIZER_LABELS = ("model_name",)
DP_LABEL = "dp_rank"
PREFIX = "sglang:"
ROUTER_PREFIX = "sglang_"
"""SGLang's router (sgl-router, sglang PR #12970) re-exports the engines' families with the colon
turned into an underscore, and dashboards have followed one form or the other: dialect ``sglang_``."""
ENGINE_TYPE = "unified"
RANK = "0"


GAUGES = (
    ("sglang:num_running_reqs", "fakeai_requests_running", "The number of running requests."),
    ("sglang:num_queue_reqs", "fakeai_requests_waiting", "The number of requests in the waiting queue."),
    ("sglang:token_usage", "fakeai_kv_cache_usage_ratio", "The token usage."),
    ("sglang:gen_throughput", "fakeai_gen_throughput", "The generation throughput (token/s)."),
    ("sglang:cache_hit_rate", "fakeai_cache_hit_rate", "The prefix cache hit rate."),
)
SCHEDULER_COUNTERS = (("sglang:num_retracted_requests", "fakeai_preemptions", "Total number of retracted requests."),)
TOKENIZER_COUNTERS = (
    ("sglang:prompt_tokens", "fakeai_prompt_tokens", "Number of prefill tokens processed."),
    ("sglang:generation_tokens", "fakeai_completion_tokens", "Number of generation tokens processed."),
    ("sglang:cached_tokens", "fakeai_prompt_tokens_cached", "Number of cached prompt tokens."),
)
SCHEDULER_HISTOGRAMS = (
    (
        "sglang:queue_time_seconds",
        "fakeai_request_queue_time_seconds",
        SGLANG_QUEUE_TIME,
        "Histogram of queueing time in seconds.",
    ),
)
TOKENIZER_HISTOGRAMS = (
    (
        "sglang:time_to_first_token_seconds",
        "fakeai_time_to_first_token_seconds",
        SGLANG_TTFT,
        "Histogram of time to first token in seconds.",
    ),
    (
        "sglang:inter_token_latency_seconds",
        "fakeai_inter_token_latency_seconds",
        SGLANG_ITL,
        "Histogram of inter-token latency in seconds.",
    ),
    (
        "sglang:e2e_request_latency_seconds",
        "fakeai_request_duration_seconds",
        SGLANG_E2E,
        "Histogram of End-to-end request latency in seconds",
    ),
)
TOKENS_HISTOGRAMS = (
    (
        "sglang:prompt_tokens_histogram",
        "fakeai_request_prompt_tokens",
        SGLANG_TOKENS,
        "Histogram of prompt token length.",
    ),
    (
        "sglang:generation_tokens_histogram",
        "fakeai_request_completion_tokens",
        SGLANG_TOKENS,
        "Histogram of generation token length.",
    ),
)
"""The tokenizer's per-request length histograms, registered only with ``--collect-tokens-histogram``."""
KEPT_BUCKETS: Mapping[str, tuple[float, ...]] = {
    source: bounds for _, source, bounds, _ in SCHEDULER_HISTOGRAMS + TOKENIZER_HISTOGRAMS
}
TOKENS_KEPT_BUCKETS: Mapping[str, tuple[float, ...]] = {source: bounds for _, source, bounds, _ in TOKENS_HISTOGRAMS}
"""What the native families must keep for this view: SGLang's bounds, by native family (the native
families add them only when the dialect is on, so a server without it pays nothing for them)."""
FINISHED = "fakeai_finished_requests"
ABORTED = ("abort", "error")
"""SGLang finishes a request by stop, length or abort (``FINISH_ABORT``, also what an engine error ends
in): fakeai's client aborts and engine errors are both its aborted requests."""


def _as_sglang(labels: Mapping[str, str]) -> Mapping[str, str]:
    return {
        "model_name": labels["model"],
        "engine_type": ENGINE_TYPE,
        "tp_rank": RANK,
        "pp_rank": RANK,
        "moe_ep_rank": RANK,
        DP_LABEL: labels.get("engine", RANK),
        **labels,
    }


class SglangView(DerivedView):
    """A prometheus-client collector exposing the native families under SGLang's names."""

    def __init__(
        self,
        source: FamilySource,
        *,
        block_size: int,
        num_blocks: int,
        multi_engine: bool,
        prefix: str = PREFIX,
        tokens_histogram: bool = False,
    ) -> None:
        super().__init__(source)
        self._prefix = prefix
        """``sglang:`` as SGLang names them, or ``sglang_`` as SGLang's router re-exports them."""
        self._scheduler = (*SCHEDULER_LABELS, DP_LABEL) if multi_engine else SCHEDULER_LABELS
        self.set_pool(block_size=block_size, num_blocks=num_blocks)
        self._tokenizer_histograms = TOKENIZER_HISTOGRAMS + (TOKENS_HISTOGRAMS if tokens_histogram else ())
        tables = GAUGES + SCHEDULER_COUNTERS + TOKENIZER_COUNTERS + SCHEDULER_HISTOGRAMS + self._tokenizer_histograms
        self.native = frozenset([row[1] for row in tables] + [FINISHED])

    def set_pool(self, *, block_size: int, num_blocks: int) -> None:
        """The KV pool, also after a runtime change: ``max_total_num_tokens``, ``num_used_tokens``,
        ``page_size`` and ``num_pages`` follow it."""
        self._page_size, self._num_pages = block_size, num_blocks
        self._pool_tokens = num_blocks * block_size

    def _named(self, name: str) -> str:
        return self._prefix + name.removeprefix(PREFIX)

    def _families(self, native: Mapping[str, Metric]) -> Iterator[Metric]:
        named = self._named
        by = self._scheduler
        engines = sorted(sum_by(native.get("fakeai_requests_running"), "fakeai_requests_running", by, _as_sglang))
        for name, source, doc in GAUGES:
            yield gauge_family(named(name), doc, by, sum_by(native.get(source), source, by, _as_sglang))
        usage = sum_by(native.get("fakeai_kv_cache_usage_ratio"), "fakeai_kv_cache_usage_ratio", by, _as_sglang)
        yield gauge_family(
            named("sglang:num_used_tokens"),
            "The number of used tokens.",
            by,
            {key: round(ratio * self._pool_tokens) for key, ratio in usage.items()},
        )
        # The KV geometry SGLang (v0.5.11 on) emits once at start (``emit_constants``), and the llm-d
        # router reads: python/sglang/srt/observability/metrics_collector.py @016d8605e458.
        for name, doc, constant in (
            ("sglang:page_size", "KV cache page size in tokens.", self._page_size),
            ("sglang:num_pages", "Number of KV cache pages.", self._num_pages),
        ):
            yield gauge_family(named(name), doc, by, dict.fromkeys(engines, float(constant)))
        yield gauge_family(
            named("sglang:max_total_num_tokens"),
            "Maximum total number of tokens in the KV cache pool.",
            by,
            dict.fromkeys(engines, float(self._pool_tokens)),
        )
        models = sorted({key[:1] for key in engines})
        for labels, keys, counters in (
            (by, engines, SCHEDULER_COUNTERS),
            (TOKENIZER_LABELS, models, TOKENIZER_COUNTERS),
        ):
            for name, source, doc in counters:
                counts = sum_by(native.get(source), source + "_total", labels, _as_sglang)
                yield counter_family(named(name), doc, labels, dict.fromkeys(keys, 0.0) | counts)
        finished = native.get(FINISHED)
        requests = sum_by(finished, FINISHED + "_total", TOKENIZER_LABELS, _as_sglang)
        by_reason = sum_by(finished, FINISHED + "_total", (*TOKENIZER_LABELS, "finished_reason"), _as_sglang)
        aborted: dict[GroupKey, float] = {}
        for key, value in by_reason.items():
            if key[-1] in ABORTED:
                aborted[key[:-1]] = aborted.get(key[:-1], 0.0) + value
        for name, doc, values in (
            ("sglang:num_requests", "Number of requests processed.", requests),
            ("sglang:num_aborted_requests", "Number of requests aborted.", aborted),
        ):
            yield counter_family(named(name), doc, TOKENIZER_LABELS, dict.fromkeys(models, 0.0) | values)
        for labels, histograms in ((by, SCHEDULER_HISTOGRAMS), (TOKENIZER_LABELS, self._tokenizer_histograms)):
            for name, source, bounds, doc in histograms:
                groups = histogram_by(native.get(source), bounds, labels, _as_sglang)
                yield histogram_family(named(name), doc, labels, groups)
