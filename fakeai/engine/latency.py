"""The latency model: seeded step times and prefill costs, in seconds."""

import random

from fakeai.engine.profiles import LatencyProfile


class LatencyModel:
    def __init__(self, profile: LatencyProfile, rng: random.Random, *, no_delay: bool = False) -> None:
        self.profile = profile
        self.no_delay = no_delay
        self._rng = rng

    @property
    def overhead(self) -> float:
        return 0.0 if self.no_delay else self.profile.overhead_ms / 1000.0

    def step_time(self, batch_size: int, prefill_tokens: int, adapter_loads: int = 0) -> float:
        """One engine step: a decode step for the batch plus the prefill of newly scheduled prompts,
        plus loading the LoRA adapters it needs that were not in host memory."""
        if self.no_delay:
            return 0.0
        p = self.profile
        decode = p.itl_ms * (1.0 + p.batch_slowdown * max(batch_size - 1, 0))
        if p.itl_jitter > 0:
            # Median stays at ``decode``: lognormal with mu=0 has median 1.
            decode *= self._rng.lognormvariate(0.0, p.itl_jitter)
        return (decode + p.prefill_ms_per_token * prefill_tokens + p.lora_load_ms * adapter_loads) / 1000.0

    def natural_length(self) -> int:
        """How long the model 'wants' to answer, before max_tokens cuts it."""
        median = max(self.profile.output_tokens, 1)
        return max(1, round(median * self._rng.lognormvariate(0.0, 0.5)))
