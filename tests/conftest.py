import contextlib
import gc
import subprocess
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from fakeai.app import create_app
from fakeai.settings import PROFILE_FIELDS, Settings

INTEGRATION = "integration"
CLIENTS = "clients"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration starts real processes (servers, promtool, Prometheus,
    Chromium), and so does everything under tests/clients (benchmark clients in their own virtual
    environments): the fast lane, ``-m "not integration"``, leaves both out."""
    for item in items:
        if INTEGRATION in item.path.parts or CLIENTS in item.path.parts:
            item.add_marker(pytest.mark.integration)
        if CLIENTS in item.path.parts:
            item.add_marker(pytest.mark.clients)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The suite builds about two hundred servers, each tens of thousands of objects that die in cycles.

    With the interpreter's defaults, the collector ran 8,800 times over the whole heap of imports and
    servers: 10-13 s of the fast lane's 60. Freezing what collection imported (as ``fakeai.app.settle_heap``
    does for a server) and collecting the young generation ten times less often halves that, measured
    with ``-m "not integration"`` (user CPU 58-64 s before, 44-55 s after)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


@pytest.fixture(autouse=True)
def _processes_only_in_the_integration_lane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeps the fast lane honest: a test outside the integration lane that starts a process fails."""
    if request.node.get_closest_marker(INTEGRATION) is None:

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"{request.node.nodeid} starts a process: it belongs in tests/integration")

        monkeypatch.setattr(subprocess, "Popen", refuse)


AppFactory = Callable[..., contextlib.AbstractAsyncContextManager[tuple[httpx.AsyncClient, CollectorRegistry]]]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def app_client() -> AppFactory:
    """In-process app with its lifespan running, its own registry (or the one given), and an httpx client
    bound to it."""

    @contextlib.asynccontextmanager
    async def factory(
        registry: CollectorRegistry | None = None, **settings: Any
    ) -> AsyncIterator[tuple[httpx.AsyncClient, CollectorRegistry]]:
        registry = CollectorRegistry() if registry is None else registry
        profile = {name: settings.pop(name) for name in PROFILE_FIELDS if name in settings}
        app = create_app(Settings(**settings, profile_overrides=profile), registry)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://fakeai.test") as client:
                yield client, registry

    return factory
