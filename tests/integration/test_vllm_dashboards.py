"""vLLM's own Grafana dashboards (saved verbatim in tests/data/vllm/grafana) against a real Prometheus
scraping a fleet of two fakeai servers, one model each as vLLM serves them: every panel target returns
data, and Service Status reads Online, Sleeping, Online as a model's engines sleep and wake, and Down
once its server is gone."""

import contextlib
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from fakeai.tools.dashboards import Dashboard, Prometheus, TimeRange, display_text, evaluate

DATA = Path(__file__).resolve().parents[1] / "data" / "vllm" / "grafana"
DASHBOARDS = sorted(DATA.glob("*.json"))
MODELS = ("model-a", "model-b")
SPAN = TimeRange(seconds=120, scrape_interval=1)
KV_CONNECTOR = "needs a KV connector (--kv-transfer-config: NIXL, offloading), which fakeai does not simulate"
# Targets allowed to stay empty, each with its reason: a feature of a later issue or a KV connector.
# Keyed by (dashboard, panel, refId); a refId of None exempts every target of the panel.
EXEMPT: dict[tuple[str, str, str | None], str] = {
    ("vllm_kv_cache.json", "Cache hit rates", "B"): "external prefix cache: " + KV_CONNECTOR,
    ("vllm_overview.json", "Cache hit rates", "B"): "external prefix cache: " + KV_CONNECTOR,
    **{
        ("vllm_kv_cache.json", panel, None): KV_CONNECTOR
        for panel in (
            # Row "KV connector (requires --kv-transfer-config)"
            "External prefix cache hit rate",
            "Requests waiting on KV loads",
            # Row "NIXL transfers (requires NixlConnector)"
            "Transfer duration",
            "Transfer throughput",
            "Transfers / s",
            "Bytes per transfer",
            "Transfer post time",
            "Descriptors per transfer",
            "Transfer failures / s",
            # Row "KV offloading (requires OffloadingConnector)"
            "Offload throughput",
            "Offload transfer bandwidth",
            "Mean offload transfer size",
            "Offload lookup latency p99",
            "CPU offload buffer usage",
            "Failed and skipped stores / s",
            # Row "Simple CPU offload (requires SimpleCPUOffloadConnector)"
            "Store admission outcomes",
            "Blocks restored from offload / s",
            "Offload pool blocks",
        )
    },
}


def exempt(dashboard: str, panel: str, ref: str) -> str | None:
    return EXEMPT.get((dashboard, panel, ref)) or EXEMPT.get((dashboard, panel, None))


def conversations(url: str, model: str, stop: threading.Event) -> None:
    """Three-turn chats, one after another: each turn sends the conversation so far, so the first turn's
    prompt blocks are hit twice (a reuse gap each time they are then evicted, as in vLLM's residency
    metrics) before the steady traffic's own blocks push them out of the small pool."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for number in itertools.count():
            messages: list[dict[str, str]] = [{"role": "user", "content": f"conversation {number} " + "talk " * 40}]
            for _ in range(3):
                if stop.is_set():
                    return
                body = {"model": model, "messages": messages, "max_tokens": 4}
                response = client.post("/v1/chat/completions", json=body)
                if response.status_code != 200:  # the engine sleeps: start over once it is back
                    stop.wait(0.2)
                    break
                answer = response.json()["choices"][0]["message"]["content"]
                messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": "go on"}]


@contextlib.contextmanager
def steady_traffic(urls: dict[str, str]) -> Iterator[None]:
    """Streams for each model's server from their own processes (``python -m fakeai.traffic``), and
    multi-turn chats beside them, for as long as the block runs: a dashboard expects an engine that is
    busy when Prometheus looks."""
    # Long prompts around each request's number (shared head blocks hit the prefix cache, own tail blocks
    # are evicted from a small pool), and one of eight images each (the multi-modal cache hits).
    load = ("--requests", "4000", "--concurrency", "6", "--max-tokens", "20", "--prompt-words", "40")
    load += ("--image-pool", "8")
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "fakeai.traffic", "--url", url, "--model", model, *load], stdout=subprocess.DEVNULL
        )
        for model, url in urls.items()
    ]
    stop = threading.Event()
    chats = [threading.Thread(target=conversations, args=(url, model, stop)) for model, url in urls.items()]
    for chat in chats:
        chat.start()
    try:
        yield
    finally:
        stop.set()
        for chat in chats:
            chat.join(timeout=60)
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


def test_vllm_dashboards_have_data_and_service_status_follows_sleep_and_wake(start_server, run_prometheus):
    flags = ("--enable-sleep-mode", "--itl-ms", "20", "--overhead-ms", "1", "--enable-mfu-metrics")
    flags += ("--kv-cache-metrics", "--kv-cache-metrics-sample", "1", "--num-blocks", "16")
    flags += ("--speculative-config", '{"method": "ngram", "num_speculative_tokens": 3}')
    flags += ("--data-parallel-size", "2")  # two engines per server: the per-engine panels see both
    flags += ("--enable-lora", "--lora-modules", "sql-adapter=/adapters/sql")
    servers = {model: start_server("--models", model, *flags) for model in MODELS}
    prometheus = Prometheus(run_prometheus([s.url for s in servers.values()], scrape_interval=1))
    board = Dashboard.load(DATA / "vllm_service_status.json")
    sleeper = servers[MODELS[0]]
    with steady_traffic({model: server.url for model, server in servers.items()}):
        wait_for_scrapes(prometheus, 6)
        for model in MODELS:
            assert status_text(board, prometheus, model) == "Online"
        assert httpx.post(sleeper.url + "/sleep?level=1", timeout=30).status_code == 200
        assert until(lambda: status_text(board, prometheus, MODELS[0]), "Sleeping") == "Sleeping"
        assert status_text(board, prometheus, MODELS[1]) == "Online"  # the other model's server is awake
        assert httpx.post(sleeper.url + "/wake_up", timeout=30).status_code == 200
        assert until(lambda: status_text(board, prometheus, MODELS[0]), "Online") == "Online"
        wait_for_scrapes(prometheus, 12)  # the engines busy again for a few scrapes

        # Every target of every dashboard (the sleep-mode panels included, now that it has run).
        empty, stale = [], []
        for path in DASHBOARDS:
            report = evaluate(Dashboard.load(path), prometheus, SPAN)
            print("\n" + report.summary())
            empty += [
                (path.name, o.target.panel, o.query, o.error)
                for o in report.without_data
                if not exempt(path.name, o.target.panel, o.target.ref)
            ]
            for o in report.outcomes:
                if reason := exempt(path.name, o.target.panel, o.target.ref):
                    print(f"  exempt: {o.target.panel} [{o.target.ref}]: {reason}")
            # An exemption whose target has data is stale: the exemption list must shrink with the gaps.
            stale += [
                (path.name, o.target.panel, o.target.ref)
                for o in report.with_data
                if exempt(path.name, o.target.panel, o.target.ref)
            ]
            if path.name == "vllm_service_status.json":
                assert report.values["model_name"] == ["$__all"] and len(report.outcomes) == 10
        assert not empty, empty
        assert not stale, stale
        assert len(DASHBOARDS) == 7  # vLLM's seven: Overview, Instances, KV Cache, Service Status, ...
    sleeper.stop()
    # A server that stopped reporting reads Down once Prometheus marks its series stale.
    assert until(lambda: status_text(board, prometheus, MODELS[0]), "Down") == "Down"
    assert status_text(board, prometheus, MODELS[1]) == "Online"
