import asyncio
import itertools

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

from bridge.categories import Mapping
from bridge.hub import Client, Hub, StreamSettings
from bridge.protocol import Filters
from bridge.snapshot import Snapshot
from bridge.sources import RegistrySource
from bridge.windows import SnapshotRing


def test_ring_is_bounded_and_finds_window_starts():
    ring = SnapshotRing(fine_seconds=10, max_seconds=100, tick=0.5, coarse_step=10)
    for i in range(2000):  # 1,000 s of half-second snapshots
        ring.append(Snapshot(timestamp=i * 0.5))
    assert len(ring) <= (10 / 0.5 + 2) + (100 / 10 + 2)
    assert ring.latest.timestamp == 999.5
    assert ring.at_or_before(995.0).timestamp == 995.0  # fine resolution for recent windows
    coarse = ring.at_or_before(950.0).timestamp
    assert 940.0 <= coarse <= 950.0  # within one coarse step for long ones
    assert ring.at_or_before(0.0).timestamp == min(s.timestamp for s in ring._coarse)  # oldest kept
    spaced = ring.spaced(5, 1.0)
    assert [s.timestamp for s in spaced] == [994.5, 995.5, 996.5, 997.5, 998.5, 999.5]


@given(
    st.lists(st.integers(0, 3), min_size=1, max_size=60),  # steps between snapshots: ties included
    st.lists(st.floats(-5, 200, allow_nan=False), min_size=1, max_size=20),
)
def test_a_window_start_is_the_newest_snapshot_at_or_before_it(steps, asked):
    ring = SnapshotRing(fine_seconds=30, max_seconds=100, tick=1.0, coarse_step=10)
    for timestamp in itertools.accumulate(steps):
        ring.append(Snapshot(timestamp=float(timestamp)))
    for timestamp in asked:
        kept = ring._fine if ring._fine[0].timestamp <= timestamp else ring._coarse
        earlier = [snapshot for snapshot in kept if snapshot.timestamp <= timestamp]
        assert ring.at_or_before(timestamp) is (earlier[-1] if earlier else kept[0])


class FlakySource:
    """A registry source that fails while ``down`` is set, as a scraped server that went away."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.inner, self.down = RegistrySource(registry), False

    async def collect(self, names):
        if self.down:
            raise ConnectionRefusedError("scrape target down")
        return await self.inner.collect(names)


MAPPING = Mapping(
    **{
        role: f"x_{role}"
        for role in (
            "requests",
            "responses",
            "completion_tokens",
            "prompt_tokens",
            "errors",
            "request_latency",
            "queue_time",
            "ttft",
            "itl",
            "time_per_output_token",
            "cache_lookups",
            "cache_lookup_hits",
            "cache_queries",
            "cache_hits",
            "waiting",
            "running",
            "active_streams",
            "streams",
        )
    }
)


async def test_failing_ticks_are_counted_reported_once_and_the_loop_keeps_going():
    registry = CollectorRegistry()
    requests = Counter("x_requests", "r", ["endpoint", "model"], registry=registry)
    source = FlakySource(registry)
    hub = Hub(source, MAPPING, StreamSettings(min_interval=0.05, window=1.0))
    client = Client(Filters(interval=0.05, window=1.0))
    hub.register(client)
    await hub.start()
    try:
        await asyncio.sleep(0.3)
        source.down = True
        await asyncio.sleep(0.3)
        failures = hub.failed_ticks
        errors = [r for r in client.replies if '"source_unavailable"' in r]
        source.down = False
        requests.labels("/a", "m").inc(5)
        ticks = hub.ticks
        client.update = None
        await asyncio.sleep(0.3)
    finally:
        await hub.stop()
    assert failures >= 3 and len(errors) == 1  # counted every tick, told once
    assert hub.ticks > ticks and client.update is not None  # sampling and delivery resumed
    assert '"/a"' in client.update


async def test_history_is_one_second_apart_oldest_first():
    registry = CollectorRegistry()
    clock = [100.0]
    hub = Hub(
        RegistrySource(registry), MAPPING, StreamSettings(min_interval=0.5, history_seconds=5), clock=lambda: clock[0]
    )
    for _ in range(20):
        await hub.sample()
        clock[0] += 0.5
    history = await hub.history(Filters())
    stamps = [point["timestamp"] for point in history]
    assert stamps == sorted(stamps) and len(stamps) == 6
    assert all(abs(b - a - 1.0) < 1e-9 for a, b in itertools.pairwise(stamps))
    assert await hub.history(Filters()) is history  # shared by clients with the same filters until the next tick


async def test_a_source_down_at_start_up_does_not_stop_the_hub():
    registry = CollectorRegistry()
    source = FlakySource(registry)
    source.down = True
    hub = Hub(source, MAPPING, StreamSettings(min_interval=0.05))
    await hub.start()  # does not raise
    try:
        source.down = False
        for _ in range(100):  # with no subscriber the hub samples once a second
            await asyncio.sleep(0.05)
            if hub.ticks:
                break
    finally:
        await hub.stop()
    assert hub.failed_ticks >= 1 and hub.ticks >= 1 and hub.sampler.ring.latest is not None


def test_the_hub_samples_at_half_second_ticks_only_while_a_client_needs_them():
    hub = Hub(RegistrySource(CollectorRegistry()), MAPPING, StreamSettings(min_interval=0.5))
    assert hub.tick_seconds() == 1.0  # the history alone: points one second apart
    for interval in (1.0, 3.0):
        hub.register(Client(Filters(interval=interval)))
    assert hub.tick_seconds() == 1.0
    half = Client(Filters(interval=1.5))
    hub.register(half)
    assert hub.tick_seconds() == 0.5
    hub.unregister(half)
    assert hub.tick_seconds() == 1.0
    assert Hub(RegistrySource(CollectorRegistry()), MAPPING, StreamSettings(min_interval=2.0)).tick_seconds() == 2.0


async def test_a_bug_in_the_payload_math_is_an_internal_error_not_a_source_failure(monkeypatch, caplog):
    registry = CollectorRegistry()
    Counter("x_requests", "r", ["endpoint", "model"], registry=registry).labels("/a", "m").inc()
    hub = Hub(RegistrySource(registry), MAPPING, StreamSettings(min_interval=0.05, window=1.0))
    client = Client(Filters(interval=0.05, window=1.0))
    hub.register(client)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("bug in the math")

    monkeypatch.setattr("bridge.hub.compute", broken)
    await hub.tick()
    await hub.tick()
    assert hub.internal_errors == 2 and hub.failed_ticks == 0
    replies = list(client.replies)
    assert len(replies) == 1 and '"internal_error"' in replies[0] and "source_unavailable" not in replies[0]
    logged = [r for r in caplog.records if r.name == "bridge" and r.exc_info is not None]
    assert logged and isinstance(logged[0].exc_info[1], ZeroDivisionError)
    monkeypatch.undo()
    client.next_due = 0.0
    await hub.tick()
    assert client.update is not None and '"metrics_update"' in client.update  # serving again
