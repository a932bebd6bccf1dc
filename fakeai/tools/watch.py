"""``python -m fakeai watch``: a live terminal view of /metrics/stream, reconnecting on loss."""

import argparse
import asyncio
import json
from typing import Any

import websockets
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table


def render(message: dict[str, Any], status: str) -> Group:
    data = message.get("data", {})
    parts: list[Any] = []
    title = f"fakeai {status}  window {message.get('window', '?')} s"
    if "throughput" in data:
        t = data["throughput"]
        table = Table(title=title + "  throughput", expand=True)
        for column in ("endpoint", "requests/s", "tokens/s", "prompt tokens/s"):
            table.add_column(column, justify="right" if column != "endpoint" else "left")
        for endpoint in sorted(t["requests_per_sec"]):
            tokens = t["tokens_per_sec"].get(endpoint, 0)
            prompt = t["prompt_tokens_per_sec"].get(endpoint, 0)
            table.add_row(endpoint, f"{t['requests_per_sec'][endpoint]:.2f}", f"{tokens:.1f}", f"{prompt:.1f}")
        totals = (t["total_requests_per_sec"], t["total_tokens_per_sec"], t["total_prompt_tokens_per_sec"])
        table.add_row("total", f"{totals[0]:.2f}", f"{totals[1]:.1f}", f"{totals[2]:.1f}")
        parts.append(table)
    if "latency" in data:
        table = Table(title="end-to-end latency, ms", expand=True)
        for column in ("endpoint", "p50", "p90", "p99", "avg", "count"):
            table.add_column(column, justify="right" if column != "endpoint" else "left")
        for endpoint, s in sorted(data["latency"].items()):
            table.add_row(endpoint, *(f"{s[k]:.1f}" for k in ("p50", "p90", "p99", "avg")), f"{s['count']:.0f}")
        parts.append(table)
    if "streaming" in data or "queue" in data or "cache" in data or "error" in data:
        table = Table(title="engine", expand=True, show_header=False)
        table.add_column("figure")
        table.add_column("value", justify="right")
        if "queue" in data:
            q = data["queue"]
            table.add_row("running / waiting", f"{q['active_requests']:.0f} / {q['queue_depth']:.0f}")
            table.add_row("queue time p99 ms", f"{q['queue_time']['p99']:.1f}")
        if "streaming" in data:
            s = data["streaming"]
            table.add_row("active streams", f"{s['active_streams']:.0f}")
            table.add_row("TTFT p50 / p99 ms", f"{s['ttft']['p50']:.1f} / {s['ttft']['p99']:.1f}")
            table.add_row("ITL p50 / p99 ms", f"{s['itl']['p50']:.1f} / {s['itl']['p99']:.1f}")
        if "cache" in data:
            table.add_row("prefix cache hit rate %", f"{data['cache']['hit_rate']:.1f}")
        if "error" in data:
            table.add_row("error rate %", f"{data['error']['error_rate']:.2f}")
        parts.append(table)
    return Group(*parts) if parts else Group(Table(title=title))


async def watch(args: argparse.Namespace, console: Console) -> int:
    url = args.url.rstrip("/").replace("http://", "ws://").replace("https://", "wss://") + "/metrics/stream"
    filters: dict[str, Any] = {"interval": args.interval}
    for key, values in (("metric_type", args.metric_type), ("endpoint", args.endpoint), ("model", args.model)):
        if values:
            filters[key] = values
    updates, backoff = 0, 0.5
    with Live(render({}, "connecting"), console=console, refresh_per_second=4, transient=False) as live:
        while True:
            try:
                async with websockets.connect(url, max_size=None) as ws:
                    backoff = 0.5
                    await ws.send(json.dumps({"type": "subscribe", "filters": filters}))
                    async for raw in ws:
                        message = json.loads(raw)
                        if message["type"] in ("historical_data", "metrics_update"):
                            live.update(render(message, "live"))
                            updates += message["type"] == "metrics_update"
                            if args.updates and updates >= args.updates:
                                return 0
                        elif message["type"] == "error":
                            console.print(f"[red]{message['code']}: {message['message']}")
            except (OSError, websockets.ConnectionClosed):
                live.update(render({}, f"reconnecting in {backoff:.1f} s"))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)


def main(args: argparse.Namespace, console: Console | None = None) -> int:
    try:
        return asyncio.run(watch(args, console or Console()))
    except KeyboardInterrupt:
        return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--metric-type", action="append")
    parser.add_argument("--endpoint", action="append")
    parser.add_argument("--model", action="append")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--updates", type=int, default=0, help="exit after this many updates (0: run until Ctrl-C)")
