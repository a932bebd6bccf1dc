"""``--workers 2``, one worker killed with SIGKILL: no phantom load, and the books still balance.

A worker that dies without its shutdown is retired by the supervisor (fakeai/supervisor.py,
exporter/retirement.py): its live gauges go, the requests it had in flight are counted in
``fakeai_lost_requests_total``, ``fakeai_worker_restarts_total`` counts the replacement, and a warning
says so. Traffic comes from a process of its own (``python -m fakeai.traffic``)."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx
import websockets
from stream_support import stream_url

from bridge.reader import MetricsSnapshot
from fakeai.testing import ServerProcess, scrape

MODEL = "Qwen/Qwen2.5-7B-Instruct"
STREAMS = 120
LIVE_GAUGES = (
    "fakeai_requests_running",
    "fakeai_requests_waiting",
    "fakeai_active_streams",
    "fakeai_kv_cache_usage_ratio",
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
)


def worker_pids(url: str, timeout: float = 60) -> set[int]:
    """Both workers' process ids, asked on new connections until both have answered. A deadline, not a
    number of tries: on a slow machine one worker can still be importing after hundreds of answers from
    the other (CI once saw 300 in a row from one)."""
    pids: set[int] = set()
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, limits=httpx.Limits(max_keepalive_connections=0), timeout=10) as client:
        while len(pids) < 2:
            assert time.monotonic() < deadline, f"only {pids} answered in {timeout} s"
            pids.add(client.get("/health").json()["pid"])
            time.sleep(0.01)
    return pids


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition``; a read that reaches the killed worker before the kernel knows it is gone loses
    its connection, which only means "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OSError:  # urllib's URLError and a dropped connection alike
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def held(snapshot: MetricsSnapshot, engine: str) -> float:
    """Requests running or waiting on one worker's engine."""
    return sum(snapshot.value(f"vllm:num_requests_{s}", engine=engine) for s in ("running", "waiting"))


def settled(url: str) -> bool:
    m = scrape(url)
    answered = m.value("fakeai_responses_total") + m.value("fakeai_lost_requests_total")
    return m.value("fakeai_worker_restarts_total") == 1 and answered == m.value("fakeai_requests_total")


async def stream_error_category(url: str) -> dict:
    async with websockets.connect(stream_url(url)) as ws:
        return json.loads(await ws.recv())["data"]["error"]


