"""vLLM's own Grafana dashboards (saved verbatim in tests/data/vllm/grafana) against a real Prometheus
scraping fakeai: every panel target returns data, and Service Status reads Online, Sleeping, Online as
the engines sleep and wake."""

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from fakeai.tools.dashboards import Dashboard, Prometheus, TimeRange, display_text, evaluate

DATA = Path(__file__).resolve().parents[1] / "data" / "vllm" / "grafana"
DASHBOARDS = sorted(DATA.glob("*.json"))
MODELS = ("model-a", "model-b")
SPAN = TimeRange(seconds=120, scrape_interval=1)
# Targets allowed to stay empty, each with its reason: a feature of a later issue or a KV connector.
EXEMPT: dict[tuple[str, str], str] = {}


@contextlib.contextmanager
def steady_traffic(url: str) -> Iterator[None]:
    """Streams for both models from their own processes (``python -m fakeai.traffic``), for as long as
    the block runs: a dashboard expects an engine that is busy when Prometheus looks."""
    command = [sys.executable, "-m", "fakeai.traffic", "--url", url, "--requests", "2000", "--concurrency", "3"]
    processes = [
        subprocess.Popen([*command, "--model", model, "--max-tokens", "20"], stdout=subprocess.DEVNULL)
        for model in MODELS
    ]
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)


def wait_for_scrapes(prometheus: Prometheus, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = prometheus.query("count_over_time(up[5m])")
        if result and float(result[0]["value"][1]) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus did not scrape {count} times in {timeout} s")


def status_text(board: Dashboard, prometheus: Prometheus, model: str) -> str | None:
    """What the Status stat of ``model``'s row shows (the row repeats per model)."""
    status = board.panel("Status")
    report = evaluate(
        Dashboard(board.title, [t for t in board.targets if t.panel == "Status"], board.variables, [status]),
        prometheus,
        SPAN,
        chosen={"model_name": [model]},
    )
    (outcome,) = report.outcomes
    value = float(prometheus.query(outcome.query)[0]["value"][1])
    return display_text(status, value)


def until(read, expected: str, timeout: float = 30.0) -> str | None:
    deadline = time.monotonic() + timeout
    while (seen := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return seen


def test_service_status_has_data_everywhere_and_follows_sleep_and_wake(start_server, run_prometheus):
    server = start_server("--models", ",".join(MODELS), "--enable-sleep-mode", "--itl-ms", "20", "--overhead-ms", "1")
    prometheus = Prometheus(run_prometheus(server.url, scrape_interval=1))
    board = Dashboard.load(DATA / "vllm_service_status.json")
    with steady_traffic(server.url):
        wait_for_scrapes(prometheus, 6)
        empty = []
        for path in DASHBOARDS:
            report = evaluate(Dashboard.load(path), prometheus, SPAN)
            print("\n" + report.summary())
            empty += [
                (path.name, o.target.panel, o.query, o.error)
                for o in report.without_data
                if (path.name, o.target.panel) not in EXEMPT
            ]
        assert not empty, empty
        assert len(DASHBOARDS) >= 2

        for model in MODELS:
            assert status_text(board, prometheus, model) == "Online"
        assert httpx.post(server.url + "/sleep?level=1", timeout=30).status_code == 200
        for model in MODELS:
            assert until(lambda m=model: status_text(board, prometheus, m), "Sleeping") == "Sleeping"
        assert httpx.post(server.url + "/wake_up", timeout=30).status_code == 200
        for model in MODELS:
            assert until(lambda m=model: status_text(board, prometheus, m), "Online") == "Online"
    server.stop()
    # A server that stopped reporting reads Down once Prometheus marks its series stale.
    assert until(lambda: status_text(board, prometheus, MODELS[0]), "Down") == "Down"
