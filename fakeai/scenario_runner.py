"""Running a scenario (``fakeai.scenario``): each phase, in turn, for its duration.

A phase's ``config`` is applied over the start-up settings (so every phase says the whole change it
stands for) and ``down`` makes the server answer 503 to ``/v1/*``, ``/health`` and ``/metrics``. Both go
through ``fakeai.control`` as ``PATCH /admin/config`` does. A phase's ``traffic`` is sent by a child
process (``python -m fakeai.traffic.phase_load``) over HTTP to this server, so every family counts it as
it counts users' requests and the event loop that serves them never sends any; its requests still in
flight at the phase's end finish, and a stopped scenario stops them. The current phase is
``fakeai_scenario_phase_info{scenario, phase} 1``. When the scenario ends (or is stopped), the start-up
settings come back and the server is up.
"""

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from exporter.metrics import ServerMetrics
from fakeai.errors import OpenAIError
from fakeai.runtime_config import changed_settings
from fakeai.scenario import Phase, Scenario, ScenarioError
from fakeai.settings import Settings
from fakeai.traffic import API_KEY_ENV

log = logging.getLogger("fakeai.scenario")


def check(scenario: Scenario, startup: Settings) -> None:
    """Every phase's ``config`` is a valid change of the start-up settings, and its traffic asks only for
    models this server serves (``ScenarioError`` otherwise)."""
    servable = {*startup.models, *(module["name"] for module in startup.lora_modules)}
    for index, phase in enumerate(scenario.phases):
        for model in (phase.traffic.models or {}) if phase.traffic else {}:
            if model not in servable:
                location: tuple[int | str, ...] = ("phases", index, "traffic", "models", model)
                raise ScenarioError(scenario.where(location, f"not a model this server serves: {model}"))
        if phase.config is None:
            continue
        try:
            changed_settings(startup, phase.config)
        except OpenAIError as exc:
            location = ("phases", index, "config")
            if exc.param:
                location = (*location, *exc.param.split("."))
            raise ScenarioError(scenario.where(location, exc.message.rstrip("."))) from None


def own_url(settings: Settings) -> str:
    """Where this server answers, for its own built-in traffic (a wildcard bind is reached on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    return f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"


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
        self._loads: list[asyncio.subprocess.Process] = []

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
        loads, self._loads = self._loads, []
        for load in loads:
            if load.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    load.terminate()
                await load.wait()

    async def _start_load(self, scenario: Scenario, phase: Phase) -> None:
        """Start the phase's traffic in a child process; it ends by itself after the phase's arrivals."""
        assert phase.traffic is not None
        self._loads = [load for load in self._loads if load.returncode is None]
        command = [
            sys.executable, "-m", "fakeai.traffic.phase_load",
            "--url", own_url(self.startup),
            "--model", self.startup.models[0],
            "--duration", f"{phase.duration:g}",
            "--traffic", phase.traffic.model_dump_json(by_alias=True),
            "--label", f"scenario {scenario.name}, phase {phase.name}",
        ]  # fmt: skip
        # The server's own first key, when it asks for one: its load is one of its clients.
        env = {**os.environ, API_KEY_ENV: self.startup.api_keys[0]} if self.startup.api_keys else None
        self._loads.append(await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL, env=env))

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
                    if phase.traffic is not None:
                        await self._start_load(scenario, phase)
                    began.set()
                    log.warning("%s: phase %s for %.1f s", scenario.name, phase.name, phase.duration)
                    await asyncio.sleep(phase.duration)
                if not loop:
                    break
        finally:
            reset = {"op": "config", "settings": self.startup.to_json(), "source": "scenario end", "changes": {}}
            try:
                await asyncio.shield(self._reset(reset))
            finally:
                # Ended only once the start-up settings are back and the server is up: whoever polls
                # ``GET /admin/scenario`` for the end may count on both when it reads ``running: false``.
                self._phase = -1
                self._metrics.scenario_phase(None, None)

    async def _reset(self, reset: dict[str, Any]) -> None:
        await self._submit(reset)
        await self._submit({"op": "down", "down": False})
