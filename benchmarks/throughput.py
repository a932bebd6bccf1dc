"""Chat requests/s of fakeai (--no-delay) against a bare FastAPI app, in one run.

    python benchmarks/throughput.py [--duration 10] [--connections 32] [--rounds 3] [--slices 4] [--stream]
        [--baseline-tree DIR] [--without-metrics] [--profile FILE]

With ``--baseline-tree DIR`` the baseline is fakeai itself run from another checkout (``git worktree add
DIR <commit>``) instead of bare FastAPI: a before/after of a change, the two servers taking turns and
swapping order every round. Both are run from their checkouts, never from an installed copy.

With ``--without-metrics`` fakeai runs with its per-request metric recording made no-ops
(``metrics_off_server.py``): recording's share of the CPU per request, sockets and uvicorn included.

With ``--profile FILE`` fakeai runs alone under cProfile (``python -m cProfile -o FILE -m fakeai server``) for
``--duration`` seconds of the same ``wrk`` load, stops as on Ctrl-C, writes the profile to FILE (read it with
``python -m pstats FILE``) and prints the functions that took the most time. cProfile adds a fixed cost
to every Python call, so its times say where the CPU goes, not how much a request costs.

With ``--stream`` the requests stream (``max_tokens`` 16, usage included) and the bare app streams the
very events fakeai sent, one chunk each: the figures are then SSE chunks per second.

Needs ``wrk`` (Debian package ``wrk``). Each server gets one core and wrk the other (``taskset``). In a
round both servers are up and take turns in ``--slices`` slices of the round's duration each, the order
mirrored every slice, so a drift of this shared machine's speed hits both alike; each round gives one
ratio, and the medians and ranges of the rounds are reported. The CPU ratio is also given turn by turn
(the two turns of a slice, seconds apart): its median over every pair of the run is the figure least
moved by the machine's drift from one minute to the next.
"""

import argparse
import contextlib
import json
import pstats
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import background, cpu_seconds, fakeai_command, free_port, pinned, require_wrk, spread, wrk_script

