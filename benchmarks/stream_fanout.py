"""Server CPU and delivery lag of /metrics/stream for 1, 100 and 1,000 subscribers sharing one filter
set, next to a bare Starlette fan-out of the same payload; and for 100 subscribers spread over 1, 10
and 100 distinct filter sets beside the same chat traffic, in one run.

    python benchmarks/stream_fanout.py [--duration 20] [--rounds 3] [--traffic-rps 10]
        [--scenarios 1 100 1000 10-sets 100-sets 100-in-1-set 100-in-10-sets 100-sets-by-category
        100-sets-by-selection] [--server-tree DIR] [--deflate] [--post-times]

The distinct sets' windows are 10 s, 11 s, 12 s..., and the server first runs long enough (about two
minutes a round for 100 sets) to hold a snapshot at each window's start: a hundred distinct windows a
tick. While it does, and while the sets are measured, a client in its own process streams
``--traffic-rps`` chat requests a second to it, so every window holds requests, tokens, latencies and
cache lookups to compute (on an idle server every quantile is empty, and cheap).

"Flat in the number of sets" compares like with like: the same 100 subscribers and the same traffic,
in 1 set (``100-in-1-set``), 10 sets (``100-in-10-sets``, ten subscribers a set) and 100 sets
(``100-sets``); the summary prints each one's lag p99 over the one set's, round by round. ``10-sets``
is 10 subscribers in 10 sets (the row of earlier sessions). The sets of ``100-sets`` differ in their
windows; those of ``100-sets-by-category`` in the categories they ask for (63 kinds, on windows of 10 and
11 s), those of ``100-sets-by-selection`` in the models and endpoints they select (64 kinds, the same
two windows): ``stream_deliver.py``'s ``--vary``.

The server is pinned to CPU 0 and the subscribers (their own process) to CPU 1. Lag is the time from
the message's timestamp (taken by the server when it built the update) to its arrival, in the steady
state: measured from the time every subscriber has had three updates. The largest lag before that (the
server's first ticks for the new subscribers, when each new window's start is summed for the first time)
is reported apart, as "first max". Each round runs every scenario on fakeai and then, for those without
traffic, on the bare app; the summary gives medians and ranges over rounds, and the CPU ratio fakeai /
bare of each round (a process's CPU time is read in 10 ms ticks: at under 1% CPU, runs shorter than
20 s are mostly rounding).

With ``--deflate`` every subscriber offers permessage-deflate as a browser does, and both servers
compress: the bare app as uvicorn does, once per connection with context takeover; fakeai once per
distinct update (``bridge.frames``).

With ``--post-times`` fakeai runs through ``timed_hub_server.py``, and each of its rows adds the medians
of a tick's first and last post, ms after the updates' timestamp: how much of the lag is the hub's
(computing, and the turns it gives serving meanwhile) and how much the sending. The summary compares
the many-set scenarios with the one set by lag p50 as well as p99: with 100 subscribers and 20 ticks a
round, p99 is close to the worst tick's lag, and one slow tick moves it.
"""

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import background, cpu_seconds, fakeai_command, free_port, pinned, spread, wait_port
from stream_deliver import filters_of

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Scenario:
    label: str
    subscribers: int
    sets: int
    traffic: bool
    """Chat traffic beside the stream (then no bare run: the bare app serves no chat)."""
    vary: str = "windows"
    """What the distinct sets differ in (``stream_deliver.VARIED``)."""

    @property
    def title(self) -> str:
        sets = "1 filter set" if self.sets == 1 else f"{self.sets} filter sets"
        if self.vary != "windows":
            sets += {"categories": " by category", "selections": " by selection"}[self.vary]
        return f"{self.subscribers} subscribers, {sets}{', traffic' if self.traffic else ''}"

    @property
    def longest_window(self) -> float:
        """The longest window a subscriber asks for (the server runs that long first)."""
        if self.sets == 1:
            return 10.0
        return max(filters["window"] for filters in filters_of("distinct", self.sets, self.vary))


