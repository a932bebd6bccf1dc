"""The bridge on a registry that is not fakeai's: any families can be streamed through a Mapping."""

import asyncio
import itertools
import json
from collections.abc import Callable

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

import bridge.folds
import bridge.hub
from bridge.categories import METRIC_TYPES, Mapping, Selection, Window, compute, fold_plan
from bridge.figures import dumps_figures, round_figure
from bridge.folds import FoldCache
from bridge.hub import DELTA_FIELDS, TOGETHER_FROM, Client, Hub, StreamSettings
from bridge.math import histogram_quantile
from bridge.protocol import Filters
from bridge.server import handle
from bridge.snapshot import Snapshot, take
from bridge.sources import RegistrySource

EL = ("endpoint", "model")
BOUNDS = (0.01, 0.1, 1.0)
MAPPING = Mapping(
    requests="svc_requests",
    responses="svc_responses",
    completion_tokens="svc_out_tokens",
    prompt_tokens="svc_in_tokens",
    errors="svc_errors",
    request_latency="svc_latency_seconds",
    queue_time="svc_queue_seconds",
    ttft="svc_ttft_seconds",
    itl="svc_itl_seconds",
    time_per_output_token="svc_tpot_seconds",
    cache_lookups="svc_lookups",
    cache_lookup_hits="svc_lookup_hits",
    cache_queries="svc_cache_queries",
    cache_hits="svc_cache_hits",
    waiting="svc_waiting",
    running="svc_running",
    active_streams="svc_streams_open",
    streams="svc_streams",
    endpoint_label="route",
    model_label="llm",
)


