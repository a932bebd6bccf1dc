"""Histogram bucket bounds.

The ``VLLM_*`` sets are vLLM's exact upper bounds, from ``vllm/v1/metrics/buckets.py`` (commit
139b1c3f17720f4bb6865309f365e6b1f1607a45; the file is kept in tests/data/vllm/ and the tests read the
bounds from it). Each native ``fakeai_*``
histogram uses a superset of the matching vLLM set, so the derived vLLM view can select vLLM's bounds
exactly: a cumulative bucket count at a shared bound is the same number in both.
"""

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# fmt: off
VLLM_TTFT: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
    80.0, 160.0, 640.0, 2560.0,
)
VLLM_ITL: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
    80.0,
)
VLLM_REQUEST_PHASE: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
    960.0, 1920.0, 7680.0,
)
VLLM_PARAMS_N: tuple[float, ...] = (1, 2, 5, 10, 20)
VLLM_REQUEST_NUM_PREEMPTIONS: tuple[float, ...] = (1, 2, 3, 4, 5, 10, 20)
# vllm/entrypoints/serve/dev/sleep/metrics.py (BUCKETS): the sleep-mode operation durations.
VLLM_SLEEP_MODE_OPERATION: tuple[float, ...] = (0.01, 0.1, 1, 10, 30, 60, 120, 300, 600)
VLLM_KV_CACHE_RESIDENCY: tuple[float, ...] = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800,
)
VLLM_ITERATION_TOKENS: tuple[float, ...] = (
    1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
)
# SGLang's default bounds, from python/sglang/srt/metrics/collector.py (sgl-project/sglang, commit
# 00ae9c1590d2d0bb6c0bfff39e312c34ae3dd538; the excerpt is kept in tests/data/sglang/ and the tests read
# the bounds from it): TokenizerMetricsCollector's defaults and SchedulerMetricsCollector's queue time.
SGLANG_TTFT: tuple[float, ...] = (
    0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400,
)
SGLANG_ITL: tuple[float, ...] = (
    0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080, 0.100, 0.200,
    0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000,
)
SGLANG_E2E: tuple[float, ...] = (
    0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200, 1800, 2400,
)
SGLANG_QUEUE_TIME: tuple[float, ...] = (
    0.0, 0.1, 0.2, 0.5, 1, 2, 3, 4, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100, 200, 300, 400, 500, 600,
    700, 800, 900, 1000, 1200, 1400, 1600, 1800, 2000, 2500, 3000,
)
# TensorRT-LLM's default bounds, from tensorrt_llm/metrics/collector.py (NVIDIA/TensorRT-LLM, commit
# 050f80def8df236e326949c8bd9dee10fd896a83; ``MetricsCollector.__init__`` is kept verbatim in tests/data/trtllm/
# and the tests read the bounds from it). Its collector is "adapted from vllm/engine/metrics.py": e2e, queue,
# decode and inference take vLLM's request-latency bounds, TTFT and TPOT vLLM's; prefill has its own list.
TRTLLM_REQUEST_PHASE: tuple[float, ...] = VLLM_REQUEST_PHASE
TRTLLM_TTFT: tuple[float, ...] = VLLM_TTFT
TRTLLM_TPOT: tuple[float, ...] = VLLM_ITL
TRTLLM_PREFILL: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)
# TokenizerMetricsCollector's default_bucket_prompt_tokens (the same file and commit), for both token
# histograms of --collect-tokens-histogram.
SGLANG_TOKENS: tuple[float, ...] = (
    100, 300, 500, 700, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 12000, 15000, 20000,
    22000, 25000, 30000, 35000, 40000, 66000, 99000, 132000, 300000, 600000, 900000, 1100000,
)
# fmt: on


# Text Generation Inference's bounds, from router/src/server.rs (huggingface/text-generation-inference,
# commit 24ee40d143d8d046039f12f76940a85886cbe152, the last to change it; the excerpt is kept in
# tests/data/tgi/ and the tests compute the bounds from it). Computed as TGI computes them, in the same
# float arithmetic, so each bound is bit for bit TGI's.
def tgi_durations() -> tuple[float, ...]:
    """Every histogram whose name ends in ``duration``: 35 bounds, 0.0001 x 1.5^i (0.00015 ... 145.6 s)."""
    bounds, value = [], 0.0001
    for _ in range(35):
        value *= 1.5
        bounds.append(value)
    return tuple(bounds)


