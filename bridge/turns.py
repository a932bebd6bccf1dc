"""Giving the event loop a turn during a long loop: the registry, the sampler and the hub all run on the
loop that serves requests."""

import asyncio
import time


class Turns:
    """Gives the event loop a turn whenever ``seconds`` have passed since the last (or the start)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.due = time.perf_counter() + seconds

    async def take(self) -> None:
        if time.perf_counter() >= self.due:
            await asyncio.sleep(0)
            self.due = time.perf_counter() + self.seconds
