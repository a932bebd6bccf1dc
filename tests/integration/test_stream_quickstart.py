"""The user's quick start (docs/METRICS_STREAMING_QUICKSTART.md), run as written against a real server."""

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from stream_support import connect, next_of, stream_url

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = (REPO / "docs" / "METRICS_STREAMING_QUICKSTART.md").read_text()
CATEGORIES = {"throughput", "latency", "cache", "queue", "streaming", "error"}


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", QUICKSTART, flags=re.S)


def with_port(code: str, base_url: str) -> str:
    return code.replace("ws://localhost:8000", base_url.replace("http://", "ws://"))


def test_python_snippet_prints_historical_data_then_updates(start_server):
    server = start_server("--no-delay")
    (snippet,) = code_blocks("python")
    process = subprocess.Popen(
        [sys.executable, "-c", with_port(snippet, server.url)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, _ = process.communicate(timeout=4)
    except subprocess.TimeoutExpired:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert "'type': 'historical_data'" in lines[0]
    assert any("'type': 'metrics_update'" in line for line in lines[1:])


@pytest.mark.parametrize("message", [json.loads(block) for block in code_blocks("json")])
def test_each_json_message_gets_the_promised_reply(start_server, message):
    server = start_server("--no-delay")

    async def run() -> None:
        ws = await connect(server.url)
        try:
            await ws.send(json.dumps(message))
            subscribed = await next_of(ws, "subscribed")
            filters = message["filters"]
            assert subscribed["filters"]["interval"] == filters["interval"]
            if "endpoint" in filters:
                assert subscribed["filters"]["endpoints"] == [filters["endpoint"]]
            expected = CATEGORIES if filters.get("metric_type", "all") == "all" else {filters["metric_type"]}
            update = await next_of(ws, "metrics_update", timeout=filters["interval"] * 2 + 5)
            assert set(update["data"]) == expected
            for kind in ("ping", "unsubscribe"):
                await ws.send(json.dumps({"type": kind}))
                assert (await next_of(ws, "pong" if kind == "ping" else "unsubscribed"))["timestamp"] > 0
        finally:
            await ws.close()

    asyncio.run(run())


def test_the_protocol_checker_example_passes(start_server):
    server = start_server("--no-delay")
    httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "meta-llama/Llama-3.1-8B-Instruct", "messages": [{"role": "user", "content": "x"}]},
    )
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "test_websocket_metrics.py"), "--url", stream_url(server.url)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all protocol checks passed" in result.stdout


def test_the_client_example_prints_compact_updates(start_server):
    server = start_server("--no-delay")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "metrics_streaming_client.py"),
            "--url",
            stream_url(server.url),
            "--updates",
            "2",
            "--metric-type",
            "throughput",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    updates = [line for line in result.stdout.splitlines() if line.startswith("metrics_update")]
    assert len(updates) == 2 and all("req/s" in line for line in updates)
