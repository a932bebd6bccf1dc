"""POST /v1/completions (the legacy text endpoint)."""

import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fakeai.context import arrival_time, context, parse_body
from fakeai.engine import Sequence
from fakeai.engine.sequence import TokenDelta
from fakeai.engine.tokens import tokenize
from fakeai.openapi import DocumentedRoute
from fakeai.routes.generation import respond
from fakeai.schemas import CompletionRequest

ENDPOINT = "/v1/completions"


class CompletionRenderer:
    def __init__(self, model: str, echo: str) -> None:
        self.id = "cmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        self.model = model
        self.echo = echo

    def _base(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fakeai",
        }

    def full(self, seq: Sequence, usage: dict[str, Any]) -> dict[str, Any]:
        body = self._base()
        body["choices"] = [
            {"index": i, "text": self.echo + "".join(c.text), "logprobs": None, "finish_reason": c.finish_reason}
            for i, c in enumerate(seq.choices)
        ]
        body["usage"] = usage
        return body

    def chunk(self, delta: TokenDelta, first: bool, usage: dict[str, Any] | None) -> dict[str, Any]:
        body = self._base()
        text = self.echo + delta.text if first else delta.text
        body["choices"] = [
            {"index": delta.choice, "text": text, "logprobs": None, "finish_reason": delta.finish_reason}
        ]
        body["usage"] = usage
        return body

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        body = self._base()
        body["choices"] = []
        body["usage"] = usage
        return body


async def create_completion(request: Request) -> Response:
    ctx = context(request)
    arrival = arrival_time(request)
    ctx.check_auth(request)
    body = await parse_body(request, CompletionRequest)
    engine = ctx.engine_for(body.model)
    raw = body.prompt[0] if isinstance(body.prompt, list) and isinstance(body.prompt[0], str) else body.prompt
    prompt = tokenize(raw) if isinstance(raw, str) else list(raw)
    max_tokens = body.token_limit()
    return await respond(
        request,
        ctx,
        engine,
        body,
        ENDPOINT,
        prompt,
        max_tokens,
        arrival,
        CompletionRenderer(body.model, raw if body.echo and isinstance(raw, str) else ""),
    )


# A plain Starlette route: FastAPI's per-request dependency machinery costs more than this whole
# handler's own work with --no-delay. fakeai.openapi documents it with the request model's schema.
ROUTE = DocumentedRoute(
    ENDPOINT,
    create_completion,
    methods=["POST"],
    body=CompletionRequest,
    tag="generation",
    summary="Create a text completion",
)
