"""The ``vllm`` view: vLLM's exact names, labels and bucket bounds, built from the native families."""

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)

from exporter import buckets
from exporter.buckets import BucketFamilies
from exporter.views.aggregate import (
    FamilySource,
    histogram_by,
    histogram_family,
    index_families,
    sum_by,
)
from exporter.vllm_releases import RETIRED_BY_NAME

ENGINE = "0"
"""The engine index of a model with one engine (the native families then have no ``engine`` label)."""
LABELS = ["model_name", "engine"]
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")
WAITING_REASONS = ("capacity", "deferred")
"""``vllm:num_requests_waiting_by_reason``: waiting for scheduling capacity, or deferred by a transient
constraint (LoRA budget, KV transfer, blocked status). In fakeai the LoRA budget (``--max-loras``) defers;
``capacity`` is every other waiting request."""
SCHEDULING_POLICIES = ("fcfs", "priority")
PRIORITY_FAMILIES = frozenset(
    {
        "vllm:e2e_request_latency_seconds",
        "vllm:request_queue_time_seconds",
        "vllm:request_prefill_time_seconds",
        "vllm:request_inference_time_seconds",
        "vllm:request_decode_time_seconds",
        "vllm:request_prompt_tokens",
        "vllm:request_generation_tokens",
        "vllm:request_prefill_kv_computed_tokens",
        "vllm:request_time_per_output_token_seconds",
        "vllm:request_params_max_tokens",
        "vllm:request_num_preemptions",
        "vllm:time_to_first_token_seconds",
    }
)
"""The histograms that carry ``priority`` under the priority policy, with ``vllm:request_success``: the
finished-request metrics vLLM's tests/v1/metrics/test_priority_labels.py @ 4a02593f lists."""
PROMPT_SOURCES = ("local_compute", "local_cache_hit", "external_kv_transfer")
"""``PromptTokenStats.ALL_SOURCES`` (vllm/v1/metrics/stats.py). fakeai has no KV connector: nothing comes
from an external transfer."""
CACHE_HIT_SOURCES = ("device", "host", "p2p", "disk", "external_unspecified")
"""``CacheHitSource`` (vllm/v1/metrics/cache_hit_source.py @ 8548f56c), the tiers the KV Cache dashboard
stacks. Older stored copies of vLLM's tests name ``cpu``/``mixed``/``external``; the dashboard queries these
five. fakeai's prefix cache lives in (simulated) GPU memory, so every cached token is a ``device`` hit."""
# Families vLLM registers whatever the deployment, which move only with a feature fakeai does not simulate
# (a KV connector's cross-instance cache): there for dashboards, at 0.
UNSIMULATED_COUNTERS = (
    (
        "vllm:external_prefix_cache_queries",
        "External prefix cache queries from KV connector cross-instance cache sharing, "
        "in terms of number of queried tokens.",
    ),
    (
        "vllm:external_prefix_cache_hits",
        "External prefix cache hits from KV connector cross-instance cache sharing, "
        "in terms of number of cached tokens.",
    ),
)
"""vLLM's ``FINISH_REASON_STRINGS`` (vllm/v1/engine/__init__.py); ``PrometheusStatLogger`` creates a
``vllm:request_success`` series for every one of them at start (vllm/v1/metrics/loggers.py)."""


@dataclass(frozen=True)
class ModelShape:
    """What the MFU estimates need of a model (``--enable-mfu-metrics``)."""

    params: float
    kv_bytes_per_token: int
    weight_bytes: int = 2  # bf16


# vLLM's PerfMetricsProm (vllm/v1/metrics/perf.py): registered whatever the flags, moving only with
# --enable-mfu-metrics.
MFU_COUNTERS = (
    (
        "vllm:estimated_flops_per_gpu",
        "Estimated number of floating point operations per GPU (for Model Flops Utilization calculations).",
    ),
    (
        "vllm:estimated_read_bytes_per_gpu",
        "Estimated number of bytes read from memory per GPU (for Model Flops Utilization calculations).",
    ),
    (
        "vllm:estimated_write_bytes_per_gpu",
        "Estimated number of bytes written to memory per GPU (for Model Flops Utilization calculations).",
    ),
)