SCENARIOS = (
    Scenario("1", 1, 1, traffic=False),
    Scenario("100", 100, 1, traffic=False),
    Scenario("1000", 1000, 1, traffic=False),
    Scenario("10-sets", 10, 10, traffic=True),
    Scenario("100-in-1-set", 100, 1, traffic=True),
    Scenario("100-in-10-sets", 100, 10, traffic=True),
    Scenario("100-sets", 100, 100, traffic=True),
    Scenario("100-sets-by-category", 100, 100, traffic=True, vary="categories"),
    Scenario("100-sets-by-selection", 100, 100, traffic=True, vary="selections"),
)
FLAT = ("100-in-1-set", ("100-in-10-sets", "100-sets", "100-sets-by-category", "100-sets-by-selection"))
"""The one-set scenario and those compared with it: the same subscribers and traffic, more sets."""
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
    server: list[str],
    port: int,
    scenario: Scenario,
    duration: float,
    rps: float = 0.0,
    tree: Path | None = None,
    deflate: bool = False,
) -> dict:
    # Distinct sets ask for windows of 10 to 10 + sets - 1 s: the server keeps a snapshot a second from
    # its start, so it runs that long first, or the longer windows would all begin at its oldest
    # snapshot and share one computation (the hub computes equal (start, end, selection) once) instead
    # of measuring ``sets`` distinct ones. One set with traffic waits as long as ten sets: its window
    # holds as much.
    warm_up = 1.5 if not scenario.traffic else max(scenario.longest_window, 20.0) + 2.0
    with background(server, cpu=0, tree=tree) as process:
        wait_port(port)
        with traffic(port, rps, warm_up + duration + 10.0):
            time.sleep(warm_up)
            command = [sys.executable, str(HERE / "fanout_clients.py"), f"ws://127.0.0.1:{port}/metrics/stream"]
            clients = subprocess.Popen(
                pinned(
                    1,
                    [*command, str(scenario.subscribers), str(scenario.sets), str(duration), f"vary={scenario.vary}"]
                    + (["deflate"] if deflate else []),
                ),
                stdout=subprocess.PIPE,
                text=True,
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


def post_times(path: Path, subscribers: int) -> dict[str, float]:
    """The medians of each tick's first and last post, ms after the update's timestamp, once every
    subscriber is in and their first three ticks are past (``timed_hub_server.py``'s lines)."""
    ticks = [json.loads(line) for line in path.read_text().splitlines()]
    steady = [tick["parts"] for tick in ticks if tick["clients"] >= subscribers and tick["parts"]][3:]
    if not steady:
        return {"posted_first_ms": math.nan, "posted_last_ms": math.nan}
    return {
        "posted_first_ms": 1000 * statistics.median(parts[0][0] for parts in steady),
        "posted_last_ms": 1000 * statistics.median(parts[-1][0] for parts in steady),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=[scenario.label for scenario in SCENARIOS],
        default=[scenario.label for scenario in SCENARIOS],
        help="the scenarios to run (default: all); '100-sets' is 100 subscribers in 100 distinct filter sets",
    )
    parser.add_argument(
        "--traffic-rps", type=float, default=10.0, help="chat requests a second while distinct sets run (0: none)"
    )
    parser.add_argument("--deflate", action="store_true", help="subscribers offer permessage-deflate, as browsers do")
    parser.add_argument(
        "--post-times",
        action="store_true",
        help="also print when the hub posted each tick's first and last updates (timed_hub_server.py)",
    )
    parser.add_argument(
        "--server-tree", type=Path, help="run fakeai from this checkout (git worktree add DIR <commit>): before/after"
    )
    args = parser.parse_args()
    scenarios = [scenario for scenario in SCENARIOS if scenario.label in args.scenarios]
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
        compressed = ", permessage-deflate" if args.deflate else ""
        print(f"payload {size} bytes{compressed}, interval 1 s, ", end="")
        print(f"{args.duration:.0f} s per scenario, {args.rounds} rounds\n")
        print(f"{'scenario':<44}{'server':>8}{'CPU %':>9}{'lag p50 ms':>12}{'lag p99 ms':>12}{'updates':>9}", end="")
        print(f"{'first max ms':>14}" + (f"{'posted: first':>14}{'last ms':>9}" if args.post_times else ""))
        results: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.rounds):
            for scenario in scenarios:
                port = free_port()
                for name, command in (
                    ("fakeai", fakeai_command(port, *flags)),
                    ("bare", [sys.executable, str(HERE / "bare_fanout.py"), str(port), str(payload), "1.0"]),
                ):
                    if name == "bare" and scenario.traffic:
                        continue  # the bare app serves no chat: its rows are those without traffic
                    rps = args.traffic_rps if scenario.traffic else 0.0
                    tree = args.server_tree if name == "fakeai" else None
                    timed = args.post_times and name == "fakeai"
                    if timed:
                        command = [sys.executable, str(HERE / "timed_hub_server.py"), *command[3:]]
                        os.environ["FAKEAI_POST_TIMES"] = str(Path(tmp) / f"posts-{port}.jsonl")
                    r = measure(command, port, scenario, args.duration, rps, tree, args.deflate)
                    if timed:
                        r |= post_times(Path(os.environ["FAKEAI_POST_TIMES"]), scenario.subscribers)
                    results.setdefault((scenario.label, name), []).append(r)
                    print(
                        f"{scenario.title:<44}{name:>8}{r['cpu_percent']:>9.2f}{r['p50_ms']:>12.1f}"
                        f"{r['p99_ms']:>12.1f}{r['updates']:>9}{r['first_max_ms']:>14.1f}",
                        end="",
                    )
                    posted = f"{r['posted_first_ms']:>9.1f}{r['posted_last_ms']:>9.1f}" if timed else ""
                    print(posted, flush=True)
        print(f"\nmedians (ranges) over {args.rounds} rounds")
        print(f"{'scenario':<44}{'server':>8}{'CPU %':>20}{'CPU / bare':>20}", end="")
        print(f"{'lag p50 ms':>20}{'lag p99 ms':>20}{'first max ms':>20}")
        titles = {scenario.label: scenario.title for scenario in SCENARIOS}
        for (label, name), runs in results.items():
            bare = results.get((label, "bare"))
            ratios = [f["cpu_percent"] / max(b["cpu_percent"], 1e-9) for f, b in zip(runs, bare or runs, strict=True)]
            print(
                f"{titles[label]:<44}{name:>8}{spread([r['cpu_percent'] for r in runs], 2):>20}"
                f"{spread(ratios, 2) if name == 'fakeai' and bare else '':>20}"
                f"{spread([r['p50_ms'] for r in runs]):>20}{spread([r['p99_ms'] for r in runs]):>20}"
                f"{spread([r['first_max_ms'] for r in runs]):>20}"
            )
        if args.post_times:
            print("\nwhen the hub posted a tick's updates, ms after their timestamp: medians of the first and")
            print("last post of a tick (steady state), median (range) over rounds")
            for (label, name), runs in results.items():
                if name == "fakeai":
                    first, last = (
                        spread([r["posted_first_ms"] for r in runs]),
                        spread([r["posted_last_ms"] for r in runs]),
                    )
                    print(f"  {titles[label]:<42}{first:>20}{last:>20}")
        one_set, compared = FLAT
        if (one_set, "fakeai") in results:
            print(f"\nflat in the number of sets: lag p99 and p50 over those of {titles[one_set]}, round by round")
            for label in compared:
                if (label, "fakeai") in results:
                    pairs = list(zip(results[(label, "fakeai")], results[(one_set, "fakeai")], strict=True))
                    p99 = spread([a["p99_ms"] / b["p99_ms"] for a, b in pairs], 2)
                    p50 = spread([a["p50_ms"] / b["p50_ms"] for a, b in pairs], 2)
                    print(f"  {titles[label]:<42}{p99:>20}{p50:>20}")


if __name__ == "__main__":
    main()
