"""A text sent to many WebSocket connections is encoded, compressed and framed once per kind of
connection (a short one once for all), and every client, compressing or not, reads exactly what was sent."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import PerMessageDeflate

from bridge.frames import COMPRESS_FROM, PLAIN, PROTOCOL, FrameCache, SharedFrames

# Two texts long enough to be compressed, and alike enough that a compressor with history would encode
# the second by reference to the first: a client given them in another order could not read it.
FIRST = json.dumps({"type": "historical_data", "data": {f"figure_{i}": i * 1.25 for i in range(1000)}})
SECOND = FIRST.replace("figure_", "number_")
assert min(len(FIRST), len(SECOND)) >= COMPRESS_FROM


async def send_in_the_order_asked(websocket: WebSocket) -> None:
    """Sends FIRST and SECOND in the order the client names, then a text of its own, then closes."""
    await websocket.accept()
    order = await websocket.receive_text()
    for text in (FIRST, SECOND) if order == "first" else (SECOND, FIRST):
        await websocket.send_text(text)
    await websocket.send_text(f"yours: {order}")
    await websocket.close()


@contextlib.asynccontextmanager
async def serving(**options: object) -> AsyncIterator[str]:
    app = Starlette(routes=[WebSocketRoute("/ws", send_in_the_order_asked)])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, ws=PROTOCOL, log_level="warning", lifespan="off", **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        server.should_exit = True
        await task


async def read_all(url: str, order: str, compression: str | None) -> tuple[list[str], list[object]]:
    async with connect(url, compression=compression) as websocket:
        await websocket.send(order)
        received = [str(message) async for message in websocket]
        return received, list(websocket.protocol.extensions)


async def test_clients_compressing_or_not_read_every_text_and_each_text_is_framed_once_per_kind(monkeypatch):
    cache = FrameCache()
    monkeypatch.setattr(SharedFrames, "frame_cache", cache)
    async with serving() as url:
        orders = ["first", "second", "first", "second", "first"]
        compressions = ["deflate", "deflate", "deflate", None, None]
        results = await asyncio.gather(*(read_all(url, o, c) for o, c in zip(orders, compressions, strict=True)))
    for order, (received, _) in zip(orders, results, strict=True):
        shared = [FIRST, SECOND] if order == "first" else [SECOND, FIRST]
        assert received == [*shared, f"yours: {order}"]
    deflating = [extensions for (_, extensions), c in zip(results, compressions, strict=True) if c]
    assert all(isinstance(e[0], PerMessageDeflate) and e[0].remote_no_context_takeover for e in deflating)
    assert all(extensions == [] for (_, extensions), c in zip(results, compressions, strict=True) if not c)
    # FIRST and SECOND framed once for the compressing clients and once for the others; the two short
    # "yours" texts once for all, uncompressed; fifteen sent.
    assert cache.framed == 2 * 2 + 2 and cache.reused == 5 * 3 - cache.framed
    cache.frame("yours: first", PLAIN, ())
    assert cache.framed == 6


def test_the_cache_keeps_its_byte_budget_and_frames_a_long_text_without_keeping_it():
    cache = FrameCache(max_bytes=10_000, max_text=3_000)
    for index in range(20):
        cache.frame(f"{index:04}" + "x" * 996, (), [])
    assert 0 < len(cache) <= 10_000 // 2_000 and cache.framed == 20
    cache.frame("0019" + "x" * 996, (), [])
    assert cache.reused == 1  # the newest is kept
    cache.frame("0000" + "x" * 996, (), [])
    assert cache.framed == 21  # the oldest is gone
    long = "y" * 5_000
    assert cache.frame(long, (), []) == cache.frame(long, (), []) and cache.framed == 23


@pytest.mark.parametrize("deflate", [True, False])
async def test_without_per_message_deflate_no_client_gets_it(deflate):
    async with serving(ws_per_message_deflate=deflate) as url:
        received, extensions = await read_all(url, "first", "deflate")
    assert received == [FIRST, SECOND, "yours: first"]
    assert bool(extensions) is deflate
