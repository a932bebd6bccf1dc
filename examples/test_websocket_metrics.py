"""Check that a live server honours the /metrics/stream protocol; exits 0 when it does.

python examples/test_websocket_metrics.py [--url ws://localhost:8000/metrics/stream]
"""

import argparse
import asyncio
import json
import sys
import time

import websockets

CATEGORIES = {"throughput", "latency", "cache", "queue", "streaming", "error"}


class Failed(Exception):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)
    print(f"ok   {what}", flush=True)


async def next_of(ws, kind: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(deadline - time.monotonic(), 0.01)))
        if message["type"] == kind:
            return message


async def run(url: str) -> None:
    async with websockets.connect(url) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        check(first["type"] == "historical_data", "the first message is historical_data")
        check(set(first["data"]) == CATEGORIES, "historical_data carries all six categories")
        check(isinstance(first["history"], list), "historical_data carries a history list")

        await ws.send(json.dumps({"type": "ping", "id": "p1"}))
        pong = await next_of(ws, "pong")
        check(pong.get("id") == "p1" and isinstance(pong["timestamp"], float), "ping gets a pong with the same id")

        await ws.send(
            json.dumps({"type": "subscribe", "id": 2, "filters": {"endpoint": "/v1/chat/completions", "interval": 2.0}})
        )
        subscribed = await next_of(ws, "subscribed")
        check(
            subscribed["id"] == 2
            and subscribed["filters"]["endpoints"] == ["/v1/chat/completions"]
            and subscribed["filters"]["interval"] == 2.0,
            "subscribe is confirmed with the filters in force",
        )

        await ws.send(json.dumps({"type": "subscribe", "filters": {"metric_type": "latency", "interval": 1.0}}))
        await next_of(ws, "subscribed")
        update = await next_of(ws, "metrics_update")
        check(set(update["data"]) == {"latency"}, "metric_type latency sends only latency")
        check("deltas" in update and "window" in update, "metrics_update carries window and deltas")
        start = time.monotonic()
        await next_of(ws, "metrics_update")
        check(0.5 <= time.monotonic() - start <= 2.0, "updates follow the subscribed interval")

        await ws.send("{not json")
        error = await next_of(ws, "error")
        check(error["code"] == "invalid_json", "a bad message gets an error and the connection stays open")
        await ws.send(json.dumps({"type": "subscribe", "filters": {"interval": -1}}))
        check((await next_of(ws, "error"))["code"] == "invalid_filter", "an invalid filter is refused")

        await ws.send(json.dumps({"type": "unsubscribe"}))
        unsubscribed = await next_of(ws, "unsubscribed")
        check(unsubscribed["filters"]["metric_types"] == ["all"], "unsubscribe restores the default filters")
        update = await next_of(ws, "metrics_update")
        check(set(update["data"]) == CATEGORIES, "updates continue at the defaults")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://localhost:8000/metrics/stream")
    url = parser.parse_args().url
    try:
        asyncio.run(run(url))
    except Failed as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        sys.exit(1)
    except (OSError, TimeoutError, websockets.ConnectionClosed) as exc:
        print(f"FAIL could not talk to {url}: {exc!r}", file=sys.stderr)
        sys.exit(1)
    print("all protocol checks passed")


if __name__ == "__main__":
    main()
