"""Server CPU and delivery lag of /metrics/stream for 1, 100 and 1,000 subscribers sharing one filter
set, and for 10 and 100 distinct filter sets, next to a bare Starlette fan-out of the same payload, in
one run.

    python benchmarks/stream_fanout.py [--duration 20] [--rounds 3] [--traffic-rps 10]
        [--scenarios 1 100 1000 10-sets 100-sets] [--server-tree DIR]

The distinct sets' windows are 10 s, 11 s, 12 s..., and the server first runs long enough (about two
minutes a round for 100 sets) to hold a snapshot at each window's start: a hundred distinct windows a
tick. While it does, and while the distinct sets are measured, a client in its own process streams
``--traffic-rps`` chat requests a second to it, so every window holds requests, tokens, latencies and
cache lookups to compute (on an idle server every quantile is empty, and cheap). Lag of N distinct sets
next to the lag of N subscribers of one set is what "flat in the number of sets" compares.

The server is pinned to CPU 0 and the subscribers (their own process) to CPU 1. Lag is the time from
the message's timestamp (taken by the server when it built the update) to its arrival, in the steady
state: measured from the time every subscriber has had three updates. The largest lag before that (the
server's first ticks for the new subscribers, when each new window's start is summed for the first time)
is reported apart, as "first max". Each round runs
every scenario on fakeai and then on the bare app; the summary gives medians and ranges over rounds,
and the CPU ratio fakeai / bare of each round (a process's CPU time is read in 10 ms ticks: at under 1%
CPU, runs shorter than 20 s are mostly rounding).
"""

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from common import background, cpu_seconds, fakeai_command, free_port, pinned, spread, wait_port

HERE = Path(__file__).resolve().parent
SCENARIOS = (
    ("1", "shared", 1),
    ("100", "shared", 100),
    ("1000", "shared", 1000),
    ("10-sets", "distinct", 10),
    ("100-sets", "distinct", 100),
)
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@contextlib.contextmanager
def traffic(port: int, rps: float, seconds: float) -> Iterator[None]:
    """``rps`` streamed chat requests a second for about ``seconds``, from the lean client (CPU 1)."""
    if rps <= 0:
        yield
        return
    command = [sys.executable, "-m", "fakeai.traffic", "--url", f"http://127.0.0.1:{port}", "--model", MODEL]
    command += ["--requests", str(int(rps * seconds)), "--rps", str(rps), "--max-tokens", "16"]
    with background(command, cpu=1):
        yield