def mfu_estimates(shape: ModelShape, tokens: float, steps: float) -> tuple[float, float, float]:
    """(FLOPs, bytes read, bytes written) of ``steps`` engine steps that processed ``tokens`` tokens on one
    GPU: 2 FLOPs per parameter per token (the matrix products; attention's own FLOPs are left out), the
    weights read once per step, and each token's KV entries written once."""
    return (
        2.0 * shape.params * tokens,
        float(shape.weight_bytes) * shape.params * steps,
        float(shape.kv_bytes_per_token) * tokens,
    )


@dataclass(frozen=True)
class CacheConfig:
    """What ``vllm:cache_config_info`` reports: every field of vLLM's ``CacheConfig`` (its
    ``metrics_info()`` is ``str(value)`` of each, in declaration order; vllm/config/cache.py, commit
    002f10e0cfa1), valued as a vLLM engine with this server's settings would be after start-up. Where a
    field depends on the GPU (the resolved KV layout), it stays unresolved (``None``)."""

    block_size: int
    num_gpu_blocks: int
    max_model_len: int = 8192
    gpu_memory_utilization: float = 0.92  # vLLM's default
    cache_dtype: str = "auto"

    def labels(self, engine: str = ENGINE) -> dict[str, str]:
        tokens = self.num_gpu_blocks * self.block_size
        fields: dict[str, object] = {
            "block_size": self.block_size,
            "user_specified_block_size": self.block_size != 16,  # vLLM's DEFAULT_BLOCK_SIZE
            "user_specified_mamba_block_size": False,
            "kv_cache_layout": None,
            "prefix_match_unit": None,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "cache_dtype": self.cache_dtype,
            "is_attention_free": False,
            "num_gpu_blocks_override": None,
            "sliding_window": None,
            "enable_prefix_caching": True,
            "prefix_caching_hash_algo": "sha256",
            "attn_group_size": None,
            "prefix_cache_retention_interval": 0,
            "kv_cache_dtype_skip_layers": [],
            "mamba_page_size_padded": None,
            "skip_page_size_padded": None,
            "mamba_block_size": None,
            "mamba_cache_dtype": "auto",
            "mamba_ssm_cache_dtype": "auto",
            "mamba_cache_mode": "none",
            "enable_mamba_fine_grained_prefix_cache": False,
            "replayssm_buffer_len": 16,
            "use_replayssm": False,
            "use_kda_recoverssm": False,
            "num_gpu_blocks": self.num_gpu_blocks,
            "num_cpu_blocks": 0,
            "effective_attention_block_size": self.block_size,
            "kv_cache_size_tokens": tokens,
            "kv_cache_max_concurrency": tokens / self.max_model_len,
            "kv_sharing_fast_prefill": False,
            "kv_cache_memory_bytes": None,
            "kv_offloading_size": None,
            "kv_offloading_backend": "native",
            "_block_size_resolved": True,
        }
        return {key: str(value) for key, value in fields.items()} | {"engine": engine}


# (vLLM name, native family, help). Counter names are given without ``_total``, as vLLM registers them.
GAUGES = (
    ("vllm:num_requests_running", "fakeai_requests_running", "Number of requests in model execution batches."),
    ("vllm:num_requests_waiting", "fakeai_requests_waiting", "Number of requests waiting to be processed."),
)
MODEL_GAUGES = (
    ("vllm:kv_cache_usage_perc", "fakeai_kv_cache_usage_ratio", "KV-cache usage. 1 means 100 percent usage."),
)
# (vLLM name, native family, the extra label both carry, help): vllm/v1/metrics/loggers.py.
LABELLED_GAUGES = (
    (
        "vllm:engine_sleep_state",
        "fakeai_engine_sleep_state",
        "sleep_state",
        "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
        "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
    ),
)
COUNTERS = (
    ("vllm:prompt_tokens", "fakeai_prompt_tokens", "Number of prefill tokens processed."),
    ("vllm:generation_tokens", "fakeai_completion_tokens", "Number of generation tokens processed."),
    (
        "vllm:prefix_cache_queries",
        "fakeai_prefix_cache_queries",
        "Prefix cache queries, in terms of number of queried tokens.",
    ),
    ("vllm:prefix_cache_hits", "fakeai_prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."),
)
MODEL_COUNTERS = (
    ("vllm:num_preemptions", "fakeai_preemptions", "Cumulative number of preemption from the engine."),
    (
        "vllm:mm_cache_queries",
        "fakeai_mm_cache_queries",
        "Multi-modal cache queries, in terms of number of queried items.",
    ),
    ("vllm:mm_cache_hits", "fakeai_mm_cache_hits", "Multi-modal cache hits, in terms of number of cached items."),
)

