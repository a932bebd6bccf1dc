"""HTTP/1.1 over a non-blocking socket, each read stamped with the time the kernel received its bytes.

A measuring client must stamp bytes when they arrive, and with many streams in one process every
microsecond spent per read delays the stamps of the reads queued behind it: a server step that answers
64 streams at once makes 64 sockets readable together, and on a shared 2-core machine the client's own
process may not even be running when they become readable. On Linux each socket asks the kernel for its
receive timestamps (``SO_TIMESTAMPNS``, socket(7)): every read carries the time its bytes reached the
socket, so neither the event loop's other work nor the scheduler's delays in waking this process show in
what it measures. Elsewhere, or if the kernel gives no stamp, a read is stamped in the reader callback,
which the event loop runs for every readable socket before it resumes any task. The tasks then let h11
(the HTTP/1.1 state machine httpcore itself uses) tell where each response ends, and the SSE is parsed
after the response is complete.
"""

import asyncio
import contextlib
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Sequence
from urllib.parse import urlsplit

import h11

# Linux's receive timestamp option and its control message, from include/uapi/asm-generic/socket.h
# (``SO_TIMESTAMPNS_OLD 35``; ``SCM_TIMESTAMPNS`` is the same number): a ``struct timespec`` of two longs on
# 64-bit Linux, in CLOCK_REALTIME. Python's socket module does not name them.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)
_READ_SIZE = 256 * 1024


def kernel_stamp(ancillary: list[tuple[int, int, bytes]], realtime_now: float, monotonic_now: float) -> float:
    """The read's arrival on the ``time.monotonic`` clock: the kernel's receive timestamp (CLOCK_REALTIME)
    moved by how far that clock lies from the monotonic one now; ``monotonic_now`` if the kernel gave
    none. Taking the offset at each read keeps a step of the wall clock from moving more than one stamp."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            received: float = seconds + nanoseconds * 1e-9
            return min(monotonic_now, monotonic_now - (realtime_now - received))
    return monotonic_now


class _Reads:
    """A connection's socket and its reads, each stamped with the kernel's receive time.

    The reader callback runs for every socket that became readable together before any task they wake;
    without kernel stamps a stamp taken there waits for the other sockets' reads only, not for the parsing
    the tasks behind them do (with ``StreamReader.read`` and the stamp in the task, the last of 16 streams
    answered by one server step was stamped 1 ms late at the median and 4 ms at p90)."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock, self.loop = sock, loop
        self.reads: deque[tuple[float, bytes]] = deque()
        self.closed = False
        self.error: OSError | None = None
        self._waiter: asyncio.Future[None] | None = None
        loop.add_reader(sock.fileno(), self._readable)

    @classmethod
    async def open(cls, host: str, port: int) -> "_Reads":
        loop = asyncio.get_running_loop()
        error: OSError | None = None
        for family, kind, protocol, _, address in await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            sock = socket.socket(family, kind, protocol)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if sys.platform == "linux":
                    with contextlib.suppress(OSError):  # a kernel without it: reads stamped in the callback
                        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                await loop.sock_connect(sock, address)
            except OSError as failure:
                sock.close()
                error = failure
                continue
            return cls(sock, loop)
        raise error or OSError(f"no address for {host}:{port}")

    def _readable(self) -> None:
        try:
            data, ancillary, _, _ = self.sock.recvmsg(_READ_SIZE, _ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as failure:
            self._finish(failure)
            return
        if not data:
            self._finish(None)
            return
        self.reads.append((kernel_stamp(ancillary, time.time(), time.monotonic()), data))
        self._wake()

    def _finish(self, error: OSError | None) -> None:
        self.closed, self.error = True, error
        self.loop.remove_reader(self.sock.fileno())
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def write(self, data: bytes) -> None:
        await self.loop.sock_sendall(self.sock, data)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
        self.closed = True

    async def next_read(self) -> tuple[float, bytes]:
        """The oldest read not taken yet; ``b""`` once the peer has closed and every read is taken."""
        while not self.reads:
            if self.error is not None:
                raise self.error
            if self.closed:
                return time.monotonic(), b""
            self._waiter = self.loop.create_future()
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
        self._reads = await _Reads.open(self.host, self.port)
        self._state = h11.Connection(h11.CLIENT)

    def close(self) -> None:
        if self._reads is not None:
            self._reads.close()
        self._reads = self._state = None

    async def post(self, path: str, body: bytes) -> tuple[int, float, list[tuple[float, bytes]]]:
        """Send ``body`` to ``path``; the status, when the request's last byte was written, and the body's
        bytes as they arrived, each with the time of the read that brought it."""
        if self._state is None or self._state.our_state is not h11.IDLE or self._reads is None or self._reads.closed:
            self.close()  # a server's keep-alive timeout may have closed an idle connection
            await self._open()
        state, reads = self._state, self._reads
        assert state is not None and reads is not None
        headers = [*self.headers, (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        request = state.send(h11.Request(method="POST", target=path, headers=headers)) or b""
        await reads.write(request + (state.send(h11.Data(data=body)) or b"") + (state.send(h11.EndOfMessage()) or b""))
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
