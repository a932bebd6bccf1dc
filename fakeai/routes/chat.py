"""POST /v1/chat/completions."""

import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fakeai.context import arrival_time, context, parse_body
from fakeai.engine import Sequence
from fakeai.engine.sequence import TokenDelta
from fakeai.engine.tokens import chat_prompt_tokens
from fakeai.openapi import DocumentedRoute
from fakeai.routes.generation import respond
from fakeai.schemas import ChatCompletionRequest

ENDPOINT = "/v1/chat/completions"


class ChatRenderer:
    def __init__(self, model: str) -> None:
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        self.model = model

    def _base(self, obj: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fakeai",
        }

    def full(self, seq: Sequence, usage: dict[str, Any]) -> dict[str, Any]:
        body = self._base("chat.completion")
        body["choices"] = [
            {
                "index": i,
                "message": {"role": "assistant", "content": "".join(c.text), "refusal": None},
                "logprobs": None,
                "finish_reason": c.finish_reason,
            }
            for i, c in enumerate(seq.choices)
        ]
        body["usage"] = usage
        return body

    def chunk(self, delta: TokenDelta, first: bool, usage: dict[str, Any] | None) -> dict[str, Any]:
        body = self._base("chat.completion.chunk")
        message = {"role": "assistant", "content": delta.text} if first else {"content": delta.text}
        body["choices"] = [
            {"index": delta.choice, "delta": message, "logprobs": None, "finish_reason": delta.finish_reason}
        ]
        body["usage"] = usage
        return body

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        body = self._base("chat.completion.chunk")
        body["choices"] = []
        body["usage"] = usage
        return body


async def create_chat_completion(request: Request) -> Response:
    ctx = context(request)
    arrival = arrival_time(request)
    ctx.check_auth(request)
    body = await parse_body(request, ChatCompletionRequest)
    engine = ctx.engine_for(body.model)
    prompt = chat_prompt_tokens((m.role, m.text()) for m in body.messages)
    max_tokens = body.token_limit()
    return await respond(request, ctx, engine, body, ENDPOINT, prompt, max_tokens, arrival, ChatRenderer(body.model))


# A plain Starlette route: FastAPI's per-request dependency machinery costs more than this whole
# handler's own work with --no-delay. fakeai.openapi documents it with the request model's schema.
ROUTE = DocumentedRoute(
    ENDPOINT,
    create_chat_completion,
    methods=["POST"],
    body=ChatCompletionRequest,
    tag="generation",
    summary="Create a chat completion",
)
