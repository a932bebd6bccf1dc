"""The life of one generation request, shared by chat and text completions.

accept -> (injected fault) -> API overhead -> engine queue -> tokens -> one ``RequestRecord``.
Whatever happens (error, client gone, stream cut), exactly one record is handed to the metrics, and
every gauge the request raised is lowered again.
"""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from exporter.facts import CLIENT_CLOSED_REQUEST, FinishedReason, RequestRecord, StreamOutcome
from exporter.metrics import RequestMetrics
from fakeai.context import ServerContext
from fakeai.engine import GenerationRequest, ModelEngine, QueueFullError, Sequence
from fakeai.engine.sequence import Choice, TokenDelta
from fakeai.engine.tokens import Token
from fakeai.errors import ErrorKind, OpenAIError, error_body
from fakeai.jsonio import FastJSONResponse, sse
from fakeai.routes.prompts import check_length
from fakeai.schemas import GenerationParams

ABORT_MESSAGE = "The engine failed in the middle of generation (injected fault)."
SHUTDOWN_MESSAGE = "The server is shutting down."


class Renderer:
    """Turns engine output into one endpoint's OpenAI shapes; subclasses fill in the choices."""

    id_prefix = ""
    full_object = ""
    chunk_object = ""

    def __init__(self, model: str) -> None:
        self.id = self.id_prefix + secrets.token_hex(12)
        self.created = int(time.time())
        self.model = model

    def envelope(self, obj: str, choices: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fakeai",
            "choices": choices,
            "usage": usage,
        }

    def full(self, seq: Sequence, usage: dict[str, Any]) -> dict[str, Any]:
        return self.envelope(self.full_object, [self.full_choice(i, c) for i, c in enumerate(seq.choices)], usage)

    def chunk(self, delta: TokenDelta, first: bool, usage: dict[str, Any] | None) -> dict[str, Any]:
        return self.envelope(self.chunk_object, [self.chunk_choice(delta, first)], usage)

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        return self.envelope(self.chunk_object, [], usage)

    def full_choice(self, index: int, choice: Choice) -> dict[str, Any]:
        raise NotImplementedError

    def chunk_choice(self, delta: TokenDelta, first: bool) -> dict[str, Any]:
        raise NotImplementedError


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def finished_reason(seq: Sequence) -> FinishedReason:
    reasons = {c.finish_reason for c in seq.choices}
    return FinishedReason.LENGTH if "length" in reasons else FinishedReason.STOP


@dataclass
class Outcome:
    """How the request ended, as the client saw it."""

    status: int
    reason: FinishedReason
    error: ErrorKind | None = None
    stream: StreamOutcome | None = None


def hand_over(recorder: RequestMetrics, gen: GenerationRequest, seq: Sequence | None, outcome: Outcome) -> None:
    record = RequestRecord(
        endpoint=gen.endpoint,
        model=gen.model,
        status=outcome.status,
        finished_reason=outcome.reason,
        arrival=gen.arrival,
        finished=time.monotonic(),
        scheduled=seq.scheduled if seq else None,
        queued=seq.queued if seq else None,
        first_token=seq.first_token if seq else None,
        last_token=seq.last_token if seq else None,
        prompt_tokens=seq.prompt_len if seq else 0,
        completion_tokens=seq.completion_tokens if seq else 0,
        max_choice_tokens=seq.max_choice_tokens if seq else 0,
        error_status=outcome.error.status if outcome.error else None,
        error_type=outcome.error.type if outcome.error else None,
        stream_outcome=outcome.stream,
    )
    recorder.finished(record)


def reject(recorder: RequestMetrics, gen: GenerationRequest, kind: ErrorKind, message: str) -> OpenAIError:
    """Record a request refused before it reached the engine, and return the error to raise."""
    hand_over(recorder, gen, None, Outcome(kind.status, FinishedReason.ERROR, kind))
    return OpenAIError(kind, message)


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def admit(ctx: ServerContext, engine: ModelEngine, gen: GenerationRequest) -> tuple[RequestMetrics, Sequence]:
    """Count the request, apply an injected fault or the API overhead, and queue it."""
    recorder = ctx.metrics.request(gen.endpoint, gen.model)
    recorder.accepted(gen.max_tokens, gen.n)
    fault = gen.fault
    if fault is not None and (fault.error is not None or not gen.generate):
        kind = fault.error or ErrorKind.SERVER_ERROR
        raise reject(recorder, gen, kind, f"Injected fault: {kind.name.lower().replace('_', ' ')}.")
    if engine.latency.overhead:
        await asyncio.sleep(engine.latency.overhead)
    try:
        return recorder, engine.submit(gen, recorder)
    except QueueFullError as exc:
        raise reject(recorder, gen, ErrorKind.QUEUE_FULL, str(exc)) from None


