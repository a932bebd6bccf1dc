"""The stream hub's own work for one tick, in process: ``Hub.deliver`` for N distinct filter sets and for
N subscribers of one set, without sockets (the computing and posting alone, not the sending).

    PYTHONPATH=. python benchmarks/stream_deliver.py [--sets 100] [--ticks 40] [--rounds 4]
        [--vary windows|categories|selections] [--baseline-tree DIR] [--instructions [--again]]

The server first serves ten chat requests a second for 130 seconds of a driven clock (the hub sampling
once a second), so the distinct sets' windows (10 s, 11 s, ... 10 + N - 1 s) each begin at a snapshot
of their own and hold requests, tokens and latencies; then each tick serves ten more requests, samples,
and times ``deliver``. Each round runs in a process of its own. The figures are the median ``deliver``
time of a round's ticks, and distinct / shared: what ``stream_fanout.py``'s lag for N distinct sets
holds of the server's computing, next to the same number of subscribers on one set ("flat in the
number of sets" is a ratio near 1).

``--vary`` says what the distinct sets differ in (``VARIED``): their windows (the default, the sets of
``stream_fanout.py``), the categories they ask for, or the models and endpoints they select, the kinds
of sets a dashboard with a panel per category or per model opens.

With ``--baseline-tree DIR`` (``git worktree add DIR <commit>``) the same measurement runs from that
checkout too, the two taking turns and swapping order every round: after / before, round by round.

Times on the shared 2-core machine move by a third from one minute to the next; ``--instructions``
counts instead (Valgrind's cachegrind, as ``instructions.py`` does for requests): the instructions of a
tick for the same subscribers, the difference of a run of ``COUNTED_FEW`` ticks and one of
``COUNTED_FEW + --ticks``, divided by ``--ticks``. Each counted tick is one of service: ten requests, a
new snapshot sampled, and ``deliver`` (the snapshot's folds and cells made for the sets that end there),
without the turns it gives the loop (their number follows the clock, which Valgrind stretches). The
requests and the sample are the same for distinct sets and one, so "each set past the first" is
(distinct - one) / (N - 1): what a set costs on top of the first. With ``--again`` the ticks deliver
again on the last snapshot instead (the clock moves, nothing is sampled): the computing and posting of a
tick whose end is already summed (the count of sessions before the twenty-seventh). The same code counts
within about 1.5 % from run to run (the requests' durations are measured by the clock, so the histograms
behind the windows differ a little), and any change of code moves the counts by up to about 1 % more
(see ``instructions.py``): read an after / before within 3 % as no change. Needs ``valgrind``.
"""

import argparse
import asyncio
import contextlib
import itertools
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


async def measure(sets: int, ticks: int, vary: str) -> dict[str, float]:
    """Median ``deliver`` milliseconds for ``sets`` distinct sets and for ``sets`` subscribers of one."""
    distinct = await deliver_times(filters_of("distinct", sets, vary), ticks)
    shared = await deliver_times(filters_of("shared", sets, vary), ticks)
    # The first ticks fill the caches.
    return {"distinct": 1000 * statistics.median(distinct[3:]), "shared": 1000 * statistics.median(shared[3:])}


VARIED = ("windows", "categories", "selections")
"""What distinct sets differ in (``--vary``): their window (10 s, 11 s, ...); the categories they ask for
(each of the 63 non-empty sets of the six, on windows of 10 s and then 11 s); or the models and endpoints
they select (each set of the default server's three models with each set of its three generation
endpoints, 64 in all, then again on a window of 11 s)."""


