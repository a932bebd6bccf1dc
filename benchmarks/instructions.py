"""Instructions per non-streaming chat request, counted by Valgrind: fakeai's app against bare FastAPI.

    python benchmarks/instructions.py [--requests 1000] [--cache-sim] [--baseline-tree DIR]

CPU time on a shared 2-core machine moves by tens of percent from one minute to the next, so a change of
a few percent on the request path cannot be seen in ``throughput.py`` or ``inprocess.py`` without many
rounds. An instruction count does not move with the machine: this script runs ``inprocess.py``'s direct
ASGI calls (no sockets, no uvicorn: the same for both apps in a server) under Valgrind's cachegrind, once
with a few requests and once with ``--requests`` more, both after the same warm-up, and divides the
difference by ``--requests``: what start-up, imports and warm-up cost falls out. Runs go two at a time
(counts do not depend on what else the machine does); each takes about a minute. The same code counts
the same every run (within 0.05%); any change of code, even one that the requests never run, moves the
objects' addresses and with them the counts by up to about 1% (measured: 321,2xx and 325,1xx
instructions for the same request path), so read an after / before below 1% as no change.

``--cache-sim`` also simulates the caches (slower): first-level instruction and data read misses per
request, the part of a request's cost that instructions do not show.

``--without-metrics`` adds fakeai with its per-request metric recording made no-ops (``inprocess.py``'s), to
show recording's share; never a figure to quote as fakeai's own.

``--baseline-tree DIR`` (``git worktree add DIR <commit>``) adds fakeai from that checkout, driven by its own
``benchmarks/inprocess.py``: fakeai after / before, request for request.

Needs ``valgrind`` (Debian package ``valgrind``). Counts are of the interpreter's instructions; they are
not CPU time (a cache miss costs many instructions' time), so read them beside ``throughput.py``.
"""

import argparse
import asyncio
import gc
import json
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from common import cachegrind

HERE = Path(__file__).resolve().parent
WARM_UP = 300
"""Requests every run makes before the counted ones: caches, series and code paths made."""
FEW = 100
"""The short run's counted requests: it repeats whatever the long run does once, so only requests differ."""


@dataclass(frozen=True)
class App:
    label: str
    which: str
    """``fakeai``, ``fakeai-without-metrics`` or ``bare``."""
    tree: Path


def drive(inprocess: ModuleType, which: str, requests: int) -> None:
    """``WARM_UP`` then ``requests`` requests to one app, as ``inprocess.py`` makes them."""
    from prometheus_client import CollectorRegistry

    from fakeai.settings import Settings

    if which == "fakeai-without-metrics":
        inprocess.without_metrics()

    async def run() -> None:
        fakeai = inprocess.create_app(Settings(no_delay=True), CollectorRegistry())
        async with fakeai.router.lifespan_context(fakeai):
            # The stream's sampler ticks by the clock, which Valgrind stretches: how many ticks a run sees
            # would differ from run to run. Requests never wait for it.
            for task in asyncio.all_tasks():
                if task.get_name() == "bridge-sampler":
                    task.cancel()
            answer = json.loads(await inprocess.call(fakeai))  # the bare app returns what fakeai returned
            app = inprocess.bare_app(answer) if which == "bare" else fakeai
            for _ in range(WARM_UP):
                await inprocess.call(app)
            # As the server does once started (``fakeai.app.settle_heap``): a full collection over the start-up
            # heap, whose timing follows the sampler's ticks during start-up, would land in one run of a pair
            # and not the other.
            gc.collect()
            gc.freeze()
            for _ in range(requests):
                await inprocess.call(app)

    asyncio.run(run())


def counted(app: App, requests: int, cache_sim: bool) -> dict[str, int]:
    """Valgrind's totals for one run of ``drive``."""
    arguments = [str(Path(__file__).resolve()), "--drive", app.which, "--tree", str(app.tree)]
    return cachegrind([*arguments, "--requests", str(requests)], app.tree, cache_sim)


def per_request(app: App, requests: int, cache_sim: bool, pool: ThreadPoolExecutor) -> dict[str, float]:
    few, many = pool.map(lambda n: counted(app, n, cache_sim), (FEW, FEW + requests))
    return {name: (many[name] - few[name]) / requests for name in many}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="counted requests (the difference of two runs)")
    parser.add_argument("--cache-sim", action="store_true", help="also count first-level cache misses (slower)")
    parser.add_argument("--baseline-tree", type=Path, help="add fakeai from this checkout (before / after)")
    parser.add_argument("--without-metrics", action="store_true", help="add fakeai with its recording made no-ops")
    parser.add_argument("--drive", choices=["fakeai", "fakeai-without-metrics", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive is not None:
        # The tree's own inprocess.py: it puts its checkout first on sys.path, so its fakeai is the one driven.
        sys.path.insert(0, str(args.tree / "benchmarks"))
        import inprocess

        drive(inprocess, args.drive, args.requests)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found: apt-get install -y valgrind")
    apps = [App("fakeai --no-delay", "fakeai", HERE.parent), App("bare FastAPI", "bare", HERE.parent)]
    if args.without_metrics:
        apps.append(App("fakeai, metrics off", "fakeai-without-metrics", HERE.parent))
    if args.baseline_tree is not None:
        apps.append(App("fakeai before", "fakeai", args.baseline_tree.resolve()))
    figures = {}
    with ThreadPoolExecutor(2) as pool:
        for app in apps:
            figures[app.label] = per_request(app, args.requests, args.cache_sim, pool)
            print(f"{app.label:<20} " + ", ".join(f"{v:,.0f} {k}" for k, v in figures[app.label].items()), flush=True)
    fakeai, bare = figures[apps[0].label], figures[apps[1].label]
    print(f"\n{args.requests} non-streaming chat requests in process, per request:")
    for name in fakeai:
        print(f"  {name}: fakeai / bare FastAPI {fakeai[name] / bare[name]:.3f}")
        if args.without_metrics:
            off = figures["fakeai, metrics off"][name]
            print(f"  {name}: recording's share of fakeai's {1 - off / fakeai[name]:.3f}")
        if args.baseline_tree is not None:
            print(f"  {name}: fakeai after / before {fakeai[name] / figures['fakeai before'][name]:.3f}")


if __name__ == "__main__":
    main()
