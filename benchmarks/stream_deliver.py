"""The stream hub's own work for one tick, in process: ``Hub.deliver`` for N distinct filter sets and for
N subscribers of one set, without sockets (the computing and posting alone, not the sending).

    PYTHONPATH=. python benchmarks/stream_deliver.py [--sets 100] [--ticks 40] [--rounds 4]
        [--baseline-tree DIR] [--instructions]

The server first serves ten chat requests a second for 130 seconds of a driven clock (the hub sampling
once a second), so the distinct sets' windows (10 s, 11 s, ... 10 + N - 1 s) each begin at a snapshot
of their own and hold requests, tokens and latencies; then each tick serves ten more requests, samples,
and times ``deliver``. Each round runs in a process of its own. The figures are the median ``deliver``
time of a round's ticks, and distinct / shared: what ``stream_fanout.py``'s lag for N distinct sets
holds of the server's computing, next to the same number of subscribers on one set ("flat in the
number of sets" is a ratio near 1).

With ``--baseline-tree DIR`` (``git worktree add DIR <commit>``) the same measurement runs from that
checkout too, the two taking turns and swapping order every round: after / before, round by round.

Times on the shared 2-core machine move by a third from one minute to the next; ``--instructions``
counts instead (Valgrind's cachegrind, as ``instructions.py`` does for requests): the instructions of a
tick's ``deliver`` for the same subscribers, the difference of a run of ``COUNTED_FEW`` ticks and one of
``COUNTED_FEW + --ticks``, divided by ``--ticks``. These ticks deliver again on the last snapshot (the
clock moves, nothing is sampled): the computing and posting of a tick whose end is already summed, the
part that grows with the sets, without the turns it gives the loop (their number follows the clock,
which Valgrind stretches). The same code counts within about 1.5 % from run to run (the requests'
durations are measured by the clock, so the histograms behind the windows differ a little), and any
change of code moves the counts by up to about 1 % more (see ``instructions.py``): read an after /
before within 3 % as no change. Needs ``valgrind``.
"""

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import cachegrind, child_round, spread, trees_in_turn
from driven import driven_server

HERE = Path(__file__).resolve().parent
WARM_UP_SECONDS = 130
REQUESTS_PER_SECOND = 10
COUNTED_FEW = 10
"""The short run's ticks under ``--instructions``: it repeats whatever the long run does once."""


async def measure(sets: int, ticks: int) -> dict[str, float]:
    """Median ``deliver`` milliseconds for ``sets`` distinct sets and for ``sets`` subscribers of one."""
    distinct = await deliver_times(windows_of("distinct", sets), ticks)
    shared = await deliver_times(windows_of("shared", sets), ticks)
    # The first ticks fill the caches.
    return {"distinct": 1000 * statistics.median(distinct[3:]), "shared": 1000 * statistics.median(shared[3:])}


def windows_of(kind: str, sets: int) -> list[float]:
    """One subscriber's window each: ``sets`` distinct ones, or ``sets`` of one."""
    return [10.0 + i for i in range(sets)] if kind == "distinct" else [10.0] * sets


@contextlib.asynccontextmanager
async def subscribed(windows: list[float], *, turns: bool = True) -> AsyncIterator[Any]:
    """The driven server after ``WARM_UP_SECONDS`` of traffic, its heap frozen as the server's is after
    start-up, with one subscriber per window registered on its hub. Without ``turns`` the hub gives the
    loop none within a tick."""
    import gc

    from bridge.hub import Client  # from the checkout ``PYTHONPATH`` names (``common.child_round``)
    from bridge.protocol import Filters

    async with driven_server() as server:
        if not turns:
            server.hub.slice_seconds = float("inf")
        for _ in range(WARM_UP_SECONDS):
            await server.second(REQUESTS_PER_SECOND)
        gc.collect()
        gc.freeze()
        for window in windows:
            server.hub.register(Client(Filters(interval=1.0, window=window)))
        yield server