class Service:
    """A made-up service with its own names and label names."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        labels = ("route", "llm")
        self.counters = {
            name: Counter(name, name, labels, registry=r)
            for name in (
                "svc_requests",
                "svc_responses",
                "svc_out_tokens",
                "svc_in_tokens",
                "svc_lookups",
                "svc_lookup_hits",
                "svc_cache_queries",
                "svc_cache_hits",
            )
        }
        self.errors = Counter("svc_errors", "e", (*labels, "status"), registry=r)
        self.streams = Counter("svc_streams", "s", (*labels, "outcome"), registry=r)
        self.histograms = {
            name: Histogram(name, name, labels, buckets=BOUNDS, registry=r)
            for name in (
                "svc_latency_seconds",
                "svc_queue_seconds",
                "svc_ttft_seconds",
                "svc_itl_seconds",
                "svc_tpot_seconds",
            )
        }
        self.gauges = {
            name: Gauge(name, name, labels, registry=r) for name in ("svc_waiting", "svc_running", "svc_streams_open")
        }

    def traffic(self, route: str, llm: str, n: int, latency: float) -> None:
        for name in ("svc_requests", "svc_responses"):
            self.counters[name].labels(route, llm).inc(n)
        self.counters["svc_out_tokens"].labels(route, llm).inc(10 * n)
        self.counters["svc_lookups"].labels(route, llm).inc(n)
        self.counters["svc_lookup_hits"].labels(route, llm).inc(n // 2)
        for _ in range(n):
            self.histograms["svc_latency_seconds"].labels(route, llm).observe(latency)
            self.histograms["svc_tpot_seconds"].labels(route, llm).observe(0.02)
        self.errors.labels(route, llm, "503").inc(1)
        self.streams.labels(route, llm, "completed").inc(n)


def snapshot(service: Service, t: float):
    return take(service.registry.collect(), MAPPING.wanted(), t)


def window(service: Service, before, after, **selection):
    return Window(before, after, MAPPING, Selection(**{k: frozenset(v) for k, v in selection.items()}))


def test_rates_filters_and_totals():
    s = Service()
    s.traffic("/a", "m1", 5, 0.05)
    before = snapshot(s, 100.0)
    s.traffic("/a", "m1", 20, 0.05)
    s.traffic("/b", "m2", 10, 0.5)
    after = snapshot(s, 110.0)
    everything = compute(window(s, before, after), frozenset(METRIC_TYPES))
    t = everything["throughput"]
    assert t["requests_per_sec"] == {"/a": 2.0, "/b": 1.0}
    assert t["total_requests_per_sec"] == 3.0 and t["total_tokens_per_sec"] == 30.0
    assert everything["error"]["by_status"] == {"503": 0.2} and everything["error"]["error_rate"] == pytest.approx(
        100 * 2 / 30, abs=1e-3
    )
    only_m2 = compute(window(s, before, after, models={"m2"}), frozenset(METRIC_TYPES))
    assert only_m2["throughput"]["total_requests_per_sec"] == 1.0
    assert set(only_m2["latency"]) == {"/b"}
    only_a = compute(window(s, before, after, endpoints={"/a"}), frozenset(METRIC_TYPES))
    assert only_a["throughput"]["total_requests_per_sec"] == only_a["throughput"]["requests_per_sec"]["/a"] == 2.0
    assert compute(window(s, before, after), frozenset({"latency"})).keys() == {"latency"}


def test_latency_figures_are_promql_quantiles_of_the_window_increase():
    s = Service()
    for latency in (0.005, 0.05, 0.05, 0.5):
        s.histograms["svc_latency_seconds"].labels("/a", "m1").observe(latency)
    before = snapshot(s, 0.0)
    for latency in (0.05, 0.5, 0.5, 0.5, 2.0):
        s.histograms["svc_latency_seconds"].labels("/a", "m1").observe(latency)
    after = snapshot(s, 10.0)
    latency = compute(window(s, before, after), frozenset({"latency"}))["latency"]["/a"]
    bounds, delta = np.array([*BOUNDS, np.inf]), np.array([0, 1, 4, 5.0])
    for key, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert latency[key] == pytest.approx(1000 * histogram_quantile(q, bounds, delta), abs=1e-3)
    assert latency["avg"] == pytest.approx(1000 * 3.55 / 5) and latency["count"] == 5
    assert latency["min"] == 10.0 and latency["max"] == 1000.0


def test_empty_window_maps_hold_no_endpoint_and_figures_are_numbers():
    s = Service()
    before = after = snapshot(s, 5.0)
    data = compute(window(s, before, after), frozenset(METRIC_TYPES))
    assert data["latency"] == {} and data["throughput"]["requests_per_sec"] == {}
    assert data["streaming"]["ttft"]["p99"] == 0.0 and data["cache"]["hit_rate"] == 0.0


def test_decode_rate_inverts_time_per_output_token():
    s = Service()
    before = snapshot(s, 0.0)
    s.traffic("/a", "m1", 4, 0.05)
    tps = compute(window(s, before, snapshot(s, 1.0)), frozenset({"streaming"}))["streaming"]["tokens_per_second"]
    assert tps["avg"] == pytest.approx(50.0) and 10.0 <= tps["p50"] <= 100.0


def test_decode_rate_max_is_one_over_the_fastest_bucket_not_the_p99():
    s = Service()
    before = snapshot(s, 0.0)
    tpot = s.histograms["svc_tpot_seconds"].labels("/a", "m1")
    for seconds in (0.05,) * 50 + (0.5,) * 50:  # buckets (0.01, 0.1] and (0.1, 1.0]
        tpot.observe(seconds)
    tps = compute(window(s, before, snapshot(s, 1.0)), frozenset({"streaming"}))["streaming"]["tokens_per_second"]
    assert tps["max"] == pytest.approx(1 / 0.01)  # the fastest stream took at least 0.01 s per token
    assert tps["p99"] < tps["max"] and tps["min"] == pytest.approx(1 / 1.0)
    s.histograms["svc_tpot_seconds"].labels("/a", "m1").observe(0.001)  # now a stream in (0, 0.01]
    tps = compute(window(s, before, snapshot(s, 2.0)), frozenset({"streaming"}))["streaming"]["tokens_per_second"]
    assert tps["max"] == pytest.approx(1 / 0.01)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def hub_after(seconds: int, traffic: Callable[[Service, int], None]) -> tuple[Service, FakeClock, Hub]:
    """A hub that sampled ``seconds`` seconds of ``traffic`` (called each second with its number)."""
    s = Service()
    clock = FakeClock()
    hub = Hub(RegistrySource(s.registry), MAPPING, StreamSettings(min_interval=0.5), clock=clock)
    for second in range(seconds):
        clock.now += 1.0
        traffic(s, second)
        await hub.sample()
    return s, clock, hub


def data_text(update: str) -> str:
    """An update's ``data`` as the server wrote it."""
    return update[update.index('"data":') + len('"data":') : update.index(',"deltas":')]