def filters_of(kind: str, sets: int, vary: str = "windows") -> list[dict[str, Any]]:
    """One subscriber's filters each: ``sets`` distinct ones, or ``sets`` of one (the default's)."""
    if kind == "shared":
        return [{}] * sets
    if vary == "windows":
        return [{"window": 10.0 + i} for i in range(sets)]
    if vary == "categories":
        from bridge.categories import METRIC_TYPES

        kinds = [frozenset(c) for size in range(1, 7) for c in itertools.combinations(METRIC_TYPES, size)]
        return [{"metric_types": kinds[i % len(kinds)], "window": 10.0 + i // len(kinds)} for i in range(sets)]
    from fakeai.app import MODEL_ENDPOINTS
    from fakeai.settings import Settings

    models, endpoints = (
        [frozenset(c) for size in range(len(names) + 1) for c in itertools.combinations(names, size)]
        for names in (Settings().models, MODEL_ENDPOINTS)
    )
    pairs = list(itertools.product(models, endpoints))
    return [
        {"models": pairs[i % len(pairs)][0], "endpoints": pairs[i % len(pairs)][1], "window": 10.0 + i // len(pairs)}
        for i in range(sets)
    ]


@contextlib.asynccontextmanager
async def subscribed(subscribers: list[dict[str, Any]], *, turns: bool = True) -> AsyncIterator[Any]:
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
        for filters in subscribers:
            server.hub.register(Client(Filters(**{"interval": 1.0, **filters})))
        yield server


async def deliver_counted(subscribers: list[dict[str, Any]], ticks: int, *, again: bool) -> None:
    """``ticks`` of ``deliver_times`` for ``--instructions``, but for the turns (how many a tick takes
    follows the clock, which Valgrind stretches): each serves its requests and samples a new snapshot,
    then delivers. With ``again`` only the clock moves: deliveries on the last snapshot, already summed."""
    async with subscribed(subscribers, turns=False) as server:
        for _ in range(3):  # the caches filled
            await server.second(REQUESTS_PER_SECOND)
            await server.hub.deliver(server.clock.now)
        for _ in range(ticks):
            if again:
                server.clock.now += 1.0
            else:
                await server.second(REQUESTS_PER_SECOND)
            await server.hub.deliver(server.clock.now)


def count_instructions(sets: int, ticks: int, vary: str, baseline: Path | None, again: bool) -> None:
    """Instructions of a tick per checkout and kind, each the difference of two runs."""
    trees = {"after": HERE.parent} | ({"before": baseline.resolve()} if baseline is not None else {})
    counts: dict[tuple[str, str], float] = {}

    def run(tree: Path, kind: str, ticks_run: int) -> int:
        arguments = [str(HERE / "stream_deliver.py"), "--count", kind, "--sets", str(sets), "--ticks", str(ticks_run)]
        arguments += ["--vary", vary] + (["--again"] if again else [])
        return cachegrind(arguments, tree)["instructions"]

    with ThreadPoolExecutor(2) as pool:
        for name, tree in trees.items():
            for kind in ("distinct", "shared"):
                few, many = pool.map(lambda n, t=tree, k=kind: run(t, k, n), (COUNTED_FEW, COUNTED_FEW + ticks))
                counts[(name, kind)] = (many - few) / ticks
                print(f"{name:6} {kind:8} {counts[(name, kind)]:>14,.0f} instructions a tick", flush=True)
    what = "Hub.deliver again on one snapshot" if again else "a tick (ten requests, a sample, Hub.deliver)"
    print(f"\n{what}, {sets} subscribers, instructions a tick")
    for name in trees:
        distinct, shared = counts[(name, "distinct")], counts[(name, "shared")]
        print(f"  {name:6} distinct sets {distinct:,.0f}  one set {shared:,.0f}  ", end="")
        each = (distinct - shared) / (sets - 1)
        print(f"distinct / one {distinct / shared:.2f}, each set past the first {each:,.0f}")
    if baseline is not None:
        for kind in ("distinct", "shared"):
            print(f"  after / before, {kind}: {counts[('after', kind)] / counts[('before', kind)]:.3f}")


async def deliver_times(subscribers: list[dict[str, Any]], ticks: int) -> list[float]:
    """Seconds of each tick's ``deliver`` for one subscriber per window."""
    async with subscribed(subscribers) as server:
        times = []
        for _ in range(ticks):
            await server.second(REQUESTS_PER_SECOND)
            started = time.perf_counter()
            groups = await server.hub.deliver(server.clock.now)
            times.append(time.perf_counter() - started)
        assert groups == len({tuple(sorted(filters.items())) for filters in subscribers}), groups
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--vary", choices=VARIED, default="windows", help="what distinct sets differ in")
    parser.add_argument("--baseline-tree", type=Path, help="compare against the hub run from this checkout")
    parser.add_argument("--instructions", action="store_true", help="count instructions a tick (Valgrind)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", choices=["distinct", "shared"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--again", action="store_true", help="with --instructions: deliver again on the last snapshot (no new end)"
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.sets, args.ticks, args.vary))))
        return
    if args.count is not None:
        asyncio.run(deliver_counted(filters_of(args.count, args.sets, args.vary), args.ticks, again=args.again))
        return
    if args.instructions:
        count_instructions(args.sets, args.ticks, args.vary, args.baseline_tree, args.again)
        return
    figures: dict[str, list[dict[str, float]]] = {}
    for round_number, name, tree in trees_in_turn(args.baseline_tree, args.rounds):
        arguments = ["--sets", str(args.sets), "--ticks", str(args.ticks), "--vary", args.vary]
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
