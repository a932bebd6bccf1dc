"""POST /v1/responses: OpenAI's Responses API (which vLLM serves since 0.10), through the same engine and
metrics as chat (endpoint ``/v1/responses``).

``input`` is text or messages, ``instructions`` a system message before them, ``max_output_tokens`` the
limit (an answer it cuts is ``incomplete``, reason ``max_output_tokens``). One answer, one message of
``output_text``. Streamed, the events are OpenAI's, each with its ``sequence_number`` and an ``event:``
line: ``response.created``, ``response.in_progress``, then with the first token ``output_item.added`` and
``content_part.added``, one ``response.output_text.delta`` a token, and ``output_text.done``,
``content_part.done``, ``output_item.done``, ``response.completed`` (with the usage: input, cached and
output tokens); a failure after the stream began is ``response.failed``. No ``[DONE]``.
"""

import random
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fakeai.context import accept
from fakeai.engine.sequence import Choice, Sequence, TokenDelta
from fakeai.engine.tokens import chat_prompt_tokens
from fakeai.errors import ErrorKind, OpenAIError
from fakeai.openapi import DocumentedRoute
from fakeai.routes.generation import Renderer, respond
from fakeai.schemas import ResponsesRequest

ENDPOINT = "/v1/responses"


def response_usage(chat: dict[str, Any]) -> dict[str, Any]:
    """The Responses API's usage from the chat-shaped one."""
    return {
        "input_tokens": chat["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": chat["prompt_tokens_details"]["cached_tokens"]},
        "output_tokens": chat["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": chat["total_tokens"],
    }


class ResponsesRenderer(Renderer):
    id_prefix = "resp_"
    full_object = "response"
    done = b""

    def __init__(self, body: ResponsesRequest) -> None:
        super().__init__(body.model)
        self.body = body
        self.item_id = f"msg_{random.getrandbits(96):024x}"
        self.sequence_number = 0
        self.text: list[str] = []

    def response(
        self, status: str, text: str | None, usage: dict[str, Any] | None, error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The response object; ``text`` None while nothing was written."""
        output = [] if text is None else [self.message("completed", text)]
        incomplete = status == "incomplete"
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": error,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": self.body.instructions,
            "max_output_tokens": self.body.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": True,
            "temperature": self.body.temperature,
            "tool_choice": "auto",
            "tools": [],
            "top_p": self.body.top_p,
            "usage": usage,
        }

    def message(self, status: str, text: str | None) -> dict[str, Any]:
        content = [] if text is None else [self.part(text)]
        return {"id": self.item_id, "type": "message", "status": status, "role": "assistant", "content": content}

    @staticmethod
    def part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": []}

    def full(self, seq: Sequence, usage: dict[str, Any]) -> dict[str, Any]:
        (choice,) = seq.choices
        status = "incomplete" if choice.finish_reason == "length" else "completed"
        return self.response(status, "".join(choice.text), response_usage(usage))

    def full_choice(self, index: int, choice: Choice) -> dict[str, Any]:
        raise AssertionError("a response is one message, rendered whole by full()")

    # -- the stream --------------------------------------------------------------------------------------

    def frame(self, payload: dict[str, Any]) -> bytes:
        payload["sequence_number"] = self.sequence_number
        self.sequence_number += 1
        kind: str = payload["type"]
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def first_frames(self) -> list[bytes]:
        started = self.response("in_progress", None, None)
        return [
            self.frame({"type": "response.created", "response": started}),
            self.frame({"type": "response.in_progress", "response": started}),
        ]

    def opening_chunks(self, choice: int, usage: dict[str, Any] | None, with_usage: bool) -> list[dict[str, Any]]:
        return [
            {"type": "response.output_item.added", "output_index": 0, "item": self.message("in_progress", None)},
            {
                "type": "response.content_part.added",
                "item_id": self.item_id,
                "output_index": 0,
                "content_index": 0,
                "part": self.part(""),
            },
        ]

    def chunk(self, delta: TokenDelta, first: bool, usage: dict[str, Any] | None, with_usage: bool) -> dict[str, Any]:
        self.text.append(delta.text)
        return {
            "type": "response.output_text.delta",
            "item_id": self.item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": delta.text,
            "logprobs": [],
        }

    def last_frames(self, seq: Sequence, usage: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
        text = "".join(self.text)
        where = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        return [
            {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
            {"type": "response.content_part.done", **where, "part": self.part(text)},
            {"type": "response.output_item.done", "output_index": 0, "item": self.message("completed", text)},
            {"type": "response.completed", "response": self.full(seq, usage)},
        ]

    def error_frame(self, body: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
        """``response.failed``, with what was written and the usage so far (the prompt was processed)."""
        error = {"code": body["error"]["code"] or body["error"]["type"], "message": body["error"]["message"]}
        failed = self.response("failed", "".join(self.text), response_usage(usage), error)
        return {"type": "response.failed", "response": failed}


async def create_response(request: Request) -> Response:
    accepted = await accept(request, ResponsesRequest)
    body = accepted.body
    if body.n != 1:
        raise OpenAIError(ErrorKind.INVALID_REQUEST, "A response has one output: n must be 1.", param="n")
    return await respond(
        request,
        accepted,
        endpoint=ENDPOINT,
        prompt=chat_prompt_tokens(body.messages()),
        max_tokens=body.max_output_tokens,
        renderer=ResponsesRenderer(body),
    )


ROUTE = DocumentedRoute(
    ENDPOINT,
    create_response,
    methods=["POST"],
    body=ResponsesRequest,
    tag="generation",
    summary="Create a model response",
)
