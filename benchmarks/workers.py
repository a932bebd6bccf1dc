"""Non-streaming chat requests/s with 1 and 2 workers, and /metrics scrape time with 2, in one run; then
what two workers' metric files cost the clients being served.

    python benchmarks/workers.py [--duration 10] [--connections 64] [--stall-rounds 3] [--requests 400]
        [--baseline-tree DIR] [--skip-throughput] [--skip-stall] [--file-rounds 5]

Needs ``wrk``. On a 2-core machine wrk and the workers share the cores, which caps the second
worker's gain; the figures say what this machine gives, side by side.

Stall: a server with ``--workers 2`` (default latency profile), 16 streaming clients in a process of
their own (``scrape.py``'s), with no scraper and then with one hitting /metrics three times a second, as
NVIDIA AIPerf does: client TTFT p50 and p99 each way, and the median of 10 scrapes. With workers, every
read of the metrics merges every worker's files (prometheus-client's multiprocess mode): each worker's
stream hub does it once a second whether or not anyone subscribes, and every /metrics does it once.
With ``--baseline-tree DIR`` (``git worktree add DIR <commit>``) the server runs from that checkout too,
the two taking turns and swapping order every round.

Files: in process, on the metric files of a ``--workers 2`` server after 500 streams, what one read costs:
prometheus-client's ``MultiProcessCollector`` against ``exporter.multiprocess.FilesCollector`` (what
/metrics merges; their texts compared byte for byte), and the collector with ``take`` (what the stream's
sampler did) against ``FilesSource`` (what it does), medians of ``--file-rounds`` rounds of 10 reads.
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from common import background, fakeai_command, free_port, require_wrk, spread, trees_in_turn, wrk_script
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from scrape import Scraper, client_ttft
from throughput import REQUEST, run_wrk, wait_ready

from bridge.snapshot import Interner, take
from exporter.multiprocess import FilesCollector, FilesSource
from exporter.stream import STREAM_MAPPING


def measure(workers: int, args: argparse.Namespace, script: Path) -> tuple[float, list[float]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with background(fakeai_command(port, "--no-delay", "--workers", str(workers))):
        wait_ready(url)
        run_wrk(url, 2, args.connections, script, pin=False)  # warm-up
        rate, _ = run_wrk(url, args.duration, args.connections, script, pin=False)
        scrapes = []
        for _ in range(20):
            start = time.perf_counter()
            httpx.get(url + "/metrics", headers={"Connection": "close"}).raise_for_status()
            scrapes.append(1000 * (time.perf_counter() - start))
        return rate, scrapes


def stall(tree: Path, requests: int) -> dict[str, float]:
    """Client TTFT p50/p99 (ms) of ``requests`` streams with no scraper and with a 3 Hz one, and the
    median /metrics (gzip, as Prometheus asks), on a server with two workers run from ``tree``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with background(fakeai_command(port, "--workers", "2"), tree=tree):
        wait_ready(url)
        client_ttft(url, 200)  # warm-up: both workers' connections, caches and files
        quiet = client_ttft(url, requests)
        with Scraper(url + "/metrics", 1 / 3):
            scraped = client_ttft(url, requests)
        scrapes = []
        with httpx.Client(headers={"accept-encoding": "gzip"}) as client:
            for _ in range(10):
                start = time.perf_counter()
                client.get(url + "/metrics").raise_for_status()
                scrapes.append(1000 * (time.perf_counter() - start))
    return {
        "quiet p50": quiet[0],
        "quiet p99": quiet[1],
        "scraped p50": scraped[0],
        "scraped p99": scraped[1],
        "scrape ms": statistics.median(scrapes),
    }


