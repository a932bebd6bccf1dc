"""``python -m fakeai scenario verify FILE --prometheus URL [--alertmanager URL] (--url URL --admin-token T |
--port N)``: run a scenario against a fakeai that your Prometheus scrapes, check every ``expect`` through
the Prometheus (and Alertmanager) HTTP APIs, print a phase-by-phase report, and exit 0 only if every
expectation was met and no alert fired that none names (1 otherwise; 2 for a file or an expression that
cannot run).

With ``--port``, the server is started here (``python -m fakeai server`` on 127.0.0.1 and that port, with
your ``FAKEAI_*`` environment) and stopped at the end; with ``--url``, the running server is used through
its admin API.
"""

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fakeai.scenario import Expectation, Scenario, ScenarioError
from fakeai.scenario import load as load_scenario

POLL_SECONDS = 1.0


class Observer:
    """What Prometheus (and Alertmanager, when given) show now."""

    def __init__(self, prometheus: str, alertmanager: str | None) -> None:
        self.prometheus = prometheus.rstrip("/")
        self.alertmanager = alertmanager.rstrip("/") if alertmanager else None
        self.http = httpx.Client(timeout=10)

    def query(self, expr: str) -> dict[str, Any]:
        return dict(self.http.get(self.prometheus + "/api/v1/query", params={"query": expr}).json())

    def promql_error(self, expr: str) -> str | None:
        body = self.query(expr)
        return None if body.get("status") == "success" else str(body.get("error", body))

    def has_result(self, expr: str) -> bool:
        data = self.query(expr).get("data") or {}
        if data.get("resultType") == "scalar":
            return float(data["result"][1]) != 0
        return bool(data.get("result"))

    def alert_rules(self) -> set[str]:
        groups = self.http.get(self.prometheus + "/api/v1/rules", params={"type": "alert"}).json()["data"]["groups"]
        return {rule["name"] for group in groups for rule in group["rules"]}

    def firing(self) -> set[str]:
        """Alert names firing now: delivered to Alertmanager (active, neither silenced nor inhibited), or
        firing in Prometheus when no Alertmanager is given."""
        if self.alertmanager is not None:
            params = {"active": "true", "silenced": "false", "inhibited": "false"}
            alerts = self.http.get(self.alertmanager + "/api/v2/alerts", params=params).json()
            return {a["labels"]["alertname"] for a in alerts if a["status"]["state"] == "active"}
        return {s["metric"]["alertname"] for s in self.query('ALERTS{alertstate="firing"}')["data"]["result"]}


@dataclass
class Outcome:
    expectation: Expectation
    met_after: float | None = None
    """Seconds into its phase when it was seen."""

    def describe(self) -> str:
        e = self.expectation
        what = (
            f"alert {e.alert} firing"
            if e.alert
            else (f"alert {e.resolved} resolved" if e.resolved else f"promql {e.promql} has a result")
        )
        if self.met_after is not None:
            return f"  ok    {what} after {self.met_after:.1f} s"
        return f"  MISS  {what}: not seen within {e.within:g} s" if e.within else f"  MISS  {what}: not seen"


@dataclass
class Report:
    scenario: Scenario
    outcomes: list[Outcome]
    unexpected: set[str] = field(default_factory=set)

    @property
    def passed(self) -> bool:
        return not self.unexpected and all(o.met_after is not None for o in self.outcomes)

    def lines(self) -> Iterator[str]:
        for phase in self.scenario.phases:
            yield f"phase {phase.name} ({phase.duration:g} s)"
            for outcome in self.outcomes:
                if outcome.expectation.phase == phase.name:
                    yield outcome.describe()
        for name in sorted(self.unexpected):
            yield f"MISS  alert {name} fired, but no expectation names it"
        met = sum(o.met_after is not None for o in self.outcomes)
        verdict = "passed" if self.passed else "FAILED"
        yield f"{self.scenario.name}: {met} of {len(self.outcomes)} expectations met; {verdict}"


