"""What a /metrics scrape costs, and what it costs the clients being served meanwhile.

1. Render: one scrape of the default three-model server after mixed traffic, in process, against
   prometheus-client's ``generate_latest`` of the very same samples (parsed back into static families,
   so the baseline does nothing but write text) and against ``generate_latest`` on the live registry
   (what prometheus-client alone would do with our collectors). Median of 20 renders per round.
2. Stall: a real server (default latency profile), 16 streaming clients in a process of their own
   (``python -m fakeai.traffic``), with and without a scraper hitting /metrics three times a second (as
   NVIDIA AIPerf does), alternating round by round. Prints the client TTFT p50/p99 each way and what the
   scraper adds.

    python benchmarks/scrape.py [--rounds 3] [--requests 400] [--server-tree DIR] [--profile FILE]
        [--metrics-dialect vllm,sglang] [--models N] [--each-dialect]

``--server-tree`` runs the server from another checkout (for a before/after); ``--profile`` writes a
cProfile of the in-process renders. ``--models N`` renders a server of the first N default models; a
dialect that speaks for one model only (``trtllm``, ``llamacpp``) is given to the first, and the others keep
the rest of the dialects named (``vllm`` if none). ``--each-dialect`` renders each dialect alone on a
one-model server and ``vllm`` alone, in turn in one process, and prints each one's ratio to ``vllm``'s.
"""

import argparse
import asyncio
import cProfile
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from common import free_port, pinned, wait_port
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import collect_once, scrape
from exporter.textformat import TextWriter
from fakeai.app import create_app, settle_heap
from fakeai.settings import METRICS_DIALECTS, ONE_MODEL_DIALECTS, Settings

ROOT = Path(__file__).resolve().parent.parent
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


class Static:
    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self) -> list:
        return self.families


def render_settings(dialects: tuple[str, ...], models: int) -> Settings:
    served = Settings().models[:models]
    single = tuple(d for d in dialects if d in ONE_MODEL_DIALECTS)
    shared = tuple(d for d in dialects if d not in ONE_MODEL_DIALECTS)
    first = {served[0]: shared + single} if single else {}
    return Settings(no_delay=True, models=served, metrics_dialect=shared or ("vllm",), model_dialects=first)


async def busy_registry(settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry()
    app = create_app(settings, registry)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fakeai") as client:
            for model in settings.models:
                for i in range(40):
                    chat = {"messages": [{"role": "user", "content": f"q {i}"}], "max_tokens": 16}
                    await client.post("/v1/chat/completions", json={"model": model, **chat, "stream": i % 2 == 0})
                    await client.post("/v1/completions", json={"model": model, "prompt": f"p {i}", "max_tokens": 8})
                    await client.post("/v1/embeddings", json={"model": model, "input": f"e {i}"})
    return registry


def timed(call, repeat: int = 20) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def render_rounds(rounds: int, profile: str | None, dialects: tuple[str, ...] = ("vllm",), models: int = 3) -> None:
    registry = asyncio.run(busy_registry(render_settings(dialects, models)))
    writer = TextWriter()
    loop = asyncio.new_event_loop()

    def render() -> bytes:
        return bytes(loop.run_until_complete(scrape(registry, "", "", [], writer)).body)

    text = render()
    static = CollectorRegistry()
    static.register(Static(list(text_string_to_metric_families(text.decode()))))
    samples = sum(len(f.samples) for f in static.collect())
    size = f"{samples} samples, {len(text) / 1024:.0f} KiB"
    print(f"render ({','.join(dialects)}, {models} models): {size}, median of 20 per round")
    rows = []
    for _ in range(rounds):
        ours = timed(render)
        baseline = timed(lambda: generate_latest(static))
        live = timed(lambda: generate_latest(registry))
        rows.append((ours, baseline, live))
        print(
            f"  fakeai /metrics {ours:6.1f} ms | generate_latest, same samples {baseline:6.1f} ms | "
            f"generate_latest, live registry {live:6.1f} ms | ratio {ours / baseline:.2f}"
        )
    ratios = [o / b for o, b, _ in rows]
    print(
        f"  ratio to generate_latest of the same samples: median {statistics.median(ratios):.2f} "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}); fakeai median {statistics.median(r[0] for r in rows):.1f} ms"
    )
    if profile:
        cProfile.runctx("for _ in range(20): render()", globals(), locals(), profile)
        print(f"  profile of 20 renders written to {profile}")