def stall_rounds(args: argparse.Namespace) -> None:
    figures: dict[str, list[dict[str, float]]] = {}
    print(f"\nstall: 2 workers, {args.requests} streams x 16 concurrent per run, no scraper | 3 Hz scraper")
    for round_number, name, tree in trees_in_turn(args.baseline_tree, args.stall_rounds):
        got = stall(tree, args.requests)
        figures.setdefault(name, []).append(got)
        print(
            f"  round {round_number + 1} {name:<6} TTFT p50 {got['quiet p50']:6.1f} p99 {got['quiet p99']:6.1f} ms | "
            f"p50 {got['scraped p50']:6.1f} p99 {got['scraped p99']:6.1f} ms | /metrics {got['scrape ms']:6.1f} ms"
        )
    print("\nmedians (ranges) of rounds")
    for name, rounds in figures.items():
        column = {key: [got[key] for got in rounds] for key in rounds[0]}
        print(
            f"  {name:<6} TTFT p99 {spread(column['quiet p99'])} ms, with the scraper {spread(column['scraped p99'])} "
            f"ms; /metrics {spread(column['scrape ms'])} ms"
        )


def files(rounds: int) -> None:
    """One read of two workers' files, by prometheus-client's collector and by ours, in this process."""

    def text(collector: Collector) -> bytes:
        registry = CollectorRegistry(support_collectors_without_names=True)
        registry.register(collector)
        return generate_latest(registry)

    def milliseconds(read: Callable[[], object]) -> float:
        start = time.perf_counter()
        for _ in range(10):
            read()
        return 100 * (time.perf_counter() - start)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (
        tempfile.TemporaryDirectory() as folder,
        background(fakeai_command(port, "--workers", "2", "--multiproc-dir", folder)),
    ):
        wait_ready(url)
        client_ttft(url, 500)  # traffic: every model's series
        theirs, ours = MultiProcessCollector(None, folder), FilesCollector(folder)
        source = FilesSource(ours)  # as the server builds it: one folder for both
        wanted, interner = STREAM_MAPPING.wanted(), Interner()
        same = text(theirs) == text(ours)
        times: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, read in (
                ("collector", lambda: list(theirs.collect())),
                ("FilesCollector", lambda: list(ours.collect())),
                ("collector + take", lambda: take(theirs.collect(), wanted, 0.0, interner)),
                ("FilesSource", lambda: source.read(wanted, 0.0, interner)),
            ):
                times.setdefault(name, []).append(milliseconds(read))
    print(f"\nfiles: 2 workers' files after 500 streams, one read in process, medians (ranges) of {rounds} rounds")
    print(
        f"  MultiProcessCollector {spread(times['collector'])} ms, FilesCollector {spread(times['FilesCollector'])} ms"
    )
    ratios = [a / b for a, b in zip(times["FilesCollector"], times["collector"], strict=True)]
    print(f"    FilesCollector / collector {spread(ratios, 2)}; the same text: {same}")
    print(f"  collector + take {spread(times['collector + take'])} ms, FilesSource {spread(times['FilesSource'])} ms")
    ratios = [a / b for a, b in zip(times["FilesSource"], times["collector + take"], strict=True)]
    print(f"    FilesSource / collector + take {spread(ratios, 3)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--stall-rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=400, help="streams per stall run")
    parser.add_argument("--baseline-tree", type=Path, help="a checkout to run the stall's server from too")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-stall", action="store_true")
    parser.add_argument("--file-rounds", type=int, default=5, help="rounds of the files' reads (0: none)")
    args = parser.parse_args()
    if not args.skip_throughput:
        throughput(args)
    if not args.skip_stall:
        stall_rounds(args)
    if args.file_rounds:
        files(args.file_rounds)


def throughput(args: argparse.Namespace) -> None:
    require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        script = wrk_script(Path(tmp), REQUEST)
        one, scrapes_one = measure(1, args, script)
        two, scrapes_two = measure(2, args, script)
    print(f"non-streaming chat, {args.connections} connections, {args.duration} s each")
    print(f"  1 worker    {one:8.0f} req/s   /metrics {statistics.median(scrapes_one):6.1f} ms (median of 20)")
    print(f"  2 workers   {two:8.0f} req/s   /metrics {statistics.median(scrapes_two):6.1f} ms (median of 20)")
    print(f"  2 / 1       {two / one:8.2f}")


if __name__ == "__main__":
    main()