async def test_hub_computes_once_per_filter_set_and_keeps_per_client_deltas():
    s = Service()
    clock = FakeClock()
    hub = Hub(RegistrySource(s.registry), MAPPING, StreamSettings(min_interval=0.5), clock=clock)
    await hub.sample()
    shared = [Client(Filters(interval=0.5)) for _ in range(5)]
    alone = Client(Filters(interval=0.5, models=frozenset({"m1"})))
    for client in [*shared, alone]:
        hub.register(client)
    calls = []
    original = hub._compute
    hub._compute = lambda start, end, filters: calls.append(filters) or original(start, end, filters)
    clock.now += 0.5
    s.traffic("/a", "m1", 10, 0.05)
    await hub.sample()
    assert await hub.deliver(clock.now) == 2 and len(calls) == 2  # two distinct filter sets, six clients
    first = shared[0].update
    assert all(c.update[: c.update.index('"deltas"')] == first[: first.index('"deltas"')] for c in shared)
    assert first.endswith('"deltas":{}}')
    clock.now += 0.5
    s.traffic("/a", "m1", 10, 0.05)
    await hub.sample()
    await hub.deliver(clock.now)
    assert '"total_requests_per_sec":' in shared[0].update.split('"deltas":')[1]


async def test_sets_whose_windows_begin_at_one_snapshot_share_one_computation_and_keep_their_window():
    s = Service()
    clock = FakeClock()
    hub = Hub(RegistrySource(s.registry), MAPPING, StreamSettings(min_interval=0.5), clock=clock)
    await hub.sample()
    # Two seconds of history: windows of 30 and 40 s both begin at the oldest snapshot; 1 s does not.
    clients = [Client(Filters(interval=0.5, window=w)) for w in (30.0, 40.0, 1.0)]
    for client in clients:
        hub.register(client)
    starts = []  # the start of every window computed, alone or with others
    alone, together = hub._compute, hub._compute_together
    hub._compute = lambda start, end, filters: starts.append(start) or alone(start, end, filters)
    hub._compute_together = lambda many, end, filters: starts.extend(many) or together(many, end, filters)
    for _ in range(4):
        clock.now += 0.5
        s.traffic("/a", "m1", 10, 0.05)
        await hub.sample()
    # Three sets, two windows computed: the 1 s window, and one from the oldest snapshot for 30 and 40 s.
    assert await hub.deliver(clock.now) == 3 and len(starts) == 2
    assert sorted(clock.now - start.timestamp for start in starts) == [1.0, 2.0]
    long, longer, short = (json.loads(c.update) for c in clients)
    assert (long["window"], longer["window"], short["window"]) == (30.0, 40.0, 1.0)
    assert long["data"] == longer["data"] != short["data"]
    assert long["data"]["throughput"]["total_requests_per_sec"] == pytest.approx(40 / 2.0)


async def test_a_client_that_resubscribes_while_other_sets_are_computed_gets_nothing_stale():
    s = Service()
    clock = FakeClock()
    # slice 0: the hub yields to the loop after every filter set.
    hub = Hub(RegistrySource(s.registry), MAPPING, StreamSettings(min_interval=0.5), clock=clock, slice_seconds=0.0)
    await hub.sample()
    clients = [Client(Filters(interval=0.5, window=w)) for w in (10.0, 20.0)]
    for client in clients:
        hub.register(client)
    clock.now += 0.5
    delivering = asyncio.ensure_future(hub.deliver(clock.now))
    await asyncio.sleep(0)  # the first set is posted; the hub yields before the second
    for client in clients:
        handle('{"type": "subscribe", "filters": {"window": 30}}', client, hub)
    assert await delivering == 2
    for client in clients:
        assert client.update is None  # no update computed for the old filters arrives after "subscribed"
        assert any('"subscribed"' in reply for reply in client.replies)


async def test_windows_new_to_the_fold_cache_are_folded_with_a_turn_of_the_loop_between_them():
    s = Service()
    clock = FakeClock()
    # slice 0: the hub gives the loop a turn after every step.
    hub = Hub(RegistrySource(s.registry), MAPPING, StreamSettings(min_interval=0.5), clock=clock, slice_seconds=0.0)
    for _ in range(6):
        clock.now += 1.0
        s.traffic("/a", "m1", 10, 0.05)
        await hub.sample()
    for window in (1.0, 2.0, 3.0, 4.0):  # four starts, none folded yet (as after a burst of subscribers)
        hub.register(Client(Filters(interval=0.5, window=window)))
    delivering = asyncio.ensure_future(hub.deliver(clock.now))
    folds_at_each_turn = []
    while not delivering.done():
        folds_at_each_turn.append(len(hub.folds))
        await asyncio.sleep(0)
    assert await delivering == 4
    folds_at_each_turn.append(len(hub.folds))
    made = [after - before for before, after in itertools.pairwise(folds_at_each_turn)]
    assert sum(made) == 5 and max(made) == 1  # four starts and the end, never two without a turn between


