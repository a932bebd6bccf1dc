"""``python -m bridge --scrape URL``: another process's metrics, streamed through the text parser."""

import asyncio
import json
import re
import subprocess
import sys

import httpx
import websockets
from stream_support import next_of


def test_bridge_streams_a_scraped_server(start_server):
    server = start_server("--no-delay")
    bridge = subprocess.Popen(
        [sys.executable, "-m", "bridge", "--scrape", server.url + "/metrics", "--port", "0", "--min-interval", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        stream = None
        for line in bridge.stdout:
            if match := re.search(r"(ws://\S+/metrics/stream)", line):
                stream = match.group(1)
                break
        assert stream, "the bridge did not print its address"

        async def run() -> dict:
            async with websockets.connect(stream) as ws:
                assert json.loads(await ws.recv())["type"] == "historical_data"
                await ws.send('{"type": "subscribe", "filters": {"metric_type": "throughput", "interval": 0.5}}')
                await next_of(ws, "subscribed")
                async with httpx.AsyncClient(base_url=server.url) as client:
                    for _ in range(30):
                        await client.post(
                            "/v1/completions",
                            json={"model": "Qwen/Qwen2.5-7B-Instruct", "prompt": "hi", "max_tokens": 4},
                        )
                        await asyncio.sleep(0.05)
                for _ in range(20):
                    update = await next_of(ws, "metrics_update")
                    if update["data"]["throughput"]["requests_per_sec"].get("/v1/completions", 0) > 0:
                        return update
                raise AssertionError("the scraped traffic never showed up")

        update = asyncio.run(run())
        assert set(update["data"]) == {"throughput"}
        assert update["data"]["throughput"]["total_tokens_per_sec"] > 0
    finally:
        bridge.terminate()
        bridge.wait(timeout=10)
