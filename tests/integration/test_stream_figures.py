"""The stream's figures against two /metrics scrapes over the same window, and its filters."""

import asyncio
import time
from collections import defaultdict

import httpx
import numpy as np
import pytest
from stream_support import connect, next_of, subscribe
from support.promql import promql_reference

from fakeai.testing import MetricsSnapshot, scrape

A, B = "model-a", "model-b"
CHAT, TEXT = "/v1/chat/completions", "/v1/completions"
LATENCY = "fakeai_request_duration_seconds"


async def burst(url: str, plan: list[tuple[str, str, int]]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        calls = []
        for endpoint, model, n in plan:
            for i in range(n):
                body = {"model": model, "max_tokens": 3 + i % 7, "ignore_eos": True}
                body |= {"messages": [{"role": "user", "content": f"q{i}"}]} if endpoint == CHAT else {"prompt": "p"}
                calls.append(client.post(endpoint, json=body))
        responses = await asyncio.gather(*calls)
    assert all(r.status_code == 200 for r in responses)


def quantiles_from_scrapes(before: MetricsSnapshot, after: MetricsSnapshot, endpoint: str) -> dict[str, float]:
    """Independently of the bridge: bucket increases per endpoint, summed over models, PromQL quantiles."""
    buckets: dict[float, float] = defaultdict(float)
    for (name, labels), value in after.samples.items():
        labels = dict(labels)
        if name == LATENCY + "_bucket" and labels["endpoint"] == endpoint:
            key = (name, frozenset(labels.items()))
            buckets[float(labels["le"])] += value - before.samples.get(key, 0.0)
    bounds = sorted(buckets)
    counts = [buckets[b] for b in bounds]
    total = after.value(LATENCY + "_sum", endpoint=endpoint) - before.value(LATENCY + "_sum", endpoint=endpoint)
    count = after.value(LATENCY + "_count", endpoint=endpoint) - before.value(LATENCY + "_count", endpoint=endpoint)
    result = {f"p{int(q * 100)}": 1000 * promql_reference(q, bounds, counts) for q in (0.5, 0.9, 0.99)}
    return result | {"avg": 1000 * total / count, "count": count}


@pytest.fixture
def traffic_server(start_server):
    """Two models with different traffic and latency; a quiet gap, then the window's traffic."""
    server = start_server(
        "--models",
        f"{A},{B}",
        "--seed",
        "5",
        "--itl-jitter",
        "0.3",
        "--overhead-ms",
        "2",
        "--model-profile",
        f"{A}:itl_ms=8",
        "--model-profile",
        f"{B}:itl_ms=30",
    )
    asyncio.run(burst(server.url, [(CHAT, A, 5), (TEXT, B, 5)]))  # before the window
    time.sleep(2.0)
    gap_middle = time.time()
    time.sleep(2.0)
    before = scrape(server.url)
    asyncio.run(burst(server.url, [(CHAT, A, 24), (TEXT, A, 8), (CHAT, B, 6), (TEXT, B, 12)]))
    after = scrape(server.url)
    return server, gap_middle, before, after


def test_stream_quantiles_equal_the_scrapes_and_filters_select(traffic_server):
    server, gap_middle, before, after = traffic_server

    async def run() -> dict[str, dict]:
        window = round(time.time() - gap_middle + 1.0, 3)  # starts in the quiet gap, ends after the traffic
        streams = {"all": {}, "model": {"model": A}, "endpoint": {"endpoint": TEXT}}
        sockets = {name: await connect(server.url) for name in streams}
        for name, extra in streams.items():
            await subscribe(sockets[name], window=window, interval=0.5, **extra)
        # Rates divide by the window's real span: compare updates of one tick, so it is the same span.
        updates: dict[str, dict[float, dict]] = {name: {} for name in streams}
        results: dict[str, dict] = {}
        while not results:
            for name, ws in sockets.items():
                update = await next_of(ws, "metrics_update")
                updates[name][update["timestamp"]] = update["data"]
            common = set.intersection(*(set(u) for u in updates.values()))
            if common:
                tick = max(common)
                results = {name: updates[name][tick] for name in streams}
        for name, ws in sockets.items():
            # An invalid subscribe changes nothing and gets exactly one error.
            await ws.send('{"type": "subscribe", "filters": {"window": "ten", "model": "x"}}')
            error = await next_of(ws, "error")
            assert error["code"] == "invalid_filter" and "window" in error["message"]
            results[name + "-after-error"] = (await next_of(ws, "metrics_update"))["data"]
            await ws.send('{"type": "subscribe", "filters": {"metric_type": "latency"}}')
            await next_of(ws, "subscribed")
            results[name + "-latency"] = (await next_of(ws, "metrics_update"))["data"]
            await ws.close()
        return results

    results = asyncio.run(run())
    everything = results["all"]
    for endpoint in (CHAT, TEXT):
        expected = quantiles_from_scrapes(before, after, endpoint)
        got = everything["latency"][endpoint]
        assert got["count"] == expected["count"] == {CHAT: 30, TEXT: 20}[endpoint]
        for key in ("p50", "p90", "p99", "avg"):
            assert got[key] == pytest.approx(expected[key], abs=2e-3), (endpoint, key)

    # The model filter: only model-a's series, totals included.
    only_a = results["model"]
    t_all, t_a = everything["throughput"], only_a["throughput"]
    assert t_a["total_requests_per_sec"] / t_all["total_requests_per_sec"] == pytest.approx(32 / 50, rel=1e-3)
    assert t_a["requests_per_sec"][CHAT] / t_all["requests_per_sec"][CHAT] == pytest.approx(24 / 30, rel=1e-3)
    assert only_a["latency"][CHAT]["count"] == 24 and only_a["latency"][TEXT]["count"] == 8
    # The endpoint filter: its totals are that endpoint's.
    only_text = results["endpoint"]["throughput"]
    assert set(only_text["requests_per_sec"]) == {TEXT}
    assert only_text["total_requests_per_sec"] == only_text["requests_per_sec"][TEXT]
    assert only_text["total_requests_per_sec"] / t_all["total_requests_per_sec"] == pytest.approx(20 / 50, rel=1e-3)
    assert set(results["endpoint"]["latency"]) == {TEXT}
    # The failed subscribe left every filter as it was; metric_type latency leaves only latency.
    for name in ("all", "model", "endpoint"):
        assert set(results[name + "-after-error"]) == set(results[name])
        assert set(results[name + "-after-error"]["latency"]) == set(results[name]["latency"])
        assert set(results[name + "-latency"]) == {"latency"}
    assert np.isfinite(everything["streaming"]["ttft"]["p99"])