@pytest.mark.parametrize("windows", [2, TOGETHER_FROM - 1, TOGETHER_FROM, 12])
async def test_windows_computed_one_by_one_or_together_post_the_same_updates(windows):
    """Below ``TOGETHER_FROM`` windows a tick computes each alone (cheaper than the arrays' fixed cost);
    either way every client gets the same text."""
    s = Service()
    clock = FakeClock()
    source = RegistrySource(s.registry)
    hubs = [Hub(source, MAPPING, StreamSettings(min_interval=0.5), clock=clock) for _ in range(2)]
    hubs[0].together_from, hubs[1].together_from = 2, 10**6  # always together; always one by one
    for _ in range(20):
        clock.now += 1.0
        s.traffic("/a", "m1", 10, 0.05)
        for hub in hubs:
            await hub.sample()
    clients = [[Client(Filters(interval=0.5, window=2.0 + i)) for i in range(windows)] for _ in hubs]
    for hub, mine in zip(hubs, clients, strict=True):
        for client in mine:
            hub.register(client)
    for _ in range(2):  # the first update, then one with deltas
        clock.now += 1.0
        s.traffic("/a", "m1", 5, 0.2)
        for hub in hubs:
            await hub.sample()
            assert await hub.deliver(clock.now) == windows
        together, alone = ([c.update for c in mine] for mine in clients)
        assert together == alone and len(set(together)) == windows


@pytest.mark.parametrize("together_from", [2, 10**6], ids=["together", "one-by-one"])
async def test_sets_that_differ_in_categories_share_one_computation_and_each_gets_its_own(together_from):
    s, clock, hub = await hub_after(
        20, lambda s, second: s.traffic("/a" if second % 3 else "/b", "m1", 1 + second % 4, 0.01 * (1 + second % 5))
    )
    hub.together_from = together_from
    kinds = [("latency",), ("throughput", "error"), ("streaming",), ("cache", "queue"), METRIC_TYPES]
    clients = [
        Client(Filters(interval=1.0, window=window, metric_types=frozenset(kind)))
        for window in (5.0, 10.0)
        for kind in kinds
    ]
    for client in clients:
        hub.register(client)
    computed: list[frozenset[str]] = []  # the categories of each window computed, alone or together
    alone, together = hub._compute, hub._compute_together
    hub._compute = lambda start, end, filters: computed.append(filters.metric_types) or alone(start, end, filters)
    hub._compute_together = lambda starts, end, filters: (
        computed.extend([filters.metric_types] * len(starts)) or together(starts, end, filters)
    )
    for tick in range(2):  # the first update, then one with deltas
        clock.now += 1.0
        s.traffic("/a", "m1", 3, 0.05)
        await hub.sample()
        computed.clear()
        assert await hub.deliver(clock.now) == len(clients)
        assert computed == [frozenset(METRIC_TYPES)] * 2  # two windows, each once, for every set of each
        hub._compute = alone  # (what each set would get computed on its own)
        for client in clients:
            # Its own categories, byte for byte.
            assert data_text(client.update) == dumps_figures(hub.data(client.filters))
            deltas = json.loads(client.update)["deltas"]
            mine = {name for name, category, _ in DELTA_FIELDS if category in client.filters.metric_types}
            assert set(deltas) == (mine if tick else set())
        hub._compute = lambda start, end, filters: computed.append(filters.metric_types) or alone(start, end, filters)