# vLLM's SpecDecodingProm (vllm/v1/spec_decode/metrics.py @ 016a8587): only with a speculative config.
SPEC_COUNTERS = (
    ("vllm:spec_decode_num_drafts", "fakeai_spec_decode_drafts", "Number of spec decoding drafts."),
    ("vllm:spec_decode_num_draft_tokens", "fakeai_spec_decode_draft_tokens", "Number of draft tokens."),
    ("vllm:spec_decode_num_accepted_tokens", "fakeai_spec_decode_accepted_tokens", "Number of accepted tokens."),
)
SPEC_PER_POSITION = "fakeai_spec_decode_accepted_tokens_per_pos"


def _histograms(families: BucketFamilies) -> tuple[tuple[str, str, tuple[float, ...], str], ...]:
    """(vLLM name, native family, bounds, help) of every histogram, each with its family's bounds."""
    tokens = families["request_tokens"]
    phase = families["request_latency"]
    itl = families["inter_token_latency"]
    return (
        (
            "vllm:time_to_first_token_seconds",
            "fakeai_time_to_first_token_seconds",
            families["time_to_first_token"],
            "Histogram of time to first token in seconds.",
        ),
        (
            "vllm:inter_token_latency_seconds",
            "fakeai_inter_token_latency_seconds",
            itl,
            "Histogram of inter-token latency in seconds.",
        ),
        (
            "vllm:request_time_per_output_token_seconds",
            "fakeai_request_time_per_output_token_seconds",
            itl,
            "Histogram of time_per_output_token_seconds per request.",
        ),
        (
            "vllm:e2e_request_latency_seconds",
            "fakeai_request_duration_seconds",
            phase,
            "Histogram of e2e request latency in seconds.",
        ),
        (
            "vllm:request_queue_time_seconds",
            "fakeai_request_queue_time_seconds",
            phase,
            "Histogram of time spent in WAITING phase for request.",
        ),
        (
            "vllm:request_prefill_time_seconds",
            "fakeai_request_prefill_time_seconds",
            phase,
            "Histogram of time spent in PREFILL phase for request.",
        ),
        (
            "vllm:request_decode_time_seconds",
            "fakeai_request_decode_time_seconds",
            phase,
            "Histogram of time spent in DECODE phase for request.",
        ),
        (
            "vllm:request_inference_time_seconds",
            "fakeai_request_inference_time_seconds",
            phase,
            "Histogram of time spent in RUNNING phase for request.",
        ),
        ("vllm:request_prompt_tokens", "fakeai_request_prompt_tokens", tokens, "Number of prefill tokens processed."),
        (
            "vllm:request_generation_tokens",
            "fakeai_request_completion_tokens",
            tokens,
            "Number of generation tokens processed.",
        ),
        (
            "vllm:request_max_num_generation_tokens",
            "fakeai_request_max_completion_tokens",
            tokens,
            "Histogram of maximum number of requested generation tokens.",
        ),
        (
            "vllm:request_params_max_tokens",
            "fakeai_request_params_max_tokens",
            tokens,
            "Histogram of the max_tokens request parameter.",
        ),
        (
            "vllm:request_params_n",
            "fakeai_request_params_n",
            families["request_params_n"],
            "Histogram of the n request parameter.",
        ),
        (
            "vllm:iteration_tokens_total",
            "fakeai_iteration_tokens",
            families["iteration_tokens"],
            "Histogram of number of tokens per engine_step.",
        ),
        (
            "vllm:request_prefill_kv_computed_tokens",
            "fakeai_request_prefill_computed_tokens",
            tokens,
            "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
        ),
        (
            "vllm:request_num_preemptions",
            "fakeai_request_preemptions",
            families["request_num_preemptions"],
            "Histogram of the number of preemptions of each finished request.",
        ),
    )


