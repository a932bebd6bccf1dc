"""A standalone bridge: a Starlette app streaming any source through a category mapping."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from bridge.hub import Hub
from bridge.server import stream_endpoint


def create_bridge_app(hub: Hub) -> Starlette:
    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    async def health(_: Request) -> JSONResponse:
        return JSONResponse(
            {"status": "ok", "subscribers": len(hub.clients), "ticks": hub.ticks, "failed_ticks": hub.failed_ticks}
        )

    return Starlette(
        routes=[Route("/health", health), WebSocketRoute("/metrics/stream", stream_endpoint(hub))], lifespan=lifespan
    )