@pytest.mark.parametrize("together_from", [2, 10**6], ids=["together", "one-by-one"])
async def test_sets_of_the_same_deltas_categories_share_their_deltas_written_once(together_from, monkeypatch):
    s, clock, hub = await hub_after(12, lambda s, second: s.traffic("/a", "m1", 1 + second % 3, 0.02))
    hub.together_from = together_from
    kinds = [frozenset(kind) for size in range(1, 7) for kind in itertools.combinations(METRIC_TYPES, size)]
    clients = [
        Client(Filters(interval=1.0, window=window, metric_types=kind)) for window in (5.0, 9.0) for kind in kinds
    ]
    for client in clients:
        hub.register(client)
    written: list[int] = []  # the pairs of each call that writes deltas
    write = bridge.hub.deltas_texts
    monkeypatch.setattr(
        bridge.hub, "deltas_texts", lambda names, pairs: written.append(len(pairs)) or write(names, pairs)
    )
    updates = []
    for second in range(3):
        clock.now += 1.0
        s.traffic("/a", "m1", 2 + 3 * second, 0.03)
        await hub.sample()
        written.clear()
        assert await hub.deliver(clock.now) == len(clients)
        updates.append([json.loads(client.update) for client in clients])
    # Two windows, and of the deltas' three categories each set asked for some of the 2**3 - 1 subsets, or
    # none: 2 x 8 pairs of (figures, previous), not one per set.
    assert sum(written) == 2 * 8
    for client, before, now in zip(clients, updates[1], updates[2], strict=True):
        expected = {
            name: round_figure(now["data"][category][field] - before["data"][category][field])
            for name, category, field in DELTA_FIELDS
            if category in client.filters.metric_types
        }
        assert now["deltas"] == expected
    assert any(value != 0 for update in updates[2] for value in update["deltas"].values())  # traffic grew


async def test_sets_that_select_different_series_are_computed_together_each_with_its_own_figures():
    def traffic(s: Service, second: int) -> None:
        for route, llm in itertools.product(("/a", "/b", "/c"), ("m1", "m2")):
            if (second + len(route) * len(llm)) % 3:
                s.traffic(route, llm, 1 + second % 4, 0.01 * (1 + second % 7))

    service, clock, hub = await hub_after(30, traffic)
    selections = [
        {"endpoints": frozenset(routes), "models": frozenset(llms)}
        for routes in ((), ("/a",), ("/b", "/c"), ("/a", "/c"))
        for llms in ((), ("m1",), ("m2",))
    ]
    clients = [Client(Filters(interval=1.0, window=window, **chosen)) for chosen in selections for window in (5.0, 9.0)]
    for client in clients:
        hub.register(client)
    together: list[list] = []  # the selections of each set of windows computed together
    original = hub._compute_together
    hub._compute_together = lambda starts, end, filters, chosen=None: (
        together.append(chosen or [filters.selection] * len(starts)) or original(starts, end, filters, chosen)
    )
    assert await hub.deliver(clock.now) == len(clients)
    # The sets in one computation: every one but, where its fold's groups lie in another order than the
    # cells', the two of every series (folded from the series, not summed from the cells).
    assert len(together) == 1 and len(together[0]) >= len(clients) - 2
    assert len(set(together[0])) >= len(selections) - 1
    for client in clients:
        assert data_text(client.update) == dumps_figures(hub.data(client.filters))  # as computed on its own
    assert len({client.update for client in clients}) > len(clients) // 2
    # The next tick sums its new snapshot once per cell for every selection, and folds no selection's
    # window apart: only the two windows of every series are folds of their own.
    clock.now += 1.0
    traffic(service, 30)
    await hub.sample()
    folded, original_fold = [], hub.folds.fold
    hub.folds.fold = lambda snapshot, plan: folded.append(plan.keep) or original_fold(snapshot, plan)
    assert await hub.deliver(clock.now) == len(clients)
    assert folded and all(keep is None for keep in folded)
    for client in clients:
        assert data_text(client.update) == dumps_figures(hub.data(client.filters))


class WindowsOf:
    """A windowed source (as ``PrometheusSource``) whose windows end at snapshots of their own."""

    def __init__(self, pairs: dict[float, tuple[Snapshot, Snapshot]]) -> None:
        self.pairs = pairs

    async def window(self, wanted, window: float, at: float) -> tuple[Snapshot, Snapshot]:
        return self.pairs[window]

    async def collect(self, sample_names):
        raise AssertionError("a windowed source is asked for windows")


