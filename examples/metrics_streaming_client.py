"""Print live fakeai metrics from /metrics/stream, one compact line per update.

    python examples/metrics_streaming_client.py [--url ws://localhost:8000/metrics/stream]
        [--metric-type latency] [--endpoint /v1/chat/completions] [--model M] [--interval 1]
        [--token T] [--updates N]

Reconnects with exponential backoff when the server goes away, and pings every 30 s.
"""

import argparse
import asyncio
import contextlib
import json
import sys

import websockets

PING_EVERY = 30.0


def compact(message: dict) -> str:
    data = message.get("data", {})
    parts = []
    if "throughput" in data:
        t = data["throughput"]
        parts.append(f"req/s {t['total_requests_per_sec']:.1f} tok/s {t['total_tokens_per_sec']:.0f}")
    for endpoint, stats in data.get("latency", {}).items():
        parts.append(f"{endpoint} p50 {stats['p50']:.0f}ms p99 {stats['p99']:.0f}ms")
    if "streaming" in data:
        s = data["streaming"]
        parts.append(f"streams {s['active_streams']:.0f} ttft p99 {s['ttft']['p99']:.0f}ms")
    if "cache" in data:
        parts.append(f"cache hit {data['cache']['hit_rate']:.0f}%")
    if "error" in data:
        parts.append(f"errors {data['error']['error_rate']:.1f}%")
    return " | ".join(parts) or "(no data yet)"


def subscription(args: argparse.Namespace) -> dict:
    filters: dict = {"interval": args.interval}
    if args.metric_type:
        filters["metric_type"] = args.metric_type
    if args.endpoint:
        filters["endpoint"] = args.endpoint
    if args.model:
        filters["model"] = args.model
    return {"type": "subscribe", "id": "client", "filters": filters}


async def pinger(ws) -> None:
    while True:
        await asyncio.sleep(PING_EVERY)
        await ws.send(json.dumps({"type": "ping"}))


async def run(args: argparse.Namespace) -> int:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    backoff, updates = 0.5, 0
    while True:
        try:
            async with websockets.connect(args.url, additional_headers=headers) as ws:
                backoff = 0.5
                await ws.send(json.dumps(subscription(args)))
                keepalive = asyncio.ensure_future(pinger(ws))
                try:
                    async for raw in ws:
                        message = json.loads(raw)
                        kind = message["type"]
                        if kind in ("historical_data", "metrics_update"):
                            print(f"{kind:<16} {compact(message)}", flush=True)
                            updates += kind == "metrics_update"
                            if args.updates and updates >= args.updates:
                                return 0
                        elif kind == "error":
                            print(f"error {message['code']}: {message['message']}", file=sys.stderr, flush=True)
                        elif kind == "subscribed":
                            print(f"subscribed       {json.dumps(message['filters'])}", flush=True)
                finally:
                    keepalive.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await keepalive
        except (OSError, websockets.ConnectionClosed) as exc:
            print(f"disconnected ({exc}); retrying in {backoff:.1f}s", file=sys.stderr, flush=True)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://localhost:8000/metrics/stream")
    parser.add_argument("--metric-type", action="append")
    parser.add_argument("--endpoint", action="append")
    parser.add_argument("--model", action="append")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--token")
    parser.add_argument("--updates", type=int, default=0, help="exit after this many updates (0: run forever)")
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
