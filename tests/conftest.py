import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from fakeai.app import create_app
from fakeai.settings import PROFILE_FIELDS, Settings

AppFactory = Callable[..., contextlib.AbstractAsyncContextManager[tuple[httpx.AsyncClient, CollectorRegistry]]]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def app_client() -> AppFactory:
    """In-process app with its lifespan running, its own registry, and an httpx client bound to it."""

    @contextlib.asynccontextmanager
    async def factory(**settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, CollectorRegistry]]:
        registry = CollectorRegistry()
        profile = {name: settings.pop(name) for name in PROFILE_FIELDS if name in settings}
        app = create_app(Settings(**settings, profile_overrides=profile), registry)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://fakeai.test") as client:
                yield client, registry

    return factory