@pytest.mark.parametrize("together_from", [2, 10**6], ids=["together", "one-by-one"])
async def test_each_window_of_a_windowed_source_is_computed_from_its_own_end(together_from):
    s = Service()
    start = snapshot(s, 0.0)
    s.traffic("/a", "m1", 10, 0.05)
    ten = snapshot(s, 10.0)
    s.traffic("/a", "m1", 30, 0.05)
    twenty = snapshot(s, 20.0)
    # Requests a second: 30 in the last 10 s, 40 in 20 s (two windows that end together at different
    # starts: computed together), and, as the longest window's pair, 10 in the first 10 s (its end is
    # the sampler's latest).
    source = WindowsOf({10.0: (ten, twenty), 20.0: (start, twenty), 30.0: (start, ten)})
    clock = FakeClock()
    hub = Hub(source, MAPPING, StreamSettings(min_interval=0.5), clock=clock)
    hub.together_from = together_from
    clients = {w: Client(Filters(interval=0.5, window=w)) for w in (10.0, 20.0, 30.0)}
    for client in clients.values():
        hub.register(client)
    await hub.sample()
    assert await hub.deliver(clock.now) == 3
    rates = {w: json.loads(c.update)["data"]["throughput"]["total_requests_per_sec"] for w, c in clients.items()}
    assert rates == {10.0: 3.0, 20.0: 2.0, 30.0: 1.0}


async def test_mailbox_keeps_only_the_latest_update_but_every_reply():
    client = Client(Filters())
    client.post_update("old")
    client.post_reply("pong-1")
    client.post_update("new")
    client.post_reply("pong-2")
    assert client.update == "new" and list(client.replies) == ["pong-1", "pong-2"]
    assert client.wake.is_set()


async def test_client_cadence_follows_its_interval():
    s = Service()
    clock = FakeClock()
    hub = Hub(RegistrySource(s.registry), MAPPING, StreamSettings(min_interval=0.5), clock=clock)
    await hub.sample()
    fast, slow = Client(Filters(interval=0.5)), Client(Filters(interval=2.0))
    hub.register(fast)
    hub.register(slow)
    sent = {"fast": 0, "slow": 0}
    for _ in range(8):  # four seconds of ticks
        clock.now += 0.5
        await hub.sample()
        await hub.deliver(clock.now)
        for name, client in (("fast", fast), ("slow", slow)):
            if client.update is not None:
                sent[name] += 1
                client.update = None
    assert sent == {"fast": 8, "slow": 2}
    await asyncio.sleep(0)


class Restartable:
    """A source over a Service that can be replaced by a fresh one: every counter starts again at 0."""

    def __init__(self) -> None:
        self.service = Service()

    async def collect(self, names):
        return await RegistrySource(self.service.registry).collect(names)


def per_series(w: Window) -> Window:
    w.folded = False  # every series' own increase, as across a restart
    return w


async def test_windows_sum_before_subtracting_within_an_epoch_and_per_series_across_a_restart():
    import random

    rng = random.Random(7)
    source, clock = Restartable(), FakeClock()
    hub = Hub(source, MAPPING, StreamSettings(min_interval=0.5), clock=clock)
    kept = []
    for tick in range(40):
        if tick == 25:
            source.service = Service()  # the server restarted: counters and histograms went back
        for _ in range(rng.randint(0, 4)):
            route, llm = rng.choice(("/a", "/b")), rng.choice(("m1", "m2"))
            source.service.traffic(route, llm, rng.randint(1, 20), rng.choice((0.005, 0.05, 0.5, 3.0)))
        clock.now += 0.5
        kept.append(await hub.sample())
    assert [s.epoch for s in kept] == [0] * 25 + [1] * 15
    selections = (Selection(), Selection(models=frozenset({"m1"})), Selection(endpoints=frozenset({"/b", "/x"})))
    pairs = ((0, 24), (3, 10), (10, 10), (25, 39), (30, 31), (5, 39), (24, 25))
    for start, end in pairs:
        for selection in selections:
            fast = Window(kept[start], kept[end], MAPPING, selection, hub.folds)
            slow = per_series(Window(kept[start], kept[end], MAPPING, selection))
            assert fast.folded == (kept[start].epoch == kept[end].epoch)
            assert compute(fast, frozenset(METRIC_TYPES)) == compute(slow, frozenset(METRIC_TYPES)), (start, end)
    # Across the restart each series counts what it did since (PromQL's increase), never a negative rate.
    across = compute(Window(kept[5], kept[39], MAPPING, Selection()), frozenset({"throughput"}))["throughput"]
    assert across["total_requests_per_sec"] > 0
    # Each snapshot summed once per selection, and only where a sum is read: at a window's end, and at
    # the start of a window within one epoch (across a restart each series is read on its own).
    folded = {end for _, end in pairs} | {start for start, end in pairs if kept[start].epoch == kept[end].epoch}
    assert 5 not in folded
    assert len(hub.folds) == len(folded) * len(selections)


