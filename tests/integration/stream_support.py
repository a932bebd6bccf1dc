"""Helpers for tests that talk to a real server's /metrics/stream."""

import asyncio
import json
import time
from typing import Any

import websockets


def stream_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/metrics/stream"


async def next_of(ws: Any, kind: str, timeout: float = 15.0) -> dict[str, Any]:
    """The next message of ``kind``, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(deadline - time.monotonic(), 0.01)))
        if message["type"] == kind:
            return message


async def subscribe(ws: Any, **filters: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "subscribe", "filters": filters}))
    return await next_of(ws, "subscribed")


async def connect(base_url: str, **kwargs: Any) -> Any:
    ws = await websockets.connect(stream_url(base_url), **kwargs)
    first = json.loads(await ws.recv())
    assert first["type"] == "historical_data"
    return ws