def measure(
    server: list[str], port: int, mode: str, count: int, duration: float, rps: float = 0.0, tree: Path | None = None
) -> dict:
    # Distinct sets ask for windows of 10 to 10 + count - 1 s: the server keeps a snapshot a second from
    # its start, so it runs that long first, or the longer windows would all begin at its oldest
    # snapshot and share one computation (the hub computes equal (start, end, selection) once) instead
    # of measuring ``count`` distinct ones.
    warm_up = 1.5 if mode == "shared" else 10.0 + count + 2.0
    with background(server, cpu=0, tree=tree) as process:
        wait_port(port)
        with traffic(port, rps, warm_up + duration + 10.0):
            time.sleep(warm_up)
            command = [sys.executable, str(HERE / "fanout_clients.py"), f"ws://127.0.0.1:{port}/metrics/stream"]
            clients = subprocess.Popen(
                pinned(1, [*command, str(count), mode, str(duration)]), stdout=subprocess.PIPE, text=True
            )
            ready = json.loads(clients.stdout.readline())
            assert ready["event"] == "ready"
            cpu_start, wall_start = cpu_seconds(process.pid), time.time()
            done = json.loads(clients.stdout.readline())
            clients.wait(timeout=60)
            cpu = cpu_seconds(process.pid) - cpu_start
            wall = time.time() - wall_start
    return {
        "cpu_percent": 100 * cpu / wall,
        "p50_ms": 1000 * (done["p50"] or float("nan")),
        "p99_ms": 1000 * (done["p99"] or float("nan")),
        "updates": done["updates"],
        "first_max_ms": 1000 * (done["first_max"] or float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=[label for label, _, _ in SCENARIOS],
        default=[label for label, _, _ in SCENARIOS],
        help="the scenarios to run (default: all); '100-sets' is the 100 distinct filter sets",
    )
    parser.add_argument(
        "--traffic-rps", type=float, default=10.0, help="chat requests a second while distinct sets run (0: none)"
    )
    parser.add_argument(
        "--server-tree", type=Path, help="run fakeai from this checkout (git worktree add DIR <commit>): before/after"
    )
    args = parser.parse_args()
    scenarios = [(mode, count) for label, mode, count in SCENARIOS if label in args.scenarios]
    with tempfile.TemporaryDirectory() as tmp:
        # The payload the bare fan-out pushes: a real update of a server that has seen some traffic.
        port = free_port()
        flags = ("--no-delay", "--stream-max-clients", "5000")
        with background(fakeai_command(port, *flags), tree=args.server_tree):
            wait_port(port)
            for endpoint, body in (
                ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
                ("/v1/completions", {"prompt": "hi"}),
            ):
                for _ in range(20):
                    httpx.post(
                        f"http://127.0.0.1:{port}{endpoint}",
                        json={"model": "meta-llama/Llama-3.1-8B-Instruct", "max_tokens": 5, **body},
                    )
            import websockets.sync.client as ws_client

            with ws_client.connect(f"ws://127.0.0.1:{port}/metrics/stream", max_size=None) as ws:
                ws.recv()
                while (update := json.loads(ws.recv()))["type"] != "metrics_update":
                    pass
        payload = Path(tmp) / "payload.json"
        payload.write_text(json.dumps(update))
        size = len(json.dumps(update))
        print(f"payload {size} bytes, interval 1 s, {args.duration:.0f} s per scenario, {args.rounds} rounds\n")
        print(f"{'scenario':<34}{'server':>8}{'CPU %':>9}{'lag p50 ms':>12}{'lag p99 ms':>12}{'updates':>9}", end="")
        print(f"{'first max ms':>14}")
        results: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.rounds):
            for mode, count in scenarios:
                label = f"{count} subscribers, {'1 filter set' if mode == 'shared' else f'{count} filter sets'}"
                port = free_port()
                for name, command in (
                    ("fakeai", fakeai_command(port, *flags)),
                    ("bare", [sys.executable, str(HERE / "bare_fanout.py"), str(port), str(payload), "1.0"]),
                ):
                    if name == "bare" and mode == "distinct":
                        continue  # the bare app has no filters: its 100-subscriber row is the baseline
                    rps = args.traffic_rps if mode == "distinct" else 0.0
                    r = measure(
                        command, port, mode, count, args.duration, rps, args.server_tree if name == "fakeai" else None
                    )
                    results.setdefault((label, name), []).append(r)
                    print(
                        f"{label:<34}{name:>8}{r['cpu_percent']:>9.2f}{r['p50_ms']:>12.1f}{r['p99_ms']:>12.1f}"
                        f"{r['updates']:>9}{r['first_max_ms']:>14.1f}",
                        flush=True,
                    )
        print(f"\nmedians (ranges) over {args.rounds} rounds")
        print(f"{'scenario':<34}{'server':>8}{'CPU %':>20}{'CPU / bare':>20}", end="")
        print(f"{'lag p50 ms':>20}{'lag p99 ms':>20}{'first max ms':>20}")
        for (label, name), runs in results.items():
            # The distinct sets' baseline is the bare fan-out to as many subscribers, when it was run.
            bare = results.get((label, "bare")) or results.get((label.split(",")[0] + ", 1 filter set", "bare"))
            ratios = [f["cpu_percent"] / max(b["cpu_percent"], 1e-9) for f, b in zip(runs, bare or runs, strict=True)]
            print(
                f"{label:<34}{name:>8}{spread([r['cpu_percent'] for r in runs], 2):>20}"
                f"{spread(ratios, 2) if name == 'fakeai' and bare else '':>20}"
                f"{spread([r['p50_ms'] for r in runs]):>20}{spread([r['p99_ms'] for r in runs]):>20}"
                f"{spread([r['first_max_ms'] for r in runs]):>20}"
            )


if __name__ == "__main__":
    main()
