"""One request inside a simulated engine: its choices, its progress and what it has measured."""

import asyncio
import enum
from collections import deque
from collections.abc import Callable
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field

from exporter.metrics import RequestMetrics
from fakeai.engine.faults import Fault
from fakeai.engine.tokens import Token, Writer, first_stop

_MAX_STOP_SCAN = 64  # characters of tail re-scanned for a stop sequence after each token


@dataclass(slots=True)
class GenerationRequest:
    """What a route asks the engine for, already validated and tokenized."""

    endpoint: str
    model: str
    prompt_tokens: Seq[Token]
    arrival: float
    max_tokens: int | None = None
    n: int = 1
    stop: tuple[str, ...] = ()
    min_tokens: int = 0
    ignore_eos: bool = False
    stream: bool = False
    fault: Fault | None = None
    generate: bool = True
    """False for embeddings: prefill only, no decode."""
    priority: int = 0
    """Lower runs first, ties by arrival (--scheduling-policy priority)."""
    lora: str | None = None
    """The LoRA adapter the request names (``model`` is then its base model)."""
    multimodal: tuple[bytes, ...] = ()
    """Keys of the prompt's image and audio items (``fakeai.engine.mm_cache.item_key``)."""


class State(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(slots=True)
class TokenDelta:
    choice: int
    text: str
    finish_reason: str | None = None
    tokens: int = 1
    """Tokens this delta carries: more than one when a speculative draft was accepted in its step."""


@dataclass(slots=True)
class Choice:
    target: int
    reason: str
    words: list[str]
    emitted: int = 0
    text: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    _tail: str = ""

    def next_delta(self, index: int, stops: tuple[str, ...]) -> TokenDelta:
        word = self.words[self.emitted]
        self.emitted += 1
        if stops:
            tail = self._tail + word
            cut = first_stop(tail, stops)
            if cut >= 0:
                already = len(self._tail)
                delta = tail[already:cut] if cut > already else ""
                self.text.append(delta)
                self.finish_reason = "stop"
                return TokenDelta(index, delta, "stop")
            self._tail = tail[-_MAX_STOP_SCAN:]
        self.text.append(word)
        if self.emitted >= self.target:
            self.finish_reason = self.reason
        return TokenDelta(index, word, self.finish_reason)


class Updates:
    """What a streaming request's engine steps emitted, in order, for its one reader; ``None`` ends it.

    ``asyncio.Queue`` without what one producer and one consumer never need (bounds, many waiters): it
    was a sixth of a streamed request's cost, two queue operations per token.
    """

    __slots__ = ("_loop", "_pending", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop  # the engine's: ``asyncio.get_running_loop`` is a system call on Python 3.11
        self._pending: deque[list[TokenDelta] | None] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, deltas: list[TokenDelta] | None) -> None:
        self._pending.append(deltas)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> list[TokenDelta] | None:
        while not self._pending:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._pending.popleft()


def step_sizes(lengths: list[int]) -> dict[int, int]:
    """Choices of these lengths decoded together: {tokens in a step: number of such steps}."""
    sizes: dict[int, int] = {}
    done, remaining = 0, len(lengths)
    for length in sorted(lengths):
        if length > done:
            sizes[remaining] = sizes.get(remaining, 0) + length - done
            done = length
        remaining -= 1
    return sizes


class Sequence:
    """Engine-side state of one request. The engine alone moves it; routes only read and cancel."""

    # Made for every request and read on every step: slots set and read faster, and take less memory.
    __slots__ = (
        "__weakref__",  # fakeai.engine.slots holds sequences weakly
        "abort_after",
        "block_size",
        "blocks_held",
        "cached_tokens",
        "cancelled",
        "choices",
        "completion_tokens",
        "done",
        "failed",
        "first_token",
        "last_token",
        "needs_prefill",
        "preemptions",
        "prefill_left",
        "prompt_len",
        "queued",
        "recorder",
        "request",
        "scheduled",
        "slept",
        "state",
        "unfinished",
        "updates",
    )

    def __init__(
        self,
        request: GenerationRequest,
        recorder: RequestMetrics,
        *,
        targets: list[tuple[int, str]],
        writer: Writer,
        block_size: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.request = request
        self.recorder = recorder
        self.block_size = block_size
        self.state = State.WAITING
        self.choices = [Choice(t, reason, writer.words(t)) for t, reason in targets]
        self.unfinished = len(self.choices)
        self.prompt_len = len(request.prompt_tokens)
        self.completion_tokens = 0
        self.blocks_held = 0
        self.queued: float | None = None
        self.scheduled: float | None = None
        self.first_token: float | None = None
        self.last_token: float | None = None
        self.cached_tokens = 0
        self.preemptions = 0
        self.needs_prefill = True
        self.prefill_left = 0
        """Prompt (and, after a preemption, output) tokens still to prefill: over several steps when the
        step's token budget cannot take them at once (chunked prefill)."""
        self.failed = False
        self.cancelled = False
        self.slept = False
        """Aborted because the engine was put to sleep (``/sleep``, mode ``abort``)."""
        fault = request.fault
        self.abort_after: int | None = None
        if fault is not None and fault.mid_generation and targets and fault.abort_after is not None:
            self.abort_after = fault.abort_after
        elif fault is not None and fault.mid_generation and targets:
            # At least one token first, so a client always sees how far the answer got.
            self.abort_after = max(1, int(max(t for t, _ in targets) * fault.abort_fraction))
        self.updates: Updates | None = Updates(loop) if request.stream else None
        self.done: asyncio.Future[None] = loop.create_future()

    @property
    def max_choice_tokens(self) -> int:
        choices = self.choices
        if len(choices) == 1:  # the common case, read several times per request: no generator
            return choices[0].emitted
        return max((c.emitted for c in choices), default=0)

    def blocks_needed(self) -> int:
        """KV blocks to hold the prompt and every choice's output so far, as when (re)scheduled."""
        size = self.block_size
        return -(-self.prompt_len // size) + sum(-(-c.emitted // size) for c in self.choices)

    def blocks_to_grow(self, tokens: int) -> int:
        """KV blocks the unfinished choices start if each emits ``tokens`` more: what vLLM's
        ``allocate_slots`` takes for a running request's step, a new block only where the last one fills."""
        size = self.block_size
        if tokens == 1:
            return sum(1 for c in self.choices if c.finish_reason is None and c.emitted % size == 0)
        # ceil((e + tokens) / size) - ceil(e / size), with ceil(x / size) == -(-x // size)
        return sum(
            (-c.emitted // size) - (-(c.emitted + tokens) // size) for c in self.choices if c.finish_reason is None
        )

    def should_fail_now(self) -> bool:
        return self.abort_after is not None and self.max_choice_tokens >= self.abort_after

    def decode_at_once(self, now: float) -> dict[int, int]:
        """Decode to the end in zero time (``--no-delay``); returns {tokens in a step: number of steps}.

        Without stop sequences every choice simply takes its pre-drawn words, so no per-token work is
        needed; with them, tokens go one by one so the stop is found where streaming would find it.
        """
        limit = self.abort_after
        if self.request.stop:
            sizes: dict[int, int] = {}
            while self.unfinished and not self.should_fail_now():
                size = len(self.advance(now))
                sizes[size] = sizes.get(size, 0) + 1
            return sizes
        for choice in self.choices:
            count = choice.target if limit is None else min(choice.target, limit)
            choice.emitted = count
            choice.text = choice.words[:count]
            if count == choice.target:
                choice.finish_reason = choice.reason
                self.unfinished -= 1
        self.completion_tokens = sum(c.emitted for c in self.choices)
        if self.choices:
            self.first_token = self.last_token = now
        return step_sizes([c.emitted for c in self.choices])

    def advance(self, now: float, draft: Callable[[], int] | None = None) -> list[TokenDelta]:
        """One engine step: every unfinished choice emits a token, growing the KV blocks held as outputs
        grow. With ``draft`` (speculative decoding), a choice past its first token also emits the draft
        tokens ``draft()`` says were accepted, in the same delta, as vLLM streams one output per step."""
        if draft is not None:
            return self._advance_speculating(now, draft)
        stops, size = self.request.stop, self.block_size
        deltas = []
        for index, choice in enumerate(self.choices):
            if choice.finish_reason is not None:
                continue
            if choice.emitted % size == 0:
                self.blocks_held += 1
            delta = choice.next_delta(index, stops)
            if delta.finish_reason is not None:
                self.unfinished -= 1
            deltas.append(delta)
        self.completion_tokens += len(deltas)
        self._stamp(now)
        return deltas

    def _advance_speculating(self, now: float, draft: Callable[[], int]) -> list[TokenDelta]:
        stops, size = self.request.stop, self.block_size
        deltas = []
        for index, choice in enumerate(self.choices):
            if choice.finish_reason is not None:
                continue
            # The first token comes from the prefill step; drafts start with the decode steps.
            count = 1 + draft() if choice.emitted > 0 else 1
            delta: TokenDelta | None = None
            for _ in range(count):
                if choice.emitted % size == 0:
                    self.blocks_held += 1
                token = choice.next_delta(index, stops)
                self.completion_tokens += 1
                if delta is None:
                    delta = token
                else:  # one output per step, carrying every token of the step
                    delta.text += token.text
                    delta.finish_reason = token.finish_reason
                    delta.tokens += 1
                if token.finish_reason is not None:
                    self.unfinished -= 1
                    break
            assert delta is not None
            deltas.append(delta)
        self._stamp(now)
        return deltas

    def _stamp(self, now: float) -> None:
        if self.first_token is None:
            self.first_token = now
        self.last_token = now
