"""Command line: ``python -m fakeai server [options]`` (also the ``fakeai`` console script)."""

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from bridge import frames
from fakeai import __version__
from fakeai.app import SETTINGS_ENV, create_app, settle_heap
from fakeai.scenario import ScenarioError
from fakeai.scenario import load as load_scenario
from fakeai.scenario_runner import check as check_scenario
from fakeai.settings import Settings, add_arguments, settings_from
from fakeai.supervisor import Supervisor
from fakeai.tools import check_dashboards, load, tokenizer, verify, watch

# The commands beside ``server`` and ``scenario``: each module has ``add_arguments(parser)`` and ``main(args)``.
TOOLS: dict[str, tuple[Any, str]] = {
    "load": (load, "drive a server and set what the client saw against the server's metrics"),
    "watch": (watch, "live terminal view of /metrics/stream"),
    "tokenizer": (tokenizer, "write fakeai's tokenizer as a Hugging Face tokenizer folder"),
    "check-dashboards": (
        check_dashboards,
        "which panels of your dashboards and which of your rules have data against fakeai",
    ),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fakeai", description="A fake OpenAI-compatible LLM server.")
    parser.add_argument("--version", action="version", version=f"fakeai {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser(
        "server",
        help="serve the OpenAI API, /metrics and /metrics/stream",
        description="Serve the OpenAI API on simulated vLLM-like engines. Every flag has an environment "
        "twin shown in brackets; a flag wins over its variable, which wins over the default.",
    )
    add_arguments(server)
    for name, (module, summary) in TOOLS.items():
        module.add_arguments(
            commands.add_parser(
                name, help=summary, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
            )
        )
    scenario = commands.add_parser("scenario", help="scenario files: verify one against Prometheus")
    scenario_commands = scenario.add_subparsers(dest="scenario_command", required=True)
    verify.add_arguments(
        scenario_commands.add_parser(
            "verify",
            help="run a scenario and check its expectations through Prometheus and Alertmanager",
            description=verify.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    return parser


def banner(settings: Settings, host: str, port: int) -> str:
    base = f"http://{host}:{port}"
    return "\n".join(
        (
            f"fakeai {__version__} serving {', '.join(settings.models)}",
            f"  API:     {base}/v1",
            f"  metrics: {base}/metrics",
            f"  stream:  ws://{host}:{port}/metrics/stream",
            f"  docs:    {base}/docs",
        )
    )


def server_registry() -> CollectorRegistry:
    """The one-process server's registry. ``auto_describe``: prometheus-client's process, platform and GC
    collectors describe no names, and a restricted registry (``/metrics?name[]=process_cpu_seconds_total``)
    collects only collectors that described the name; prometheus-client's default registry, which vLLM
    exposes, describes them by collecting them once at registration, as this does."""
    return CollectorRegistry(auto_describe=True)


def listening_socket(settings: Settings) -> socket.socket:
    """The server's bound, listening socket, handed to uvicorn (and by it to every worker)."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio's own event loop turns Nagle's algorithm off (TCP_NODELAY) only on
    # sockets whose ``proto`` says TCP (asyncio.base_events._set_nodelay), and accepted sockets copy it from
    # this one. Without it, on a keep-alive connection an SSE frame waited for the client's delayed ACK of
    # the response head: 40 ms on Linux before every stream's first token (uvloop sets TCP_NODELAY anyway).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if settings.socket_send_buffer:
        # Accepted connections inherit it. Autotuning would let a subscriber that stopped reading
        # soak up megabytes before the stream's send timeout could notice.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.socket_send_buffer)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)  # clients that connect as soon as the banner prints wait instead of being refused
    return sock


def serve(settings: Settings) -> None:
    sock = listening_socket(settings)
    host, port = sock.getsockname()[:2]
    # The port actually bound (``--port 0`` picks one): a scenario's built-in traffic is sent to it.
    settings = dataclasses.replace(settings, port=port)
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    options: dict[str, Any] = {
        "log_level": settings.log_level,
        "access_log": settings.log_level == "debug",
        "timeout_graceful_shutdown": 5,
        "ws": frames.PROTOCOL,  # /metrics/stream: an update framed once for all its subscribers
    }
    if settings.workers == 1:
        config = uvicorn.Config(create_app(settings, server_registry()), **options)
        settle_heap()
        print(banner(settings, host, port), flush=True)
        uvicorn.Server(config).run(sockets=[sock])
        return
    with metric_files(settings.multiproc_dir) as folder:
        # Workers are new interpreters: prometheus-client reads this when they import it.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        os.environ[SETTINGS_ENV] = settings.to_json()
        config = uvicorn.Config("fakeai.app:app_from_environment", factory=True, workers=settings.workers, **options)
        print(banner(settings, host, port) + f"\n  workers: {settings.workers} (metric files in {folder})", flush=True)
        Supervisor(config, sockets=[sock], folder=Path(folder)).run()


@contextlib.contextmanager
def metric_files(folder: str | None) -> Iterator[str]:
    """The workers' metric folder: empty at start, so a crashed run's counts never leak into this one,
    and emptied (or removed, when it was a temporary one) at exit."""
    path = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="fakeai-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    control = path / "control"  # the runtime journal of fakeai.control: a new server starts awake
    for stale in path.glob("*.db"):
        stale.unlink()
    shutil.rmtree(control, ignore_errors=True)
    try:
        yield str(path)
    finally:
        if folder:
            for file in path.glob("*.db"):
                file.unlink()
            shutil.rmtree(control, ignore_errors=True)
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in TOOLS:
        code: int = TOOLS[args.command][0].main(args)
        return code
    if args.command == "scenario":
        return verify.main(args)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    if settings.scenario:
        try:  # a scenario that cannot run stops the server before it starts: one line, exit code 2
            check_scenario(load_scenario(Path(settings.scenario)), settings)
        except ScenarioError as exc:
            print(f"fakeai server: error: {exc}", file=sys.stderr)
            return 2
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