async def run_to_end(
    request: Request, engine: ModelEngine, recorder: RequestMetrics, gen: GenerationRequest, seq: Sequence
) -> Response | None:
    """Wait for a non-streaming request; returns a response when it did not complete normally."""
    if not seq.done.done():  # with --no-delay it may have completed on arrival
        watcher = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait((seq.done, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
    if not seq.done.done():
        engine.cancel(seq)
        hand_over(recorder, gen, seq, Outcome(CLIENT_CLOSED_REQUEST, FinishedReason.ABORT))
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    if seq.cancelled:  # the engine stopped under it: the server is shutting down
        kind = ErrorKind.OVERLOADED
        hand_over(recorder, gen, seq, Outcome(kind.status, FinishedReason.ABORT, kind))
        return FastJSONResponse(error_body(kind, SHUTDOWN_MESSAGE), status_code=kind.status)
    if seq.failed:
        kind = ErrorKind.SERVER_ERROR
        hand_over(recorder, gen, seq, Outcome(kind.status, FinishedReason.ERROR, kind))
        body = error_body(kind, ABORT_MESSAGE)
        body["usage"] = usage(seq.prompt_len, seq.completion_tokens, seq.cached_tokens)
        return FastJSONResponse(body, status_code=kind.status)
    return None


async def complete(
    request: Request, ctx: ServerContext, engine: ModelEngine, gen: GenerationRequest, renderer: Renderer
) -> Response:
    recorder, seq = await admit(ctx, engine, gen)
    failure = await run_to_end(request, engine, recorder, gen, seq)
    if failure is not None:
        return failure
    hand_over(recorder, gen, seq, Outcome(200, finished_reason(seq)))
    return FastJSONResponse(renderer.full(seq, usage(seq.prompt_len, seq.completion_tokens, seq.cached_tokens)))


class SSEResponse(StreamingResponse):
    """Server-sent events whose request is always closed out, even when the client leaves first."""

    def __init__(self, events: "_EventStream") -> None:
        super().__init__(events.frames(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A client that leaves before the first frame means the generator never ran its finally.
            await self.body_iterator.aclose()  # type: ignore[attr-defined]
            self._events.close()


async def stream(
    ctx: ServerContext,
    engine: ModelEngine,
    gen: GenerationRequest,
    renderer: Renderer,
    include_usage: bool,
    continuous_usage: bool,
) -> Response:
    recorder, seq = await admit(ctx, engine, gen)
    return SSEResponse(_EventStream(engine, recorder, gen, seq, renderer, include_usage, continuous_usage))


class _EventStream:
    def __init__(
        self,
        engine: ModelEngine,
        recorder: RequestMetrics,
        gen: GenerationRequest,
        seq: Sequence,
        renderer: Renderer,
        include_usage: bool,
        continuous_usage: bool,
    ) -> None:
        self.engine, self.recorder, self.gen, self.seq = engine, recorder, gen, seq
        self.renderer, self.include_usage, self.continuous_usage = renderer, include_usage, continuous_usage
        self.outcome = Outcome(CLIENT_CLOSED_REQUEST, FinishedReason.ABORT, stream=StreamOutcome.CANCELLED)
        self._closed = False
        recorder.stream_opened()

    async def frames(self) -> AsyncIterator[bytes]:
        seq, renderer = self.seq, self.renderer
        assert seq.updates is not None
        started: set[int] = set()
        sent = 0
        try:
            while (deltas := await seq.updates.get()) is not None:
                for delta in deltas:
                    sent += 1
                    first = delta.choice not in started
                    started.add(delta.choice)
                    so_far = usage(seq.prompt_len, sent, seq.cached_tokens) if self.continuous_usage else None
                    yield sse(renderer.chunk(delta, first, so_far))
            if seq.cancelled:  # the engine stopped under it: the server is shutting down
                kind = ErrorKind.OVERLOADED
                self.outcome = Outcome(200, FinishedReason.ABORT, kind, StreamOutcome.FAILED)
                yield sse(error_body(kind, SHUTDOWN_MESSAGE))
            elif seq.failed:
                kind = ErrorKind.SERVER_ERROR
                self.outcome = Outcome(200, FinishedReason.ERROR, kind, StreamOutcome.FAILED)
                yield sse(error_body(kind, ABORT_MESSAGE))
            else:
                self.outcome = Outcome(200, finished_reason(seq), stream=StreamOutcome.COMPLETED)
                if self.include_usage:
                    yield sse(renderer.usage_chunk(usage(seq.prompt_len, sent, seq.cached_tokens)))
            yield b"data: [DONE]\n\n"
        finally:
            self.close()

    def close(self) -> None:
        """Idempotent: release the engine slot and the stream gauge, hand over the one record."""
        if self._closed:
            return
        self._closed = True
        self.engine.cancel(self.seq)
        self.recorder.stream_closed()
        hand_over(self.recorder, self.gen, self.seq, self.outcome)


async def respond(
    request: Request,
    ctx: ServerContext,
    engine: ModelEngine,
    body: GenerationParams,
    endpoint: str,
    prompt: list[Token],
    max_tokens: int | None,
    arrival: float,
    renderer: Renderer,
) -> Response:
    """Run a validated generation request and answer in JSON or as a stream."""
    check_length(len(prompt), max_tokens, ctx.settings.max_model_len)
    gen = GenerationRequest(
        endpoint=endpoint,
        model=body.model,
        prompt_tokens=prompt,
        arrival=arrival,
        max_tokens=max_tokens,
        n=body.n,
        stop=body.stops(),
        min_tokens=body.min_tokens,
        ignore_eos=body.ignore_eos,
        stream=body.stream,
        fault=ctx.engines.faults.draw(),
    )
    if not body.stream:
        return await complete(request, ctx, engine, gen, renderer)
    options = body.stream_options
    continuous = bool(options and options.continuous_usage_stats)
    include = bool(options and options.include_usage) or continuous
    return await stream(ctx, engine, gen, renderer, include, continuous)
