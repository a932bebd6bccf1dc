"""Non-streaming chat requests/s with 1 and 2 workers, and /metrics scrape time with 2, in one run.

    python benchmarks/workers.py [--duration 10] [--connections 64]

Needs ``wrk``. On a 2-core machine wrk and the workers share the cores, which caps the second
worker's gain; the figures say what this machine gives, side by side.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from common import background, fakeai_command, free_port, require_wrk, wrk_script
from throughput import REQUEST, run_wrk, wait_ready


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
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
