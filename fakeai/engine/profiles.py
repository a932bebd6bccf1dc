"""Per-model latency profiles: what one simulated vLLM engine costs per token."""

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class LatencyProfile:
    overhead_ms: float = 5.0
    """API-server work before the request reaches the engine (tokenizing, validation)."""
    prefill_ms_per_token: float = 0.05
    """Cost of each uncached prompt token in the step that prefills it."""
    itl_ms: float = 15.0
    """Median engine step time, which is the inter-token latency of every running request."""
    itl_jitter: float = 0.1
    """Sigma of the lognormal step-time noise; 0 makes every step exactly ``itl_ms``."""
    batch_slowdown: float = 0.0
    """Fraction added to the step time per running request beyond the first."""
    lora_load_ms: float = 20.0
    """Loading a LoRA adapter that is not in host memory, added to the step that first runs it."""
    output_tokens: int = 96
    """Median natural answer length when neither max_tokens nor ignore_eos decides it."""
    params_billions: float = 8.0
    """Parameters of the model, for the MFU estimates (``--enable-mfu-metrics``)."""
    kv_bytes_per_token: int = 131072
    """KV-cache bytes one token takes (2 x layers x KV heads x head size x 2 bytes in bf16), for the MFU
    estimates: Llama-3.1-8B's 32 x 8 x 128 gives 128 KiB."""

    def with_overrides(self, overrides: dict[str, float]) -> "LatencyProfile":
        known = {f.name: f.type for f in fields(self)}
        unknown = set(overrides) - set(known)
        if unknown:
            raise ValueError(f"unknown profile field(s): {', '.join(sorted(unknown))}; known: {', '.join(known)}")
        if any(value < 0 for value in overrides.values()):
            raise ValueError("profile values must not be negative")
        whole = ("output_tokens", "kv_bytes_per_token")
        typed: dict[str, Any] = {k: int(v) if k in whole else float(v) for k, v in overrides.items()}
        return replace(self, **typed)


def parse_overrides(text: str) -> dict[str, float]:
    """``"itl_ms=20,overhead_ms=3"`` -> ``{"itl_ms": 20.0, "overhead_ms": 3.0}``."""
    overrides: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"expected key=value, got {part!r}")
        overrides[key.strip()] = float(value)
    return overrides


# Rough shapes of real deployments on one data-centre GPU; good enough to make dashboards move.
# Shapes from the models' published configs: Qwen2.5-7B has 28 layers and 4 KV heads of 128 (56 KiB a
# token), Llama-3.1-70B 80 layers and 8 KV heads of 128 (320 KiB).
PRESETS: dict[str, LatencyProfile] = {
    "meta-llama/Llama-3.1-8B-Instruct": LatencyProfile(
        overhead_ms=4, prefill_ms_per_token=0.04, itl_ms=12, params_billions=8.03, kv_bytes_per_token=131072
    ),
    "Qwen/Qwen2.5-7B-Instruct": LatencyProfile(
        overhead_ms=4, prefill_ms_per_token=0.035, itl_ms=11, params_billions=7.62, kv_bytes_per_token=57344
    ),
    "meta-llama/Llama-3.1-70B-Instruct": LatencyProfile(
        overhead_ms=8,
        prefill_ms_per_token=0.25,
        itl_ms=40,
        batch_slowdown=0.01,
        params_billions=70.6,
        kv_bytes_per_token=327680,
    ),
}
DEFAULT_MODELS: tuple[str, ...] = tuple(PRESETS)


def profile_for(model: str) -> LatencyProfile:
    return PRESETS.get(model, LatencyProfile())