def dialect_rounds(rounds: int) -> None:
    """Each dialect alone on a one-model server against ``vllm`` alone, all in this process and rendered
    in turn, render by render (the order rotating each round), so machine noise hits them alike: per
    dialect the median render and its ratio to ``vllm``'s in the same round."""
    servers = {d: asyncio.run(busy_registry(render_settings((d,), 1))) for d in METRICS_DIALECTS}
    settle_heap()  # as the server does once started: the start-up heap out of the collector's sight
    loop = asyncio.new_event_loop()
    renders = {}
    for dialect, registry in servers.items():
        writer = TextWriter()
        renders[dialect] = lambda registry=registry, writer=writer: loop.run_until_complete(
            scrape(registry, "", "", [], writer)
        )
    sizes = {d: sum(len(f.samples) for f in collect_once(r)) for d, r in servers.items()}
    times: dict[str, list[float]] = {d: [] for d in servers}
    order = list(servers)
    for round_index in range(rounds):
        turn = order[round_index % len(order) :] + order[: round_index % len(order)]
        # Render by render in turn, not 50 of one then 50 of the next: a slow second of the machine
        # then hits every dialect of the round alike.
        rendered: dict[str, list[float]] = {d: [] for d in turn}
        for _ in range(50):
            for dialect in turn:
                rendered[dialect].append(timed(renders[dialect], repeat=1))
        for dialect in turn:
            times[dialect].append(statistics.median(rendered[dialect]))
    print(f"one dialect on a one-model server, {rounds} rounds of 50 renders each, taken in turn:")
    for dialect in order:
        ratios = [t / v for t, v in zip(times[dialect], times["vllm"], strict=True)]
        print(
            f"  {dialect:9} {sizes[dialect]:5} samples  {statistics.median(times[dialect]):5.1f} ms  "
            f"/ vllm {statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})"
        )


class Scraper:
    """GETs /metrics every ``period`` seconds (gzip, as Prometheus asks) until stopped."""

    def __init__(self, url: str, period: float) -> None:
        self.url, self.period, self.count = url, period, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # Raw bytes, never decompressed: the scraper's own CPU stays off the figures it disturbs.
        with httpx.Client(headers={"accept-encoding": "gzip"}) as client:
            while not self._stop.wait(self.period):
                with client.stream("GET", self.url) as response:
                    response.raise_for_status()
                    for _ in response.iter_raw():
                        pass
                self.count += 1

    def __enter__(self) -> "Scraper":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def client_ttft(url: str, requests: int) -> tuple[float, float]:
    """Client TTFT p50 and p99 (ms) of ``requests`` streams, 16 at a time, measured by another process."""
    command = [
        sys.executable,
        "-m",
        "fakeai.traffic",
        "--url",
        url,
        "--model",
        MODEL,
        "--requests",
        str(requests),
        "--concurrency",
        "16",
        "--max-tokens",
        "16",
    ]
    out = subprocess.run(pinned(1, command), capture_output=True, text=True, check=True, cwd=ROOT).stdout
    # The first second opens the connections and starts all 16 streams in one engine step: not steady state.
    ttfts = sorted(t["ttft"] for t in json.loads(out)["timings"] if t["ttft"] is not None and t["started"] > 1.0)
    quantiles = statistics.quantiles(ttfts, n=100, method="inclusive")
    return quantiles[49] * 1000, quantiles[98] * 1000


def stall_rounds(rounds: int, requests: int, server_tree: Path) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})  # the scraper thread too: the server has core 0 to itself
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(server_tree)}
    command = [sys.executable, "-m", "fakeai", "server", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(
        pinned(0, command), cwd=server_tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port)
        base = f"http://127.0.0.1:{port}"
        client_ttft(base, 400)  # warm up
        print(f"\nstall: {requests} streams x 16 concurrent per run, server {server_tree}")
        added = []
        for _ in range(rounds):
            quiet = client_ttft(base, requests)
            with Scraper(base + "/metrics", 1 / 3) as scraper:
                scraped = client_ttft(base, requests)
            added.append(scraped[1] - quiet[1])
            print(
                f"  no scraper: TTFT p50 {quiet[0]:6.1f} p99 {quiet[1]:6.1f} ms | 3 Hz scraper "
                f"({scraper.count} scrapes): p50 {scraped[0]:6.1f} p99 {scraped[1]:6.1f} ms | "
                f"p99 added {scraped[1] - quiet[1]:+6.1f} ms"
            )
        print(
            f"  TTFT p99 the scraper adds: median {statistics.median(added):+.1f} ms "
            f"(range {min(added):+.1f} to {max(added):+.1f})"
        )
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--server-tree", type=Path, default=ROOT, help="checkout the stall server runs from")
    parser.add_argument("--profile", help="write a cProfile of the in-process renders here")
    parser.add_argument("--skip-render", action="store_true")
    parser.add_argument("--skip-stall", action="store_true", help="only the render figures")
    parser.add_argument(
        "--metrics-dialect", default="vllm", help="the render server's dialects, comma-separated (e.g. vllm,sglang)"
    )
    parser.add_argument("--models", type=int, default=3, help="serve the first N default models (1-3)")
    parser.add_argument(
        "--each-dialect", action="store_true", help="each dialect alone against vllm alone (one model), in turn"
    )
    args = parser.parse_args()
    if args.each_dialect:
        dialect_rounds(args.rounds)
    elif not args.skip_render:
        render_rounds(args.rounds, args.profile, tuple(args.metrics_dialect.split(",")), args.models)
    if not args.skip_stall:
        stall_rounds(args.rounds, args.requests, args.server_tree.resolve())


if __name__ == "__main__":
    main()
