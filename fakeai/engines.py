"""Build every served model's engine from the settings: the composition root's half of the engine.

The engine package takes plain values; only this module reads ``Settings``.
"""

import asyncio
import random
from pathlib import Path
from typing import Any

import numpy as np

from exporter.metrics import ServerMetrics
from fakeai.engine.faults import FaultInjector
from fakeai.engine.latency import LatencyModel
from fakeai.engine.lora import Adapter
from fakeai.engine.prefix_cache import PrefixCache
from fakeai.engine.profiler import StepTrace, write_trace
from fakeai.engine.residency import BlockResidency
from fakeai.engine.scheduler import ModelEngine
from fakeai.engine.speculative import Speculation
from fakeai.settings import Settings


def residency(settings: Settings, metrics: ServerMetrics, model: str, engine: int) -> BlockResidency | None:
    """The sampled KV-block residency of one engine's cache, with --kv-cache-metrics."""
    if not settings.kv_cache_metrics:
        return None
    # Its own stream of draws, from the seed and the model: sampling blocks leaves every other random
    # choice of the simulation as it is without the flag.
    suffix = f":{engine}" if engine else ""
    sampler = random.Random(f"{settings.seed}:{model}:kv-cache-metrics{suffix}")
    return BlockResidency(settings.kv_cache_metrics_sample, sampler, metrics.model(model, engine).kv_block_evicted)


def speculation(settings: Settings, model: str, engine: int) -> Speculation | None:
    """One engine's speculative decoding, with --speculative-config."""
    if not settings.speculative_tokens:
        return None
    # Its own stream of draws, as the residency sampler: turning drafts on changes no other draw.
    suffix = f":{engine}" if engine else ""
    rng = random.Random(f"{settings.seed}:{model}:speculative{suffix}")
    return Speculation(settings.speculative_tokens, settings.acceptance_rates(), rng)


class DataParallelGroup:
    """One model's engines (``--data-parallel-size``), and vLLM's choice among them for a request: the
    engine with the lowest ``4 x waiting + running``, the first such in index order
    (``DPLBAsyncMPClient.get_core_engine_for_request``, vllm/v1/engine/core_client.py), unless the
    request names one (vLLM's ``X-data-parallel-rank`` header)."""

    def __init__(self, engines: list[ModelEngine]) -> None:
        self.engines = engines
        self._by_index = {engine.index: engine for engine in engines}

    def pick(self, rank: int | None = None) -> ModelEngine | None:
        """The engine for a request; None when ``rank`` names no engine of this process."""
        if rank is not None:
            return self._by_index.get(rank)
        engines = self.engines
        if len(engines) == 1:
            return engines[0]
        return min(engines, key=lambda engine: 4 * len(engine.waiting) + len(engine.running))


