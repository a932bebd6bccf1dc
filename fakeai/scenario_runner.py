"""Running a scenario (``fakeai.scenario``): each phase, in turn, for its duration.

A phase's ``config`` is applied over the start-up settings (so every phase says the whole change it
stands for) and ``down`` makes the server answer 503 to ``/v1/*``, ``/health`` and ``/metrics``. Both go
through ``fakeai.control`` as ``PATCH /admin/config`` does. The current phase is
``fakeai_scenario_phase_info{scenario, phase} 1``. When the scenario ends (or is stopped), the start-up
settings come back and the server is up.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from exporter.metrics import ServerMetrics
from fakeai.errors import OpenAIError
from fakeai.runtime_config import changed_settings
from fakeai.scenario import Scenario, ScenarioError
from fakeai.settings import Settings

log = logging.getLogger("fakeai.scenario")


def check(scenario: Scenario, startup: Settings) -> None:
    """Every phase's ``config`` is a valid change of the start-up settings (``ScenarioError`` otherwise)."""
    for index, phase in enumerate(scenario.phases):
        if phase.config is None:
            continue
        try:
            changed_settings(startup, phase.config)
        except OpenAIError as exc:
            location: tuple[int | str, ...] = ("phases", index, "config")
            if exc.param:
                location = (*location, *exc.param.split("."))
            raise ScenarioError(scenario.where(location, exc.message.rstrip("."))) from None


class ScenarioRunner:
    def __init__(self, startup: Settings, submit: Callable[[dict[str, Any]], Awaitable[None]], metrics: ServerMetrics):
        self.startup = startup
        self._submit = submit
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self.scenario: Scenario | None = None
        self._phase = -1
        self._phase_started = 0.0
        self._loop = False

    def status(self) -> dict[str, Any]:
        """What ``GET /admin/scenario`` shows."""
        scenario = self.scenario
        if scenario is None or self._phase < 0:
            return {"running": False}
        phase = scenario.phases[self._phase]
        following = self._phase + 1
        if following == len(scenario.phases):
            following = 0 if self._loop else -1
        elapsed = time.monotonic() - self._phase_started
        return {
            "running": True,
            "scenario": scenario.name,
            "phase": phase.name,
            "elapsed": round(elapsed, 3),
            "remaining": round(max(phase.duration - elapsed, 0.0), 3),
            "next": scenario.phases[following].name if following >= 0 else None,
            "loop": self._loop,
        }

    async def start(self, scenario: Scenario, *, loop: bool = False) -> None:
        """Run ``scenario``, replacing a running one."""
        check(scenario, self.startup)
        await self.stop()
        self.scenario, self._loop = scenario, loop
        began = asyncio.Event()
        self._task = asyncio.ensure_future(self._run(scenario, loop, began))
        # Back once the first phase is in force, so the caller's next request already sees it.
        waiter = asyncio.ensure_future(began.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    async def stop(self) -> None:
        """Stop a running scenario: the start-up settings come back, and the server is up."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, scenario: Scenario, loop: bool, began: asyncio.Event) -> None:
        try:
            while True:
                for index, phase in enumerate(scenario.phases):
                    settings = changed_settings(self.startup, phase.config) if phase.config else self.startup
                    source = f"scenario {scenario.name}, phase {phase.name}"
                    changes = phase.config or {}
                    await self._submit(
                        {"op": "config", "settings": settings.to_json(), "source": source, "changes": changes}
                    )
                    await self._submit({"op": "down", "down": phase.down})
                    self._phase, self._phase_started = index, time.monotonic()
                    self._metrics.scenario_phase(scenario.name, phase.name)
                    began.set()
                    log.warning("%s: phase %s for %.1f s", scenario.name, phase.name, phase.duration)
                    await asyncio.sleep(phase.duration)
                if not loop:
                    break
        finally:
            self._phase = -1
            self._metrics.scenario_phase(None, None)
            reset = {"op": "config", "settings": self.startup.to_json(), "source": "scenario end", "changes": {}}
            await asyncio.shield(self._reset(reset))

    async def _reset(self, reset: dict[str, Any]) -> None:
        await self._submit(reset)
        await self._submit({"op": "down", "down": False})
