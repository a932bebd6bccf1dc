"""The measuring client's HTTP/1.1 connection, against a hand-written server in the test's own event loop:
bytes stamped as they arrive, keep-alive reuse, chunked and sized bodies, and a cut connection."""

import asyncio
import socket
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable

import h11
import pytest

from fakeai.traffic.client import send_chat, timing_of
from fakeai.traffic.wire import SO_TIMESTAMPNS, Pool, kernel_stamp

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return await reader.readexactly(length)


def sse(event: bytes) -> bytes:
    data = b"data: " + event + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


class Server:
    """``async with Server(handler) as server:`` then ``server.url``; ``server.connections`` counts accepts."""

    def __init__(self, handler: Handler) -> None:
        self.handler, self.connections, self.url = handler, 0, ""
        self._server: asyncio.Server | None = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await self.handler(reader, writer)

    async def __aenter__(self) -> "Server":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def streaming(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Two streamed answers on one connection: two tokens 50 ms apart, then the usage."""
    for _ in range(2):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(sse(b'{"choices": [{"delta": {"role": "assistant", "content": "a"}}]}'))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(sse(b'{"choices": [{"delta": {"content": " b"}}]}'))
        writer.write(sse(b'{"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}'))
        writer.write(sse(b"[DONE]") + b"0\r\n\r\n")
        await writer.drain()
    writer.close()


async def test_a_stream_is_stamped_as_it_arrives_and_the_connection_is_reused():
    async with Server(streaming) as server:
        pool = Pool(server.url)
        for _ in range(2):
            timing = await send_chat(pool, b"{}", stream=True)
            assert (timing.status, timing.prompt_tokens, timing.completion_tokens) == (200, 7, 2)
            assert timing.ttft is not None and timing.ttft < 0.04
            assert len(timing.itl) == 1 and 0.04 < timing.itl[0] < 0.2  # the second token, 50 ms later
        pool.close()
    assert server.connections == 1


async def test_reads_that_arrive_together_are_stamped_together_however_long_the_first_is_parsed(monkeypatch):
    # One server step answers two streams at once; the client then spends 100 ms on the first answer's
    # bytes. The second stream's bytes arrived before that work: their stamp must not include it.
    writers: list[asyncio.StreamWriter] = []
    both_answered = asyncio.Event()

    async def together(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writers.append(writer)
        if len(writers) == 2:  # both requests are in: answer both in one go, as one engine step would
            for each in writers:
                each.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + sse(b'{"choices": []}'))
            both_answered.set()
        await both_answered.wait()
        await asyncio.sleep(0.2)
        writer.write(sse(b"[DONE]") + b"0\r\n\r\n")
        await writer.drain()

    receive_data = h11.Connection.receive_data
    slow: list[bool] = []

    def slow_first_parse(self: h11.Connection, data: bytes) -> None:
        if b"HTTP/1.1 200" in data and not slow:
            slow.append(True)
            time.sleep(0.1)  # the client's own work on the first answer, holding its event loop
        receive_data(self, data)

    monkeypatch.setattr(h11.Connection, "receive_data", slow_first_parse)
    async with Server(together) as server:
        pool = Pool(server.url)
        answers = await asyncio.gather(pool.post("/", b"{}"), pool.post("/", b"{}"))
        pool.close()
    first_stamps = [arrivals[0][0] for _, _, arrivals in answers]
    assert slow and all(status == 200 for status, _, _ in answers)
    assert abs(first_stamps[0] - first_stamps[1]) < 0.05


@pytest.mark.skipif(sys.platform != "linux", reason="kernel receive timestamps (SO_TIMESTAMPNS) are Linux's")
async def test_a_read_is_stamped_when_the_kernel_received_it_not_when_the_client_got_round_to_it():
    # A server in a thread of its own answers at once; the client's event loop is busy for 200 ms while
    # the answer arrives, as a client process waits when the scheduler runs something else. The stamp is
    # the kernel's: within 100 ms of the write, not after the 200 ms.
    listener = socket.create_server(("127.0.0.1", 0))
    received, held = threading.Event(), threading.Event()
    write_times: list[float] = []

    def answer() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            received.set()
            held.wait(timeout=10)  # until the client's loop is busy
            write_times.append(time.monotonic())
            connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")

    thread = threading.Thread(target=answer)
    thread.start()
    pool = Pool(f"http://127.0.0.1:{listener.getsockname()[1]}")
    request = asyncio.create_task(pool.post("/", b"{}"))
    while not received.is_set():
        await asyncio.sleep(0.001)
    held.set()
    time.sleep(0.2)  # the client's loop is held while the answer arrives and sits in the socket
    status, _, arrivals = await request
    pool.close()
    thread.join(timeout=10)
    listener.close()
    assert status == 200
    assert arrivals[0][0] - write_times[0] < 0.1


def test_a_kernel_stamp_is_moved_onto_the_monotonic_clock_and_its_absence_is_the_callbacks_time():
    # Received 0.25 s before a read at realtime 1000.0, monotonic 50.0: at monotonic 49.75.
    timespec = struct.pack("@ll", 999, 750_000_000)
    assert kernel_stamp([(socket.SOL_SOCKET, SO_TIMESTAMPNS, timespec)], 1000.0, 50.0) == pytest.approx(49.75)
    assert kernel_stamp([], 1000.0, 50.0) == 50.0
    # A wall clock stepped backwards since the bytes arrived cannot put a stamp after the read itself.
    assert kernel_stamp([(socket.SOL_SOCKET, SO_TIMESTAMPNS, timespec)], 999.0, 50.0) == 50.0


async def test_a_sized_answer_and_an_error_status_carry_their_usage():
    async def sized(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        body = b'{"error": {"message": "busy"}, "usage": {"prompt_tokens": 5, "completion_tokens": 0}}'
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async with Server(sized) as server:
        timing = await send_chat(Pool(server.url), b"{}", stream=False)
    assert (timing.status, timing.prompt_tokens, timing.error) == (503, 5, None)


async def test_a_connection_cut_mid_answer_is_a_transport_error_not_a_status():
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + sse(b'{"choices": []}'))
        await writer.drain()
        writer.close()

    async with Server(cut) as server:
        timing = await send_chat(Pool(server.url), b"{}", stream=True)
    assert timing.error is not None and timing.status == 0


def test_an_error_event_after_the_200_is_a_failure_to_the_client():
    token = b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'
    error = b'data: {"error": {"message": "engine died"}}\n\n'
    timing = timing_of(200, 0.0, [(0.01, token), (0.02, error)])
    assert timing.status == 500 and timing.ttft == pytest.approx(0.01)


async def test_a_url_the_client_cannot_speak_to_is_refused():
    with pytest.raises(ValueError, match="http://"):
        Pool("https://example.invalid")
