"""The /metrics/stream WebSocket endpoint: handshake checks, one reader and one sender per client."""

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from bridge import protocol
from bridge.hub import Client, Hub

log = logging.getLogger("bridge")
POLICY_VIOLATION, MESSAGE_TOO_BIG, INTERNAL_ERROR, TRY_AGAIN_LATER = 1008, 1009, 1011, 1013
GONE = (WebSocketDisconnect, ConnectionError)  # how a client that left shows; nothing to log


def _token_ok(websocket: WebSocket, expected: str | None) -> bool:
    if not expected:
        return True
    scheme, _, given = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        given = websocket.query_params.get("token", "")
    return secrets.compare_digest(given.strip().encode(), expected.encode())


def stream_endpoint(hub: Hub) -> Callable[[WebSocket], Awaitable[None]]:
    settings = hub.settings

    async def metrics_stream(websocket: WebSocket) -> None:
        origin = websocket.headers.get("origin")
        if not _token_ok(websocket, settings.token) or (
            settings.allowed_origins and origin not in settings.allowed_origins
        ):
            await websocket.close(code=POLICY_VIOLATION)  # before accept: the client gets HTTP 403
            return
        await websocket.accept()
        if len(hub.clients) >= settings.max_clients:
            await websocket.close(code=TRY_AGAIN_LATER, reason="too many subscribers")
            return
        defaults = settings.default_filters
        query = {k: websocket.query_params.getlist(k) for k in websocket.query_params}
        client = Client(defaults)
        try:
            client.filters = protocol.from_query(query, defaults, min_interval=settings.min_interval)
        except protocol.ProtocolError as exc:
            client.post_reply(protocol.error(exc.code, exc.message, hub.clock()))
        # The first message is always historical_data.
        client.replies.appendleft(await hub.historical_data(client.filters, hub.clock()))
        client.wake.set()
        client.next_due = hub.clock() + client.filters.interval
        hub.register(client)
        reader = asyncio.ensure_future(_read_loop(websocket, client, hub))
        sender = asyncio.ensure_future(_send_loop(websocket, client, settings.send_timeout, settings.close_grace))
        try:
            # Either side ends the subscription: the client left or broke a limit, or stopped reading.
            await asyncio.wait((reader, sender), return_when=asyncio.FIRST_COMPLETED)
        finally:
            hub.unregister(client)
            for task in (reader, sender):
                task.cancel()
            # The endpoint itself may be cancelled meanwhile (the server going away): that ends the
            # clean-up, not an error to raise from it.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait((reader, sender))
            for name, task in (("reader", reader), ("sender", sender)):
                failure = task.exception() if task.done() and not task.cancelled() else None
                if failure is not None and not isinstance(failure, GONE):
                    # A bug of ours, not a client leaving: keep its traceback, close this subscription
                    # as an internal error (1011); other subscribers go on.
                    log.error("metrics stream %s task failed", name, exc_info=failure)
                    await _close(websocket, INTERNAL_ERROR, "internal error")

    return metrics_stream


async def _read_loop(websocket: WebSocket, client: Client, hub: Hub) -> None:
    settings = hub.settings
    recent: deque[float] = deque()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        now = time.monotonic()
        recent.append(now)
        while recent and recent[0] < now - 1.0:
            recent.popleft()
        if len(recent) > settings.max_messages_per_second:
            await _close(websocket, POLICY_VIOLATION, f"more than {settings.max_messages_per_second} messages a second")
            return
        text = message.get("text")
        raw = text if text is not None else message.get("bytes") or b""
        if len(raw) > settings.max_message:
            await _close(websocket, MESSAGE_TOO_BIG, f"message over {settings.max_message} bytes")
            return
        if text is None:
            client.post_reply(protocol.error("invalid_message", "Send JSON in text frames.", hub.clock()))
            continue
        handle(text, client, hub)


def handle(text: str, client: Client, hub: Hub) -> None:
    """Answer one client message. Invalid input gets one ``error`` and changes nothing."""
    now = hub.clock()
    try:
        message = protocol.parse(text)
    except protocol.ProtocolError as exc:
        client.post_reply(protocol.error(exc.code, exc.message, now))
        return
    settings = hub.settings
    if message.type == "ping":
        client.post_reply(protocol.reply("pong", now, message.id))
    elif message.type == "unsubscribe":
        client.filters = settings.default_filters
        client.previous = None
        client.update = None  # after the confirmation, every update reflects the filters it confirms
        client.post_reply(protocol.reply("unsubscribed", now, message.id, filters=client.filters.describe()))
    else:
        try:
            filters = protocol.apply(client.filters, message.filters or {}, min_interval=settings.min_interval)
        except protocol.ProtocolError as exc:
            client.post_reply(protocol.error(exc.code, exc.message, now, message.id))
            return
        if filters.interval != client.filters.interval:
            client.next_due = now + filters.interval
        if filters.group_key != client.filters.group_key:
            client.previous = None  # deltas compare like with like
        client.filters = filters
        client.update = None
        client.post_reply(protocol.reply("subscribed", now, message.id, filters=filters.describe()))


async def _send_loop(websocket: WebSocket, client: Client, timeout: float, grace: float) -> None:
    try:
        while True:
            await client.wake.wait()
            client.wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for starts a task per call, per client, per tick.
            while client.replies:
                async with asyncio.timeout(timeout):
                    await websocket.send_text(client.replies.popleft())
            if client.update is not None:
                update, client.update = client.update, None
                async with asyncio.timeout(timeout):
                    await websocket.send_text(update)
    except TimeoutError:
        log.info("closing a metrics stream subscriber that stopped reading")
        await _close(websocket, POLICY_VIOLATION, "not reading", wait=grace)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass


async def _close(websocket: WebSocket, code: int, reason: str, wait: float = 5.0) -> None:
    """Close with ``code``; a peer that never reads again cannot take the close frame, so give up
    after ``wait`` and let the server drop the connection."""
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code=code, reason=reason), wait)
