"""Three replicas behind a real Prometheus, streamed fleet-wide by ``python -m bridge --prometheus-url``."""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
import websockets
import yaml
from monitoring_support import REPO
from stream_support import next_of, subscribe

from fakeai.testing import ServerProcess
from fakeai.tools.prometheus_process import free_port

A, B = "model-a", "model-b"
WINDOW = 20


def start_prometheus(tmp_path, targets: list[str], port: int) -> subprocess.Popen:
    folder = tmp_path / "prometheus"
    if not folder.exists():
        shutil.copytree(REPO / "prometheus", folder)
    config = yaml.safe_load((folder / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["scrape_configs"][0]["static_configs"][0]["targets"] = targets
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("prometheus did not become ready")


def steady_load(urls: list[str], stop: threading.Event) -> None:
    with httpx.Client(timeout=30) as client:
        i = 0
        while not stop.is_set():
            for n, url in enumerate(urls):  # replica n gets n+1 requests a round: different rates
                for _ in range(n + 1):
                    model = A if i % 3 else B
                    client.post(url + "/v1/completions", json={"model": model, "prompt": "x", "max_tokens": 3})
                    i += 1
            time.sleep(0.05)


async def first_update(url: str, **filters) -> dict:
    async with websockets.connect(url) as ws:
        json.loads(await ws.recv())
        await subscribe(ws, window=WINDOW, interval=1.0, metric_type="throughput", **filters)
        await next_of(ws, "metrics_update")  # computed with the new window from the next tick on
        return (await next_of(ws, "metrics_update"))["data"]["throughput"]


def test_fleet_stream_through_prometheus(tmp_path):
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus not found: install Debian's 'prometheus' package (.ci/run does)")
    replicas = [ServerProcess(["--models", f"{A},{B}", "--no-delay"]).start() for _ in range(3)]
    prometheus_port = free_port()
    prometheus = start_prometheus(tmp_path, [r.url.removeprefix("http://") for r in replicas], prometheus_port)
    bridge = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "--prometheus-url",
            f"http://127.0.0.1:{prometheus_port}",
            "--port",
            "0",
            "--min-interval",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # The same fleet stream from a fakeai server's own /metrics/stream (--stream-prometheus-url).
    viewer = ServerProcess(
        ["--no-delay", "--stream-prometheus-url", f"http://127.0.0.1:{prometheus_port}", "--stream-min-interval", "1"]
    ).start()
    stop = threading.Event()
    load = threading.Thread(target=steady_load, args=([r.url for r in replicas], stop))
    try:
        fleet = re.search(r"(ws://\S+/metrics/stream)", bridge.stdout.readline() + bridge.stdout.readline()).group(1)
        load.start()
        time.sleep(WINDOW + 5)

        async def compare() -> tuple[dict, list[dict], dict, dict, dict]:
            fleet_all, fleet_a, via_server = await asyncio.gather(
                first_update(fleet),
                first_update(fleet, model=A),
                first_update(viewer.url.replace("http://", "ws://") + "/metrics/stream"),
            )
            local = await asyncio.gather(
                *(first_update(r.url.replace("http://", "ws://") + "/metrics/stream") for r in replicas)
            )
            local_a = await first_update(replicas[2].url.replace("http://", "ws://") + "/metrics/stream", model=A)
            return fleet_all, local, fleet_a, local_a, via_server

        fleet_all, local, fleet_a, local_a, via_server = asyncio.run(compare())
        replica_sum = sum(t["total_requests_per_sec"] for t in local)
        assert replica_sum > 10
        assert abs(fleet_all["total_requests_per_sec"] - replica_sum) <= 0.1 * replica_sum, (fleet_all, replica_sum)
        assert abs(via_server["total_requests_per_sec"] - replica_sum) <= 0.1 * replica_sum, via_server
        # A model filter selects the same share of the fleet as of one replica.
        fleet_share = fleet_a["total_requests_per_sec"] / fleet_all["total_requests_per_sec"]
        local_share = local_a["total_requests_per_sec"] / local[2]["total_requests_per_sec"]
        assert abs(fleet_share - local_share) < 0.1 and abs(fleet_share - 2 / 3) < 0.1

        # Prometheus goes away: subscribers get an error, nobody crashes; it comes back: updates resume.
        async def outage() -> tuple[dict, dict]:
            async with websockets.connect(fleet) as ws:
                json.loads(await ws.recv())
                prometheus.terminate()
                prometheus.wait(timeout=20)
                error = await next_of(ws, "error", timeout=30)
                restarted.append(
                    start_prometheus(tmp_path, [r.url.removeprefix("http://") for r in replicas], prometheus_port)
                )
                update = await next_of(ws, "metrics_update", timeout=60)
                return error, update

        restarted: list[subprocess.Popen] = []
        error, update = asyncio.run(outage())
        assert error["code"] == "source_unavailable"
        assert update["type"] == "metrics_update" and "throughput" in update["data"]
        assert bridge.poll() is None
    finally:
        stop.set()
        if load.is_alive():
            load.join()
        bridge.terminate()
        bridge.wait(timeout=20)
        for process in [prometheus, *locals().get("restarted", [])]:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=20)
        for replica in [*replicas, viewer]:
            replica.stop()


async def active_requests(ws_url: str) -> float:
    """The fleet's running requests, from one update of the stream (queue category)."""
    async with websockets.connect(ws_url) as ws:
        json.loads(await ws.recv())
        await subscribe(ws, interval=1.0, metric_type="queue")
        return float((await next_of(ws, "metrics_update"))["data"]["queue"]["active_requests"])


def test_a_replica_that_dies_and_comes_back_leaves_no_phantom_running_requests(tmp_path):
    """One replica killed with SIGKILL under load: the Prometheus-sourced stream's running requests are the
    survivor's within a few scrapes (Prometheus marks a failed target's series stale), and stay so once
    the replica is back on the same address, holding none."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus not found: install Debian's 'prometheus' package (.ci/run does)")
    port = free_port()
    # Answers run to max_tokens (600, at 50 ms a step: 30 s streams), not to a natural end.
    slow = ["--models", A, "--itl-ms", "50", "--model-profile", f"{A}:output_tokens=100000"]
    dying = ServerProcess([*slow, "--port", str(port)]).start()
    survivor = ServerProcess(slow).start()
    prometheus_port = free_port()
    prometheus = start_prometheus(
        tmp_path, [f"127.0.0.1:{port}", survivor.url.removeprefix("http://")], prometheus_port
    )
    viewer = ServerProcess(
        ["--no-delay", "--stream-prometheus-url", f"http://127.0.0.1:{prometheus_port}", "--stream-min-interval", "1"]
    ).start()
    stream = viewer.url.replace("http://", "ws://") + "/metrics/stream"

    def traffic(url: str, streams: int) -> subprocess.Popen:
        command = [sys.executable, "-m", "fakeai.traffic", "--url", url, "--model", A, "--requests", str(streams)]
        command += ["--concurrency", str(streams), "--max-tokens", "600"]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL)

    def until(condition, timeout: float, what: str) -> float:
        deadline = time.monotonic() + timeout
        while True:
            value = asyncio.run(active_requests(stream))
            if condition(value):
                return value
            assert time.monotonic() < deadline, f"{what}: the stream still says {value}"
            time.sleep(0.5)

    loads = [traffic(dying.url, 30), traffic(survivor.url, 5)]
    back = None
    try:
        until(lambda v: v >= 35, 60, "35 requests running across the fleet")
        os.kill(dying.pid, signal.SIGKILL)
        dying.stop()
        own = httpx.get(survivor.url + "/metrics").text
        assert "fakeai_requests_running" in own
        until(lambda v: v == 5, 15, "only the survivor's 5 running requests")
        back = ServerProcess([*slow, "--port", str(port)]).start()  # the replica comes back, on its address
        time.sleep(3)  # a few scrapes of it
        assert until(lambda v: v == 5, 15, "the survivor's 5, the new replica holding none") == 5
    finally:
        for load in loads:
            load.kill()
            load.wait()
        for server in (back, viewer, survivor, dying):
            if server is not None:
                server.stop()
        prometheus.terminate()
        prometheus.wait(timeout=20)
