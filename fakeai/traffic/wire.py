"""HTTP/1.1 over asyncio streams, with the least work between a read and its timestamp.

A measuring client must stamp bytes when they arrive, and with many streams in one process every
microsecond spent per read delays the stamps of the reads queued behind it: a server step that answers
64 streams at once makes 64 sockets readable together, and the last is read (and stamped) after the
client has handled the 63 before it. httpx spends about 0.1 ms of CPU per read (httpcore and anyio
between the socket and the caller); here a read is ``StreamReader.read`` and h11 (the HTTP/1.1 state
machine httpcore itself uses) telling where the response ends, and nothing else: the SSE is parsed
after the response is complete.
"""

import asyncio
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import h11

READ_SIZE = 1 << 16


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, host: str, port: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        self.host, self.port = host, port
        self.headers = [(b"host", f"{host}:{port}".encode()), *headers]
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._state: h11.Connection | None = None

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._state = h11.Connection(h11.CLIENT)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = self._state = None

    async def post(self, path: str, body: bytes) -> tuple[int, float, list[tuple[float, bytes]]]:
        """Send ``body`` to ``path``; the status, when the request's last byte was written, and the body's
        bytes as they arrived, each with the time of the read that brought it."""
        if self._state is None or self._state.our_state is not h11.IDLE:
            self.close()
            await self._open()
        state, reader, writer = self._state, self._reader, self._writer
        assert state is not None and reader is not None and writer is not None
        headers = [*self.headers, (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        writer.write(state.send(h11.Request(method="POST", target=path, headers=headers)) or b"")
        writer.write(state.send(h11.Data(data=body)) or b"")
        writer.write(state.send(h11.EndOfMessage()) or b"")
        await writer.drain()
        sent = time.monotonic()
        status, stamp = 0, sent
        arrivals: list[tuple[float, bytes]] = []
        while True:
            event = state.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(READ_SIZE)
                stamp = time.monotonic()
                state.receive_data(data)  # b"" tells h11 the peer closed
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                arrivals.append((stamp, bytes(event.data)))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("the server closed the connection before the response ended")
        if state.our_state is h11.DONE and state.their_state is h11.DONE:
            state.start_next_cycle()  # keep-alive: the next request reuses the connection
        else:
            self.close()
        return status, sent, arrivals


class Pool:
    """Idle keep-alive connections to one server, opened as needed."""

    def __init__(self, url: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"an http:// URL with a host, not {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.headers = list(headers)
        self._idle: list[Connection] = []

    async def post(self, path: str, body: bytes) -> tuple[int, float, list[tuple[float, bytes]]]:
        connection = self._idle.pop() if self._idle else Connection(self.host, self.port, self.headers)
        try:
            answer = await connection.post(self.prefix + path, body)
        except BaseException:
            connection.close()
            raise
        self._idle.append(connection)
        return answer

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
