"""A real Prometheus (Debian's package) scrapes a running fakeai with the repository's config and rules;
every dashboard query and template variable must return data, and the stream's TTFT p99 must agree
with Prometheus's histogram_quantile over the same window within one bucket."""

import asyncio
import json
import shutil
import subprocess
import threading
import time
from bisect import bisect_left

import httpx
import pytest
import yaml
from monitoring_support import DASHBOARDS, REPO
from stream_support import connect, next_of, subscribe

from exporter.buckets import TTFT
from fakeai.tools.dashboards import Dashboard, Prometheus, TimeRange, evaluate
from fakeai.tools.prometheus_process import free_port

A, B = "model-a", "model-b"
TRAFFIC_SECONDS = 30


@pytest.fixture
def prometheus(tmp_path):
    """Start Prometheus with the repository's prometheus.yml, only the target rewritten (and no
    Alertmanager: this test reads alerts from Prometheus)."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus not found: install Debian's 'prometheus' package (.ci/run does)")
    processes = []

    def start(target: str) -> str:
        # A copy of the repository's prometheus/ folder (rules resolve relative to the config as in
        # docker-compose).
        folder = shutil.copytree(REPO / "prometheus", tmp_path / "prometheus")
        config = yaml.safe_load((folder / "prometheus.yml").read_text())
        config["scrape_configs"][0]["static_configs"][0]["targets"] = [target]
        del config["alerting"]  # compose's Alertmanager; test_alertmanager.py delivers to a real one
        path = folder / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={path}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/-/ready", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("prometheus did not become ready")

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=20)


def mixed_traffic(url: str, stop: threading.Event) -> None:
    """Two models, both endpoints, streaming and not, repeated long prompts (cache hits), more
    concurrency than slots (queueing); the server injects errors."""

    async def worker(i: int, client: httpx.AsyncClient) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            model = A if (i + n) % 3 else B
            prompt = "Shared system prompt for the cache. " * 20 + ("x" * (n % 4))
            if i % 2:
                body = {
                    "model": model,
                    "max_tokens": 12,
                    "stream": n % 2 == 0,
                    "messages": [{"role": "user", "content": prompt}],
                }
                await client.post("/v1/chat/completions", json=body)
            else:
                await client.post("/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": 8})

    async def run() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await asyncio.gather(*(worker(i, client) for i in range(12)))

    asyncio.run(run())


def query(prometheus_url: str, expr: str) -> list:
    response = httpx.get(prometheus_url + "/api/v1/query", params={"query": expr}, timeout=30)
    body = response.json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def test_dashboards_and_stream_against_a_real_prometheus(start_server, prometheus):
    server = start_server(
        "--models",
        f"{A},{B}",
        "--max-num-seqs",
        "4",
        "--error-rate",
        "0.1",
        "--itl-ms",
        "4",
        "--overhead-ms",
        "2",
        "--prefill-ms-per-token",
        "0.05",
    )
    prometheus_url = prometheus(server.url.removeprefix("http://"))
    stop = threading.Event()
    load = threading.Thread(target=mixed_traffic, args=(server.url, stop))
    load.start()
    try:
        time.sleep(TRAFFIC_SECONDS)

        async def stream_ttft_p99() -> tuple[float, float]:
            ws = await connect(server.url)
            await subscribe(ws, window=30, interval=0.5, metric_type="streaming")
            update = await next_of(ws, "metrics_update")
            await ws.close()
            return update["data"]["streaming"]["ttft"]["p99"] / 1000, update["timestamp"]

        stream_p99, at = asyncio.run(stream_ttft_p99())
    finally:
        stop.set()
        load.join()
    time.sleep(6)  # one more scrape, and a rule evaluation, after the last request

    # Every panel target of every dashboard returns data, evaluated as check-dashboards evaluates them
    # (Grafana's variables resolved on the live Prometheus; this one scrapes every 5 s, as compose's does).
    checked = 0
    span = TimeRange(seconds=TRAFFIC_SECONDS + 10, scrape_interval=5)
    for path in DASHBOARDS:
        report = evaluate(Dashboard.load(path), Prometheus(prometheus_url), span)
        assert all(report.values.values()), (path.name, report.values)  # every variable found values
        assert report.without_data == [], [(o.target.panel, o.query, o.error) for o in report.without_data]
        checked += len(report.outcomes)
    print(f"\n{checked} dashboard queries checked against Prometheus, every one with data")
    assert checked >= 30

    # The stream's TTFT p99 and Prometheus's over the same 30 s window fall within one bucket.
    promql = "histogram_quantile(0.99, sum by (le) (rate(fakeai_time_to_first_token_seconds_bucket[30s])))"
    response = httpx.get(prometheus_url + "/api/v1/query", params={"query": promql, "time": at}).json()
    prometheus_p99 = float(response["data"]["result"][0]["value"][1])
    bucket = [*TTFT, float("inf")]
    assert abs(bisect_left(bucket, stream_p99) - bisect_left(bucket, prometheus_p99)) <= 1, (stream_p99, prometheus_p99)
    assert json.dumps(query(prometheus_url, 'ALERTS{alertname="FakeaiTargetDown"}')) == "[]"
