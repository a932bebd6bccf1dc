"""One simulated vLLM engine per model: FIFO admission, continuous batching, one timer per model.

Every step gives each running request one token per unfinished choice, so the requests of one batch
share their inter-token gaps, and prompts scheduled in a step make that step longer by their prefill.
"""

import asyncio
import bisect
import contextlib
import logging
import random
import time
from collections import deque

from exporter.metrics import ModelMetrics, RequestMetrics
from fakeai.engine.latency import LatencyModel
from fakeai.engine.lora import Residency
from fakeai.engine.mm_cache import MultiModalCache
from fakeai.engine.prefix_cache import PrefixCache
from fakeai.engine.profiler import StepTrace
from fakeai.engine.sequence import GenerationRequest, Sequence, State
from fakeai.engine.slots import Slots
from fakeai.engine.speculative import Speculation
from fakeai.engine.tokens import Writer, tokenize

DECODE_LOG_INTERVAL = 40
"""Decode steps between two engine logs (SGLang's ``--decode-log-interval`` default)."""
log = logging.getLogger(__name__)


class QueueFullError(Exception):
    """The waiting queue is at ``max_waiting``."""


SLEEP_LEVELS = (0, 1, 2)
"""vLLM's sleep levels: 0 pauses scheduling; 1 offloads the weights and discards the KV cache; 2 discards
both (``vllm/entrypoints/serve/dev/sleep/api_router.py`` and ``docs/features/sleep_mode.md``)."""
PAUSE_MODES = ("abort", "wait", "keep")
"""What sleeping does to requests in flight, as vLLM's ``PauseMode`` (``vllm/v1/engine/__init__.py``):
abort them, wait for them to finish, or keep them frozen until the engine wakes."""
WAKE_TAGS = ("weights", "kv_cache")
"""What ``/wake_up?tags=`` can restore; without tags, everything."""


def _priority_order(seq: Sequence) -> tuple[int, float]:
    return seq.request.priority, seq.request.arrival