def _residency_histograms(families: BucketFamilies) -> tuple[tuple[str, str, tuple[float, ...], str], ...]:
    """vLLM's --kv-cache-metrics histograms (registered only with the flag)."""
    bounds = families["kv_cache_residency"]
    sampled = "Sampled metrics (controlled by --kv-cache-metrics-sample)."
    return (
        (
            "vllm:kv_block_lifetime_seconds",
            "fakeai_kv_block_lifetime_seconds",
            bounds,
            f"Histogram of KV cache block lifetime from allocation to eviction. {sampled}",
        ),
        (
            "vllm:kv_block_idle_before_evict_seconds",
            "fakeai_kv_block_idle_before_evict_seconds",
            bounds,
            f"Histogram of idle time before KV cache block eviction. {sampled}",
        ),
        (
            "vllm:kv_block_reuse_gap_seconds",
            "fakeai_kv_block_reuse_gap_seconds",
            bounds,
            "Histogram of time gaps between consecutive KV cache block accesses. Only the most recent accesses "
            f"are recorded (ring buffer). {sampled}",
        ),
    )


def _retired_histograms(families: BucketFamilies) -> tuple[tuple[str, str, tuple[float, ...], str], ...]:
    """The renamed histograms a pinned release still shows (``vllm_releases``): the same observations as
    their successors, at the same bounds."""
    tpot = RETIRED_BY_NAME["vllm:time_per_output_token_seconds"]
    return ((tpot.name, "fakeai_inter_token_latency_seconds", families["inter_token_latency"], tpot.help),)


def _retired(name: str, native: str) -> tuple[str, str, str]:
    return name, native, RETIRED_BY_NAME[name].help


RETIRED_MODEL_GAUGES = (_retired("vllm:gpu_cache_usage_perc", "fakeai_kv_cache_usage_ratio"),)
RETIRED_COUNTERS = (
    _retired("vllm:gpu_prefix_cache_queries", "fakeai_prefix_cache_queries"),
    _retired("vllm:gpu_prefix_cache_hits", "fakeai_prefix_cache_hits"),
)


def _loaded_only(native: dict[str, Metric]) -> dict[str, Metric]:
    """The native families without the series of models still loading (``--startup-seconds``): a
    starting vLLM exposes none of its engine's metrics, so dashboards read it as down."""
    loaded = native.get("fakeai_engine_loaded")
    loading = {s.labels["model"] for s in loaded.samples if s.value == 0} if loaded is not None else set()
    if not loading:
        return native
    kept = {}
    for name, family in native.items():
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        copy.samples = [sample for sample in family.samples if sample.labels.get("model") not in loading]
        kept[name] = copy
    return kept


def _sleep_mode_families(native: Mapping[str, Metric]) -> Iterator[Metric]:
    """vLLM's ``SleepModeOperationMetrics`` (vllm/entrypoints/serve/dev/sleep/metrics.py): by operation
    only, no model or engine label; an operation's series appear once it has run."""
    by = ("operation",)
    duration = native.get("fakeai_sleep_mode_operation_duration_seconds")
    groups = histogram_by(duration, buckets.VLLM_SLEEP_MODE_OPERATION, by)
    yield histogram_family(
        "vllm:sleep_mode_operation_duration_seconds", "Duration of one sleep-mode operation.", by, groups
    )
    in_flight = GaugeMetricFamily(
        "vllm:sleep_mode_operations_in_flight", "Sleep-mode operations currently awaited.", labels=list(by)
    )
    source = "fakeai_sleep_mode_operations_in_flight"
    for key, value in sorted(sum_by(native.get(source), source, by).items()):
        in_flight.add_metric(list(key), value)
    yield in_flight


def _counter_sums(native: Mapping[str, Metric], source: str) -> dict[tuple[str, ...], float]:
    return sum_by(native.get(source), source + "_total", LABELS, _as_vllm)


