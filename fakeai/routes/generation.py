"""Generation endpoints' shared half: OpenAI response shapes, JSON answers and server-sent events.

The request's life (admission, faults, the one record) is in ``fakeai.routes.lifecycle``; this module
turns a finished or running ``Sequence`` into what an endpoint answers, through its ``Renderer`` (chat and
text completions, and the Responses API, whose stream has its own events).
"""

import asyncio
import random
import time
from collections.abc import AsyncGenerator
from collections.abc import Sequence as Seq
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from exporter.facts import CLIENT_CLOSED_REQUEST, FinishedReason, StreamOutcome
from exporter.metrics import RequestMetrics
from fakeai.context import Accepted
from fakeai.engine.faults import FaultKind
from fakeai.engine.scheduler import ModelEngine
from fakeai.engine.sequence import Choice, GenerationRequest, Sequence, TokenDelta
from fakeai.engine.tokens import Token
from fakeai.errors import ErrorKind, OpenAIError, error_body
from fakeai.jsonio import FastJSONResponse, sse
from fakeai.routes.lifecycle import (
    FAULT_ERRORS,
    SHUTDOWN_MESSAGE,
    Outcome,
    abort_message,
    admit,
    hand_over,
    per_request_metrics,
    run_to_end,
    until_disconnected,
    usage,
)
from fakeai.routes.prompts import check_length
from fakeai.schemas import GenerationParams

GenerationBody = TypeVar("GenerationBody", bound=GenerationParams)