def tgi_tokens(limit: int) -> tuple[float, ...]:
    """The token-count histograms: 100 bounds, ``limit`` / 100 x (1 ... 100) (``limit`` is
    ``max_input_tokens`` for input lengths, ``max_total_tokens`` for generated and max-new tokens)."""
    return tuple((limit / 100.0) * (x + 1) for x in range(100))


TGI_BATCH_SIZE: tuple[float, ...] = tuple(float(x + 1) for x in range(1024))
"""``tgi_batch_next_size``: 1 ... 1024."""


# NVIDIA Dynamo's frontend bounds, from lib/llm/src/http/service/metrics.rs (ai-dynamo/dynamo, commit
# 0014908a25aecc8e9ce7455bbbaddf9f1521a1b4; the excerpt is kept in tests/data/dynamo/ and the tests read the
# defaults from it): ``generate_log_buckets(min, max, count)`` with each histogram's default
# ``DYN_METRICS_*_{MIN,MAX,COUNT}``, computed as Dynamo computes them.
def dynamo_log_buckets(minimum: float, maximum: float, count: int) -> tuple[float, ...]:
    """0, then ``count`` - 1 log-spaced values from above ``minimum`` up to ``maximum``, each rounded to two
    significant figures (half away from zero, as Rust's ``f64::round``), consecutive duplicates dropped."""
    values = [0.0]
    for i in range(1, count):
        rounded = round_to_two_figures(
            math.exp(math.log(minimum) + (math.log(maximum) - math.log(minimum)) * i / (count - 1))
        )
        if rounded != values[-1]:
            values.append(rounded)
    return tuple(values)


def round_to_two_figures(value: float) -> float:
    """Dynamo's ``round_to_sig_figs(value, 2)``, in the same float arithmetic."""
    if value == 0.0:
        return 0.0
    scale = 10.0 ** (2 - 1 - math.floor(math.log10(abs(value))))
    return math.floor(value * scale + 0.5) / scale


DYNAMO_REQUEST_DURATION = dynamo_log_buckets(1.0, 512.0, 10)
DYNAMO_INPUT_SEQUENCE = dynamo_log_buckets(50.0, 128000.0, 12)
"""Also ``dynamo_frontend_cached_tokens``'s bounds."""
DYNAMO_OUTPUT_SEQUENCE = dynamo_log_buckets(50.0, 32000.0, 10)
DYNAMO_TTFT = dynamo_log_buckets(0.001, 480.0, 18)
DYNAMO_ITL = dynamo_log_buckets(0.001, 2.0, 13)


# prometheus-fastapi-instrumentator's default latency buckets, which vLLM's API server exposes
# (``metrics.default``, src/prometheus_fastapi_instrumentator/metrics.py, v8.0.2 = c1c1fb6): ``lowr`` for
# http_request_duration_seconds, ``highr`` for http_request_duration_highr_seconds.
HTTP_DURATION: tuple[float, ...] = (0.1, 0.5, 1.0)
HTTP_DURATION_HIGHR: tuple[float, ...] = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    1.5,
    2,
    2.5,
    3,
    3.5,
    4,
    4.5,
    5,
    7.5,
    10,
    30,
    60,
)


def one_two_five(max_value: int) -> tuple[float, ...]:
    """vLLM's ``build_1_2_5_buckets``: 1, 2, 5, 10, 20, 50, ... up to and including ``max_value``."""
    bounds: list[float] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return tuple(bounds)
            bounds.append(value)
        exponent += 1


def merged(*sets: Iterable[float]) -> tuple[float, ...]:
    return tuple(sorted({float(b) for bucket_set in sets for b in bucket_set}))


