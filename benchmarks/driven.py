"""A default fakeai app in process whose stream hub runs by a driven clock, for the in-process benchmarks
(``stream_deliver.py``, ``gc_pauses.py``): no sockets, no sampler task, a second of traffic in a call."""

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class Clock:
    """The hub's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class DrivenServer:
    def __init__(self, app: Any, call: Any) -> None:
        self.app, self._call = app, call
        self.hub = app.state.hub
        self.clock = Clock()
        self.hub.clock = self.hub.sampler.clock = self.clock

    async def second(self, requests: int) -> None:
        """One second of the clock: ``requests`` non-streaming chat requests, then the hub's sample."""
        self.clock.now += 1.0
        for _ in range(requests):
            await self._call(self.app)
        await self.hub.sample()


@contextlib.asynccontextmanager
async def driven_server(*, settled: bool = False) -> AsyncIterator[DrivenServer]:
    """The default app (``--no-delay``) with its hub stopped and its clock driven. With ``settled`` the heap
    is settled before the lifespan starts, as the CLI does (``fakeai.app.settle_heap``)."""
    # Imported here, from whichever checkout ``PYTHONPATH`` names (see ``common.child_round``).
    from prometheus_client import CollectorRegistry

    from fakeai.app import create_app, settle_heap
    from fakeai.settings import Settings

    path = list(sys.path)
    sys.path.insert(1, str(HERE))
    from inprocess import call

    sys.path[:] = path  # inprocess puts this checkout first; the one measured must stay first
    app = create_app(Settings(no_delay=True), CollectorRegistry())
    if settled:
        settle_heap()
    async with app.router.lifespan_context(app):
        await app.state.hub.stop()  # the benchmark drives the ticks
        yield DrivenServer(app, call)
