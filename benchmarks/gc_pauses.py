"""Garbage-collector pauses of a server streaming to distinct filter sets, in process, by a driven clock.

    PYTHONPATH=. python benchmarks/gc_pauses.py [--seconds 1800] [--sets 100] [--rounds 3]
        [--baseline-tree DIR]

A collection stops the event loop: whatever request or stream tick allocated last waits for it. The
default app starts as the CLI starts it (a full collection, then ``gc.freeze``, before the lifespan);
then each second of a driven clock it serves ten chat requests, samples, and delivers an update to each
of ``--sets`` subscribers (windows of 10 s, 11 s, ...): the stream's ring and fold cache fill as on a
server that has run ``--seconds`` with dashboards open. ``gc.callbacks`` time every collection; the
figures are the number of full (generation 2) collections and their median and longest pause, and the
longest pause of the younger generations. Each round is a process of its own.

With ``--baseline-tree DIR`` (``git worktree add DIR <commit>``) the same runs from that checkout too,
the two taking turns: before / after.
"""

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from common import child_round, spread, trees_in_turn
from driven import driven_server

HERE = Path(__file__).resolve().parent
REQUESTS_PER_SECOND = 10


async def measure(seconds: int, sets: int) -> dict[str, float]:
    import gc

    from bridge.hub import Client  # from the checkout ``PYTHONPATH`` names (``common.child_round``)
    from bridge.protocol import Filters

    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started = 0.0

    def timed(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            pauses[info["generation"]].append(time.perf_counter() - started)

    async with driven_server(settled=True) as server:
        for window in range(sets):
            server.hub.register(Client(Filters(interval=1.0, window=10.0 + window)))
        gc.callbacks.append(timed)
        for _ in range(seconds):
            await server.second(REQUESTS_PER_SECOND)
            await server.hub.deliver(server.clock.now)
        gc.callbacks.remove(timed)
    figures: dict[str, float] = {}
    for generation, times in pauses.items():
        found = sorted(times) or [0.0]
        figures[f"gen{generation}"] = len(times)
        figures[f"gen{generation}_median_ms"] = 1000 * statistics.median(found)
        figures[f"gen{generation}_max_ms"] = 1000 * found[-1]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=1800, help="seconds of the driven clock")
    parser.add_argument("--sets", type=int, default=100, help="subscribers, each with a window of its own")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-tree", type=Path, help="compare against the server run from this checkout")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.seconds, args.sets))))
        return
    figures: dict[str, list[dict[str, float]]] = {}
    for round_number, name, tree in trees_in_turn(args.baseline_tree, args.rounds):
        arguments = ["--seconds", str(args.seconds), "--sets", str(args.sets)]
        found = child_round(HERE / "gc_pauses.py", tree, arguments)
        figures.setdefault(name, []).append(found)
        print(f"round {round_number + 1} {name:6} " + described(found), flush=True)
    print(
        f"\n{args.seconds} s of {REQUESTS_PER_SECOND} requests/s and {args.sets} distinct filter sets;",
        "medians (ranges) of the rounds:",
    )
    for name, rounds in figures.items():
        print(f"  {name:6}")
        for generation in range(3):
            counts = [r[f"gen{generation}"] for r in rounds]
            median = [r[f"gen{generation}_median_ms"] for r in rounds]
            longest = [r[f"gen{generation}_max_ms"] for r in rounds]
            print(
                f"    generation {generation}: {spread(counts, 0)} collections, "
                f"median pause {spread(median, 2)} ms, longest {spread(longest, 2)} ms"
            )


def described(found: dict[str, float]) -> str:
    return "; ".join(
        f"generation {g}: {found[f'gen{g}']:.0f} collections, median {found[f'gen{g}_median_ms']:.2f} ms, "
        f"longest {found[f'gen{g}_max_ms']:.2f} ms"
        for g in range(3)
    )


if __name__ == "__main__":
    main()
