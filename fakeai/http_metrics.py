"""The HTTP middleware: counts every request by route template (never the raw path) and stamps its arrival."""

import time
from collections.abc import Iterable, Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporter.metrics import ServerMetrics

ARRIVAL = "fakeai_arrival"
UNMATCHED = "unmatched"  # every path with no route shares this one label value
NOT_INSTRUMENTED = frozenset({"/metrics", "/metrics/stream"})
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
MAX_MEMO = 1024


def content_length(headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The Content-Length header's value, 0 without one (or with one that is not a number), as
    prometheus-fastapi-instrumentator reads it for http_request_size_bytes and http_response_size_bytes."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The template of the route that serves ``scope``, as prometheus-fastapi-instrumentator finds it:
    the first full match, else the first partial one (a known path with another method), else
    ``UNMATCHED``. Matched here rather than read from the scope, which not every FastAPI release fills."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", UNMATCHED)
        if match is Match.PARTIAL and partial is None:
            partial = getattr(route, "path", UNMATCHED)
    return partial or UNMATCHED


class HttpMetricsMiddleware:
    """Counts every HTTP request by route template, as vLLM's instrumentator does.

    A request whose route matched counts under that route's template whatever it answered (a 404
    for an unknown model included); only paths no route serves share ``UNMATCHED``.
    """

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the router's own list: routes added later are seen too
        # Most traffic repeats a handful of (method, path) pairs; a bounded memo spares matching them
        # twice per request (the router matched once already). Routes never change once serving.
        self._templates: dict[tuple[str, str], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        # The arrival time every request-level latency starts from: as early as the server sees it.
        scope.setdefault("state", {})[ARRIVAL] = start
        status = 500
        response_bytes = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
                response_bytes = content_length(message.get("headers", ()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            key = (scope["method"], scope["path"])
            template = self._templates.get(key)
            if template is None:
                template = route_template(self.routes, scope)
                if len(self._templates) >= MAX_MEMO:
                    self._templates.clear()  # client-chosen paths must not grow memory
                self._templates[key] = template
            if template not in NOT_INSTRUMENTED:
                method = key[0] if key[0] in METHODS else "OTHER"
                request_bytes = content_length(scope["headers"])
                duration = time.monotonic() - start
                self.metrics.http_request(template, method, status, duration, request_bytes, response_bytes)