def test_a_killed_worker_leaves_no_phantom_load_and_its_requests_are_counted_lost():
    with ServerProcess(["--workers", "2", "--itl-ms", "20", "--models", MODEL]) as server:
        # Both workers answer before the traffic starts: a worker still importing when the 120 connections
        # arrive would leave them all to the other, and the one killed might have held nothing.
        victim = min(worker_pids(server.url))
        traffic = subprocess.Popen(
            [sys.executable, "-m", "fakeai.traffic", "--url", server.url, "--model", MODEL,
             "--requests", str(STREAMS), "--concurrency", str(STREAMS), "--max-tokens", "250"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_for(lambda: scrape(server.url).value("fakeai_active_streams") >= 100, 60, "100 streams in flight")
            before = scrape(server.url)
            engines = {dict(labels)["engine"] for name, labels in before.series("vllm:num_requests_running")}
            assert len(engines) == 2
            # Each worker (each engine, a series of its own) holds requests, whichever is killed.
            assert all(held(before, e) > 0 for e in engines)
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: scrape(server.url).value("fakeai_worker_restarts_total") == 1, 15, "the restart")
            # The dead worker's share is gone at once, while the survivor's streams still run.
            after = scrape(server.url)
            lost = after.value("fakeai_lost_requests_total")
            assert lost > 0
            in_flight = ("fakeai_requests_running", "fakeai_requests_waiting")
            assert sum(after.value(g) for g in in_flight) <= sum(before.value(g) for g in in_flight) - lost
            assert after.value("fakeai_active_streams") <= before.value("fakeai_active_streams") - lost
            # Per engine: the dead worker's engine, now its replacement's, holds nothing.
            assert any(held(after, e) == 0 < held(before, e) for e in engines)
            report = json.loads(traffic.communicate(timeout=120)[0])
        finally:
            traffic.kill()
            traffic.wait()
        wait_for(lambda: settled(server.url), 15, "requests = responses + lost")
        final = scrape(server.url)
        error = asyncio.run(stream_error_category(server.url))
        replacement = worker_pids(server.url)
    assert final.value("fakeai_requests_total") == STREAMS
    assert final.value("fakeai_responses_total") + final.value("fakeai_lost_requests_total") == STREAMS
    assert final.value("fakeai_worker_restarts_total") == 1
    for gauge in LIVE_GAUGES:
        assert final.value(gauge) == 0, gauge
    # Every request the server counts lost failed at its client (a client may also have lost one whose
    # end the server had already counted, but none succeeded that the server counts lost).
    failed = sum(1 for timing in report["timings"] if timing["status"] != 200 or timing.get("error"))
    assert 0 < lost <= failed
    assert error["worker_restarts"] == 1 and error["lost_requests"] == lost
    assert victim not in replacement
    log = "".join(server.output)
    assert f"worker pid {victim} died without its shutdown (signal 9)" in log
    assert f"{int(lost)} requests it had in flight are counted in fakeai_lost_requests_total" in log


def test_scrapes_and_a_stream_subscription_across_a_kill_never_fail_and_never_go_backwards():
    statuses: list[int | str] = []
    totals: list[float] = []
    stream_messages: list[dict] = []
    stop = threading.Event()

    def scraper(url: str) -> None:
        fresh = httpx.Limits(max_keepalive_connections=0)  # each scrape may land on either worker
        with httpx.Client(base_url=url, limits=fresh, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.get("/metrics")
                except httpx.TransportError as exc:  # in flight on the killed worker
                    statuses.append(type(exc).__name__)
                    continue
                statuses.append(response.status_code)
                if response.status_code == 200:  # the counter as this very scrape read it
                    totals.append(MetricsSnapshot.from_text(response.text).value("fakeai_requests_total"))

    async def subscriber(url: str) -> None:
        while not stop.is_set():
            try:
                async with websockets.connect(stream_url(url)) as ws:
                    while not stop.is_set():
                        stream_messages.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            except (OSError, websockets.ConnectionClosed, TimeoutError):
                await asyncio.sleep(0.1)  # its worker died: subscribe again

    with ServerProcess(["--workers", "2", "--itl-ms", "5", "--models", MODEL]) as server:
        traffic = subprocess.Popen(
            [sys.executable, "-m", "fakeai.traffic", "--url", server.url, "--model", MODEL,
             "--requests", "100000", "--concurrency", "8", "--max-tokens", "20"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        threads = [
            threading.Thread(target=scraper, args=(server.url,)),
            threading.Thread(target=lambda: asyncio.run(subscriber(server.url))),
        ]
        try:
            for thread in threads:
                thread.start()
            wait_for(lambda: len(totals) >= 5 and len(stream_messages) >= 2, 30, "scrapes and stream messages")
            os.kill(min(worker_pids(server.url)), signal.SIGKILL)
            killed_at = len(statuses)
            wait_for(lambda: scrape(server.url).value("fakeai_worker_restarts_total") == 1, 15, "the restart")
            wait_for(lambda: len(statuses) >= killed_at + 20, 30, "scrapes after the kill")
            messages_before = len(stream_messages)
            wait_for(lambda: len(stream_messages) >= messages_before + 2, 30, "stream messages after the kill")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            traffic.kill()
            traffic.wait()
    assert all(status == 200 or isinstance(status, str) for status in statuses), statuses  # no 5xx, ever
    # A scrape in flight on the dead worker may lose its connection; after the replacement, none does.
    recovered = next(i for i, s in enumerate(statuses) if i >= killed_at and s == 200)
    late = statuses[recovered + 5 :]
    assert late and all(status == 200 for status in late), late
    assert totals == sorted(totals)  # no counter went backwards
    assert stream_messages[-1]["data"]["error"]["worker_restarts"] == 1