def test_the_fold_cache_is_bounded_and_never_confuses_two_snapshots():
    cache = FoldCache(limit=3)
    snapshots = [Snapshot(float(t)) for t in range(5)]
    plan = fold_plan(MAPPING, Selection())
    folds = [cache.fold(snapshot, plan) for snapshot in snapshots]
    assert len(cache) == 3
    assert cache.fold(snapshots[4], plan) is folds[4]  # recent: kept
    assert cache.fold(snapshots[0], plan) is not folds[0]  # the oldest were dropped, and are made again
    assert cache.fold(snapshots[4], fold_plan(MAPPING, Selection(models=frozenset({"m"})))) is not folds[4]
    assert fold_plan(MAPPING, Selection()) is plan  # one plan (one entry) per mapping and selection


def test_the_fold_cache_holds_folds_and_cells_within_their_byte_budgets(monkeypatch):
    s = Service()
    for route in ("/a", "/b", "/c"):
        s.traffic(route, "m1", 1, 0.05)
    snapshots = [snapshot(s, float(t)) for t in range(12)]
    cache = FoldCache()
    plan = fold_plan(MAPPING, Selection(models=frozenset({"m1"})))  # a selection: summed from cells
    one_fold, one_cell = 5 * cache.fold(snapshots[0], plan).vector.nbytes, cache._cells_bytes
    monkeypatch.setattr(bridge.folds, "FOLDS_BYTES", 4 * one_fold)
    monkeypatch.setattr(bridge.folds, "CELLS_BYTES", 3 * one_cell)
    folds = [cache.fold(snapshot, plan) for snapshot in snapshots]
    assert (len(cache), cache._bytes, len(cache._cells), cache._cells_bytes) == (4, 4 * one_fold, 3, 3 * one_cell)
    assert cache.fold(snapshots[-1], plan) is folds[-1] and cache.fold(snapshots[0], plan) is not folds[0]


def test_a_group_whose_series_have_two_bucket_layouts_is_the_layout_with_more_observations():
    registry = CollectorRegistry()
    narrow = Histogram("svc_latency_seconds", "l", ("route", "llm"), buckets=BOUNDS, registry=registry)
    wanted = MAPPING.wanted()
    before = take(registry.collect(), wanted, 0.0)
    narrow.labels("/a", "m1").observe(0.05)
    wide_registry = CollectorRegistry()
    wide = Histogram("svc_latency_seconds", "l", ("route", "llm"), buckets=(0.5, 5.0), registry=wide_registry)
    for _ in range(3):
        wide.labels("/a", "m2").observe(1.0)
    after = take([*registry.collect(), *wide_registry.collect()], wanted, 10.0)
    for w in (Window(before, after, MAPPING, Selection()), per_series(Window(before, after, MAPPING, Selection()))):
        latency = compute(w, frozenset({"latency"}))["latency"]["/a"]
        assert latency["count"] == 3 and latency["max"] == 5000.0


async def test_sets_with_different_windows_are_computed_together_each_with_its_own_figures():
    _, clock, hub = await hub_after(
        40,
        lambda s, second: s.traffic(
            "/a" if second % 3 else "/b", "m1" if second % 2 else "m2", second % 7, 0.005 * (second % 5)
        ),
    )
    clients = [Client(Filters(interval=1.0, window=float(w))) for w in range(1, 31)]
    clients.append(Client(Filters(interval=1.0, window=5.0, models=frozenset({"m2"}))))
    for client in clients:
        hub.register(client)
    sizes: list[int] = []  # windows in each set computed together
    together = hub._compute_together
    hub._compute_together = lambda starts, end, filters: sizes.append(len(starts)) or together(starts, end, filters)
    assert await hub.deliver(clock.now) == 31
    # Thirty windows of one selection computed together; the one set of another selection alone.
    assert sizes == [30]
    for client in clients:
        # What the set would get computed on its own (``Hub.data`` computes one window).
        assert json.loads(client.update)["data"] == json.loads(json.dumps(hub.data(client.filters)))