def _scheduler_policy_info(active: str) -> Metric:
    """``vllm:scheduler_policy_info``: one series per policy, the active one 1 (docs/usage/metrics.md,
    "Priority Scheduling Metrics"; always exposed). Its help text is not in any copy of vLLM's sources
    read for this; this one says what it is."""
    family = GaugeMetricFamily(
        "vllm:scheduler_policy_info", "The active scheduler policy (1) among the known ones (0).", labels=["policy"]
    )
    for policy in SCHEDULING_POLICIES:
        family.add_metric([policy], 1.0 if policy == active else 0.0)
    return family


def _lora_requests_info(native: Metric | None) -> Metric:
    """``vllm:lora_requests_info`` (loggers.py @ b3c1ea511d75): no model or engine label; its value is the
    time the label set was last reported. Only with --enable-lora."""
    labels = ["max_lora", "waiting_lora_adapters", "running_lora_adapters"]
    family = GaugeMetricFamily("vllm:lora_requests_info", "Running stats on lora requests.", labels=labels)
    # With --workers the values of one label set add up across workers, as vLLM's multiprocess_mode="sum".
    for key, value in sorted(sum_by(native, "fakeai_lora_requests_info", labels).items()):
        family.add_metric(list(key), value)
    return family


def _accepted_per_position(native: Mapping[str, Metric]) -> Metric:
    """``vllm:spec_decode_num_accepted_tokens_per_pos``: every draft position of every engine, in order."""
    labels = [*LABELS, "position"]
    family = CounterMetricFamily(
        "vllm:spec_decode_num_accepted_tokens_per_pos", "Accepted tokens per draft position.", labels=labels
    )
    counts = sum_by(native.get(SPEC_PER_POSITION), SPEC_PER_POSITION + "_total", labels, _as_vllm)
    for key, value in sorted(counts.items(), key=lambda item: (item[0][:2], int(item[0][2]))):
        family.add_metric(list(key), value)
    return family


def _as_vllm(labels: Mapping[str, str]) -> Mapping[str, str]:
    return {"model_name": labels["model"], "engine": labels.get("engine", ENGINE), **labels}