class Renderer:
    """Turns engine output into one endpoint's OpenAI shapes; subclasses fill in the choices."""

    id_prefix = ""
    full_object = ""
    chunk_object = ""

    def __init__(self, model: str) -> None:
        # Unique, not secret: the random module costs a tenth of what os.urandom does, per request.
        self.id = self.id_prefix + random.randbytes(12).hex()
        self.created = int(time.time())
        self.model = model

    def envelope(
        self, obj: str, choices: list[dict[str, Any]], usage: dict[str, Any] | None, *, with_usage: bool = True
    ) -> dict[str, Any]:
        """A response or chunk. A chunk carries ``usage`` only when the client asked for usage
        (``stream_options``), as OpenAI documents it: null on every chunk but the last."""
        body = {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fakeai",
            "choices": choices,
        }
        if with_usage:
            body["usage"] = usage
        return body

    def full(self, seq: Sequence, usage: dict[str, Any]) -> dict[str, Any]:
        return self.envelope(self.full_object, [self.full_choice(i, c) for i, c in enumerate(seq.choices)], usage)

    def chunk(self, delta: TokenDelta, first: bool, usage: dict[str, Any] | None, with_usage: bool) -> dict[str, Any]:
        return self.envelope(self.chunk_object, [self.chunk_choice(delta, first)], usage, with_usage=with_usage)

    def opening_chunks(self, choice: int, usage: dict[str, Any] | None, with_usage: bool) -> list[dict[str, Any]]:
        """What is sent before a choice's first content chunk, if the API sends anything."""
        return []

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        return self.envelope(self.chunk_object, [], usage)

    def first_frames(self) -> list[bytes]:
        """Frames sent before the engine's first token (none for chat and text completions)."""
        return []

    def frame(self, payload: dict[str, Any]) -> bytes:
        return sse(payload)

    def last_frames(self, seq: Sequence, usage: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
        """What ends a completed stream: the usage chunk, when asked for (``[DONE]`` follows)."""
        return [self.usage_chunk(usage)] if include_usage else []

    def error_frame(self, body: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
        """A failure after the stream began: OpenAI's error object as an event (``usage``: so far)."""
        return body

    done = b"data: [DONE]\n\n"
    """The stream's last frame."""

    def full_choice(self, index: int, choice: Choice) -> dict[str, Any]:
        raise NotImplementedError

    def chunk_choice(self, delta: TokenDelta, first: bool) -> dict[str, Any]:
        raise NotImplementedError


def finished_reason(seq: Sequence) -> FinishedReason:
    if len(seq.choices) == 1:
        return FinishedReason.LENGTH if seq.choices[0].finish_reason == "length" else FinishedReason.STOP
    reasons = {c.finish_reason for c in seq.choices}
    return FinishedReason.LENGTH if "length" in reasons else FinishedReason.STOP


async def complete(request: Request, accepted: Accepted[Any], gen: GenerationRequest, renderer: Renderer) -> Response:
    """Answer in one JSON body once the engine is done."""
    engine = accepted.engine
    recorder, seq = await admit(accepted.ctx, engine, gen)
    failure = await run_to_end(request, engine, recorder, gen, seq)
    if failure is not None:
        return failure
    hand_over(recorder, gen, seq, Outcome(200, finished_reason(seq)))
    body = renderer.full(seq, usage(seq.prompt_len, seq.completion_tokens, seq.cached_tokens))
    if accepted.ctx.settings.enable_per_request_metrics and gen.n == 1:  # vLLM: only for a single choice
        body["metrics"] = per_request_metrics(seq)
    return FastJSONResponse(body)


class SSEResponse(StreamingResponse):
    """Server-sent events, each frame sent as the engine emits it, the request always closed out.

    A client that leaves is noticed by one task watching its connection, which stops the request in
    the engine. Starlette's own streaming does the same through an anyio task group per response,
    which cost more than the rest of a streamed request's work.
    """

    def __init__(self, events: "_EventStream") -> None:
        self._frames = events.frames()
        super().__init__(self._frames, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        frames = self._frames
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for frame in frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            self._events.client_left()  # the connection broke under a send
        finally:
            watcher.cancel()
            # A client that leaves before the first frame means the generator never ran its finally.
            await frames.aclose()
            self._events.close()

    async def _watch(self, receive: Receive) -> None:
        await until_disconnected(receive)
        self._events.client_left()


async def stream(
    accepted: Accepted[Any], gen: GenerationRequest, renderer: Renderer, *, include_usage: bool, continuous_usage: bool
) -> Response:
    """Answer as server-sent events, one chunk per token as the engine emits it."""
    recorder, seq = await admit(accepted.ctx, accepted.engine, gen)
    events = _EventStream(
        accepted.engine,
        recorder,
        gen,
        seq,
        renderer,
        include_usage=include_usage,
        continuous_usage=continuous_usage,
        request_metrics=accepted.ctx.settings.enable_per_request_metrics and gen.n == 1,
    )
    return SSEResponse(events)


class _EventStream:
    def __init__(
        self,
        engine: ModelEngine,
        recorder: RequestMetrics,
        gen: GenerationRequest,
        seq: Sequence,
        renderer: Renderer,
        *,
        include_usage: bool,
        continuous_usage: bool,
        request_metrics: bool = False,
    ) -> None:
        self.engine, self.recorder, self.gen, self.seq, self.renderer = engine, recorder, gen, seq, renderer
        self.request_metrics = request_metrics
        """vLLM's per-request ``metrics``: they ride on the final usage chunk only."""
        self.include_usage = include_usage
        self.continuous_usage = continuous_usage
        """vLLM's ``continuous_usage_stats``: every chunk carries the usage so far."""
        self.outcome = Outcome(CLIENT_CLOSED_REQUEST, FinishedReason.ABORT, stream=StreamOutcome.CANCELLED)
        self._closed = False
        self._client_gone = False
        recorder.stream_opened()

    def client_left(self) -> None:
        """The client went away mid-stream: stop the request in the engine; it ends as cancelled."""
        self._client_gone = True
        self.engine.cancel(self.seq)

    async def frames(self) -> AsyncGenerator[bytes, None]:
        seq, renderer = self.seq, self.renderer
        assert seq.updates is not None
        started: set[int] = set()
        sent = 0
        try:
            for frame in renderer.first_frames():
                yield frame
            while (deltas := await seq.updates.get()) is not None:
                for delta in deltas:
                    first = delta.choice not in started
                    opening = b""
                    if first:
                        started.add(delta.choice)
                        so_far = usage(seq.prompt_len, sent, seq.cached_tokens) if self.continuous_usage else None
                        # Sent with the first token, in the same write: they arrive together either way.
                        opening = b"".join(
                            map(renderer.frame, renderer.opening_chunks(delta.choice, so_far, self.include_usage))
                        )
                    sent += delta.tokens
                    so_far = usage(seq.prompt_len, sent, seq.cached_tokens) if self.continuous_usage else None
                    yield opening + renderer.frame(renderer.chunk(delta, first, so_far, self.include_usage))
            if self._client_gone:
                return  # nobody to tell: the outcome stays "cancelled"
            if seq.cancelled:  # the engine stopped under it: the server is shutting down
                kind = ErrorKind.OVERLOADED
                self.outcome = Outcome(200, FinishedReason.ABORT, kind, StreamOutcome.FAILED)
                so_far = usage(seq.prompt_len, sent, seq.cached_tokens)
                yield renderer.frame(renderer.error_frame(error_body(kind, SHUTDOWN_MESSAGE), so_far))
            elif seq.failed:
                kind = FAULT_ERRORS[FaultKind.ABORT]
                self.outcome = Outcome(200, FinishedReason.ERROR, kind, StreamOutcome.FAILED)
                so_far = usage(seq.prompt_len, sent, seq.cached_tokens)
                yield renderer.frame(renderer.error_frame(error_body(kind, abort_message(seq)), so_far))
            else:
                self.outcome = Outcome(200, finished_reason(seq), stream=StreamOutcome.COMPLETED)
                last = renderer.last_frames(seq, usage(seq.prompt_len, sent, seq.cached_tokens), self.include_usage)
                if last and self.request_metrics:
                    last[-1]["metrics"] = per_request_metrics(seq)
                for payload in last:
                    yield renderer.frame(payload)
            if renderer.done:
                yield renderer.done
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
    accepted: Accepted[GenerationBody],
    *,
    endpoint: str,
    prompt: Seq[Token],
    max_tokens: int | None,
    renderer: Renderer,
    multimodal: tuple[bytes, ...] = (),
) -> Response:
    """Run a validated generation request and answer in JSON or as a stream."""
    ctx, body = accepted.ctx, accepted.body
    check_length(len(prompt), max_tokens, ctx.settings.max_model_len)
    if body.priority and ctx.settings.scheduling_policy != "priority":
        # vLLM's engine input checks: a priority needs the priority policy.
        raise OpenAIError(
            ErrorKind.INVALID_REQUEST,
            f"Got priority {body.priority} but Priority scheduling is not enabled.",
            param="priority",
        )
    gen = GenerationRequest(
        endpoint=endpoint,
        model=accepted.engine.model,  # an adapter's base model: what the metrics are labelled with
        lora=accepted.lora,
        priority=body.priority,
        prompt_tokens=prompt,
        arrival=accepted.arrival,
        max_tokens=max_tokens,
        n=body.n,
        stop=body.stops(),
        min_tokens=body.min_tokens,
        ignore_eos=body.ignore_eos,
        stream=body.stream,
        fault=accepted.fault or ctx.engines.faults.draw(),
        multimodal=multimodal,
    )
    if not body.stream:
        return await complete(request, accepted, gen, renderer)
    options = body.stream_options
    continuous = bool(options and options.continuous_usage_stats)
    include = bool(options and options.include_usage) or continuous
    return await stream(accepted, gen, renderer, include_usage=include, continuous_usage=continuous)
