"""``python -m bridge --scrape URL --port P``: stream another process's /metrics over WebSocket."""

import argparse
import importlib
import socket
import sys

import uvicorn

from bridge.app import create_bridge_app
from bridge.categories import Mapping
from bridge.hub import Hub, StreamSettings
from bridge.sources import PrometheusSource, ScrapeSource


def load_mapping(spec: str) -> Mapping:
    """``module:attribute`` naming a ``Mapping`` (the default is fakeai's own families)."""
    module, _, attribute = spec.partition(":")
    mapping = getattr(importlib.import_module(module), attribute or "MAPPING")
    if not isinstance(mapping, Mapping):
        raise SystemExit(f"{spec} is not a bridge.categories.Mapping")
    return mapping


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bridge", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--scrape", metavar="URL", help="a Prometheus text endpoint, e.g. .../metrics")
    source.add_argument("--prometheus-url", metavar="URL", help="a Prometheus server: a fleet-wide stream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port (printed)")
    parser.add_argument("--mapping", default="exporter.stream:STREAM_MAPPING", metavar="MODULE:ATTR")
    parser.add_argument("--min-interval", type=float, default=1.0, help="sampling tick = scrape interval, s")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--history-seconds", type=float, default=60.0)
    parser.add_argument("--token")
    args = parser.parse_args()
    settings = StreamSettings(
        min_interval=args.min_interval, window=args.window, history_seconds=args.history_seconds, token=args.token
    )
    streamed = args.scrape or args.prometheus_url
    source = ScrapeSource(args.scrape) if args.scrape else PrometheusSource(args.prometheus_url)
    hub = Hub(source, load_mapping(args.mapping), settings)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)  # connections made as soon as the address is printed wait instead of being refused
    host, port = sock.getsockname()[:2]
    print(f"bridge streaming {streamed}\n  stream:  ws://{host}:{port}/metrics/stream", flush=True)
    config = uvicorn.Config(create_bridge_app(hub), log_level="warning", timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