class VllmView:
    """A prometheus-client collector exposing the native families under vLLM's names."""

    def __init__(
        self,
        source: FamilySource,
        *,
        bucket_families: BucketFamilies,
        cache_config: CacheConfig,
        retired: Mapping[str, Collection[str] | None] | None = None,
        mfu: Mapping[str, ModelShape] | None = None,
        kv_cache_metrics: bool = False,
        speculative: bool = False,
        lora: bool = False,
        scheduling_policy: str = "fcfs",
    ) -> None:
        self._source = source
        self._retired = dict(retired or {})
        """Names later vLLM releases retired, each with the models whose pinned release shows it (None: all
        the view's models): exporter/vllm_releases.py."""
        self._scheduling_policy = scheduling_policy
        self._priority = scheduling_policy == "priority"
        self._lora = lora
        self._speculative = speculative
        self._cache_config = cache_config
        self._mfu = mfu or {}
        """Model shapes by served model, when --enable-mfu-metrics is on."""
        families = bucket_families
        self._histograms = (
            _histograms(families)
            + (_residency_histograms(families) if kv_cache_metrics else ())
            + tuple(row for row in _retired_histograms(families) if row[0] in self._retired)
        )
        self._counters = COUNTERS + tuple(row for row in RETIRED_COUNTERS if row[0] in self._retired)
        self._model_gauges = MODEL_GAUGES + tuple(row for row in RETIRED_MODEL_GAUGES if row[0] in self._retired)
        self._model_counters = MODEL_COUNTERS + (SPEC_COUNTERS if speculative else ())
        tables = (GAUGES, self._model_gauges, LABELLED_GAUGES, self._counters, self._model_counters, self._histograms)
        self._native = frozenset(row[1] for table in tables for row in table) | {
            *((SPEC_PER_POSITION,) if speculative else ()),
            *(("fakeai_lora_requests_info",) if lora else ()),
            "fakeai_requests_deferred",
            "fakeai_finished_requests",
            "fakeai_requests_running",
            "fakeai_prompt_tokens_cached",
            "fakeai_prompt_tokens_recomputed",
            "fakeai_engine_loaded",
            "fakeai_sleep_mode_operation_duration_seconds",
            "fakeai_sleep_mode_operations_in_flight",
        }

    def _shown(self, name: str, key: tuple[str, ...]) -> bool:
        """Whether the series of ``key`` (model_name first) appear under ``name``: a retired name only for
        the models whose release still shows it."""
        models = self._retired.get(name)
        return models is None or key[0] in models

    def set_cache_config(self, cache_config: CacheConfig) -> None:
        """The cache config after a runtime change: ``vllm:cache_config_info`` reports it from then on."""
        self._cache_config = cache_config

    def describe(self) -> Iterator[Metric]:
        """Names only, so registration can detect clashes without reading the native families, and so
        ``/metrics?name[]=`` (a restricted registry collects only collectors that described the name) finds
        every family, the cache config too, which ``_families`` yields only once an engine has loaded."""
        yield from self._families({})
        yield self._cache_config_family([])

    def collect(self) -> Iterator[Metric]:
        yield from self._families(_loaded_only(index_families(self._source(self._native))))

    def _families(self, native: Mapping[str, Metric]) -> Iterator[Metric]:
        # (model_name, engine) of every served model: the series vLLM creates at start, whatever happens.
        engines = sorted(sum_by(native.get("fakeai_requests_running"), "fakeai_requests_running", LABELS, _as_vllm))
        waiting = sum_by(native.get("fakeai_requests_waiting"), "fakeai_requests_waiting", LABELS, _as_vllm)
        deferred = sum_by(native.get("fakeai_requests_deferred"), "fakeai_requests_deferred", LABELS, _as_vllm)
        by_reason = GaugeMetricFamily(
            "vllm:num_requests_waiting_by_reason",
            "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; "
            "'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). "
            "Sum of all reasons equals vllm:num_requests_waiting.",
            labels=[*LABELS, "reason"],
        )
        for key in engines:
            skipped = deferred.get(key, 0.0)
            by_reason.add_metric([*key, "capacity"], waiting.get(key, 0.0) - skipped)
            by_reason.add_metric([*key, "deferred"], skipped)
        yield by_reason
        if self._lora:
            yield _lora_requests_info(native.get("fakeai_lora_requests_info"))
        for name, source, doc in GAUGES + self._model_gauges:
            gauge = GaugeMetricFamily(name, doc, labels=LABELS)
            for key, value in sorted(sum_by(native.get(source), source, LABELS, _as_vllm).items()):
                if self._shown(name, key):
                    gauge.add_metric(list(key), value)
            yield gauge
        for name, source, label, doc in LABELLED_GAUGES:
            gauge = GaugeMetricFamily(name, doc, labels=[*LABELS, label])
            for key, value in sorted(sum_by(native.get(source), source, [*LABELS, label], _as_vllm).items()):
                gauge.add_metric(list(key), value)
            yield gauge
        for name, source, doc in self._counters + self._model_counters:
            counter = CounterMetricFamily(name, doc, labels=LABELS)
            for key, value in sorted(sum_by(native.get(source), source + "_total", LABELS, _as_vllm).items()):
                if self._shown(name, key):
                    counter.add_metric(list(key), value)
            yield counter
        if self._speculative:
            yield _accepted_per_position(native)
        priority = ("priority",) if self._priority else ()
        by = (*LABELS, "finished_reason", *priority)
        success = CounterMetricFamily(
            "vllm:request_success", "Count of successfully processed requests.", labels=list(by)
        )
        counts = sum_by(native.get("fakeai_finished_requests"), "fakeai_finished_requests_total", by, _as_vllm)
        # Every reason of every served model from the start, as vLLM: a dashboard's ratio of two of them
        # has data before the first error (under the priority policy, for the default priority 0).
        for engine_key in engines:
            for reason in FINISH_REASONS:
                counts.setdefault((*engine_key, reason, *(("0",) if priority else ())), 0.0)
        for key, value in sorted(counts.items()):
            success.add_metric(list(key), value)
        yield success
        yield _scheduler_policy_info(self._scheduling_policy)
        yield from _sleep_mode_families(native)
        yield from self._prompt_token_families(native, engines)
        yield from self._mfu_families(native, engines)
        for name, doc in UNSIMULATED_COUNTERS:
            counter = CounterMetricFamily(name, doc, labels=LABELS)
            for key in engines:
                counter.add_metric(list(key), 0.0)
            yield counter
        for name, source, bounds, doc in self._histograms:
            labels = [*LABELS, "priority"] if self._priority and name in PRIORITY_FAMILIES else LABELS
            groups = histogram_by(native.get(source), bounds, labels, _as_vllm)
            if name in self._retired:
                groups = {key: group for key, group in groups.items() if self._shown(name, key)}
            yield histogram_family(name, doc, labels, groups)
        if not engines:
            return  # every engine is still loading: a starting vLLM has logged no cache config yet
        yield self._cache_config_family(engines)

    def _cache_config_family(self, engines: list[tuple[str, ...]]) -> GaugeMetricFamily:
        info = GaugeMetricFamily(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            labels=list(self._cache_config.labels()),
        )
        # One per engine, as vLLM's log_metrics_info sets it for every engine index it serves.
        for engine in sorted({key[1] for key in engines}, key=int):
            info.add_metric(list(self._cache_config.labels(engine).values()), 1.0)
        return info

    def _prompt_token_families(self, native: Mapping[str, Metric], engines: list[tuple[str, ...]]) -> Iterator[Metric]:
        """Prompt tokens by source, as vLLM's newest ``PromptTokenStats`` (prefill stats): computed =
        prompt - cached, local_cache_hit = cached, no external transfer; so the sources add up to
        ``vllm:prompt_tokens``. The last token of a fully cached prompt is computed, and also counted in
        ``vllm:prompt_tokens_recomputed`` (as vLLM's earlier ``PromptTokenStats`` counted it)."""
        prompt = _counter_sums(native, "fakeai_prompt_tokens")
        cached = _counter_sums(native, "fakeai_prompt_tokens_cached")
        recomputed = _counter_sums(native, "fakeai_prompt_tokens_recomputed")
        by_source = CounterMetricFamily(
            "vllm:prompt_tokens_by_source", "Number of prompt tokens by source.", labels=[*LABELS, "source"]
        )
        for key in engines:
            p, c = prompt.get(key, 0.0), cached.get(key, 0.0)
            for source, value in zip(PROMPT_SOURCES, (p - c, c, 0.0), strict=True):
                by_source.add_metric([*key, source], value)
        yield by_source
        by_tier = CounterMetricFamily(
            "vllm:prompt_tokens_cached_by_source",
            "Number of cached prompt tokens by the cache tier that held their KV.",
            labels=[*LABELS, "source"],
        )
        for key in engines:
            for source in CACHE_HIT_SOURCES:
                by_tier.add_metric([*key, source], cached.get(key, 0.0) if source == "device" else 0.0)
        yield by_tier
        for name, doc, values in (
            ("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).", cached),
            ("vllm:prompt_tokens_recomputed", "Number of cached tokens recomputed for forward pass.", recomputed),
        ):
            counter = CounterMetricFamily(name, doc, labels=LABELS)
            for key in engines:
                counter.add_metric(list(key), values.get(key, 0.0))
            yield counter

    def _mfu_families(self, native: Mapping[str, Metric], engines: list[tuple[str, ...]]) -> Iterator[Metric]:
        """Estimated from the engine steps the iteration-tokens histogram counted (its count is the steps,
        its sum the tokens), for models with a shape; 0 otherwise, as vLLM without the flag."""
        steps = sum_by(native.get("fakeai_iteration_tokens"), "fakeai_iteration_tokens_count", LABELS, _as_vllm)
        tokens = sum_by(native.get("fakeai_iteration_tokens"), "fakeai_iteration_tokens_sum", LABELS, _as_vllm)
        families = [CounterMetricFamily(name, doc, labels=LABELS) for name, doc in MFU_COUNTERS]
        for key in engines:
            shape = self._mfu.get(key[0])
            estimates = mfu_estimates(shape, tokens.get(key, 0.0), steps.get(key, 0.0)) if shape else (0.0,) * 3
            for family, value in zip(families, estimates, strict=True):
                family.add_metric(list(key), value)
        yield from families
