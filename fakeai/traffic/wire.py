"""HTTP/1.1 over an asyncio protocol, with the least work between a read and its timestamp.

A measuring client must stamp bytes when they arrive, and with many streams in one process every
microsecond spent per read delays the stamps of the reads queued behind it: a server step that answers
64 streams at once makes 64 sockets readable together. httpx spends about 0.1 ms of CPU per read (httpcore
and anyio between the socket and the caller). Here each read is stamped in the protocol callback that
receives it, which the event loop runs for every readable socket before it resumes any task; the tasks
then let h11 (the HTTP/1.1 state machine httpcore itself uses) tell where each response ends, and the SSE
is parsed after the response is complete.
"""

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from urllib.parse import urlsplit

import h11


class _Reads(asyncio.Protocol):
    """A connection's reads, each stamped in the callback that delivers it.

    The event loop runs the read callbacks of every socket that became readable together before any task
    they wake, so a stamp taken here waits for the other sockets' reads only, not for the parsing the
    tasks behind them do (with ``StreamReader.read`` and the stamp in the task, the last of 16 streams
    answered by one server step was stamped 1 ms late at the median and 4 ms at p90)."""

    def __init__(self) -> None:
        self.reads: deque[tuple[float, bytes]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reads.append((time.monotonic(), data))
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed, self.error = True, exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_read(self) -> tuple[float, bytes]:
        """The oldest read not taken yet; ``b""`` once the peer has closed and every read is taken."""
        while not self.reads:
            if self.error is not None:
                raise self.error
            if self.closed:
                return time.monotonic(), b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self.reads.popleft()


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, host: str, port: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        self.host, self.port = host, port
        self.headers = [(b"host", f"{host}:{port}".encode()), *headers]
        self._reads: _Reads | None = None
        self._state: h11.Connection | None = None

    async def _open(self) -> None:
        _, self._reads = await asyncio.get_running_loop().create_connection(_Reads, self.host, self.port)
        self._state = h11.Connection(h11.CLIENT)

    def close(self) -> None:
        if self._reads is not None and self._reads.transport is not None:
            self._reads.transport.close()
        self._reads = self._state = None

    async def post(self, path: str, body: bytes) -> tuple[int, float, list[tuple[float, bytes]]]:
        """Send ``body`` to ``path``; the status, when the request's last byte was written, and the body's
        bytes as they arrived, each with the time of the read that brought it."""
        if self._state is None or self._state.our_state is not h11.IDLE or self._reads is None or self._reads.closed:
            self.close()  # a server's keep-alive timeout may have closed an idle connection
            await self._open()
        state, reads = self._state, self._reads
        assert state is not None and reads is not None and reads.transport is not None
        headers = [*self.headers, (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        request = state.send(h11.Request(method="POST", target=path, headers=headers)) or b""
        reads.transport.write(
            request + (state.send(h11.Data(data=body)) or b"") + (state.send(h11.EndOfMessage()) or b"")
        )
        sent = time.monotonic()
        status, stamp = 0, sent
        arrivals: list[tuple[float, bytes]] = []
        while True:
            event = state.next_event()
            if event is h11.NEED_DATA:
                stamp, data = await reads.next_read()
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
