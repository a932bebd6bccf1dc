"""Alerts end to end: fakeai, a real Prometheus with the repository's rule files (time-compressed copies),
a real Alertmanager with the repository's config (Debian's prometheus-alertmanager) and a webhook receiver
in this test. Each incident runs as a scenario (``POST /admin/scenario``) under steady load: its alerts,
from the fakeai_* and the vllm:* rule files, must reach the webhook ``firing`` while the incident phase
runs, then ``resolved`` once the scenario is stopped, and no other alert may fire."""

import contextlib
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from monitoring_support import REPO
from stream_support import free_port

TOKEN = "alert-test-token"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
# An incident: the phase that makes it happen, and every alert it must fire (and no other).
INCIDENTS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "error-burst": (
        {"config": {"error_rate": 0.5, "error_mix": "503=1"}},
        {"FakeaiHighErrorRatio", "VllmHighServerErrorRatio"},
    ),
    "ttft-slo-breach": ({"config": {"overhead_ms": 3000}}, {"FakeaiTTFTp99OverSLO", "VllmTTFTp99OverSLO"}),
    "target-down": ({"down": True}, {"FakeaiTargetDown"}),
}
WAIT_SECONDS = 120  # generous: a noisy 2-core machine runs Prometheus, Alertmanager, fakeai and a load


class Webhook:
    """Alertmanager's webhook receiver: keeps every (status, alertname) it is told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with webhook.lock:
                    webhook.events += [(a["status"], a["labels"]["alertname"]) for a in body["alerts"]]
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def seen(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.events)

    def wait_for(self, wanted: set[tuple[str, str]]) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if wanted <= set(self.seen()):
                return
            time.sleep(0.5)
        pytest.fail(f"webhook did not get {sorted(wanted - set(self.seen()))}; it got {self.seen()}")


def compress(rules: str) -> str:
    """The test copy of a rule file: `for:` of 2 s and 10 s rate windows, so an incident takes seconds."""
    rules = re.sub(r"for: \d+m", "for: 2s", rules)
    return re.sub(r"\[\d+m\]", "[10s]", rules)


def start(command: list[str], ready_url: str, processes: list[subprocess.Popen[bytes]]) -> None:
    processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(ready_url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{command[0]} did not become ready")


@pytest.fixture
def monitoring(tmp_path: Path) -> Iterator[Any]:
    """Start Alertmanager (the repository's config, webhook and group timings rewritten) and a Prometheus
    (the repository's config and rule files, compressed) scraping ``target``; every process is stopped."""
    for binary in ("prometheus", "prometheus-alertmanager"):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} not found: install Debian's package of that name (.ci/run does)")
    processes: list[subprocess.Popen[bytes]] = []
    webhook = Webhook()

    def run(target: str) -> str:
        alertmanager_config = yaml.safe_load((REPO / "alertmanager/alertmanager.yml").read_text())
        alertmanager_config["route"].update(group_wait="1s", group_interval="1s")
        alertmanager_config["receivers"][0]["webhook_configs"][0]["url"] = webhook.url
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config))
        alertmanager_port = free_port()
        start(
            [
                "prometheus-alertmanager",
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                "--cluster.listen-address=",  # no gossip port: this test binds loopback only
            ],
            f"http://127.0.0.1:{alertmanager_port}/-/ready",
            processes,
        )

        folder = shutil.copytree(REPO / "prometheus", tmp_path / "prometheus")
        for rules in (folder / "rules").glob("*.yml"):
            rules.write_text(compress(rules.read_text()))
        config = yaml.safe_load((folder / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["scrape_configs"][0]["static_configs"][0]["targets"] = [target]
        config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{alertmanager_port}"]
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus_port = free_port()
        start(
            [
                "prometheus",
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            f"http://127.0.0.1:{prometheus_port}/-/ready",
            processes,
        )
        return f"http://127.0.0.1:{prometheus_port}"

    yield run, webhook
    for process in processes:
        process.terminate()
        process.wait(timeout=20)
    webhook.server.shutdown()


def admin(method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    response = httpx.request(method, url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("incident", sorted(INCIDENTS))
def test_an_incident_fires_its_alerts_and_resolves_them_through_alertmanager(incident, start_server, monitoring):
    phase, expected = INCIDENTS[incident]
    run, webhook = monitoring
    server = start_server("--admin-token", TOKEN, "--models", MODEL, "--itl-ms", "2", "--overhead-ms", "1")
    prometheus_url = run(server.url.removeprefix("http://"))
    # The load runs in its own process (a test's threads would compete with the server for the GIL).
    load = subprocess.Popen(
        [sys.executable, "-m", "fakeai", "load", "--url", server.url, "--model", MODEL, "--rps", "20",
         "--concurrency", "8", "--duration", "600", "--max-tokens", "4", "--stream-ratio", "0.5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(5)  # healthy traffic first: the rules have data and stay silent
        scenario = {"name": incident, "phases": [{"name": "incident", "duration": 600, **phase}]}
        admin("POST", server.url + "/admin/scenario", content=json.dumps(scenario))
        webhook.wait_for({("firing", name) for name in expected})
        assert admin("GET", server.url + "/admin/scenario")["phase"] == "incident"
        admin("DELETE", server.url + "/admin/scenario")  # start-up settings back, server up
        webhook.wait_for({("resolved", name) for name in expected})
    finally:
        load.terminate()
        load.wait(timeout=20)

    # Exactly the incident's alerts reached Alertmanager, and Prometheus has none firing now.
    assert {name for _, name in webhook.seen()} == expected, webhook.seen()
    alerts = httpx.get(prometheus_url + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    assert [a for a in alerts if a["state"] == "firing"] == [], alerts
