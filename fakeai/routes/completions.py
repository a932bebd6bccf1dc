"""POST /v1/completions (the legacy text endpoint)."""

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fakeai.context import accept
from fakeai.engine.sequence import Choice, TokenDelta
from fakeai.engine.tokens import tokenize
from fakeai.openapi import DocumentedRoute
from fakeai.routes.generation import Renderer, respond
from fakeai.schemas import CompletionRequest

ENDPOINT = "/v1/completions"


class CompletionRenderer(Renderer):
    id_prefix = "cmpl-"
    full_object = chunk_object = "text_completion"

    def __init__(self, model: str, echo: str) -> None:
        super().__init__(model)
        self.echo = echo

    def full_choice(self, index: int, choice: Choice) -> dict[str, Any]:
        text = self.echo + "".join(choice.text)
        return {"index": index, "text": text, "logprobs": None, "finish_reason": choice.finish_reason}

    def chunk_choice(self, delta: TokenDelta, first: bool) -> dict[str, Any]:
        text = self.echo + delta.text if first else delta.text
        return {"index": delta.choice, "text": text, "logprobs": None, "finish_reason": delta.finish_reason}


async def create_completion(request: Request) -> Response:
    accepted = await accept(request, CompletionRequest)
    body = accepted.body
    raw = body.prompt[0] if isinstance(body.prompt, list) and isinstance(body.prompt[0], str) else body.prompt
    return await respond(
        request,
        accepted,
        endpoint=ENDPOINT,
        prompt=tokenize(raw) if isinstance(raw, str) else list(raw),
        max_tokens=body.token_limit(),
        renderer=CompletionRenderer(body.model, raw if body.echo and isinstance(raw, str) else ""),
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
