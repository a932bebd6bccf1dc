"""One non-streaming chat request's CPU in process: fakeai's app against bare FastAPI, no sockets.

    PYTHONPATH=. python benchmarks/inprocess.py [--requests 3000] [--rounds 5] [--without-metrics]

Both apps are driven by direct ASGI calls (the same scope, body and ``send``), so uvicorn, the kernel and
a load generator, the same for both in ``throughput.py``, are out of the figure: what remains is each
app's own work. Rounds alternate between the two apps; the figures are microseconds per request
(best round and median) and the ratio bare / fakeai of the medians, as ``throughput.py`` reports CPU.

``--without-metrics`` replaces fakeai's per-request metric recording (``RequestMetrics``, the engine
step counters, the HTTP metrics) with no-ops, to show what recording costs; never a figure to quote as
fakeai's own.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message

from fakeai.app import NO_OPENTELEMETRY, create_app
from fakeai.settings import Settings

REQUEST = {
    "model": "meta-llama/Llama-3.1-8B-Instruct",
    "messages": [{"role": "user", "content": "How do queues behave under load?"}],
    "max_tokens": 16,
    "ignore_eos": True,
}
BODY = json.dumps(REQUEST).encode()
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/v1/chat/completions",
    "raw_path": b"/v1/chat/completions",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"bench"), (b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))],
    "client": ("127.0.0.1", 40000),
    "server": ("127.0.0.1", 8000),
}


async def call(app: ASGIApp) -> bytes:
    """One request through ``app``; the response body."""
    delivered = False
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(dict(SCOPE, headers=list(SCOPE["headers"])), receive, send)
    return b"".join(chunks)


def bare_app(body: dict[str, Any]) -> FastAPI:
    """``benchmarks/bare_app.py``'s app: the same JSON for every request."""
    app = FastAPI(**NO_OPENTELEMETRY)

    @app.post("/v1/chat/completions")
    async def chat() -> JSONResponse:
        return JSONResponse(body)

    return app


def without_metrics() -> None:
    import exporter.metrics as metrics

    def nothing(*args: object, **kwargs: object) -> None:
        return None

    for name in ("accepted", "enqueued", "ran_on_arrival", "prefix_lookup", "prefilled", "tokens", "finished"):
        setattr(metrics.RequestMetrics, name, nothing)
    metrics.ModelMetrics.steps = nothing  # type: ignore[method-assign]
    metrics.ModelMetrics.batch_call = nothing  # type: ignore[method-assign]
    metrics.ServerMetrics.http_request = nothing  # type: ignore[method-assign]


async def per_request(app: ASGIApp, requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        await call(app)
    return (time.process_time() - started) / requests * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests per app per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--without-metrics", action="store_true", help="fakeai's metric recording made no-ops")
    args = parser.parse_args()
    if args.without_metrics:
        without_metrics()
    fakeai = create_app(Settings(no_delay=True), CollectorRegistry())
    async with fakeai.router.lifespan_context(fakeai):
        answer = json.loads(await call(fakeai))
        assert answer["usage"]["completion_tokens"] == 16, answer
        bare = bare_app(answer)
        for app in (fakeai, bare):  # warm-up: caches, series, code paths
            await per_request(app, args.requests // 3)
        runs: dict[str, list[float]] = {"fakeai": [], "bare": []}
        for round_number in range(args.rounds):
            order = [("fakeai", fakeai), ("bare", bare)]
            for name, app in order if round_number % 2 == 0 else order[::-1]:
                runs[name].append(await per_request(app, args.requests))
            fake_us, bare_us = runs["fakeai"][-1], runs["bare"][-1]
            print(f"round {round_number + 1}: fakeai {fake_us:.1f} us, bare FastAPI {bare_us:.1f} us")
    fake, bare_median = statistics.median(runs["fakeai"]), statistics.median(runs["bare"])
    label = "fakeai (metrics off)" if args.without_metrics else "fakeai --no-delay"
    print(f"\n{args.requests} non-streaming chat requests a round, {args.rounds} rounds, CPU per request:")
    print(f"  {label:<22} median {fake:6.1f} us  best {min(runs['fakeai']):6.1f} us")
    print(f"  {'bare FastAPI':<22} median {bare_median:6.1f} us  best {min(runs['bare']):6.1f} us")
    print(f"  bare / fakeai: {bare_median / fake:.2f} (throughput.py's CPU ratio, without the server around both)")


if __name__ == "__main__":
    asyncio.run(main())
