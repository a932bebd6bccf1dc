"""The generation endpoints, served without the general middleware stack.

Every request to FastAPI crosses five layers (server errors, HTTP metrics, exceptions, FastAPI's exit
stack, the router) and each chunk a response sends crosses four ``send`` wrappers. For the three
endpoints that carry the load, ``HotPath`` does what those layers would do for them (arrival stamp,
OpenAI error envelope, the 500 of a bug, the HTTP metrics) in one layer, and hands every other request
to the stack unchanged. The routes stay registered with FastAPI too, for /docs and for the 405 of a
wrong method.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from exporter.facts import CLIENT_CLOSED_REQUEST
from exporter.metrics import ServerMetrics
from fakeai.errors import ErrorKind, OpenAIError, error_body
from fakeai.http_metrics import ARRIVAL, content_length

log = logging.getLogger("fakeai")
Endpoint = Callable[[Request], Awaitable[Response]]


class HotPath:
    def __init__(self, app: ASGIApp, endpoints: Mapping[str, Endpoint], metrics: ServerMetrics) -> None:
        self.app = app
        self.endpoints = endpoints
        """POST endpoints by exact path."""
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.endpoints.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        scope.setdefault("state", {})[ARRIVAL] = start
        status = 500
        response_bytes = 0
        responding = False
        try:
            try:
                response = await endpoint(Request(scope, receive, send))
            except OpenAIError as exc:
                response = exc.response()
            # The status is the response's own: no wrapper around ``send`` to watch for it, per message.
            status, responding = response.status_code, True
            response_bytes = content_length(response.raw_headers)
            await response(scope, receive, send)
        except ClientDisconnect:
            status = CLIENT_CLOSED_REQUEST  # gone before its body arrived: nobody to answer
        except Exception:
            log.exception("unhandled error on %s", scope["path"])
            if responding:
                raise  # the response had begun: the server closes the connection, the client sees it cut short
            status = 500
            failure = JSONResponse(error_body(ErrorKind.SERVER_ERROR, "Internal server error."), status_code=500)
            response_bytes = content_length(failure.raw_headers)
            await failure(scope, receive, send)
        finally:
            duration = time.monotonic() - start
            request_bytes = content_length(scope["headers"])
            self.metrics.http_request(scope["path"], "POST", status, duration, request_bytes, response_bytes)
