"""``python -m bridge --scrape URL --port P``: stream another process's /metrics over WebSocket."""

import argparse
import importlib
import socket
import sys
from collections.abc import Sequence

import uvicorn

from bridge import frames
from bridge.app import create_bridge_app
from bridge.categories import Mapping
from bridge.hub import Hub, StreamSettings
from bridge.sources import PrometheusSource, ScrapeSource, Source


class MappingSpecError(Exception):
    """A ``--mapping`` that names no ``Mapping``; the message says why, in one line."""


def load_mapping(spec: str) -> Mapping:
    """``module:attribute`` naming a ``bridge.categories.Mapping``; ``module`` alone takes the one
    Mapping the module defines. Every way the name can be wrong is a ``MappingSpecError``; a module
    that fails inside its own import raises as it would (that traceback is the useful one)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or (":" in spec and not attribute):
        raise MappingSpecError(f"expected MODULE:ATTRIBUTE or MODULE, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise  # the module exists and failed to import something of its own
        raise MappingSpecError(f"no module named {module_name!r}") from None
    found = {name: value for name, value in vars(module).items() if isinstance(value, Mapping)}
    if not attribute:
        if len(found) != 1:
            names = ", ".join(sorted(found)) or "none"
            raise MappingSpecError(f"module {module_name!r} defines {len(found)} Mappings ({names}); name one")
        return next(iter(found.values()))
    if not hasattr(module, attribute):
        names = ", ".join(sorted(found)) or "none"
        raise MappingSpecError(f"module {module_name!r} has no attribute {attribute!r} (its Mappings: {names})")
    mapping = getattr(module, attribute)
    if not isinstance(mapping, Mapping):
        raise MappingSpecError(f"{spec} is a {type(mapping).__name__}, not a bridge.categories.Mapping")
    return mapping


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bridge", description=__doc__)
    sources = parser.add_mutually_exclusive_group(required=True)
    sources.add_argument("--scrape", metavar="URL", help="a Prometheus text endpoint, e.g. .../metrics")
    sources.add_argument("--prometheus-url", metavar="URL", help="a Prometheus server: a fleet-wide stream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port (printed)")
    parser.add_argument("--mapping", default="exporter.stream:STREAM_MAPPING", metavar="MODULE:ATTR")
    parser.add_argument("--min-interval", type=float, default=1.0, help="sampling tick = scrape interval, s")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--history-seconds", type=float, default=60.0)
    parser.add_argument("--token")
    args = parser.parse_args(argv)
    try:
        mapping = load_mapping(args.mapping)
    except MappingSpecError as exc:
        sys.exit(f"python -m bridge: --mapping: {exc}")
    settings = StreamSettings(
        min_interval=args.min_interval, window=args.window, history_seconds=args.history_seconds, token=args.token
    )
    streamed = args.scrape or args.prometheus_url
    source: Source = ScrapeSource(args.scrape) if args.scrape else PrometheusSource(args.prometheus_url)
    hub = Hub(source, mapping, settings)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)  # connections made as soon as the address is printed wait instead of being refused
    host, port = sock.getsockname()[:2]
    print(f"bridge streaming {streamed}\n  stream:  ws://{host}:{port}/metrics/stream", flush=True)
    config = uvicorn.Config(
        create_bridge_app(hub), log_level="warning", timeout_graceful_shutdown=5, ws=frames.PROTOCOL
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