async def deliver_again(windows: list[float], ticks: int) -> None:
    """``ticks`` deliveries on the last snapshot, for ``--instructions``: the ticks of ``deliver_times``
    but for the turns (how many a tick takes follows the clock, which Valgrind stretches), then only the
    clock moves."""
    async with subscribed(windows, turns=False) as server:
        for _ in range(3):  # the caches filled
            await server.second(REQUESTS_PER_SECOND)
            await server.hub.deliver(server.clock.now)
        for _ in range(ticks):
            server.clock.now += 1.0
            await server.hub.deliver(server.clock.now)


def count_instructions(sets: int, ticks: int, baseline: Path | None) -> None:
    """Instructions of a tick's ``deliver`` per checkout and kind, each the difference of two runs."""
    trees = {"after": HERE.parent} | ({"before": baseline.resolve()} if baseline is not None else {})
    counts: dict[tuple[str, str], float] = {}

    def run(tree: Path, kind: str, ticks_run: int) -> int:
        arguments = [str(HERE / "stream_deliver.py"), "--count", kind, "--sets", str(sets), "--ticks", str(ticks_run)]
        return cachegrind(arguments, tree)["instructions"]

    with ThreadPoolExecutor(2) as pool:
        for name, tree in trees.items():
            for kind in ("distinct", "shared"):
                few, many = pool.map(lambda n, t=tree, k=kind: run(t, k, n), (COUNTED_FEW, COUNTED_FEW + ticks))
                counts[(name, kind)] = (many - few) / ticks
                print(f"{name:6} {kind:8} {counts[(name, kind)]:>14,.0f} instructions a tick", flush=True)
    print(f"\nHub.deliver again on one snapshot, {sets} subscribers, instructions a tick")
    for name in trees:
        distinct, shared = counts[(name, "distinct")], counts[(name, "shared")]
        print(f"  {name:6} distinct sets {distinct:,.0f}  one set {shared:,.0f}  ", end="")
        print(f"distinct / one {distinct / shared:.2f}")
    if baseline is not None:
        for kind in ("distinct", "shared"):
            print(f"  after / before, {kind}: {counts[('after', kind)] / counts[('before', kind)]:.3f}")


async def deliver_times(windows: list[float], ticks: int) -> list[float]:
    """Seconds of each tick's ``deliver`` for one subscriber per window."""
    async with subscribed(windows) as server:
        times = []
        for _ in range(ticks):
            await server.second(REQUESTS_PER_SECOND)
            started = time.perf_counter()
            groups = await server.hub.deliver(server.clock.now)
            times.append(time.perf_counter() - started)
        assert groups == len(set(windows)), groups
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--baseline-tree", type=Path, help="compare against the hub run from this checkout")
    parser.add_argument("--instructions", action="store_true", help="count instructions a tick (Valgrind)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", choices=["distinct", "shared"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.sets, args.ticks))))
        return
    if args.count is not None:
        asyncio.run(deliver_again(windows_of(args.count, args.sets), args.ticks))
        return
    if args.instructions:
        count_instructions(args.sets, args.ticks, args.baseline_tree)
        return
    figures: dict[str, list[dict[str, float]]] = {}
    for round_number, name, tree in trees_in_turn(args.baseline_tree, args.rounds):
        arguments = ["--sets", str(args.sets), "--ticks", str(args.ticks)]
        found = child_round(HERE / "stream_deliver.py", tree, arguments, timeout=600)
        figures.setdefault(name, []).append(found)
        print(f"round {round_number + 1} {name:6} distinct {found['distinct']:.2f} ms, ", end="")
        print(f"shared {found['shared']:.2f} ms", flush=True)
    print(f"\nHub.deliver, {args.sets} subscribers, median ms of {args.ticks} ticks; medians (ranges) of rounds")
    for name, rounds in figures.items():
        distinct, shared = [r["distinct"] for r in rounds], [r["shared"] for r in rounds]
        flat = [r["distinct"] / r["shared"] for r in rounds]
        print(f"  {name:6} distinct sets {spread(distinct, 2)}  one set {spread(shared, 2)}  ", end="")
        print(f"distinct / one {spread(flat, 1)}")
    if "before" in figures:
        for kind in ("distinct", "shared"):
            ratios = [a[kind] / b[kind] for a, b in zip(figures["after"], figures["before"], strict=True)]
            print(f"  after / before, {kind}: {spread(ratios, 2)}")


if __name__ == "__main__":
    main()