class ModelEngine:
    def __init__(
        self,
        model: str,
        *,
        index: int = 0,
        latency: LatencyModel,
        cache: PrefixCache,
        metrics: ModelMetrics,
        rng: random.Random,
        max_num_seqs: int,
        max_waiting: int,
        max_model_len: int,
        max_num_batched_tokens: int = 8192,
        speculation: Speculation | None = None,
        max_loras: int | None = None,
        cpu_loras: int = 1,
        priority: bool = False,
        slots: bool = False,
    ) -> None:
        self.model = model
        self.index = index
        """The engine's index: its data-parallel rank, numbered across worker processes."""
        self.speculation = speculation
        """Speculative decoding (--speculative-config): drafts verified in every decode step."""
        # Tokens a running choice may emit in one step: one, or 1 + k with k drafts; and the KV blocks
        # that can start at most.
        self._tokens_per_step = 1 + (speculation.num_speculative_tokens if speculation else 0)
        self._blocks_per_step = -(-self._tokens_per_step // cache.block_size)
        self.latency = latency
        self.cache = cache
        self.mm_cache = MultiModalCache()
        self.metrics = metrics
        self.max_num_seqs = max_num_seqs
        self.max_waiting = max_waiting
        self.max_model_len = max_model_len
        self.max_num_batched_tokens = max_num_batched_tokens
        self.priority = priority
        """--scheduling-policy priority: the waiting queue is kept in (priority, arrival) order, and the
        running request preempted first is the one with the largest (priority, arrival)."""
        self.max_loras = max_loras
        """Distinct LoRA adapters in one running batch (--max-loras); None without --enable-lora."""
        self.lora_residency = Residency(cpu_loras)
        self._lora_loads = 0  # adapters the coming step loads into host memory first
        # The engine's log interval, as SGLang's scheduler keeps it (--decode-log-interval, 40 by default
        # in python/sglang/srt/server_args.py): generation throughput over the last 40 decode steps.
        self._decode_steps = 0
        self._decoded_tokens = 0
        self._decode_log_time = time.monotonic()
        self.trace: StepTrace | None = None
        """The process's step trace (``/start_profile``), shared by its engines."""
        self._step_started = 0.0
        self._step_preemptions = 0
        """Tokens one step may process (vLLM v1's chunked prefill): decodes first, prefill chunks after."""
        self._chunks: dict[Sequence, int] = {}  # this step's prefill chunk of each sequence given one
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.used_blocks = 0
        self._running_choices = 0
        self._writer = Writer(rng)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        """The running loop, once started: Python 3.11's ``asyncio.get_running_loop`` makes a ``getpid``
        system call each time, once per request if every sequence asked for it."""
        self._draining: set[Sequence] = set()  # sleeping with mode "wait": what goes on to its end
        self.sleep_level: int | None = None
        """The level of the last ``sleep``; None while awake."""
        self._asleep: set[str] = set()  # what is still to be woken (tags)
        self._awake = asyncio.Event()
        self._awake.set()
        self.slots: Slots | None = Slots(max_num_seqs) if slots else None
        """llama-server's slots (``GET /slots``), kept only when the model speaks llama.cpp."""

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name=f"engine:{self.model}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = self._loop = None
        for seq in [*self.running, *self.waiting]:
            self.cancel(seq)

    # -- sleep mode (vLLM's --enable-sleep-mode) -----------------------------------------------------------
    @property
    def is_sleeping(self) -> bool:
        return bool(self._asleep)

    async def sleep(self, level: int, mode: str) -> None:
        """Stop scheduling; then, by ``mode``, abort what is in flight, wait for it, or keep it frozen.

        Levels 1 and 2 discard the KV cache, so the prefix cache starts empty after waking, and a kept
        request must recompute its prompt and output (it goes back to the head of the queue).
        """
        if level not in SLEEP_LEVELS or mode not in PAUSE_MODES:
            raise ValueError(f"sleep level {level} / mode {mode!r}")
        in_flight = [*self.running, *self.waiting]
        self._asleep = {"scheduling"} if level == 0 else set(WAKE_TAGS)
        self.sleep_level = level
        self._awake.clear()
        self.metrics.sleep_state(asleep=True, level=level)
        if mode == "abort":
            for seq in [*self.running, *self.waiting]:
                seq.failed = seq.slept = True
                self._finish(seq)
        elif mode == "wait":
            # What was submitted before the call finishes; what arrives meanwhile waits for the wake.
            self._draining = set(in_flight)
            self._wake.set()
            try:
                await asyncio.gather(*(seq.done for seq in in_flight))
            finally:
                self._draining = set()
        if level >= 1:
            for seq in reversed(list(self.running)):  # kept requests lose their KV blocks
                self._requeue(seq)
            self.cache.reset()
            self.metrics.kv_cache_usage(0.0)

    def wake_up(self, tags: list[str] | None = None) -> None:
        """Restore ``tags`` (everything when None); scheduling resumes once nothing is left asleep."""
        if tags is not None and any(tag not in WAKE_TAGS for tag in tags):
            raise ValueError(f"wake tags {tags!r}")
        self._asleep -= {"scheduling", *WAKE_TAGS} if tags is None else {"scheduling", *tags}
        # As vLLM: any wake-up records the engine awake, even one that leaves a tag asleep.
        self.metrics.sleep_state(asleep=False, level=0)
        if not self._asleep:
            self.sleep_level = None
            self._awake.set()
            self._wake.set()

    def reconfigure(
        self,
        latency: LatencyModel,
        *,
        max_num_seqs: int,
        max_waiting: int,
        num_blocks: int,
        max_num_batched_tokens: int,
    ) -> None:
        """New limits and latency, between two steps (``PATCH /admin/config``). Running requests keep
        running: a smaller KV pool preempts at the next step, as vLLM would; a smaller max_num_seqs
        only stops new requests from being scheduled until the batch shrinks."""
        self.latency = latency
        self.max_num_seqs = max_num_seqs
        self.max_waiting = max_waiting
        self.max_num_batched_tokens = max_num_batched_tokens
        self.cache.resize(num_blocks)
        if self.slots is not None:
            self.slots.resize(max_num_seqs)
        self._wake.set()

    def _requeue(self, seq: Sequence) -> None:
        """Back from the running batch to the queue, to be prefilled again (as a preemption would, but not
        counted as one)."""
        self.running.remove(seq)
        self._back_to_queue(seq, preempted=False)

    # -- what routes call ------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest, recorder: RequestMetrics) -> Sequence:
        """Queue a request, or raise ``QueueFullError`` when it would wait behind ``max_waiting`` others."""
        if request.multimodal:  # vLLM's input processor looks its items up before the scheduler sees it
            self.metrics.multimodal_items(*self.mm_cache.look_up(request.multimodal))
        would_wait = len(self.running) + len(self.waiting) >= self.max_num_seqs
        if would_wait and len(self.waiting) >= self.max_waiting:
            raise QueueFullError(f"{self.max_waiting} requests are already waiting for {self.model}")
        seq = Sequence(
            request,
            recorder,
            targets=self._targets(request),
            writer=self._writer,
            block_size=self.cache.block_size,
            loop=self._loop or asyncio.get_running_loop(),
        )
        seq.queued = time.monotonic()
        # Zero time needs the whole prompt in one step, and drafts are drawn step by step.
        zero_time = self.latency.no_delay and self.speculation is None
        zero_time = zero_time and len(request.prompt_tokens) <= self.max_num_batched_tokens
        if zero_time and not request.stream and not would_wait and self._awake.is_set():
            self._complete_now(seq)
            return seq
        recorder.enqueued()
        self._enqueue(seq)
        self._wake.set()
        return seq

    def _complete_now(self, seq: Sequence) -> None:
        """Zero simulated time: a request with a free slot is prefilled and decoded on arrival.

        Nothing else can run between its steps, so it forms a batch of one; its steps all happen at
        the one clock reading taken here, which is what the latency families record.
        """
        now = time.monotonic()
        recorder = seq.recorder
        seq.scheduled = now
        recorder.ran_on_arrival(now - seq.queued if seq.queued is not None else 0.0)
        seq.cached_tokens = self.cache.lookup_and_insert(seq.request.prompt_tokens)
        recorder.prefix_lookup(seq.prompt_len, seq.cached_tokens)
        ttft = now - seq.request.arrival if seq.request.generate else None
        recorder.prefilled(seq.prompt_len, seq.cached_tokens, ttft, 0.0)
        step_sizes = seq.decode_at_once(now)
        first = len(seq.choices)
        if first:
            recorder.tokens(seq.completion_tokens, 0.0, gaps=seq.completion_tokens - first)
        prefill = seq.prompt_len - seq.cached_tokens
        if step_sizes:
            # The first step also prefilled the prompt.
            step_sizes[first] -= 1
            self.metrics.steps(prefill + first, 1)
        else:
            self.metrics.steps(prefill, 1)
        timed = self.metrics.batch_calls
        if timed:
            self.metrics.batch_call("prefill", 0.0, 0.0, 1)
        for size, count in step_sizes.items():
            self.metrics.steps(size, count)
            if timed:
                self.metrics.batch_call("decode", 0.0, 0.0, 0, count)
        if self.trace is not None and self.trace.recording:  # the same steps, all at this instant
            steps = [(prefill, first if step_sizes else 0)]
            steps += [(0, size) for size, count in step_sizes.items() for _ in range(count)]
            for prefill_tokens, decode_tokens in steps:
                trace = {"batch": 1, "prefill_tokens": prefill_tokens, "decode_tokens": decode_tokens}
                self.trace.step(self.model, self.index, start=now, end=now, **trace)
        seq.failed = seq.should_fail_now() and seq.unfinished > 0
        seq.state = State.FINISHED
        if self.slots is not None:  # it ran in a slot, for no time: the slot shows it as its last task
            self.slots.take(seq)
            self.slots.release(seq)
        seq.done.set_result(None)

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
            if not self._awake.is_set() and not self._draining:
                await self._awake.wait()  # asleep: nothing is scheduled or stepped until wake_up
            try:
                timed = self.metrics.batch_calls  # TGI's per-call timings, only when a model speaks tgi
                tracing = self.trace is not None and self.trace.recording
                before = len(self.running)
                started = time.monotonic() if timed or tracing else 0.0
                self._step_started, self._step_preemptions = started, 0
                prefill_tokens = self._schedule()
                admitted = max(0, len(self.running) - before)  # nothing is admitted in a step that preempts
                delay = self.latency.step_time(len(self.running), prefill_tokens, self._lora_loads)
                await asyncio.sleep(delay)
                stepped = time.monotonic()
                self._step(stepped, prefill_tokens)
                if timed:
                    phase = "prefill" if prefill_tokens else "decode"
                    self.metrics.batch_call(phase, stepped - started, time.monotonic() - stepped, admitted)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug in one step must not take the model down: fail what ran, keep the loop alive.
                log.exception("engine step failed for %s", self.model)
                for seq in list(self.running):
                    seq.failed = True
                    self._finish(seq)

    def _schedule(self) -> int:
        """Room in the KV pool for the running requests' next tokens (preempting when there is none), then
        waiting requests admitted, as vLLM v1's ``Scheduler.schedule`` (vllm/v1/core/sched/scheduler.py,
        vllm-project/vllm@00024d314514900f361ad072af6931e403b7f589). Returns tokens to prefill."""
        capacity = self.cache.num_blocks
        growth, preempted, exact = self._growth(capacity)
        bound, admitted_from = growth, len(self.running)
        # The step's token budget (vLLM v1's --max-num-batched-tokens): the running decodes first, then
        # prefill chunks, for prompts already part-way through, then for newly scheduled requests.
        budget = self.max_num_batched_tokens - self._decode_tokens()
        chunks = self._chunks
        chunks.clear()
        prefill = 0
        for seq in self.running:
            if seq.prefill_left and budget > 0:
                chunks[seq] = chunk = min(seq.prefill_left, budget)
                budget -= chunk
                prefill += chunk
        now = time.monotonic()
        # vLLM v1: a request whose adapter would put more than --max-loras adapters in the batch is
        # skipped for this step ("deferred"); the requests behind it may go first.
        adapters = {seq.request.lora for seq in self.running if seq.request.lora} if self.max_loras else set()
        deferred: list[Sequence] = []
        self._lora_loads = 0
        computed = hit = 0  # the prefill batch's tokens: to compute, and found in the prefix cache
        # vLLM admits nothing in a step that preempted: what was just preempted would only thrash.
        while not preempted and self.waiting and len(self.running) < self.max_num_seqs and budget > 0:
            seq = self.waiting[0]
            if not self._awake.is_set() and seq not in self._draining:
                break  # asleep: only what was in flight when sleep(mode="wait") was called goes on
            lora = seq.request.lora
            if lora and self.max_loras and lora not in adapters and len(adapters) >= self.max_loras:
                deferred.append(self.waiting.popleft())
                continue
            need = seq.blocks_needed()
            # Its prompt's blocks, and the first output's if the prefill ends in this step.
            if self.running and self.used_blocks + growth + need + len(seq.choices) > capacity:
                if exact:
                    break
                # The bound was too coarse to admit it: count the blocks the running requests really start.
                growth += self._exact_growth(self.running[:admitted_from]) - bound
                exact = True
                if self.used_blocks + growth + need + len(seq.choices) > capacity:
                    break
            self.waiting.popleft()
            first_time = seq.scheduled is None
            if first_time:
                seq.scheduled = now
            seq.recorder.scheduled(now - seq.queued if first_time and seq.queued is not None else None)
            seq.state = State.RUNNING
            seq.blocks_held = need
            self.used_blocks += need
            growth += len(seq.choices)
            self._running_choices += seq.unfinished
            self.running.append(seq)
            tokens = seq.request.prompt_tokens
            if not first_time:  # a preempted request recomputes its outputs too
                tokens = [*tokens, *(t for c in seq.choices for t in tokenize("".join(c.words[: c.emitted])))]
            cached = self.cache.lookup_and_insert(tokens)
            if first_time:
                seq.cached_tokens = cached
                seq.recorder.prefix_lookup(seq.prompt_len, cached)
            seq.prefill_left = len(tokens) - cached
            if self.slots is not None:
                self.slots.take(seq)
            computed += seq.prefill_left
            hit += cached
            chunks[seq] = chunk = min(seq.prefill_left, budget)
            budget -= chunk
            prefill += chunk
            if lora:
                adapters.add(lora)
                self._lora_loads += self.lora_residency.use(lora)
        self.waiting.extendleft(reversed(deferred))
        if self.max_loras:
            self._report_adapters(adapters, len(deferred))
        if computed or hit:
            # SGLang logs every prefill batch: the share of its tokens the prefix cache held.
            self.metrics.prefill_logged(hit / (computed + hit))
        return prefill

    def _growth(self, capacity: int) -> tuple[int, bool, bool]:
        """KV blocks the running requests start in the coming step, preempting (``_preemption_victim``)
        until the pool holds them; whether anything was preempted; and whether the count is exact or an
        upper bound (when even the bound fits, nothing needs counting one by one). vLLM allocates each
        running request's slots in turn, a new block only where its last one fills, with no watermark
        (``KVCacheManager``'s default), so a pool under pressure runs close to full."""
        bound = self._growth_bound()
        if self.used_blocks + bound <= capacity:
            return bound, False, False
        tokens = self._tokens_per_step
        needs: dict[Sequence, int] = {}
        growth = 0
        preempted = False
        for seq in list(self.running):
            if seq.state is not State.RUNNING:
                continue  # preempted for a request earlier in this step
            need = seq.blocks_to_grow(tokens)
            while self.used_blocks + growth + need > capacity and len(self.running) > 1:
                victim = self._preemption_victim()
                growth -= needs.pop(victim, 0)
                self._preempt(victim)
                preempted = True
                if victim is seq:
                    break
            if seq.state is State.RUNNING:
                needs[seq] = need
                growth += need
        return growth, preempted, True

    def _growth_bound(self) -> int:
        """At most this many blocks start in a step: every running choice may fill its last one."""
        return self._running_choices * self._blocks_per_step

    def _exact_growth(self, running: list[Sequence]) -> int:
        return sum(seq.blocks_to_grow(self._tokens_per_step) for seq in running)

    def _preempt(self, victim: Sequence) -> None:
        """Back to the queue with its blocks freed, to be prefilled again (recomputation, as vLLM v1)."""
        self._back_to_queue(victim, preempted=True)

    def _back_to_queue(self, seq: Sequence, *, preempted: bool) -> None:
        """A sequence already out of the running batch: its blocks freed, waiting to be prefilled again;
        counted as a preemption when it is one."""
        self._release(seq)
        seq.state = State.WAITING
        seq.needs_prefill = True
        seq.recorder.preempted()
        if preempted:
            seq.preemptions += 1
            self.metrics.preemption()
            self._step_preemptions += 1
        if self.priority:
            self._enqueue(seq)
        else:
            self.waiting.appendleft(seq)  # fcfs: it goes first again

    def _report_adapters(self, running: set[str], deferred: int) -> None:
        """vLLM's ``lora_requests_info`` (the adapters of running and of waiting requests) and the
        requests the adapter budget deferred, as they stand for the coming step."""
        waiting = {seq.request.lora for seq in self.waiting if seq.request.lora}
        self.metrics.adapters(self.max_loras or 0, sorted(running), sorted(waiting), deferred)

    def _preemption_victim(self) -> Sequence:
        """vLLM v1's choice: the latest scheduled under fcfs; under priority, the running request with the
        largest (priority, arrival) (vllm/v1/core/sched/scheduler.py)."""
        if not self.priority:
            return self.running.pop()
        victim = max(self.running, key=_priority_order)
        self.running.remove(victim)
        return victim

    def _enqueue(self, seq: Sequence) -> None:
        """Into the waiting queue: at its end under fcfs; under priority, in vLLM's order (lower
        ``priority`` first, ties by arrival)."""
        if self.priority:
            bisect.insort(self.waiting, seq, key=_priority_order)
        else:
            self.waiting.append(seq)

    def _decode_tokens(self) -> int:
        """Tokens the running decodes take from the step's budget: one per unfinished choice, plus the
        drafts verified with it under speculative decoding."""
        per_choice = 1 + (self.speculation.num_speculative_tokens if self.speculation else 0)
        return per_choice * sum(seq.unfinished for seq in self.running if not seq.prefill_left)

    def _step(self, now: float, prefill_tokens: int) -> None:
        emitted = 0
        speculation = self.speculation
        draft = None if speculation is None else speculation.draft
        if speculation is not None:
            before = speculation.totals()
        # Requests that got their previous output in the same step share the gap: one metrics update
        # per (endpoint, model, previous step) instead of one per request. Each choice's output of a
        # step is one inter-token gap, however many tokens it carries (vLLM: one ITL per output).
        tally: dict[tuple[RequestMetrics, float | None], list[int]] = {}
        chunks = self._chunks
        batch = 0
        for seq in list(self.running):
            if seq.state is not State.RUNNING:
                continue
            batch += 1
            if seq.prefill_left:
                chunk = chunks.get(seq, 0)
                seq.prefill_left -= chunk
                if seq.prefill_left:
                    continue  # more of the prompt to prefill in later steps: no token yet
            if seq.needs_prefill:
                seq.needs_prefill = False
                if seq.first_token is None and seq.scheduled is not None:
                    ttft = now - seq.request.arrival if seq.request.generate else None
                    seq.recorder.prefilled(seq.prompt_len, seq.cached_tokens, ttft, now - seq.scheduled)
            if not seq.request.generate:
                self._finish(seq)
                continue
            if seq.should_fail_now():
                seq.failed = True
                self._finish(seq)
                continue
            previous, held, unfinished, tokens = seq.last_token, seq.blocks_held, seq.unfinished, seq.completion_tokens
            deltas = seq.advance(now, draft)
            self.used_blocks += seq.blocks_held - held
            self._running_choices -= unfinished - seq.unfinished
            counts = tally.setdefault((seq.recorder, previous), [0, 0])
            counts[0] += seq.completion_tokens - tokens
            counts[1] += len(deltas)
            emitted += seq.completion_tokens - tokens
            if seq.updates is not None:
                seq.updates.put_nowait(deltas)
            if seq.unfinished == 0:
                self._finish(seq)
        for (recorder, previous), (tokens, outputs) in tally.items():
            recorder.tokens(tokens, None if previous is None else now - previous, gaps=outputs)
        if speculation is not None:
            self.metrics.speculative_step(*speculation.since(before))
        self.metrics.steps(emitted + prefill_tokens, 1, batch)
        if self.trace is not None and self.trace.recording:
            self.trace.step(
                self.model,
                self.index,
                start=self._step_started or now,  # tracing began within this step: from its end
                end=time.monotonic(),
                batch=batch,
                prefill_tokens=prefill_tokens,
                decode_tokens=emitted,
                preemptions=self._step_preemptions,
            )
        if emitted:
            self._decode_steps += 1
            self._decoded_tokens += emitted
            if self._decode_steps % DECODE_LOG_INTERVAL == 0:
                self.metrics.decode_logged(self._decoded_tokens / max(now - self._decode_log_time, 1e-9))
                self._decoded_tokens, self._decode_log_time = 0, now
        self.metrics.kv_cache_usage(min(self.used_blocks / self.cache.num_blocks, 1.0))

    def _release(self, seq: Sequence) -> None:
        self.used_blocks -= seq.blocks_held
        self._running_choices -= seq.unfinished
        seq.blocks_held = 0
        if self.slots is not None:
            self.slots.release(seq)

    def _finish(self, seq: Sequence) -> None:
        was_running = seq.state is State.RUNNING
        if was_running:
            self.running.remove(seq)
            self._release(seq)
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
