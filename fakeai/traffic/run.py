"""Keep requests in flight (closed loop) or start them on schedule (open loop), and report what was seen."""

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from fakeai.traffic.client import Timing, stream_chat


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


@dataclass
class Report:
    timings: list[Timing]
    elapsed: float
    late_starts: int
    """Open loop only: requests that started more than 10 ms after their scheduled time."""

    def to_dict(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed, "late_starts": self.late_starts, "timings": [asdict(t) for t in self.timings]}


async def run(plan: Plan) -> Report:
    # Open loop: nothing may hold a request back from its scheduled start, neither a slot nor the pool.
    open_loop = plan.rps > 0
    limits = httpx.Limits(max_connections=None if open_loop else plan.concurrency, max_keepalive_connections=64)
    timeout = httpx.Timeout(120.0)
    timings: list[Timing] = []
    late = 0
    # The request's number sits mid-prompt: the blocks before it are shared by every prompt (prefix-cache
    # hits), the full blocks after it are each prompt's own (cached, then evicted under pressure).
    head = " ".join(["word"] * (plan.prompt_words // 2))
    tail = " ".join(["word"] * (plan.prompt_words - plan.prompt_words // 2))
    async with httpx.AsyncClient(base_url=plan.url, limits=limits, timeout=timeout) as client:
        gate = asyncio.Semaphore(plan.requests if open_loop else plan.concurrency)
        start = time.monotonic()

        async def one(i: int) -> None:
            async with gate:
                sent = time.monotonic() - start
                image = f"https://images.invalid/{i % plan.image_pool}.png" if plan.image_pool else None
                timing = await stream_chat(client, plan.model, f"{head} {i} {tail}", plan.max_tokens, image)
                timing.started = sent
                timings.append(timing)

        tasks = []
        for i in range(plan.requests):
            if open_loop:
                due = start + i / plan.rps
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.01:
                    late += 1
            else:
                await gate.acquire()  # closed loop: start the next one when a slot frees
                gate.release()
            tasks.append(asyncio.ensure_future(one(i)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
    return Report(timings, time.monotonic() - start, late)
