"""JSON on the hot path: orjson writes a response body about ten times faster than the stdlib."""

from typing import Any

import orjson
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send


class FastJSONResponse(JSONResponse):
    """A JSON response rendered by orjson, its two headers written directly.

    ``Response.init_headers`` (lower-casing, membership tests, a charset check) cost about as much as
    rendering a completion; a body and a status are all these responses ever have.
    """

    def __init__(self, content: Any, status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
        self.raw_headers = [(b"content-length", str(len(self.body)).encode()), _CONTENT_TYPE]

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette's checks for a WebSocket denial and a background task: neither applies here.
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


_CONTENT_TYPE = (b"content-type", b"application/json")


def sse(payload: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``payload``."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"