def preflight(scenario: Scenario, observer: Observer) -> None:
    """Every expression parses in Prometheus and every named alert is one of its rules (ScenarioError)."""
    rules = observer.alert_rules()
    for index, item in enumerate(scenario.expect):
        if item.promql is not None and (error := observer.promql_error(item.promql)):
            raise ScenarioError(scenario.where(("expect", index, "promql"), f"Prometheus: {error}"))
        name = item.alert or item.resolved
        if name is not None and name not in rules:
            key = "alert" if item.alert else "resolved"
            raise ScenarioError(scenario.where(("expect", index, key), f"Prometheus has no alerting rule {name}"))


def check(outcome: Outcome, observer: Observer, firing: set[str]) -> bool:
    e = outcome.expectation
    if e.alert is not None:
        return e.alert in firing
    if e.resolved is not None:
        return e.resolved not in firing
    assert e.promql is not None
    return observer.has_result(e.promql)


class Admin:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(method, path, **kwargs)
        if response.status_code != 200:
            raise ScenarioError(f"{method} {path}: {response.status_code} {response.text.strip()}")
        return dict(response.json())


def run(scenario: Scenario, text: str, admin: Admin, observer: Observer) -> Report:
    outcomes = [Outcome(item) for item in scenario.expect]
    durations = {phase.name: phase.duration for phase in scenario.phases}
    seen_firing: set[str] = set()
    status = admin.call("POST", "/admin/scenario", content=text.encode())
    try:
        while status.get("running"):
            phase, elapsed = status["phase"], float(status["elapsed"])
            firing = observer.firing()
            seen_firing |= firing
            for outcome in outcomes:
                e = outcome.expectation
                window = e.within if e.within is not None else durations[e.phase]
                pending = outcome.met_after is None and e.phase == phase and elapsed <= window
                if pending and check(outcome, observer, firing):
                    outcome.met_after = elapsed
            time.sleep(POLL_SECONDS)
            status = admin.call("GET", "/admin/scenario")
    finally:
        with contextlib.suppress(httpx.HTTPError, ScenarioError):
            admin.call("DELETE", "/admin/scenario")
    named = {item.alert for item in scenario.expect if item.alert}
    return Report(scenario, outcomes, seen_firing - named)


@contextlib.contextmanager
def own_server(port: int, token: str) -> Iterator[str]:
    """``python -m fakeai server`` on 127.0.0.1:port with the caller's environment, until the block ends."""
    command = [sys.executable, "-m", "fakeai", "server", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env={**os.environ, "FAKEAI_ADMIN_TOKEN": token}, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise ScenarioError(f"the server on port {port} did not start (exit code {process.poll()})")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the scenario file")
    parser.add_argument("--prometheus", required=True, help="Prometheus's URL (it must scrape the server)")
    parser.add_argument("--alertmanager", help="Alertmanager's URL: alerts count when delivered there")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running fakeai (needs --admin-token)")
    where.add_argument("--port", type=int, help="start fakeai on 127.0.0.1 and this port")
    parser.add_argument("--admin-token", default=os.environ.get("FAKEAI_ADMIN_TOKEN"), help="for --url")


def main(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.file)
        text = args.file.read_text(encoding="utf-8")
        observer = Observer(args.prometheus, args.alertmanager)
        preflight(scenario, observer)
        if args.url is not None:
            if not args.admin_token:
                raise ScenarioError("--url needs --admin-token (or FAKEAI_ADMIN_TOKEN)")
            report = run(scenario, text, Admin(args.url, args.admin_token), observer)
        else:
            token = secrets.token_urlsafe(16)
            with own_server(args.port, token) as url:
                report = run(scenario, text, Admin(url, token), observer)
    except ScenarioError as exc:
        print(f"fakeai scenario verify: error: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"fakeai scenario verify: error: {exc!r}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line, flush=True)
    return 0 if report.passed else 1
