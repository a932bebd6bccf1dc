"""Keep requests in flight (closed loop) or start them on schedule (open loop), and report what was seen.

Several processes can share one run: each takes every ``stride``-th request from ``offset``, and an open
loop's schedule is counted from one wall-clock instant (``start_at``) that they all share, so together
they send what one process would, on the same schedule.
"""

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from fakeai.traffic.client import Timing, chat_body, send_chat
from fakeai.traffic.wire import Pool

LATE = 0.01
"""An open-loop request sent more than this many seconds after its scheduled time was sent late."""
SHARED_PROMPT = "You are a helpful assistant answering questions about queues. " * 8


@dataclass(frozen=True)
class Plan:
    url: str
    model: str
    requests: int
    concurrency: int = 8
    rps: float = 0.0
    """Open-loop arrival rate (``concurrency`` is then ignored); 0 keeps ``concurrency`` requests in flight."""
    max_tokens: int = 16
    prompt_words: int = 8
    image_pool: int = 0
    """With N > 0, every request shows one of N images, in turn: repeats hit the multi-modal cache."""
    stream_ratio: float = 1.0
    """The share of requests that stream."""
    prompt_reuse: float | None = None
    """With a share, that many prompts open with one shared system text (the rest with a random number);
    None: every prompt is ``prompt_words`` words around the request's number."""
    seed: int = 0
    offset: int = 0
    stride: int = 1
    """This process sends requests ``offset``, ``offset + stride``, ... of the run's ``requests``."""
    start_at: float | None = None
    """Wall-clock time (``time.time()``) the open loop's schedule counts from; None: when ``run`` starts."""
    timeout: float = 120.0
    duration: float | None = None
    """Seconds after which no request starts; None: ``requests`` alone bounds the run."""
    api_key: str = ""
    """Sent as a bearer token when given."""
    usage_every_chunk: bool = False
    """Ask streams for the usage on every chunk, so that a cut stream's tokens are known too."""


@dataclass
class Report:
    timings: list[Timing]
    elapsed: float
    late_starts: int
    """Open loop only: requests that started more than ``LATE`` after their scheduled time."""
    cpu_seconds: float = 0.0
    """This process's CPU time over the run: what the client itself cost."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "elapsed": self.elapsed,
            "late_starts": self.late_starts,
            "cpu_seconds": self.cpu_seconds,
            "timings": [asdict(t) for t in self.timings],
        }


def prompt_of(plan: Plan, index: int, rng: random.Random) -> str:
    if plan.prompt_reuse is not None:
        opening = SHARED_PROMPT if rng.random() < plan.prompt_reuse else f"{rng.random():.12f} "
        return f"{opening}question {index}"
    # The request's number sits mid-prompt: the blocks before it are shared by every prompt (prefix-cache
    # hits), the full blocks after it are each prompt's own (cached, then evicted under pressure).
    head = " ".join(["word"] * (plan.prompt_words // 2))
    tail = " ".join(["word"] * (plan.prompt_words - plan.prompt_words // 2))
    return f"{head} {index} {tail}"


async def run(plan: Plan, on_done: Callable[[Timing], None] | None = None) -> Report:
    # Open loop: nothing may hold a request back from its scheduled start, neither a slot nor the pool.
    open_loop = plan.rps > 0
    mine = range(plan.offset, plan.requests, plan.stride)
    timings: list[Timing] = []
    late = 0
    rng = random.Random(plan.seed * 1_000_003 + plan.offset)  # each process its own draws, repeatable
    cpu = time.process_time()
    headers = [(b"authorization", f"Bearer {plan.api_key}".encode())] if plan.api_key else []
    pool = Pool(plan.url, headers)
    try:
        gate = asyncio.Semaphore(len(mine) if open_loop else plan.concurrency)
        start = time.monotonic()
        if plan.start_at is not None:  # the shared schedule's origin, on this process's monotonic clock
            start += plan.start_at - time.time()
            await asyncio.sleep(max(start - time.monotonic(), 0.0))  # every process begins together

        async def one(i: int, due: float) -> None:
            async with gate:
                sent = time.monotonic()
                stream = rng.random() < plan.stream_ratio
                image = f"https://images.invalid/{i % plan.image_pool}.png" if plan.image_pool else None
                prompt = prompt_of(plan, i, rng)
                body = chat_body(plan.model, prompt, plan.max_tokens, stream, image, plan.usage_every_chunk)
                timing = await send_chat(pool, body, stream, plan.timeout)
                timing.started = sent - start
                timing.lag = max(sent - due, 0.0) if open_loop else 0.0
                timings.append(timing)
                if on_done is not None:
                    on_done(timing)

        tasks = []
        for i in mine:
            if plan.duration is not None and time.monotonic() - start >= plan.duration:
                break
            due = start + i / plan.rps if open_loop else 0.0
            if open_loop:
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -LATE:
                    late += 1
            else:
                await gate.acquire()  # closed loop: start the next one when a slot frees
                gate.release()
            tasks.append(asyncio.ensure_future(one(i, due)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
    finally:
        pool.close()
    return Report(timings, time.monotonic() - start, late, time.process_time() - cpu)
