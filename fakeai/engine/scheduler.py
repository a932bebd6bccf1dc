"""One simulated vLLM engine per model: FIFO admission, continuous batching, one timer per model.

Every step gives each running request one token per unfinished choice, so the requests of one batch
share their inter-token gaps, and prompts scheduled in a step make that step longer by their prefill.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque

import numpy as np

from exporter.metrics import ModelMetrics, RequestMetrics
from fakeai.engine.latency import LatencyModel
from fakeai.engine.prefix_cache import PrefixCache
from fakeai.engine.sequence import GenerationRequest, Sequence, State
from fakeai.engine.tokens import tokenize

log = logging.getLogger(__name__)


class QueueFullError(Exception):
    """The waiting queue is at ``max_waiting``."""


class ModelEngine:
    def __init__(
        self,
        model: str,
        *,
        latency: LatencyModel,
        cache: PrefixCache,
        metrics: ModelMetrics,
        rng: np.random.Generator,
        max_num_seqs: int,
        max_waiting: int,
        max_model_len: int,
    ) -> None:
        self.model = model
        self.latency = latency
        self.cache = cache
        self.metrics = metrics
        self.max_num_seqs = max_num_seqs
        self.max_waiting = max_waiting
        self.max_model_len = max_model_len
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self._rng = rng
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"engine:{self.model}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for seq in [*self.running, *self.waiting]:
            self.cancel(seq)

    # -- what routes call ------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest, recorder: RequestMetrics) -> Sequence:
        """Queue a request, or raise ``QueueFullError`` when ``max_waiting`` requests already wait."""
        would_wait = len(self.running) + len(self.waiting) >= self.max_num_seqs
        if would_wait and len(self.waiting) >= self.max_waiting:
            raise QueueFullError(f"{self.max_waiting} requests are already waiting for {self.model}")
        seq = Sequence(request, recorder, targets=self._targets(request), rng=self._rng)
        seq.queued = time.monotonic()
        recorder.enqueued()
        self.waiting.append(seq)
        self._wake.set()
        return seq

    def cancel(self, seq: Sequence) -> None:
        """The client went away: free the sequence's slot and gauges at once. Idempotent."""
        if seq.state is State.FINISHED:
            return
        seq.cancelled = True
        self._finish(seq)

    # -- the engine loop -------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            if not self.running and not self.waiting:
                self._wake.clear()
                await self._wake.wait()
            try:
                prefill_tokens = self._schedule()
                delay = self.latency.step_time(len(self.running), prefill_tokens)
                await asyncio.sleep(delay)
                self._step(time.monotonic(), prefill_tokens)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug in one step must not take the model down: fail what ran, keep the loop alive.
                log.exception("engine step failed for %s", self.model)
                for seq in list(self.running):
                    seq.failed = True
                    self._finish(seq)

    def _schedule(self) -> int:
        """Preempt when the KV pool overflows, then admit waiting requests. Returns tokens to prefill."""
        block_size, capacity = self.cache.block_size, self.cache.num_blocks
        used = sum(seq.blocks(block_size, lookahead=1) for seq in self.running)
        while used > capacity and len(self.running) > 1:
            victim = self.running.pop()  # the latest scheduled, as vLLM's recompute policy picks
            used -= victim.blocks(block_size, lookahead=1)
            victim.state = State.WAITING
            victim.needs_prefill = True
            victim.recorder.preempted()
            self.metrics.preemption()
            self.waiting.appendleft(victim)
        prefill = 0
        now = time.monotonic()
        while self.waiting and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            need = seq.blocks(block_size, lookahead=1)
            if self.running and used + need > capacity:
                break
            self.waiting.popleft()
            used += need
            first_time = seq.scheduled is None
            if first_time:
                seq.scheduled = now
            seq.recorder.scheduled(now - seq.queued if first_time and seq.queued is not None else None)
            seq.state = State.RUNNING
            self.running.append(seq)
            tokens = list(seq.request.prompt_tokens)
            for choice in seq.choices:
                tokens.extend(tokenize("".join(choice.words[: choice.emitted])))
            cached = self.cache.lookup_and_insert(tokens)
            if first_time:
                seq.cached_tokens = cached
                seq.recorder.prefix_lookup(seq.prompt_len, cached)
            prefill += len(tokens) - cached
        return prefill

    def _step(self, now: float, prefill_tokens: int) -> None:
        emitted = 0
        for seq in list(self.running):
            if seq.state is not State.RUNNING:
                continue
            if seq.needs_prefill:
                seq.needs_prefill = False
                if seq.first_token is None and seq.scheduled is not None:
                    ttft = now - seq.request.arrival if seq.request.generate else None
                    seq.recorder.prefilled(seq.prompt_len, ttft, now - seq.scheduled)
            if not seq.request.generate:
                self._finish(seq)
                continue
            if seq.should_fail_now():
                seq.failed = True
                self._finish(seq)
                continue
            deltas = seq.advance(now)
            emitted += len(deltas)
            if seq.updates is not None:
                seq.updates.put_nowait(deltas)
            if seq.all_finished:
                self._finish(seq)
        self.metrics.step(emitted + prefill_tokens)
        used = sum(seq.blocks(self.cache.block_size) for seq in self.running)
        self.metrics.kv_cache_usage(min(used / self.cache.num_blocks, 1.0))

    def _finish(self, seq: Sequence) -> None:
        was_running = seq.state is State.RUNNING
        if was_running:
            self.running.remove(seq)
        elif seq.state is State.WAITING:
            self.waiting.remove(seq)
        seq.state = State.FINISHED
        seq.recorder.left_engine(running=was_running)
        if seq.updates is not None:
            seq.updates.put_nowait(None)
        if not seq.done.done():
            seq.done.set_result(None)
        if was_running and not self.running:
            self.metrics.kv_cache_usage(0.0)

    def _targets(self, request: GenerationRequest) -> list[tuple[int, str]]:
        """Each choice's length and finish reason, decided up front from the seeded model."""
        if not request.generate:
            return []
        room = self.max_model_len - len(request.prompt_tokens)
        cap = room if request.max_tokens is None else min(request.max_tokens, room)
        targets = []
        for _ in range(request.n):
            if request.ignore_eos:
                targets.append((cap, "length"))
                continue
            natural = max(self.latency.natural_length(), request.min_tokens)
            targets.append((cap, "length") if natural >= cap else (natural, "stop"))
        return targets
