"""Alerts end to end: fakeai, a real Prometheus with the repository's rule files (time-compressed copies),
a real Alertmanager with the repository's config (Debian's prometheus-alertmanager) and a webhook receiver
in this test. Every shipped scenario (``scenarios/``, time-compressed) runs through ``python -m fakeai
scenario verify``: its expectations met, the alerts it names (from the fakeai_* and the vllm:* rule files)
delivered to the webhook ``firing`` and then ``resolved``, no other alert fired, and the dashboards' phase
annotation finds every phase in Prometheus."""

import contextlib
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from monitoring_support import DASHBOARDS, REPO, dashboard, phase_annotation

from fakeai.tools.prometheus_process import free_port

TOKEN = "alert-test-token"


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


@dataclass
class Stack:
    prometheus: str
    alertmanager: str
    webhook: Webhook
    processes: list[subprocess.Popen[bytes]]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=20)


@pytest.fixture
def monitoring(tmp_path: Path) -> Iterator[Callable[[str], Stack]]:
    """Start, per call, an Alertmanager (the repository's config, webhook and group timings rewritten) and a
    Prometheus (the repository's config and rule files, compressed) scraping ``target``; all are stopped."""
    for binary in ("prometheus", "prometheus-alertmanager"):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} not found: install Debian's package of that name (.ci/run does)")
    stacks: list[Stack] = []

    def run(target: str) -> Stack:
        folder = tmp_path / f"stack-{len(stacks)}"
        folder.mkdir()
        processes: list[subprocess.Popen[bytes]] = []
        webhook = Webhook()
        # Kept before its processes start (their URLs filled in below), so teardown stops a half-started one.
        stacks.append(Stack("", "", webhook, processes))
        alertmanager_config = yaml.safe_load((REPO / "alertmanager/alertmanager.yml").read_text())
        alertmanager_config["route"].update(group_wait="1s", group_interval="1s")
        alertmanager_config["receivers"][0]["webhook_configs"][0]["url"] = webhook.url
        (folder / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config))
        alertmanager = f"http://127.0.0.1:{free_port()}"
        start(
            [
                "prometheus-alertmanager",
                f"--config.file={folder / 'alertmanager.yml'}",
                f"--storage.path={folder / 'alertmanager-data'}",
                f"--web.listen-address={alertmanager.removeprefix('http://')}",
                "--cluster.listen-address=",  # no gossip port: this test binds loopback only
            ],
            alertmanager + "/-/ready",
            processes,
        )

        rules = shutil.copytree(REPO / "prometheus", folder / "prometheus")
        for path in (rules / "rules").glob("*.yml"):
            path.write_text(compress(path.read_text()))
        config = yaml.safe_load((rules / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["scrape_configs"][0]["static_configs"][0]["targets"] = [target]
        config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager.removeprefix("http://")]
        (rules / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus = f"http://127.0.0.1:{free_port()}"
        start(
            [
                "prometheus",
                f"--config.file={rules / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'prometheus-data'}",
                f"--web.listen-address={prometheus.removeprefix('http://')}",
            ],
            prometheus + "/-/ready",
            processes,
        )
        stacks[-1].prometheus, stacks[-1].alertmanager = prometheus, alertmanager
        return stacks[-1]

    yield run
    for stack in stacks:
        stack.stop()
        stack.webhook.server.shutdown()


SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
WAVES = 3
"""The scenarios run in three waves of two. All six at once (a server, a Prometheus, an Alertmanager and
traffic processes each) took 207 s of CPU in about 90 s, more than the 2-core CI machine has: the busiest
server's event loop fell behind, Prometheus's 1 s scrapes of it timed out, and alerts no scenario names
fired (CI saw it; `python -m pytest tests/integration/test_alertmanager.py` reproduced it). The heaviest
wave of two takes about one core."""


def compressed_scenario(text: str) -> str:
    """A shipped scenario at test speed: durations and ``within`` scaled to about 75 s in all (at least 15
    times shorter), PromQL windows of minutes to 10 s, as the rule copies are."""
    total = sum(float(m) * 60 for m in re.findall(r"duration: (\d+)m", text))
    factor = max(15.0, total / 75)
    text = re.sub(r"(duration|within): (\d+)m", lambda m: f"{m[1]}: {float(m[2]) * 60 / factor:.1f}s", text)
    return re.sub(r"\[\d+m\]", "[10s]", text)


def verify_command(path: Path, url: str, stack: Stack) -> list[str]:
    return [sys.executable, "-m", "fakeai", "scenario", "verify", str(path), "--url", url, "--admin-token", TOKEN,
            "--prometheus", stack.prometheus, "--alertmanager", stack.alertmanager]  # fmt: skip


def test_every_shipped_scenario_passes_verify_and_delivers_its_alerts(start_server, monitoring, tmp_path):
    """All shipped scenarios, in ``WAVES`` waves (separate servers, Prometheus and Alertmanager instances), each through
    ``python -m fakeai scenario verify``: every expectation met, no unnamed alert, and the webhook got each
    named alert firing and then resolved."""
    assert {path.stem for path in SCENARIOS} >= {
        "error-burst",
        "ttft-slo-breach",
        "target-down",
        "queue-saturation",
        "kv-pressure",
        "diurnal",
    }
    began = time.time()
    for wave in range(WAVES):
        runs = []
        for path in SCENARIOS[wave::WAVES]:
            server = start_server("--admin-token", TOKEN)
            stack = monitoring(server.url.removeprefix("http://"))
            copy = tmp_path / path.name
            copy.write_text(compressed_scenario(path.read_text()))
            command = verify_command(copy, server.url, stack)
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            runs.append((path, server, stack, process))
        for path, server, stack, process in runs:
            output = process.communicate(timeout=600)[0].decode()
            print(output)
            assert process.returncode == 0, output
            named = {e["alert"] for e in yaml.safe_load(path.read_text())["expect"] if "alert" in e}
            assert {name for _, name in stack.webhook.seen()} == named, (path.name, stack.webhook.seen())
            for name in named:
                events = [status for status, alert in stack.webhook.seen() if alert == name]
                assert events[0] == "firing" and "resolved" in events, (path.name, name, events)
            # Every dashboard's phase annotation finds each phase of the run in Prometheus, but a down one:
            # its /metrics refuses, so Prometheus sees a gap (and up == 0) instead.
            shown = {p["name"] for p in yaml.safe_load(path.read_text())["phases"] if not p.get("down")}
            for board in DASHBOARDS:
                query = phase_annotation(dashboard(board))["expr"]
                params = {"query": query, "start": began, "end": time.time(), "step": 1}
                answer = httpx.get(stack.prometheus + "/api/v1/query_range", params=params, timeout=30).json()
                assert {series["metric"]["phase"] for series in answer["data"]["result"]} == shown, (path, answer)
            stack.stop()  # an idle stack's scrapes and rule evaluations would still take the next wave's CPU
            server.stop()


def test_verify_fails_on_a_wrong_expectation_and_refuses_a_bad_expression(start_server, monitoring, tmp_path):
    server = start_server("--admin-token", TOKEN)
    stack = monitoring(server.url.removeprefix("http://"))

    def verify(text: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "wrong.yaml"
        path.write_text(text)
        return subprocess.run(verify_command(path, server.url, stack), capture_output=True, text=True, timeout=300)

    # A calm phase cannot fire the error alert: the expectation is missed, exit code 1.
    wrong = verify(
        "name: wrong\nphases:\n  - name: calm\n    duration: 6s\n    traffic: {rate: 5}\n"
        "expect:\n  - {alert: FakeaiHighErrorRatio, phase: calm}\n"
    )
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "MISS  alert FakeaiHighErrorRatio firing: not seen" in wrong.stdout
    assert "wrong: 0 of 1 expectations met; FAILED" in wrong.stdout
    # An expression Prometheus cannot parse, and an alert no rule defines: located errors, exit code 2,
    # before anything runs.
    one_phase = "name: bad\nphases:\n  - name: a\n    duration: 1s\nexpect:\n"
    bad = verify(one_phase + "  - {promql: 'sum(rate(x[5m])) >', phase: a}\n")
    assert bad.returncode == 2 and f"{tmp_path / 'wrong.yaml'}:6: expect.0.promql: Prometheus: " in bad.stderr
    unknown = verify(one_phase + "  - {alert: NoSuchAlert, phase: a}\n")
    assert unknown.returncode == 2 and "expect.0.alert: Prometheus has no alerting rule NoSuchAlert" in unknown.stderr
