"""POST /v1/chat/completions."""

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fakeai.context import accept
from fakeai.engine.mm_cache import item_key
from fakeai.engine.sequence import Choice, TokenDelta
from fakeai.engine.tokens import chat_prompt_tokens
from fakeai.errors import missing_parameter
from fakeai.openapi import DocumentedRoute
from fakeai.routes.generation import Renderer, respond
from fakeai.schemas import ChatCompletionRequest

ENDPOINT = "/v1/chat/completions"


class ChatRenderer(Renderer):
    id_prefix = "chatcmpl-"
    full_object = "chat.completion"
    chunk_object = "chat.completion.chunk"

    def full_choice(self, index: int, choice: Choice) -> dict[str, Any]:
        message = {"role": "assistant", "content": "".join(choice.text), "refusal": None}
        return {"index": index, "message": message, "logprobs": None, "finish_reason": choice.finish_reason}

    def chunk_choice(self, delta: TokenDelta, first: bool) -> dict[str, Any]:
        return {
            "index": delta.choice,
            "delta": {"content": delta.text},
            "logprobs": None,
            "finish_reason": delta.finish_reason,
        }

    def opening_chunks(self, choice: int, usage: dict[str, Any] | None, with_usage: bool) -> list[dict[str, Any]]:
        """vLLM's first chunk of a choice: the role, with empty content, before any token
        (``chat_completion_stream_generator`` in vllm/entrypoints/openai/chat_completion/serving.py @
        5e918640; it sends it with the first output, so it arrives with the first token)."""
        opening = {
            "index": choice,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
        return [self.envelope(self.chunk_object, [opening], usage, with_usage=with_usage)]


async def create_chat_completion(request: Request) -> Response:
    accepted = await accept(request, ChatCompletionRequest)
    body = accepted.body
    if (index := body.message_without_content()) is not None:
        raise missing_parameter(f"messages[{index}].content")
    return await respond(
        request,
        accepted,
        endpoint=ENDPOINT,
        prompt=chat_prompt_tokens((m.role, m.text()) for m in body.messages),
        max_tokens=body.token_limit(),
        renderer=ChatRenderer(body.model),
        multimodal=tuple(item_key(item) for m in body.messages for item in m.media()),
    )


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
