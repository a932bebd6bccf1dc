"""``fakeai load --check`` against a stand-in server whose /metrics histograms are deliberately wrong: a
proxy in front of a real fakeai that passes the requests through and moves every latency histogram's
counts three buckets up. The check exits 1 and names each quantile that disagrees; the counts, which the
proxy leaves alone, still agree."""

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from fakeai.tools.compare import SERVER_FAMILIES

MODEL = "m"
SHIFT = 3
_BUCKET = re.compile(r"^(?P<name>\w+)_bucket\{(?P<labels>.*)\} (?P<value>\S+)$")


def shifted(exposition: str, families: set[str], by: int) -> str:
    """``exposition`` with each histogram of ``families`` moved ``by`` buckets up: bucket i reports what
    bucket i - by held (0 below), +Inf, count and sum as they were."""
    lines = exposition.splitlines()
    series: dict[tuple[str, str], list[int]] = {}
    for index, line in enumerate(lines):
        match = _BUCKET.match(line)
        if match and match["name"] in families and 'le="+Inf"' not in match["labels"]:
            key = (match["name"], re.sub(r'le="[^"]*",?', "", match["labels"]))
            series.setdefault(key, []).append(index)
    for indexes in series.values():
        values = [lines[i].rsplit(" ", 1)[1] for i in indexes]
        moved = ["0.0"] * by + values[: len(values) - by]
        for i, value in zip(indexes, moved, strict=True):
            lines[i] = lines[i].rsplit(" ", 1)[0] + " " + value
    return "\n".join(lines) + "\n"


def stand_in(upstream: str) -> Starlette:
    client = httpx.AsyncClient(base_url=upstream, timeout=60)

    async def chat(request: Request) -> Response:
        upstream_request = client.build_request(
            "POST", "/v1/chat/completions", content=await request.body(), headers={"content-type": "application/json"}
        )
        answer = await client.send(upstream_request, stream=True)

        async def body() -> AsyncIterator[bytes]:
            async for chunk in answer.aiter_raw():
                yield chunk
            await answer.aclose()

        media = answer.headers.get("content-type", "application/json")
        return StreamingResponse(body(), status_code=answer.status_code, media_type=media)

    async def metrics(request: Request) -> Response:
        text = (await client.get("/metrics")).text
        return PlainTextResponse(shifted(text, set(SERVER_FAMILIES.values()), SHIFT))

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/metrics", metrics)])


@pytest.fixture
def proxy(start_server) -> Iterator[str]:
    server = start_server("--models", MODEL)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(stand_in(server.url), log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        instance.should_exit = True
        thread.join(timeout=30)
        sock.close()


def test_shifted_histograms_make_check_fail_naming_each_quantile(proxy):
    load = ["load", "--url", proxy, "--model", MODEL, "--requests", "60", "--concurrency", "4", "--stream-ratio", "1"]
    run = subprocess.run(
        [sys.executable, "-m", "fakeai", *load, "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 1, run.stdout + run.stderr
    disagreements = run.stdout.split("client and server disagree:", 1)[1]
    for measure in ("ttft", "itl", "e2e"):
        for quantile in ("p50", "p90"):
            assert f"{measure} {quantile}: client" in disagreements, (measure, quantile, run.stdout)
    assert "p99" not in disagreements  # --check holds p50 and p90 unless --check-quantiles says more
    assert "tokens: client" not in disagreements and "requests: client" not in disagreements  # counts agree


def test_shifting_moves_counts_up_and_keeps_the_totals():
    text = (
        'x_bucket{le="0.1",model="m"} 1.0\nx_bucket{le="0.2",model="m"} 3.0\nx_bucket{le="0.4",model="m"} 7.0\n'
        'x_bucket{le="+Inf",model="m"} 9.0\nx_count{model="m"} 9.0\n'
    )
    assert shifted(text, {"x"}, 1).splitlines() == [
        'x_bucket{le="0.1",model="m"} 0.0',
        'x_bucket{le="0.2",model="m"} 1.0',
        'x_bucket{le="0.4",model="m"} 3.0',
        'x_bucket{le="+Inf",model="m"} 9.0',
        'x_count{model="m"} 9.0',
    ]
