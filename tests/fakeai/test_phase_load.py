"""A scenario phase's built-in load (``fakeai.traffic.phase_load``) against the in-process app, counting
the requests in flight at its door: open loop by default, at most ``max_concurrency`` when set."""

import httpx
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Receive, Scope, Send

from fakeai.app import create_app
from fakeai.scenario import Traffic
from fakeai.settings import Settings
from fakeai.traffic import API_KEY_ENV
from fakeai.traffic.phase_load import drive

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


class InFlight:
    """ASGI middleware: the most HTTP requests ever in progress at once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.now = 0
        self.most = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


async def run_phase(**traffic: object) -> tuple[dict[str, int], int]:
    # Each answer takes at least 5 steps of 20 ms: 100 ms.
    settings = Settings(models=[MODEL], profile_overrides={"itl_ms": 20.0, "itl_jitter": 0.0, "overhead_ms": 0.0})
    app = create_app(settings, CollectorRegistry())
    counted = InFlight(app)
    async with app.router.lifespan_context(app):
        load = Traffic.model_validate({"rate": 100, "arrivals": "even", "output_tokens": 5, **traffic})
        counts = await drive("http://fakeai.test", load, 1.0, MODEL, transport=httpx.ASGITransport(app=counted))
    return dict(counts), counted.most


async def test_open_loop_sends_every_arrival_whatever_the_answers_do():
    counts, most = await run_phase()
    assert counts == {"200": 100}  # even arrivals at 100/s for 1 s
    assert most > 3


async def test_max_concurrency_bounds_the_requests_in_flight_and_stops_at_the_phase_end():
    counts, most = await run_phase(max_concurrency=3)
    assert most == 3
    # Arrivals that found no free slot by the phase's end are not sent later: three slots of at least
    # 100 ms each in 1 s answer at most 33; the other arrivals are counted as unsent, none lost.
    assert 3 <= counts["200"] <= 36 and counts["200"] + counts["unsent"] == 100, counts
    assert set(counts) == {"200", "unsent"}


async def test_the_load_sends_the_key_its_environment_gives(monkeypatch):
    settings = Settings(models=[MODEL], api_keys=("sesame",), no_delay=True)
    app = create_app(settings, CollectorRegistry())
    load = Traffic.model_validate({"rate": 50, "arrivals": "even", "output_tokens": 2})
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        assert await drive("http://fakeai.test", load, 0.2, MODEL, transport=transport) == {"401": 10}
        monkeypatch.setenv(API_KEY_ENV, "sesame")  # as the scenario runner and check-dashboards set it
        assert await drive("http://fakeai.test", load, 0.2, MODEL, transport=transport) == {"200": 10}
