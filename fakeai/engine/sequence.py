"""One request inside a simulated engine: its choices, its progress and what it has measured."""

import asyncio
import enum
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field

import numpy as np

from exporter.metrics import RequestMetrics
from fakeai.engine.faults import Fault
from fakeai.engine.tokens import first_stop, sample_words

_MAX_STOP_SCAN = 64  # characters of tail re-scanned for a stop sequence after each token


@dataclass(frozen=True)
class GenerationRequest:
    """What a route asks the engine for, already validated and tokenized."""

    endpoint: str
    model: str
    prompt_tokens: Seq[int]
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


class State(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(slots=True)
class TokenDelta:
    choice: int
    text: str
    finish_reason: str | None = None


@dataclass
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


class Sequence:
    """Engine-side state of one request. The engine alone moves it; routes only read and cancel."""

    def __init__(
        self,
        request: GenerationRequest,
        recorder: RequestMetrics,
        *,
        targets: list[tuple[int, str]],
        rng: np.random.Generator,
    ) -> None:
        self.request = request
        self.recorder = recorder
        self.state = State.WAITING
        self.choices = [Choice(t, reason, sample_words(rng, t)) for t, reason in targets]
        self.queued: float | None = None
        self.scheduled: float | None = None
        self.first_token: float | None = None
        self.last_token: float | None = None
        self.cached_tokens = 0
        self.needs_prefill = True
        self.failed = False
        self.cancelled = False
        fault = request.fault
        self.abort_after = (
            max(1, int(max(t for t, _ in targets) * fault.abort_fraction))
            if fault and fault.error is None and targets
            else None
        )
        self.updates: asyncio.Queue[list[TokenDelta] | None] | None = asyncio.Queue() if request.stream else None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def prompt_len(self) -> int:
        return len(self.request.prompt_tokens)

    @property
    def completion_tokens(self) -> int:
        return sum(c.emitted for c in self.choices)

    @property
    def max_choice_tokens(self) -> int:
        return max((c.emitted for c in self.choices), default=0)

    def blocks(self, block_size: int, lookahead: int = 0) -> int:
        """KV blocks held: the prompt once, each choice's own output (plus ``lookahead`` tokens)."""
        held = -(-self.prompt_len // block_size)
        for c in self.choices:
            if c.finish_reason is None:
                held += -(-(c.emitted + lookahead) // block_size)
        return held

    def should_fail_now(self) -> bool:
        return self.abort_after is not None and self.max_choice_tokens >= self.abort_after

    def advance(self, now: float) -> list[TokenDelta]:
        """Emit one token for every unfinished choice; returns what was emitted."""
        stops = self.request.stop
        deltas = [c.next_delta(i, stops) for i, c in enumerate(self.choices) if c.finish_reason is None]
        first = self.first_token is None
        if first:
            self.first_token = now
        gap = None if first or self.last_token is None else now - self.last_token
        self.last_token = now
        self.recorder.tokens(len(deltas), gap)
        return deltas

    @property
    def all_finished(self) -> bool:
        return all(c.finish_reason is not None for c in self.choices)