class Engines:
    """All models' engines, seeded from one ``--seed`` so a run is reproducible."""

    def __init__(self, settings: Settings, metrics: ServerMetrics) -> None:
        # Independent, reproducible streams per model (SeedSequence), drawn with the standard library's
        # generator: the draws are scalars on the hot path, where numpy's per-call overhead dominates.
        seeds = [
            random.Random(int(s.generate_state(1)[0]))
            for s in np.random.SeedSequence(settings.seed).spawn(len(settings.models) + 1)
        ]
        self.by_model: dict[str, DataParallelGroup] = {}
        for model, rng in zip(settings.models, seeds, strict=False):
            engines = []
            for index in metrics.engines:
                # The first engine draws from the model's stream (one engine behaves as before); the
                # others from streams of their own.
                engine_rng = rng if index == metrics.engines[0] else random.Random(f"{settings.seed}:{model}:{index}")
                engine = ModelEngine(
                    model,
                    index=index,
                    latency=LatencyModel(settings.profile(model), engine_rng, no_delay=settings.no_delay),
                    cache=PrefixCache(
                        settings.block_size, settings.num_blocks, residency(settings, metrics, model, index)
                    ),
                    metrics=metrics.model(model, index),
                    rng=engine_rng,
                    max_num_seqs=settings.max_num_seqs,
                    max_waiting=settings.max_waiting,
                    max_model_len=settings.max_model_len,
                    max_num_batched_tokens=settings.batched_tokens,
                    speculation=speculation(settings, model, index),
                    max_loras=settings.max_loras if settings.enable_lora else None,
                    cpu_loras=settings.cpu_loras,
                    priority=settings.scheduling_policy == "priority",
                    slots=model in settings.dialect_models("llamacpp"),
                )
                engines.append(engine)
            self.by_model[model] = DataParallelGroup(engines)
        self.adapters: dict[str, Adapter] = {}
        """LoRA adapters by name (``--lora-modules``, ``/v1/load_lora_adapter``)."""
        self.first_model = settings.models[0]
        for module in settings.lora_modules:
            self.load_adapter(module["name"], module["path"], module.get("base_model_name"))
        self.faults = FaultInjector(settings.error_rate, dict(settings.error_mix), seeds[-1])
        self.startup_seconds = settings.startup_seconds
        self.model_metrics = [metrics.model(model, index) for model in settings.models for index in metrics.engines]
        self.loading = False
        """Still "loading the model" (``--startup-seconds``): nothing is served yet."""
        self.trace = StepTrace()
        """The engine steps between /start_profile and /stop_profile (``--profile-dir``)."""
        for engine in self.all():
            engine.trace = self.trace
        self.profile_dir = Path(settings.profile_dir) if settings.profile_dir else None
        self.traces: list[Path] = []
        """The trace files this process wrote."""

    def resolve(self, model: str) -> tuple[str, str | None] | None:
        """(base model, adapter) a request's ``model`` names; None when it names neither."""
        if model in self.by_model:
            return model, None
        adapter = self.adapters.get(model)
        return None if adapter is None else (adapter.base_model, adapter.name)

    def load_adapter(self, name: str, path: str, base_model: str | None = None) -> None:
        """vLLM's parent for an adapter: the base it names, else the first served model."""
        self.adapters[name] = Adapter(name, path, base_model or self.first_model)

    def unload_adapter(self, name: str) -> None:
        self.adapters.pop(name, None)
        for engine in self.all():
            engine.lora_residency.drop(name)

    def reconfigure(self, settings: Settings) -> None:
        """Runtime settings (``fakeai.runtime_config``) to every engine and to the fault odds. The latency
        models keep their random streams."""
        for engine in self.all():
            profile = settings.profile(engine.model)
            latency = engine.latency
            latency.profile, latency.no_delay = profile, settings.no_delay
            engine.reconfigure(
                latency,
                max_num_seqs=settings.max_num_seqs,
                max_waiting=settings.max_waiting,
                num_blocks=settings.num_blocks,
                max_num_batched_tokens=settings.batched_tokens,
            )
        self.faults.update(settings.error_rate, dict(settings.error_mix))

    def get(self, model: str, rank: int | None = None) -> ModelEngine | None:
        group = self.by_model.get(model)
        return None if group is None else group.pick(rank)

    def all(self) -> list[ModelEngine]:
        return [engine for group in self.by_model.values() for engine in group.engines]

    def start(self) -> None:
        for engine in self.all():
            engine.start()
        if self.startup_seconds > 0:
            self._set_loading(True)
            asyncio.get_running_loop().call_later(self.startup_seconds, self._set_loading, False)

    def _set_loading(self, loading: bool) -> None:
        self.loading = loading
        for model_metrics in self.model_metrics:
            model_metrics.loading(loading)

    async def stop(self) -> None:
        for engine in self.all():
            await engine.stop()

    async def apply(self, change: dict[str, Any]) -> None:
        """One runtime change (``fakeai.control``) to every model's engine."""
        op = change.get("op")
        engines = self.all()
        if op == "sleep":
            await asyncio.gather(*(engine.sleep(change["level"], change["mode"]) for engine in engines))
        elif op == "wake_up":
            for engine in engines:
                engine.wake_up(change.get("tags"))
        elif op == "load_lora":
            self.load_adapter(change["name"], change["path"])
        elif op == "unload_lora":
            self.unload_adapter(change["name"])
        elif op == "reset_prefix_cache":
            for engine in engines:
                engine.cache.reset()
        elif op == "start_profile":
            self.trace.start()
        elif op == "stop_profile":
            events = self.trace.stop()
            if self.profile_dir is not None:
                self.traces.append(await asyncio.to_thread(write_trace, self.profile_dir, events))
        else:
            raise ValueError(f"unknown runtime change {op!r}")
