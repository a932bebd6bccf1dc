"""``python -m fakeai.traffic.phase_load --url URL --model M --duration S --traffic JSON``: a scenario
phase's built-in load, in a process of its own so that sending it never takes the server's event loop.

Open loop: requests start at their arrival times (``fakeai.traffic.arrivals``) whatever the answers do,
as users' requests would; at most ``MAX_IN_FLIGHT`` at once (later arrivals are counted as skipped, so a
stalled server cannot make this process grow without bound). With ``max_concurrency`` (as ``vllm bench
serve --max-concurrency``), an arrival that finds that many in flight waits for one to end; arrivals still
waiting when the phase ends are counted as unsent. After the phase's arrivals the requests in flight
finish, then one line on stderr says what was sent and how it was answered.
"""

import argparse
import asyncio
import os
import random
import sys
from collections import Counter
from collections.abc import Sequence

import httpx

from fakeai.scenario import MAX_CONCURRENCY, Ramp, Traffic
from fakeai.traffic import API_KEY_ENV
from fakeai.traffic.arrivals import arrival_times, request

MAX_IN_FLIGHT = MAX_CONCURRENCY
REQUEST_TIMEOUT = 600.0


async def send(client: httpx.AsyncClient, path: str, body: dict[str, object], counts: Counter[str]) -> None:
    try:
        async with client.stream("POST", path, json=body) as response:
            async for _ in response.aiter_raw():
                pass
        counts[str(response.status_code)] += 1
    except httpx.HTTPError as exc:
        counts[type(exc).__name__] += 1


async def drive(
    url: str, traffic: Traffic, duration: float, default_model: str, transport: httpx.AsyncBaseTransport | None = None
) -> Counter[str]:
    """Send the phase's requests; the answers' statuses (or transport errors) counted, and skips.
    ``transport``: httpx's own (None), or another such as an in-process app's."""
    rng = random.Random(traffic.seed)
    start, end = (traffic.rate.start, traffic.rate.end) if isinstance(traffic.rate, Ramp) else (traffic.rate,) * 2
    counts: Counter[str] = Counter()
    in_flight: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(traffic.max_concurrency or MAX_IN_FLIGHT)

    def finished(task: asyncio.Task[None]) -> None:
        in_flight.discard(task)
        slots.release()

    key = os.environ.get(API_KEY_ENV)
    headers = {"authorization": f"Bearer {key}"} if key else None
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=REQUEST_TIMEOUT, transport=transport, headers=headers
    ) as client:
        began = loop.time()
        arrivals = arrival_times(start, end, duration, traffic.arrivals, rng)
        for index, at in enumerate(arrivals):
            path, body = request(traffic, index, default_model, rng)
            delay = began + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if slots.locked():
                if traffic.max_concurrency is None:
                    counts["skipped"] += 1
                    continue
                try:  # closed loop: wait for a slot, but not past the phase's end
                    await asyncio.wait_for(slots.acquire(), timeout=max(began + duration - loop.time(), 0.0))
                except TimeoutError:
                    counts["unsent"] += 1 + sum(1 for _ in arrivals)
                    break
            else:
                await slots.acquire()  # free now: returns at once
            task = asyncio.ensure_future(send(client, path, body, counts))
            in_flight.add(task)
            task.add_done_callback(finished)
        if in_flight:
            await asyncio.wait(in_flight)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakeai.traffic.phase_load", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True, help="the model to ask when the traffic names none")
    parser.add_argument("--duration", type=float, required=True, help="seconds of arrivals")
    parser.add_argument("--traffic", required=True, help="the phase's traffic, as JSON")
    parser.add_argument("--label", default="traffic", help="what the closing line calls this load")
    args = parser.parse_args(argv)
    traffic = Traffic.model_validate_json(args.traffic)
    counts = asyncio.run(drive(args.url, traffic, args.duration, args.model))
    summary = ", ".join(f"{key}: {counts[key]}" for key in sorted(counts)) or "nothing sent"
    print(f"fakeai {args.label}: {sum(counts.values())} requests ({summary})", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
