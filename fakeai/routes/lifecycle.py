"""The life of one accepted request, shared by every model endpoint (chat, completions, embeddings).

admit -> (injected fault) -> API overhead -> engine queue -> ... -> exactly one ``RequestRecord``.
Whatever happens (error, client gone, stream cut, shutdown), ``hand_over`` is called once, and every
gauge the request raised is lowered again.
"""

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from exporter.facts import CLIENT_CLOSED_REQUEST, FinishedReason, RequestRecord, StreamOutcome
from exporter.metrics import RequestMetrics
from fakeai.context import ServerContext
from fakeai.engine.faults import FaultKind
from fakeai.engine.scheduler import ModelEngine, QueueFullError
from fakeai.engine.sequence import GenerationRequest, Sequence
from fakeai.errors import ErrorKind, OpenAIError, error_body
from fakeai.jsonio import FastJSONResponse

ABORT_MESSAGE = "The engine failed in the middle of generation (injected fault)."
SLEEP_MESSAGE = "The engine was put to sleep (POST /sleep, mode=abort) while this request was in flight."
SHUTDOWN_MESSAGE = "The server is shutting down."
# What a client sees for each injected fault the engine draws. An abort fails part-way through: an
# error event on a stream, a 500 (with the usage so far) otherwise; embeddings, which generate
# nothing, are refused up front with the 500.
FAULT_ERRORS: dict[FaultKind, ErrorKind] = {
    FaultKind.RATE_LIMITED: ErrorKind.RATE_LIMITED,
    FaultKind.SERVER_ERROR: ErrorKind.SERVER_ERROR,
    FaultKind.OVERLOADED: ErrorKind.OVERLOADED,
    FaultKind.ABORT: ErrorKind.SERVER_ERROR,
}


@dataclass
class Outcome:
    """How the request ended, as the client saw it."""

    status: int
    reason: FinishedReason
    error: ErrorKind | None = None
    stream: StreamOutcome | None = None


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def per_request_metrics(seq: Sequence) -> dict[str, float | None]:
    """vLLM's ``metrics`` object (``--enable-per-request-metrics``; docs/features/per_request_metrics.md),
    from the very readings the request's histogram observations used: TTFT from scheduling to the first
    token (vLLM's definition here, unlike the TTFT histogram's from arrival), the decode time, the queue
    time, the mean gap between tokens, and tokens a second from scheduling to the last token."""

    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else seconds * 1000.0

    scheduled, first, last = seq.scheduled, seq.first_token, seq.last_token
    decode = last - first if first is not None and last is not None else None
    tokens = seq.max_choice_tokens
    running = last - scheduled if last is not None and scheduled is not None else None
    return {
        "time_to_first_token_ms": ms(first - scheduled if first is not None and scheduled is not None else None),
        "generation_time_ms": ms(decode),
        "queue_time_ms": ms(scheduled - seq.queued if scheduled is not None and seq.queued is not None else None),
        "mean_itl_ms": ms(decode / (tokens - 1) if decode is not None and tokens > 1 else None),
        "tokens_per_second": tokens / running if running else None,
    }


def hand_over(recorder: RequestMetrics, gen: GenerationRequest, seq: Sequence | None, outcome: Outcome) -> None:
    """The one record of a request, handed to the metrics when it ends."""
    error = outcome.error
    record = RequestRecord(
        endpoint=gen.endpoint,
        model=gen.model,
        status=outcome.status,
        finished_reason=outcome.reason,
        arrival=gen.arrival,
        finished=time.monotonic(),
        error_status=error.status if error else None,
        error_type=error.type if error else None,
        stream_outcome=outcome.stream,
        stream=gen.stream,
    )
    if seq is not None:  # the engine had it (else it was refused before)
        record.scheduled, record.queued = seq.scheduled, seq.queued
        record.first_token, record.last_token = seq.first_token, seq.last_token
        record.prompt_tokens, record.cached_tokens = seq.prompt_len, seq.cached_tokens
        record.preemptions, record.completion_tokens = seq.preemptions, seq.completion_tokens
        record.max_choice_tokens = seq.max_choice_tokens
    recorder.finished(record)


def reject(recorder: RequestMetrics, gen: GenerationRequest, kind: ErrorKind, message: str) -> OpenAIError:
    """Record a request refused before it reached the engine, and return the error to raise."""
    hand_over(recorder, gen, None, Outcome(kind.status, FinishedReason.ERROR, kind))
    return OpenAIError(kind, message)


async def admit(ctx: ServerContext, engine: ModelEngine, gen: GenerationRequest) -> tuple[RequestMetrics, Sequence]:
    """Count the request, apply an injected fault or the API overhead, and queue it."""
    recorder = ctx.metrics.request(gen.endpoint, gen.model, engine.index, gen.priority)
    recorder.accepted(gen.max_tokens, gen.n, gen.stream)
    fault = gen.fault
    if fault is not None and fault.delay:
        await asyncio.sleep(fault.delay)  # a forced delay (X-Fakeai-Fault: delay;ms=N)
    if fault is not None and fault.kind is not None and not (fault.mid_generation and gen.generate):
        kind = FAULT_ERRORS[fault.kind]
        raise reject(recorder, gen, kind, f"Injected fault: {kind.name.lower().replace('_', ' ')}.")
    if engine.latency.overhead:
        await asyncio.sleep(engine.latency.overhead)
    try:
        return recorder, engine.submit(gen, recorder)
    except QueueFullError as exc:
        raise reject(recorder, gen, ErrorKind.QUEUE_FULL, str(exc)) from None


def abort_message(seq: Sequence) -> str:
    """Why the engine aborted a request: an injected fault, or ``/sleep`` with ``mode=abort``."""
    return SLEEP_MESSAGE if seq.slept else ABORT_MESSAGE


async def until_disconnected(receive: Receive) -> None:
    """Returns when the client has gone (the request body is already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def run_to_end(
    request: Request, engine: ModelEngine, recorder: RequestMetrics, gen: GenerationRequest, seq: Sequence
) -> Response | None:
    """Wait for a non-streaming request; returns a response when it did not complete normally."""
    if not seq.done.done():  # with --no-delay it may have completed on arrival
        watcher = asyncio.ensure_future(until_disconnected(request.receive))
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
        kind = FAULT_ERRORS[FaultKind.ABORT]
        hand_over(recorder, gen, seq, Outcome(kind.status, FinishedReason.ERROR, kind))
        body = error_body(kind, abort_message(seq))
        body["usage"] = usage(seq.prompt_len, seq.completion_tokens, seq.cached_tokens)
        return FastJSONResponse(body, status_code=kind.status)
    return None
