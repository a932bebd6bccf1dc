"""The baseline for stream_fanout.py: a bare Starlette app pushing one fixed payload to every socket."""

import asyncio
import json
import sys
import time

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


def main() -> None:
    port, payload_path, interval = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    with open(payload_path) as f:
        template = json.load(f)
    sockets: set[WebSocket] = set()

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        sockets.add(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            sockets.discard(websocket)

    async def pusher() -> None:
        while True:
            await asyncio.sleep(interval)
            message = {"type": "metrics_update", "timestamp": time.time()} | {
                k: v for k, v in template.items() if k not in ("type", "timestamp")
            }
            text = json.dumps(message, separators=(",", ":"))
            await asyncio.gather(*(ws.send_text(text) for ws in list(sockets)), return_exceptions=True)

    async def lifespan(_):
        task = asyncio.ensure_future(pusher())
        yield
        task.cancel()

    app = Starlette(routes=[WebSocketRoute("/metrics/stream", endpoint)], lifespan=lifespan)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
