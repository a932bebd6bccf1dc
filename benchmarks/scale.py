"""Scale: 10,000 streaming connections open at once against one worker; every one completes, exactly.

    python benchmarks/scale.py [--connections 10000] [--max-tokens 20] [--itl-ms 500]

The script raises its own and the server's open-file limit, opens the connections at about 2,000 a
second (each a raw HTTP/1.1 POST of a streaming chat completion, ``ignore_eos`` so every stream has
exactly ``--max-tokens`` tokens) against ``--max-num-seqs`` equal to the connection count, and reads
every stream to ``[DONE]``. Streams last ``max_tokens x itl`` (10 s by default), so all are open together.

Checks (exit 1 when one fails): every stream completed with its tokens; the server counted exactly the
requests, 200 responses and completion tokens the clients saw, and has no request or stream left open.
Prints the peak of streams open at once and the server's memory per connection at that peak.
"""

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time

from common import free_port, pinned, rss_mib, verdict, wait_port

from bridge.reader import scrape

MODEL = "m"


def raise_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class Streams:
    def __init__(self, port: int, max_tokens: int) -> None:
        self.port = port
        body = json.dumps(
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "hello"}],
                "max_tokens": max_tokens,
                "ignore_eos": True,
                "stream": True,
            }
        ).encode()
        self.request = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.open = self.peak = self.completed = self.tokens = self.failed = 0

    async def one(self) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            self.failed += 1
            return
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            writer.write(self.request)
            status = await reader.readline()
            data = bytearray()
            while not data.endswith(b"\r\n0\r\n\r\n"):  # the end of a chunked body
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
            if b" 200 " in status and b"data: [DONE]\n\n" in data:
                self.completed += 1
                self.tokens += data.count(b'"content":"') - data.count(b'"content":""')
            else:
                self.failed += 1
        finally:
            self.open -= 1
            writer.close()

    async def run(self, connections: int, per_second: float) -> None:
        tasks = []
        start = time.monotonic()
        for i in range(connections):
            delay = start + i / per_second - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(self.one()))
        await asyncio.gather(*tasks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--max-tokens", type=int, default=20)
    parser.add_argument("--itl-ms", type=float, default=500.0)
    parser.add_argument("--per-second", type=float, default=2000.0, help="connections opened per second")
    args = parser.parse_args()
    files = args.connections + 1024
    raise_open_files(files)
    port = free_port()
    command = [
        *(sys.executable, "-m", "fakeai", "server", "--port", str(port), "--models", MODEL),
        *("--log-level", "warning", "--max-num-seqs", str(args.connections), "--max-waiting", str(args.connections)),
        *("--itl-ms", str(args.itl_ms), "--itl-jitter", "0", "--num-blocks", str(4 * args.connections)),
    ]
    server = subprocess.Popen(
        pinned(0, command),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: raise_open_files(files),
    )
    failures = []
    try:
        wait_port(port)
        url = f"http://127.0.0.1:{port}"
        before = scrape(url)
        idle = rss_mib(server.pid)
        streams = Streams(port, args.max_tokens)
        peak_rss = idle

        async def watch() -> None:
            nonlocal peak_rss
            while True:
                peak_rss = max(peak_rss, rss_mib(server.pid))
                await asyncio.sleep(0.2)

        async def everything() -> None:
            watcher = asyncio.ensure_future(watch())
            await streams.run(args.connections, args.per_second)
            watcher.cancel()

        start = time.monotonic()
        asyncio.run(everything())
        elapsed = time.monotonic() - start
        time.sleep(1)
        after = scrape(url)
        delta = {
            name: after.value(name, **labels) - before.value(name, **labels)
            for name, labels in (
                ("fakeai_requests_total", {}),
                ("fakeai_responses_total", {"status": "200"}),
                ("fakeai_completion_tokens_total", {}),
            )
        }
        still_open = sum(
            after.value(n) for n in ("fakeai_requests_running", "fakeai_requests_waiting", "fakeai_active_streams")
        )
        expected_tokens = args.connections * args.max_tokens
        print(
            f"{args.connections} streams in {elapsed:.1f} s: {streams.completed} completed, {streams.failed} failed, "
            f"peak open at once {streams.peak}"
        )
        print(f"client tokens {streams.tokens} (expected {expected_tokens}); server counted {delta}")
        print(
            f"server RSS idle {idle:.0f} MiB, peak {peak_rss:.0f} MiB: "
            f"{(peak_rss - idle) * 1024 / max(streams.peak, 1):.1f} KiB per open connection"
        )
        if streams.completed != args.connections or streams.tokens != expected_tokens:
            failures.append("not every stream completed with all its tokens")
        if delta != {
            "fakeai_requests_total": args.connections,
            "fakeai_responses_total": args.connections,
            "fakeai_completion_tokens_total": expected_tokens,
        }:
            failures.append("the server's counts differ from the clients'")
        if still_open:
            failures.append(f"{still_open:.0f} requests or streams left open")
    finally:
        server.terminate()
        server.wait(timeout=60)
    return verdict("scale", failures)


if __name__ == "__main__":
    sys.exit(main())