# A fake server answers much faster than a GPU one, so the native sets add finer bounds below
# vLLM's first bound; above it they keep vLLM's bounds, so quantiles agree with vLLM dashboards.
FINER_TTFT = (0.0025, 0.0075, 0.015, 0.03, 0.15, 0.2, 0.3, 0.4)
FINER_ITL = (0.001, 0.0025, 0.005, 0.0075)
FINER_REQUEST_PHASE = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25)
TTFT: tuple[float, ...] = merged(VLLM_TTFT, FINER_TTFT)
ITL: tuple[float, ...] = merged(VLLM_ITL, FINER_ITL)
REQUEST_PHASE: tuple[float, ...] = merged(VLLM_REQUEST_PHASE, FINER_REQUEST_PHASE)
HTTP_REQUEST_DURATION: tuple[float, ...] = merged(HTTP_DURATION, HTTP_DURATION_HIGHR, REQUEST_PHASE)
PARAMS_N: tuple[float, ...] = VLLM_PARAMS_N
REQUEST_NUM_PREEMPTIONS: tuple[float, ...] = VLLM_REQUEST_NUM_PREEMPTIONS
ITERATION_TOKENS: tuple[float, ...] = VLLM_ITERATION_TOKENS


# -- vLLM's bucket families and --custom-histogram-buckets ---------------------------------------------

FAMILY_KEYS: tuple[str, ...] = (
    "request_latency",
    "time_to_first_token",
    "inter_token_latency",
    "iteration_tokens",
    "request_params_n",
    "request_num_preemptions",
    "request_tokens",
    "kv_cache_residency",
)
"""vLLM's ``BucketFamilyKey`` (vllm/v1/metrics/buckets.py): the keys ``--custom-histogram-buckets`` takes."""
_STATIC_DEFAULTS: dict[str, tuple[float, ...]] = {
    "request_latency": VLLM_REQUEST_PHASE,
    "time_to_first_token": VLLM_TTFT,
    "inter_token_latency": VLLM_ITL,
    "iteration_tokens": VLLM_ITERATION_TOKENS,
    "request_params_n": VLLM_PARAMS_N,
    "request_num_preemptions": VLLM_REQUEST_NUM_PREEMPTIONS,
    "kv_cache_residency": VLLM_KV_CACHE_RESIDENCY,
}


def check_custom_buckets(custom: Mapping[str, object]) -> dict[str, tuple[float, ...]]:
    """``--custom-histogram-buckets`` as vLLM validates it: known family keys only; for each, a non-empty
    list of finite numbers (not booleans) above 0, strictly increasing. Raises ValueError naming the
    key and the problem."""
    checked: dict[str, tuple[float, ...]] = {}
    for key, bounds in custom.items():
        if key not in FAMILY_KEYS:
            raise ValueError(f"unknown bucket family {key!r} (known: {', '.join(FAMILY_KEYS)})")
        if not isinstance(bounds, list | tuple) or not bounds:
            raise ValueError(f"{key}: a non-empty list of bucket bounds is required")
        for bound in bounds:
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise ValueError(f"{key}: {bound!r} is not a number")
            if not math.isfinite(bound) or bound <= 0:
                raise ValueError(f"{key}: bounds must be finite and above 0, got {bound!r}")
        if any(b <= a for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"{key}: bounds must be strictly increasing")
        checked[key] = tuple(float(b) for b in bounds)
    return checked


@dataclass(frozen=True)
class BucketFamilies:
    """The bounds of each of vLLM's bucket families on this server: vLLM's defaults, or what
    ``--custom-histogram-buckets`` replaced (a whole family at a time, as in vLLM). The ``vllm`` view
    exposes exactly these; the native families keep them too (with finer bounds between), so the view's
    cumulative counts stay exact."""

    max_model_len: int
    custom: Mapping[str, tuple[float, ...]]
    kept: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """More bounds a native family keeps, by its name: those another dialect served exposes for it (each
    dialect's view selects its own bounds, exactly, out of the native ones)."""

    def __getitem__(self, key: str) -> tuple[float, ...]:
        if key in self.custom:
            return self.custom[key]
        if key == "request_tokens":
            return one_two_five(self.max_model_len)
        return _STATIC_DEFAULTS[key]

    def native(self, key: str, finer: Sequence[float] = ()) -> tuple[float, ...]:
        """The native family's bounds: vLLM's (or the custom ones) and ``finer`` ones for the stream's
        quantiles; the view selects vLLM's out of them."""
        return merged(self[key], finer)
