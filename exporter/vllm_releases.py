"""vLLM's retired metric names, release by release: what ``--metrics-dialect vllm@0.11`` shows.

vLLM retires a name in three steps (docs/design/metrics.md, "How To Deprecate"): deprecated in release X.Y
(a "DEPRECATED:" help string), hidden in X.Y+1 unless ``--show-hidden-metrics-for-version=X.Y`` asks for it,
removed in X.Y+2. The steps of each name below are the ones vLLM's own code comments give in
``vllm/v1/metrics/loggers.py``:

- 0.11 line: "Deprecated in 0.9.2 - Renamed as vllm:kv_cache_usage_perc / With 0.11.x you can enable with
  --show-hidden-metrics-for-version=0.10 / TODO: remove in 0.12.0" (the same for ``gpu_prefix_cache_queries``
  and ``gpu_prefix_cache_hits``), and "Deprecated in 0.11 - Renamed as vllm:inter_token_latency_seconds /
  TODO: in 0.12, only enable if show_hidden_metrics=True";
- 0.12 line: "Deprecated in 0.11 - Renamed as vllm:inter_token_latency_seconds / With 0.12.x you can enable
  with --show-hidden-metrics-for-version=0.11 / TODO: remove in 0.13.0";
- current (vllm-project/vllm @ a6f0308c): neither name.

The code search holds those two older copies of loggers.py without naming their commits (docs/METRICS.md,
"vLLM versions", quotes them). A pin selects the names of that release's default V1 engine, vLLM's default
since 0.8: the V0 engine's own names (``num_requests_swapped``, ``cpu_cache_usage_perc``, ...) are not
imitated, hence no pin before 0.10.
"""

from dataclasses import dataclass

Release = tuple[int, int]


@dataclass(frozen=True)
class RetiredName:
    """A name vLLM renamed: shown before ``hidden_in``, behind the escape hatch until ``removed_in``."""

    name: str
    successor: str
    help: str
    hidden_in: Release
    removed_in: Release


RETIRED = (
    RetiredName(
        "vllm:gpu_cache_usage_perc",
        "vllm:kv_cache_usage_perc",
        # vLLM's help strings, joined without a space as its source joins them.
        "GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
        hidden_in=(0, 11),
        removed_in=(0, 12),
    ),
    RetiredName(
        "vllm:gpu_prefix_cache_queries",
        "vllm:prefix_cache_queries",
        "GPU prefix cache queries, in terms of number of queriedtokens. DEPRECATED: Use vllm:prefix_cache_queries "
        "instead.",
        hidden_in=(0, 11),
        removed_in=(0, 12),
    ),
    RetiredName(
        "vllm:gpu_prefix_cache_hits",
        "vllm:prefix_cache_hits",
        "GPU prefix cache hits, in terms of number of cached tokens. DEPRECATED: Use vllm:prefix_cache_hits instead.",
        hidden_in=(0, 11),
        removed_in=(0, 12),
    ),
    RetiredName(
        "vllm:time_per_output_token_seconds",
        "vllm:inter_token_latency_seconds",
        "Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.",
        hidden_in=(0, 12),
        removed_in=(0, 13),
    ),
)
RETIRED_BY_NAME = {retired.name: retired for retired in RETIRED}
PINNED_RELEASES: tuple[Release, ...] = ((0, 10), (0, 11), (0, 12))
"""The releases a pin can name: those whose names differ from current vLLM's (``vllm``); from 0.13 on, the
names this table knows are current vLLM's."""
LEGACY_RELEASE: Release = (0, 10)
"""What ``--legacy-vllm-metrics`` stands for: the last release showing every retired name by default."""


def format_release(release: Release) -> str:
    return f"{release[0]}.{release[1]}"


def release_number(text: str) -> Release:
    """``0.11`` -> (0, 11)."""
    major, dot, minor = text.strip().partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        raise ValueError(f"not a version such as 0.11: {text!r}")
    return int(major), int(minor)


def parse_release(text: str) -> Release:
    """A pin's release; a ValueError naming the pins there are for anything else."""
    known = ", ".join(format_release(release) for release in PINNED_RELEASES)
    problem = ValueError(f"vllm@{text}: a vLLM pin is one of {known} (plain vllm is current vLLM)")
    try:
        release = release_number(text)
    except ValueError:
        raise problem from None
    if release not in PINNED_RELEASES:
        raise problem
    return release


def previous_minor(release: Release) -> Release:
    return release[0], release[1] - 1


def shown_retired(release: Release | None, show_hidden_for: Release | None = None) -> tuple[str, ...]:
    """The retired names a release exposes: the ones it has not hidden yet, and its hidden ones when
    ``--show-hidden-metrics-for-version`` names the previous minor release (vLLM's
    ``_prev_minor_version_was``). None is current vLLM, which has none left."""
    if release is None:
        return ()
    escape_hatch = show_hidden_for is not None and show_hidden_for == previous_minor(release)
    return tuple(
        retired.name
        for retired in RETIRED
        if release < retired.hidden_in or (escape_hatch and release < retired.removed_in)
    )
