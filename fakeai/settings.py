"""Server settings: every one a command-line flag with an environment twin (flag > env > default)."""

import argparse
import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.buckets import check_custom_buckets
from exporter.vllm_releases import LEGACY_RELEASE, Release, format_release, parse_release, release_number
from fakeai.engine.faults import DEFAULT_MIX, parse_mix
from fakeai.engine.lora import MAX_LORA_RANKS, parse_lora_module
from fakeai.engine.profiles import DEFAULT_MODELS, LatencyProfile, parse_overrides, profile_for
from fakeai.engine.speculative import check_acceptance_rates, check_speculative_config

ENV_PREFIX = "FAKEAI_"
SCHEDULING_POLICIES = ("fcfs", "priority")
"""``SchedulerConfig.policy`` (vllm/config/scheduler.py @ 1f8758d584e8)."""
METRICS_DIALECTS = ("vllm", "sglang", "sglang_", "trtllm", "llamacpp", "tgi", "dynamo")
"""``sglang_``: SGLang's families as its router re-exports them, ``sglang_`` instead of ``sglang:``."""
ONE_MODEL_DIALECTS = ("trtllm", "llamacpp", "tgi")
"""Engines whose series carry no model of their own (``trtllm-serve`` labels every series
``model_name="undefined"``, llama-server and TGI label none): a server speaks each for one model at most."""
VLLM_PIN = "vllm@"
"""``vllm@0.11``: vLLM's names as that release exposed them (exporter/vllm_releases.py)."""
TEXT_ONLY_DIALECTS = ("llamacpp", "tgi", "dynamo")
"""Engines whose exposition is text format 0.0.4 whatever the scraper asks (hand-written, or Rust's)."""
DEFAULT_BATCHED_TOKENS = 8192
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
PROFILE_FIELDS = ("overhead_ms", "prefill_ms_per_token", "itl_ms", "itl_jitter", "batch_slowdown", "output_tokens")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    models: tuple[str, ...] = DEFAULT_MODELS
    seed: int = 0
    profile_overrides: Mapping[str, float] = field(default_factory=dict)
    """Applied to every model's profile."""
    model_profiles: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Per-model overrides, applied after ``profile_overrides``."""
    no_delay: bool = False
    max_num_seqs: int = 256
    max_waiting: int = 1024
    max_model_len: int = 8192
    enable_lora: bool = False
    """vLLM's --enable-lora: requests may name an adapter of a served model (``--lora-modules``)."""
    lora_modules: tuple[Mapping[str, str], ...] = ()
    """Adapters loaded at start: ``{"name", "path"[, "base_model_name"]}`` each."""
    max_loras: int = 1
    """Distinct adapters in one running batch (vLLM's default 1)."""
    max_cpu_loras: int | None = None
    """Adapters kept in host memory (None: max_loras); loading one that is not costs lora_load_ms."""
    max_lora_rank: int = 16
    scheduling_policy: str = "fcfs"
    """vLLM's --scheduling-policy: fcfs, or priority (the request's ``priority``, lower first)."""
    data_parallel_size: int = 1
    """vLLM's --data-parallel-size: engines per model (per worker), each with its own scheduler, KV pool
    and prefix cache; requests go to the least loaded."""
    max_num_batched_tokens: int | None = None
    """vLLM v1's per-step token budget (chunked prefill); None: 8192 or max_num_seqs if larger."""
    block_size: int = 16
    num_blocks: int = 4096
    error_rate: float = 0.0
    error_mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    api_keys: tuple[str, ...] = ()
    log_level: str = "info"
    vllm_metrics: bool = True
    metrics_dialect: tuple[str, ...] = ("vllm",)
    """The engines whose metric names /metrics exposes, each a view of the same native families."""
    model_dialects: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per-model dialects (``--model-profile MODEL:dialect=sglang``), in place of ``metrics_dialect``: one
    server can play a mixed fleet."""
    legacy_vllm_metrics: bool = False
    """An alias of the vllm@0.10 pin for every model that speaks plain ``vllm`` (the flag came first)."""
    profile_dir: str | None = None
    """Where ``/stop_profile`` writes the engine-step trace (vLLM's profiler directory); no profile
    endpoints without it, as vLLM has none without a profiler."""
    show_hidden_metrics_for_version: str | None = None
    """vLLM's escape hatch: a pinned release also shows the names it hides when this is its previous minor."""
    custom_histogram_buckets: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """vLLM's --custom-histogram-buckets: whole bucket families replaced, by vLLM's family keys."""
    startup_seconds: float = 0.0
    """How long the engines take to "load" after start: /health answers 503 and the vllm view shows no
    model until then, as a starting vLLM."""
    kv_cache_metrics: bool = False
    """vLLM's KV-cache residency histograms (block lifetime, idle time before eviction, reuse gaps)."""
    kv_cache_metrics_sample: float = 0.01
    """Share of KV blocks whose residency is tracked, as vLLM's --kv-cache-metrics-sample."""
    enable_mfu_metrics: bool = False
    collect_tokens_histogram: bool = False
    """SGLang's --collect-tokens-histogram: its per-request prompt and generation length histograms."""
    """vLLM's MFU estimates (vllm:estimated_*_per_gpu_total) move; without it they stay at 0, as in vLLM."""
    enable_per_request_metrics: bool = False
    """vLLM's per-request ``metrics`` object in responses (and the final usage chunk of a stream)."""
    speculative_config: Mapping[str, Any] | None = None
    """vLLM's --speculative-config JSON (``num_speculative_tokens``, ``method``, ...): speculative decoding."""
    spec_acceptance_rates: tuple[float, ...] = ()
    """fakeai's acceptance model: the probability that each draft position is accepted (non-increasing);
    empty for 0.75^(position+1)."""
    scenario: str | None = None
    """A scenario file to run from the start (``fakeai.scenario``)."""
    scenario_loop: bool = False
    """Start the scenario again when it ends."""
    admin_token: str | None = None
    """Bearer token of the /admin/* endpoints (runtime settings); None: they do not exist."""
    fault_headers: bool = True
    """Honour ``X-Fakeai-Fault`` and llm-d-inference-sim's ``X-Return-Error`` (``--no-fault-headers``: not)."""
    enable_sleep_mode: bool = False
    """vLLM's sleep mode endpoints: POST /sleep, POST /wake_up, GET /is_sleeping."""
    workers: int = 1
    """Worker processes; more than one runs prometheus-client's multiprocess mode (see multiproc_dir)."""
    multiproc_dir: str | None = None
    """Where workers keep their metric files; emptied at start. None: a fresh temporary folder."""
    socket_send_buffer: int = 256 * 1024
    """SO_SNDBUF of every connection (0: the kernel's autotuning, which lets loopback buffer megabytes)."""
    stream_prometheus_url: str | None = None
    """Stream a fleet from this Prometheus server instead of this process's registry."""
    stream_min_interval: float = 0.5
    stream_window: float = 10.0
    stream_history_seconds: float = 60.0
    stream_send_timeout: float = 10.0
    stream_max_message: int = 64 * 1024
    stream_max_clients: int = 2000
    stream_max_messages_per_second: int = 50
    stream_token: str | None = None
    stream_allowed_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if not self.models or len(set(self.models)) != len(self.models):
            problems.append("models must be a non-empty list of distinct ids")
        if unknown := set(self.model_profiles) - set(self.models):
            problems.append(f"profiles given for models not served: {', '.join(sorted(unknown))}")
        for name in ("max_num_seqs", "max_model_len", "block_size", "num_blocks", "data_parallel_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.max_num_batched_tokens is not None and self.max_num_batched_tokens < self.max_num_seqs:
            problems.append(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be greater than or equal to "
                f"max_num_seqs ({self.max_num_seqs})"
            )
        known = ", ".join(METRICS_DIALECTS) + f" (or {VLLM_PIN}X.Y)"
        if strangers := [name for name in self.metrics_dialect if not _known_dialect(name)]:
            problems.append(f"metrics_dialect {', '.join(strangers)} is not one of {known}")
        if not self.metrics_dialect:
            problems.append("metrics_dialect needs at least one of " + known)
        for model, dialects in self.model_dialects.items():
            if not dialects or not all(_known_dialect(name) for name in dialects):
                problems.append(f"{model}: dialect must be one or more of {known}, joined by +")
        for pin in {name for name in (*self.metrics_dialect, *_flat(self.model_dialects)) if _is_vllm(name)}:
            try:
                vllm_release(pin)
            except ValueError as exc:
                problems.append(str(exc))
        if clashes := [model for model in self.models if sum(map(_is_vllm, self.dialects_of(model))) > 1]:
            problems.append(f"{', '.join(clashes)}: one vLLM release per model (their names would clash)")
        if self.show_hidden_metrics_for_version is not None:
            try:
                release_number(self.show_hidden_metrics_for_version)
            except ValueError:
                problems.append(
                    f"show_hidden_metrics_for_version {self.show_hidden_metrics_for_version!r} is not a version such "
                    "as 0.11"
                )
        if unknown := set(self.model_dialects) - set(self.models):
            problems.append(f"dialects given for models not served: {', '.join(sorted(unknown))}")
        for dialect in ONE_MODEL_DIALECTS:
            if len(speakers := self.dialect_models(dialect)) > 1:
                problems.append(
                    f"dialect {dialect} labels no model, so it speaks for one model, not {len(speakers)} "
                    f"({', '.join(speakers)}): serve one (--models) or choose it "
                    f"(--model-profile MODEL:dialect={dialect})"
                )
        if self.scheduling_policy not in SCHEDULING_POLICIES:
            problems.append(f"scheduling_policy must be one of {', '.join(SCHEDULING_POLICIES)}")
        if self.scenario and self.workers > 1:
            problems.append("scenario needs workers 1 (one process runs the timeline)")
        if self.max_loras < 1:
            problems.append("max_loras must be at least 1")
        if self.max_cpu_loras is not None and self.max_cpu_loras < self.max_loras:
            problems.append(f"max_cpu_loras ({self.max_cpu_loras}) must be >= max_loras ({self.max_loras})")
        if self.max_lora_rank not in MAX_LORA_RANKS:
            problems.append(f"max_lora_rank must be one of {', '.join(map(str, MAX_LORA_RANKS))}")
        if self.lora_modules and not self.enable_lora:
            problems.append("lora_modules needs enable_lora")
        names = [module["name"] for module in self.lora_modules]
        if len(set(names)) != len(names) or set(names) & set(self.models):
            problems.append("lora_modules names must be distinct, and not names of served models")
        for module in self.lora_modules:
            base = module.get("base_model_name")
            if base is not None and base not in self.models:
                problems.append(f"lora module {module['name']}: base_model_name {base!r} is not served")
        if self.max_waiting < 0:
            problems.append("max_waiting must not be negative")
        if not 0.05 <= self.stream_min_interval <= 60:
            problems.append("stream_min_interval must be within 0.05 and 60 seconds")
        if not 1 <= self.stream_window <= 3600:
            problems.append("stream_window must be within 1 and 3600 seconds")
        if self.workers < 1:
            problems.append("workers must be at least 1")
        if not 0 < self.kv_cache_metrics_sample <= 1:
            problems.append("kv_cache_metrics_sample must be within (0, 1]")
        if self.startup_seconds < 0:
            problems.append("startup_seconds must not be negative")
        if self.socket_send_buffer < 0:
            problems.append("socket_send_buffer must not be negative")
        for name in (
            "stream_history_seconds",
            "stream_send_timeout",
            "stream_max_message",
            "stream_max_clients",
            "stream_max_messages_per_second",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.log_level not in LOG_LEVELS:
            problems.append(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        if not 0.0 <= self.error_rate <= 1.0:
            problems.append("error_rate must be within 0 and 1")
        if not 0 <= self.port <= 65535:
            problems.append("port must be within 0-65535")
        if problems:
            raise ValueError("; ".join(problems))
        for model in self.models:
            self.profile(model)  # raises on an unknown or negative profile field
        parse_mix(",".join(f"{k}={v}" for k, v in self.error_mix.items()))
        try:
            check_custom_buckets(self.custom_histogram_buckets)
        except ValueError as exc:
            raise ValueError(f"custom_histogram_buckets: {exc}") from None
        if self.speculative_config is not None:
            try:
                check_speculative_config(self.speculative_config)
            except ValueError as exc:
                raise ValueError(f"speculative_config: {exc}") from None
        try:
            self.acceptance_rates()
        except ValueError as exc:
            raise ValueError(f"spec_acceptance_rates: {exc}") from None

    @property
    def cpu_loras(self) -> int:
        return self.max_cpu_loras if self.max_cpu_loras is not None else self.max_loras

    @property
    def batched_tokens(self) -> int:
        """The step's token budget: vLLM's API-server default on a GPU of 70 GiB or more (8192,
        ``EngineArgs.get_batch_defaults`` in vllm/engine/arg_utils.py), which the latency profiles stand
        for; never below max_num_seqs, as vLLM requires."""
        given = self.max_num_batched_tokens
        return given if given is not None else max(DEFAULT_BATCHED_TOKENS, self.max_num_seqs)

    @property
    def speculative_tokens(self) -> int:
        """Draft tokens per decode step (0 without --speculative-config)."""
        config = self.speculative_config
        return 0 if config is None else int(config["num_speculative_tokens"])

    def acceptance_rates(self) -> tuple[float, ...]:
        """The acceptance model of the drafts (empty without speculative decoding)."""
        if not self.speculative_tokens:
            if self.spec_acceptance_rates:
                raise ValueError("given without --speculative-config")
            return ()
        return check_acceptance_rates(self.spec_acceptance_rates, self.speculative_tokens)

    def to_json(self) -> str:
        """For worker processes, which rebuild the same settings from the environment."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        data = json.loads(text)
        for name in (
            "models",
            "api_keys",
            "stream_allowed_origins",
            "spec_acceptance_rates",
            "lora_modules",
            "metrics_dialect",
        ):
            data[name] = tuple(data[name])
        data["custom_histogram_buckets"] = check_custom_buckets(data["custom_histogram_buckets"])
        data["model_dialects"] = {model: tuple(names) for model, names in data["model_dialects"].items()}
        return cls(**data)

    def dialects_of(self, model: str) -> tuple[str, ...]:
        """Whose metric names this model's series take (``--legacy-vllm-metrics`` pins plain ``vllm``)."""
        dialects = self.model_dialects.get(model, self.metrics_dialect)
        if self.legacy_vllm_metrics:
            return tuple(VLLM_PIN + format_release(LEGACY_RELEASE) if name == "vllm" else name for name in dialects)
        return dialects

    def vllm_dialects(self) -> tuple[str, ...]:
        """The vLLM dialects spoken (``vllm`` and its pins), each once, in the models' order."""
        spoken = (name for model in self.models for name in self.dialects_of(model) if _is_vllm(name))
        return tuple(dict.fromkeys(spoken))

    def shown_hidden_for(self) -> Release | None:
        """--show-hidden-metrics-for-version as a release number."""
        version = self.show_hidden_metrics_for_version
        return None if version is None else release_number(version)

    def dialect_models(self, dialect: str) -> tuple[str, ...]:
        """The served models whose series take this dialect's names."""
        return tuple(model for model in self.models if dialect in self.dialects_of(model))

    def profile(self, model: str) -> LatencyProfile:
        return (
            profile_for(model)
            .with_overrides(dict(self.profile_overrides))
            .with_overrides(dict(self.model_profiles.get(model, {})))
        )


# -- command line and environment ---------------------------------------------------------------------


def _is_vllm(dialect: str) -> bool:
    return dialect == "vllm" or dialect.startswith(VLLM_PIN)


def _known_dialect(dialect: str) -> bool:
    return dialect in METRICS_DIALECTS or dialect.startswith(VLLM_PIN)


def _flat(model_dialects: Mapping[str, tuple[str, ...]]) -> list[str]:
    return [name for names in model_dialects.values() for name in names]


def vllm_release(dialect: str) -> Release | None:
    """The release a vLLM dialect pins: None for plain ``vllm`` (current vLLM)."""
    return None if dialect == "vllm" else parse_release(dialect.removeprefix(VLLM_PIN))


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _bucket_families(text: str) -> dict[str, tuple[float, ...]]:
    """vLLM's JSON shape: ``{"request_latency": [0.01, 0.05, 0.1, 0.5], ...}``."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError('expected a JSON object such as {"request_latency": [0.01, 0.05, 0.1, 0.5]}')
    return check_custom_buckets(value)


def _speculative_config(text: str) -> dict[str, Any]:
    """vLLM's JSON shape: ``{"method": "ngram", "num_speculative_tokens": 3}``."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    return check_speculative_config(value)


def _rates(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in _csv(text))
    except ValueError:
        raise ValueError(f"expected comma-separated numbers such as 0.8,0.6,0.4, got {text!r}") from None


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _model_profiles(entries: Sequence[str]) -> tuple[dict[str, dict[str, float]], dict[str, tuple[str, ...]]]:
    """``MODEL:itl_ms=20,overhead_ms=3,dialect=sglang`` entries (repeatable flag; ``;``-separated in the env
    var): the latency overrides, and the dialects (``+``-joined) of each model that names any."""
    profiles: dict[str, dict[str, float]] = {}
    dialects: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        model, sep, spec = entry.rpartition(":")
        if not sep or not model:
            raise ValueError(f"expected MODEL:key=value,..., got {entry!r}")
        rest = []
        for item in spec.split(","):
            key, _, value = item.partition("=")
            if key.strip() == "dialect":
                dialects[model] = tuple(name.strip() for name in value.split("+") if name.strip())
            else:
                rest.append(item)
        if rest:
            profiles.setdefault(model, {}).update(parse_overrides(",".join(rest)))
    return profiles, dialects


@dataclass(frozen=True)
class Option:
    name: str
    help: str
    parse: Callable[[str], Any] = str
    flag_kind: str = "value"  # "value", "switch" (--x / --no-x), "append" or "extend" (several values)
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def negative_flag(self) -> str:
        """``--no-x`` for a switch ``x``; ``--delay`` for the switch ``no_delay``."""
        name = self.name.replace("_", "-")
        return "--" + name.removeprefix("no-") if name.startswith("no-") else "--no-" + name

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option("host", "address to bind (use 0.0.0.0 only inside a container)"),
    Option("port", "port to bind; 0 picks a free one (the banner prints it)", int),
    Option("models", "comma-separated model ids to serve", _csv, metavar="ID,ID"),
    Option("seed", "seed of every random draw (latency jitter, lengths, faults)", int),
    Option("overhead_ms", "API overhead before the engine, ms (all models)", float),
    Option("prefill_ms_per_token", "prefill cost per uncached prompt token, ms (all models)", float),
    Option("itl_ms", "median engine step time = inter-token latency, ms (all models)", float),
    Option("itl_jitter", "sigma of the lognormal step-time noise, 0 for none (all models)", float),
    Option("batch_slowdown", "step-time increase per extra running request, fraction (all models)", float),
    Option("output_tokens", "median natural answer length in tokens (all models)", int),
    Option(
        "model_profile",
        "per-model profile, MODEL:key=value,...: latency fields, and dialect=sglang (or vllm+sglang) for the "
        "model's metric names (repeatable; env: ';'-separated)",
        flag_kind="append",
        metavar="MODEL:K=V,...",
    ),
    Option("no_delay", "no simulated latency at all, for pure throughput", _bool, "switch"),
    Option("max_num_seqs", "requests running at once per model", int),
    Option("max_waiting", "requests waiting per model before 429", int),
    Option("enable_lora", "serve LoRA adapters of the served models (vLLM's --enable-lora)", _bool, "switch"),
    Option(
        "lora_modules",
        'adapters to load at start: name=path or \'{"name": ..., "path": ..., "base_model_name": ...}\' '
        "(several; env: ';'-separated)",
        parse_lora_module,
        "extend",
        metavar="MODULE",
    ),
    Option("max_loras", "distinct LoRA adapters in one running batch", int),
    Option("max_cpu_loras", "LoRA adapters kept in host memory (default: max_loras)", int),
    Option("max_lora_rank", "largest LoRA rank (one of vLLM's 1, 8, 16, ..., 512)", int),
    Option(
        "scheduling_policy",
        "fcfs, or priority: requests with a lower 'priority' field run first, and the lowest-priority "
        "running request is preempted first",
    ),
    Option(
        "data_parallel_size",
        "engines per model (per worker), each with its own queue, KV pool and prefix cache; requests go "
        "to the least loaded, or to the one the X-data-parallel-rank header names",
        int,
    ),
    Option(
        "max_num_batched_tokens",
        "tokens one engine step may process (decodes first, then prefill chunks); default 8192",
        int,
    ),
    Option("max_model_len", "context length per model, in tokens", int),
    Option("block_size", "tokens per KV/prefix-cache block", int),
    Option("num_blocks", "KV blocks per model (prefix cache and KV usage)", int),
    Option("error_rate", "share of requests that fail on purpose, 0-1", float),
    Option("error_mix", "weights of injected failures, e.g. 429=0.3,500=0.3,503=0.2,abort=0.2", parse_mix),
    Option("api_keys", "comma-separated accepted API keys; empty accepts any request", _csv, metavar="KEY,KEY"),
    Option("log_level", "uvicorn and fakeai log level"),
    Option("vllm_metrics", "expose vLLM's metric names on /metrics", _bool, "switch"),
    Option(
        "metrics_dialect",
        "engines whose metric names /metrics exposes: vllm, sglang, sglang_ (SGLang's names as its router "
        "re-exports them, with an underscore), trtllm (trtllm-serve's; one model), llamacpp (llama-server's; "
        "one model), tgi (Text Generation Inference's; one model), dynamo (NVIDIA Dynamo's frontend), vllm@0.10, "
        "vllm@0.11, vllm@0.12 (vLLM's names as that release exposed them) (comma-separated)",
        _csv,
        metavar="NAME,NAME",
    ),
    Option(
        "legacy_vllm_metrics",
        "alias of the vllm@0.10 pin: also expose the vLLM names later releases retired (gpu_cache_usage_perc, ...)",
        _bool,
        "switch",
    ),
    Option(
        "profile_dir",
        "serve POST /start_profile and /stop_profile, which write the engine steps between them here as a "
        "Chrome trace (a file per process)",
        metavar="DIR",
    ),
    Option(
        "show_hidden_metrics_for_version",
        "vLLM's escape hatch: a vllm@X.Y pin also shows the names it hides when this is X.(Y-1)",
        metavar="X.Y",
    ),
    Option(
        "custom_histogram_buckets",
        "vLLM's JSON map of bucket families to bounds, e.g. '{\"request_latency\": [0.01, 0.1, 1]}'",
        _bucket_families,
        metavar="JSON",
    ),
    Option(
        "startup_seconds",
        "seconds the engines take to load: /health answers 503 and requests get 503 until then",
        float,
    ),
    Option(
        "kv_cache_metrics",
        "vLLM's KV-cache residency histograms: sampled block lifetimes, idle times and reuse gaps",
        _bool,
        "switch",
    ),
    Option("kv_cache_metrics_sample", "share of KV blocks sampled for --kv-cache-metrics, (0, 1]", float),
    Option(
        "collect_tokens_histogram",
        "SGLang's per-request token-length histograms (sglang:prompt_tokens_histogram, "
        "sglang:generation_tokens_histogram), as its --collect-tokens-histogram",
        _bool,
        "switch",
    ),
    Option(
        "enable_mfu_metrics",
        "estimate FLOPs and memory bytes per GPU from the engine steps (vllm:estimated_*_per_gpu_total)",
        _bool,
        "switch",
    ),
    Option(
        "enable_per_request_metrics",
        "add vLLM's per-request 'metrics' object (TTFT, decode, queue, ITL, tok/s) to responses",
        _bool,
        "switch",
    ),
    Option(
        "speculative_config",
        'vLLM\'s speculative decoding JSON, e.g. \'{"method": "ngram", "num_speculative_tokens": 3}\'',
        _speculative_config,
        metavar="JSON",
    ),
    Option(
        "spec_acceptance_rates",
        "probability that each draft position is accepted, non-increasing (default 0.75^(position+1))",
        _rates,
        metavar="R,R,...",
    ),
    Option(
        "scenario", "a scenario file (YAML) to run from the start: phases that change settings or take the server down"
    ),
    Option("scenario_loop", "run the scenario again and again", _bool, "switch"),
    Option("admin_token", "Bearer token of /admin/config (runtime settings); without it /admin/* is 404"),
    Option(
        "fault_headers",
        "let a request force its fate with X-Fakeai-Fault (429, 500, 503, abort, abort;after=N, delay;ms=N) "
        "or llm-d-inference-sim's X-Return-Error: STATUS",
        _bool,
        "switch",
    ),
    Option(
        "enable_sleep_mode",
        "serve vLLM's POST /sleep?level=&mode=, POST /wake_up?tags= and GET /is_sleeping",
        _bool,
        "switch",
    ),
    Option("workers", "worker processes sharing the port; /metrics and the stream show all of them", int),
    Option("multiproc_dir", "folder for the workers' metric files, emptied at start (default: a temporary one)"),
    Option(
        "socket_send_buffer",
        "kernel send buffer per connection, bytes; bounds memory and lets a stuck "
        "stream subscriber be noticed (0: kernel autotuning)",
        int,
    ),
    Option("stream_prometheus_url", "stream the whole fleet from this Prometheus server's API instead"),
    Option("stream_min_interval", "/metrics/stream sampling tick and shortest update interval, s", float),
    Option("stream_window", "/metrics/stream default window for rates and quantiles, s", float),
    Option("stream_history_seconds", "seconds of 1 s history sent on connect", float),
    Option("stream_send_timeout", "close (1008) a subscriber that stays unreadable this long, s", float),
    Option("stream_max_message", "largest client frame accepted, bytes (larger: close 1009)", int),
    Option("stream_max_clients", "subscribers at once (more: close 1013)", int),
    Option("stream_max_messages_per_second", "client messages a second before close 1008", int),
    Option("stream_token", "token subscribers must give (Authorization: Bearer, or ?token=)"),
    Option(
        "stream_allowed_origins", "comma-separated Origin values allowed to subscribe", _csv, metavar="ORIGIN,ORIGIN"
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for option in OPTIONS:
        help_text = f"{option.help} [env {option.env}]"
        if option.flag_kind == "switch":
            # Not BooleanOptionalAction: it reads any flag starting with --no- as "false", --no-delay too.
            parser.add_argument(
                option.flag, dest=option.name, action="store_const", const=True, default=None, help=help_text
            )
            parser.add_argument(
                option.negative_flag,
                dest=option.name,
                action="store_const",
                const=False,
                help=f"turn {option.flag} off",
            )
        elif option.flag_kind == "extend":
            parser.add_argument(
                option.flag, dest=option.name, action="extend", nargs="+", metavar=option.metavar, help=help_text
            )
        elif option.flag_kind == "append":
            parser.add_argument(
                option.flag, dest=option.name, action="append", default=None, metavar=option.metavar, help=help_text
            )
        else:
            parser.add_argument(
                option.flag,
                dest=option.name,
                type=str,
                default=None,
                metavar=option.metavar or option.name.upper(),
                help=help_text,
            )


def settings_from(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Flags win over environment variables, which win over the defaults of ``Settings``."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for option in OPTIONS:
        given = getattr(args, option.name, None)
        try:
            if given is not None:
                if option.flag_kind == "extend":
                    raw[option.name] = tuple(option.parse(value) for value in given)
                else:
                    raw[option.name] = given if option.flag_kind in ("switch", "append") else option.parse(given)
            elif option.env in environ:
                text = environ[option.env]
                if option.flag_kind == "extend":
                    raw[option.name] = tuple(option.parse(value) for value in text.split(";") if value.strip())
                else:
                    raw[option.name] = text.split(";") if option.flag_kind == "append" else option.parse(text)
        except ValueError as exc:
            raise ValueError(f"{option.flag} / {option.env}: {exc}") from None
    profile = {name: float(raw.pop(name)) for name in PROFILE_FIELDS if name in raw}
    if profile:
        raw["profile_overrides"] = profile
    if "model_profile" in raw:
        raw["model_profiles"], raw["model_dialects"] = _model_profiles(
            [e for e in raw.pop("model_profile") if e.strip()]
        )
    return Settings(**raw)