HERE = Path(__file__).resolve().parent
BARE, FAKE = "bare FastAPI", "fakeai --no-delay"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
REQUEST = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "How do queues behave under load?"}],
    "max_tokens": 16,
    "ignore_eos": True,
}


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.post(url + "/v1/chat/completions", json=REQUEST, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


@dataclass
class Run:
    requests_per_second: float
    cpu_us_per_request: float
    turns: list[float]
    """CPU microseconds per request of each turn, in the order of the round's slices."""


def run_wrk(url: str, duration: int, connections: int, script: Path, pin: bool = True) -> tuple[float, int]:
    """Requests/s and the number of requests completed (wrk on CPU 1 unless ``pin`` is false)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "-s", str(script), f"{url}/v1/chat/completions"]
    out = subprocess.run(
        pinned(1, command) if pin else command,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests:\n{out}")
    completed = int(re.search(r"(\d+) requests in", out).group(1))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), completed


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    tree: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def measure(servers: list[Server], args: argparse.Namespace, script: Path) -> dict[str, Run]:
    """One round: the servers up side by side (each on CPU 0, the idle one costing nothing measurable),
    ``wrk`` driving one at a time in ``args.slices`` slices of the round's duration, the order mirrored
    every slice (A B B A ...). A drift of the machine's speed within the round then falls on every server
    alike, where back-to-back runs of the whole duration put it all on one."""
    with contextlib.ExitStack() as stack:
        processes = {s.name: stack.enter_context(background(s.command, cpu=0, tree=s.tree)) for s in servers}
        for server in servers:
            wait_ready(server.url)
            run_wrk(server.url, 2, args.connections, script)  # warm-up
        turns: dict[str, list[tuple[float, int]]] = {name: [] for name in processes}  # (CPU s, requests)
        seconds = max(1, args.duration // args.slices)
        for slice_index in range(args.slices):
            for server in servers if slice_index % 2 == 0 else reversed(servers):
                pid = processes[server.name].pid
                cpu_before = cpu_seconds(pid)
                _, done = run_wrk(server.url, seconds, args.connections, script)
                turns[server.name].append((cpu_seconds(pid) - cpu_before, done))
    # CPU per request is what other tenants of a noisy machine disturb least: steal time and preemption
    # stretch the wall clock, not the CPU time a request needs.
    runs = {}
    for name, taken in turns.items():
        cpu, completed = sum(used for used, _ in taken), sum(done for _, done in taken)
        per_turn = [used / done * 1e6 for used, done in taken]
        runs[name] = Run(completed / (args.slices * seconds), cpu / completed * 1e6, per_turn)
    return runs


def turn_ratios(numerators: list[Run], denominators: list[Run]) -> list[float]:
    """CPU per request of one server over another's, turn by turn: the two turns of a slice ran one
    right after the other (seconds apart, where a round's are half a minute apart), so a drift of the
    machine's speed between minutes cancels out of each ratio."""
    return [
        numerator / denominator
        for top, bottom in zip(numerators, denominators, strict=True)
        for numerator, denominator in zip(top.turns, bottom.turns, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--slices", type=int, default=4, help="each round's duration in this many turns per server, alternating"
    )
    parser.add_argument("--stream", action="store_true", help="streaming requests; report SSE chunks/s")
    parser.add_argument("--baseline-tree", type=Path, help="compare against fakeai run from this checkout")
    parser.add_argument("--without-metrics", action="store_true", help="fakeai's metric recording made no-ops")
    parser.add_argument("--profile", type=Path, help="run fakeai alone under cProfile and write the profile here")
    args = parser.parse_args()
    require_wrk()
    if args.profile is not None:
        profile(args, args.profile.resolve())
        return
    if args.baseline_tree is not None:
        before_after(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        request = chat_request(args.stream)
        script = wrk_script(Path(tmp), request)
        fake_port = free_port()
        fakeai = fakeai_command(fake_port, "--no-delay")
        # The bare app returns exactly what fakeai returns for this request.
        with background(fakeai, cpu=0):
            wait_ready(f"http://127.0.0.1:{fake_port}")
            answer = httpx.post(f"http://127.0.0.1:{fake_port}/v1/chat/completions", json=request)
        if args.stream:
            body_path = Path(tmp) / "body.sse"
            body_path.write_bytes(answer.content)
            chunks = answer.content.count(b"\n\n")
        else:
            body_path = Path(tmp) / "body.json"
            body_path.write_text(json.dumps(answer.json()))
            chunks = 1
        bare_port = free_port()
        bare = [sys.executable, str(HERE / "bare_app.py"), str(bare_port), str(body_path)]
        if args.without_metrics:  # the same server with its recording made no-ops
            fakeai = [sys.executable, str(HERE / "metrics_off_server.py"), *fakeai[3:]]
            print("fakeai runs with its metric recording made no-ops (--without-metrics)\n", flush=True)

        results: dict[str, list[Run]] = {BARE: [], FAKE: []}
        for round_index in range(args.rounds):
            servers = [Server(BARE, bare, bare_port), Server(FAKE, fakeai, fake_port)]
            for name, run in measure(servers if round_index % 2 == 0 else servers[::-1], args, script).items():
                results[name].append(run)
            figures = (
                f"{k} {v[-1].requests_per_second:.0f} req/s ({v[-1].cpu_us_per_request:.0f} us CPU/req)"
                for k, v in results.items()
            )
            print(f"round {round_index + 1}: " + ", ".join(figures), flush=True)

    rate = {k: statistics.median(r.requests_per_second for r in v) for k, v in results.items()}
    cpu = {k: statistics.median(r.cpu_us_per_request for r in v) for k, v in results.items()}
    # Ratios round by round: the two servers of a round ran back to back, under the same machine load.
    wall_ratios = [
        f.requests_per_second / b.requests_per_second for b, f in zip(results[BARE], results[FAKE], strict=True)
    ]
    cpu_ratios = [
        b.cpu_us_per_request / f.cpu_us_per_request for b, f in zip(results[BARE], results[FAKE], strict=True)
    ]
    kind = f"streaming chat ({chunks} SSE chunks each)" if args.stream else "non-streaming chat"
    print(
        f"\n{kind}, {args.connections} connections, {args.duration} s x {args.rounds} rounds, one worker each, medians:"
    )
    for name in results:
        per_chunk = f", {rate[name] * chunks:8.0f} chunks/s" if args.stream else ""
        print(f"  {name:<20} {rate[name]:8.0f} req/s{per_chunk}   {cpu[name]:6.0f} us CPU per request")
    # The goals of benchmarks/README.md: fakeai's whole simulation for no more CPU than bare FastAPI spends on nothing;
    # streaming at least 0.8 of bare's chunk rate.
    goal = 0.8 if args.stream else 1.0
    print(f"  fakeai / bare, wall clock (median of rounds):       {spread(wall_ratios, 2)}")
    print(f"  CPU per request, bare / fakeai (median of rounds):  {spread(cpu_ratios, 2)}   (goal >= {goal})")
    by_turn = turn_ratios(results[BARE], results[FAKE])
    print(f"  CPU per request, bare / fakeai (median of {len(by_turn)} turn pairs): {spread(by_turn, 2)}")


def chat_request(stream: bool) -> dict:
    return REQUEST | ({"stream": True, "stream_options": {"include_usage": True}} if stream else {})


def profile(args: argparse.Namespace, path: Path) -> None:
    """fakeai alone under cProfile through ``--duration`` seconds of ``wrk``; the profile written to ``path``."""
    path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        script = wrk_script(Path(tmp), chat_request(args.stream))
        port = free_port()
        server = fakeai_command(port, "--no-delay")
        command = [server[0], "-m", "cProfile", "-o", str(path), *server[1:]]
        with background(command, cpu=0) as process:
            wait_ready(f"http://127.0.0.1:{port}")
            rate, completed = run_wrk(f"http://127.0.0.1:{port}", args.duration, args.connections, script)
            # Ctrl-C: uvicorn shuts down and re-raises it as KeyboardInterrupt, and cProfile writes FILE on
            # its way out (after a SIGTERM uvicorn re-raises the signal itself, and nothing is written).
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    if not path.exists():
        raise SystemExit(f"{path}: the profiled server left no profile")
    print(f"{completed} requests ({rate:.0f} req/s under cProfile); profile written to {path}\n")
    pstats.Stats(str(path)).sort_stats("tottime").print_stats(25)


def before_after(args: argparse.Namespace) -> None:
    """fakeai from ``--baseline-tree`` (before) against this checkout (after), alternating and swapping
    the order every round; CPU per request after / before, round by round."""
    trees = {"before": args.baseline_tree.resolve(), "after": HERE.parent}
    ratios = []
    by_turn: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        script = wrk_script(Path(tmp), chat_request(args.stream))
        for round_index in range(args.rounds):
            order = list(trees) if round_index % 2 == 0 else list(reversed(trees))
            servers = []
            for name in order:
                port = free_port()
                servers.append(Server(name, fakeai_command(port, "--no-delay"), port, trees[name]))
            runs = measure(servers, args, script)
            ratios.append(runs["after"].cpu_us_per_request / runs["before"].cpu_us_per_request)
            by_turn.extend(turn_ratios([runs["after"]], [runs["before"]]))
            print(
                f"round {round_index + 1}: before {runs['before'].cpu_us_per_request:.0f} us CPU/req, "
                f"after {runs['after'].cpu_us_per_request:.0f}, after / before {ratios[-1]:.3f}",
                flush=True,
            )
    kind = "streaming" if args.stream else "non-streaming"
    print(
        f"\n{kind} chat, {args.connections} connections: CPU per request after / before, median (range) "
        f"{spread(ratios, 3)}; turn by turn ({len(by_turn)} pairs) {spread(by_turn, 3)}"
    )


if __name__ == "__main__":
    main()
