"""A subscriber that never reads cannot slow the others, and is closed with 1008."""

import asyncio
import base64
import os
import socket
import struct
import threading
import time
from pathlib import Path

import httpx
import websockets
from stream_support import next_of, stream_url

NORMAL_CLIENTS = 50
DURATION = 20.0
INTERVAL = 0.5
MAX_GAP = 0.75


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def stuck_subscriber(port: int) -> socket.socket:
    """A raw WebSocket client with a tiny receive buffer that completes the handshake, then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /metrics/stream?interval=0.1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: read the 101 response and not one byte of the stream
    assert b" 101 " in head.split(b"\r\n")[0]
    return sock


def close_code(sock: socket.socket, timeout: float) -> int | None:
    """Read everything left, parse server frames, return the close frame's code (None if none came)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(1 << 16):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    position = 0
    while position + 2 <= len(data):
        opcode, length = data[position] & 0x0F, data[position + 1] & 0x7F
        position += 2
        if length == 126:
            (length,) = struct.unpack(">H", data[position : position + 2])
            position += 2
        elif length == 127:
            (length,) = struct.unpack(">Q", data[position : position + 8])
            position += 8
        payload = data[position : position + length]
        position += length
        if opcode == 0x8 and len(payload) >= 2:
            return struct.unpack(">H", payload[:2])[0]
    return None


def background_traffic(url: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            client.post(
                "/v1/chat/completions",
                json={
                    "model": "meta-llama/Llama-3.1-8B-Instruct",
                    "max_tokens": 4,
                    "messages": [{"role": "user", "content": "hello"}],
                },
            )
            time.sleep(0.05)


async def normal_clients(url: str) -> list[float]:
    """Every client's largest gap between two updates during DURATION seconds."""

    async def one() -> float:
        async with websockets.connect(stream_url(url), max_size=None) as ws:
            await ws.send('{"type": "subscribe", "filters": {"interval": 0.5}}')
            await next_of(ws, "subscribed")
            await next_of(ws, "metrics_update")
            last, worst = time.monotonic(), 0.0
            end = last + DURATION
            while time.monotonic() < end:
                await next_of(ws, "metrics_update", timeout=5)
                now = time.monotonic()
                worst, last = max(worst, now - last), now
            return worst

    return list(await asyncio.gather(*(one() for _ in range(NORMAL_CLIENTS))))


def test_a_stuck_subscriber_does_not_slow_fifty_others(start_server):
    # The stuck client asks for 10 updates a second; 32 KiB socket buffers fill within seconds.
    server = start_server(
        "--itl-ms", "5", "--stream-min-interval", "0.1", "--stream-send-timeout", "2", "--socket-send-buffer", "32768"
    )
    port = int(server.url.rsplit(":", 1)[1])
    stop = threading.Event()
    traffic = threading.Thread(target=background_traffic, args=(server.url, stop))
    traffic.start()
    try:
        time.sleep(3)  # some history and traffic in the payloads
        rss_before = rss_mb(server.pid)
        stuck = stuck_subscriber(port)
        gaps = asyncio.run(normal_clients(server.url))
        rss_after = rss_mb(server.pid)
        code = close_code(stuck, timeout=10)
        stuck.close()
    finally:
        stop.set()
        traffic.join()
    assert max(gaps) < MAX_GAP, sorted(gaps)[-5:]
    assert code == 1008
    assert rss_after - rss_before < 40, (rss_before, rss_after)
