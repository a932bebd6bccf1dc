"""Prometheus rules and config (promtool), Grafana dashboards and docker-compose, checked as files.

Grafana and the Docker engine cannot run here, so their files are validated structurally; every
dashboard query runs against a real Prometheus in test_prometheus_live.py.
"""

import re
import shutil
import subprocess

import pytest
import yaml
from monitoring_support import (
    DASHBOARDS,
    DATASOURCE_UID,
    REPO,
    dashboard,
    expressions,
    panels,
    phase_annotation,
    variables,
)
from support import engine_dashboards

from fakeai.tools.dashboards import Dashboard

RULES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("promtool") is None:
        pytest.fail("promtool not found: install Debian's 'prometheus' package (.ci/run does)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def test_promtool_checks_config_rules_and_rule_tests():
    for args in (
        ("check", "config", "prometheus/prometheus.yml"),
        ("check", "config", "prometheus/fleet.yml"),
        ("check", "rules", *[str(r) for r in RULES]),
        ("test", "rules", *[str(t) for t in sorted((REPO / "prometheus/rules/tests").glob("*.yml"))]),
    ):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_checks_the_alertmanager_config():
    if shutil.which("amtool") is None:
        pytest.fail("amtool not found: install Debian's 'prometheus-alertmanager' package (.ci/run does)")
    command = ["amtool", "check-config", "alertmanager/alertmanager.yml"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((REPO / "alertmanager/alertmanager.yml").read_text())
    webhook = next(r for r in config["receivers"] if r["name"] == config["route"]["receiver"])["webhook_configs"][0]
    assert webhook["send_resolved"] is True  # a scenario's "resolved after" needs it


def test_every_alert_has_a_summary_a_description_and_a_unit_test():
    alerts = [r for f in RULES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} >= {
        "FakeaiHighErrorRatio",
        "FakeaiTTFTp99OverSLO",
        "FakeaiQueueSaturated",
        "FakeaiKVCacheNearlyFull",
        "FakeaiTargetDown",
        "VllmHighServerErrorRatio",
        "VllmTTFTp99OverSLO",
        "VllmRequestsQueued",
        "VllmKVCacheNearlyFull",
        "VllmPreempting",
        "VllmNoTokensGenerated",
    }
    tested = "\n".join(p.read_text() for p in (REPO / "prometheus/rules/tests").glob("*.yml"))
    for alert in alerts:
        assert alert["annotations"]["summary"] and alert["annotations"]["description"], alert["alert"]
        # Each alert is tested firing (a non-empty exp_alerts) and silent (exp_alerts: []).
        assert tested.count(f"alertname: {alert['alert']}") >= 2, alert["alert"]


def test_every_dashboard_annotates_scenario_phases_from_the_provisioned_datasource():
    for path in DASHBOARDS:
        annotation = phase_annotation(dashboard(path))
        assert annotation["enable"] is True and annotation["datasource"]["uid"] == DATASOURCE_UID, path.name
        # The title names the phase: the labels the query keeps.
        assert "{{phase}}" in annotation["titleFormat"] and "by (scenario, phase)" in annotation["expr"], path.name


def test_dashboards_are_provisioned_with_unique_uids_and_the_provisioned_datasource():
    uids = [dashboard(path)["uid"] for path in DASHBOARDS]
    assert len(DASHBOARDS) >= 2 and len(set(uids)) == len(uids)
    for path in DASHBOARDS:
        board = dashboard(path)
        assert "${DS_" not in path.read_text() and "__inputs" not in board
        panel_ids = [p["id"] for p in board["panels"]]
        assert len(set(panel_ids)) == len(panel_ids)
        for panel in panels(board):
            assert panel["targets"], f"{path.name}: panel {panel['title']!r} has no target"
            assert panel["datasource"]["uid"] == DATASOURCE_UID
            assert all(t["datasource"]["uid"] == DATASOURCE_UID for t in panel["targets"])
        for variable in variables(board):
            assert variable["datasource"]["uid"] == DATASOURCE_UID
            assert any(f"${variable['name']}" in expr for expr in expressions(board)), variable["name"]


def test_every_rate_uses_the_rate_interval():
    for path in DASHBOARDS:
        for expr in expressions(dashboard(path)):
            for window in re.findall(r"\b(?:rate|irate|increase)\([^\[]*\[([^\]]+)\]", expr):
                assert window == "$__rate_interval", (path.name, expr)


def test_the_overview_has_every_row_the_issue_names():
    rows = [
        p["title"] for p in dashboard(REPO / "grafana/dashboards/fakeai-overview.json")["panels"] if p["type"] == "row"
    ]
    assert rows == ["Throughput", "Latency", "Scheduler", "Cache", "Streaming", "Errors"]
    vllm = dashboard(REPO / "grafana/dashboards/vllm-compatible.json")
    assert all("vllm:" in expr for expr in expressions(vllm))  # built only on vLLM's names
    assert sum(p["type"] == "heatmap" for p in panels(vllm)) == 2


def test_compose_mounts_exist_ports_are_local_and_services_have_healthchecks():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"fakeai", "prometheus", "grafana"} <= set(services)
    fleet = {name for name, service in services.items() if "fleet" in service.get("profiles", [])}
    assert fleet == {"fakeai-1", "fakeai-2", "fakeai-3", "prometheus-fleet", "fleet-bridge"}
    engines = {name for name, service in services.items() if "engines" in service.get("profiles", [])}
    assert set(services) == fleet | engines | {"fakeai", "prometheus", "grafana", "alertmanager"}
    # Both Prometheus configs send their alerts to the compose Alertmanager, which mounts its config.
    for config in ("prometheus.yml", "fleet.yml"):
        alerting = yaml.safe_load((REPO / "prometheus" / config).read_text())["alerting"]
        assert alerting["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"], config
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in services["alertmanager"]["command"]
    assert "./alertmanager:/etc/alertmanager:ro" in services["alertmanager"]["volumes"]
    assert "--prometheus-url" in services["fleet-bridge"]["command"]
    fleet_config = yaml.safe_load((REPO / "prometheus/fleet.yml").read_text())
    assert fleet_config["scrape_configs"][0]["static_configs"][0]["targets"] == [
        f"{name}:8000" for name in ("fakeai-1", "fakeai-2", "fakeai-3")
    ]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (REPO / source).exists(), (name, source)
        assert service["healthcheck"]["test"], name
    health = {n: " ".join(s["healthcheck"]["test"]) for n, s in services.items()}
    assert "/health" in health["fakeai"] and "/-/healthy" in health["prometheus"]
    assert "/-/healthy" in health["prometheus-fleet"] and "/health" in health["fleet-bridge"]
    assert "/api/health" in health["grafana"] and "/-/healthy" in health["alertmanager"]
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert "--host" in (REPO / "Dockerfile").read_text() and "0.0.0.0" in (REPO / "Dockerfile").read_text()
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
    provisioning = yaml.safe_load((REPO / "grafana/provisioning/dashboards/fakeai.yml").read_text())
    for provider in provisioning["providers"]:
        assert provider["options"]["path"] in " ".join(services["grafana"]["volumes"]), provider["name"]
    datasource = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yml").read_text())
    scrape = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())["global"]["scrape_interval"]
    assert datasource["datasources"][0]["jsonData"]["timeInterval"] == scrape


ENGINE_DIALECTS = {"fakeai-sglang": "sglang", "fakeai-tgi": "tgi", "fakeai-dynamo": "dynamo"}


def test_the_engines_dashboards_are_the_engines_own_but_for_their_datasource():
    """grafana/engines/ holds each engine's dashboard as kept verbatim in tests/data, with only the
    datasource provisioning cannot resolve made concrete (tests/support/engine_dashboards.py)."""
    files = sorted(p.name for p in (REPO / "grafana" / "engines").glob("*.json"))
    assert files == sorted(engine_dashboards.ENGINES)
    uids = set()
    for name in files:
        text = (REPO / "grafana" / "engines" / name).read_text(encoding="utf-8")
        assert text == engine_dashboards.provisioned(name), f"run python -m tests.support.engine_dashboards ({name})"
        board = engine_dashboards.board(name)
        uids.add(board["uid"])
        # Every datasource a panel or target names is the provisioned one, a Grafana built-in, or one of
        # the dashboard's own datasource variables (which select the default, provisioned datasource).
        variables_ = board.get("templating", {}).get("list", [])
        allowed = {DATASOURCE_UID, "-- Grafana --", "__expr__"}
        allowed |= {f"${{{v['name']}}}" for v in variables_ if v.get("type") == "datasource"}
        for panel in Dashboard.from_board(board).panels:
            for item in (panel, *panel.get("targets", [])):
                source = item.get("datasource")
                uid = source.get("uid") if isinstance(source, dict) else source
                assert uid is None or uid in allowed, (name, panel.get("title"), uid)
    assert len(uids) == len(files)
    assert not uids & {dashboard(path)["uid"] for path in DASHBOARDS}


def test_the_engines_profile_serves_each_dialect_and_prometheus_keeps_only_engine_names():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for name, dialect in ENGINE_DIALECTS.items():
        assert services[name]["profiles"] == ["engines"]
        assert services[name]["environment"]["FAKEAI_METRICS_DIALECT"] == dialect
    assert len({services[name]["ports"][0] for name in ENGINE_DIALECTS}) == len(ENGINE_DIALECTS)
    jobs = {
        job["job_name"]: job
        for job in yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())["scrape_configs"]
    }
    engines = jobs["engines"]
    assert engines["static_configs"][0]["targets"] == [f"{name}:8000" for name in ENGINE_DIALECTS]
    assert engines["static_configs"][0]["labels"]["namespace"]  # Dynamo's dashboard filters on it
    (drop,) = engines["metric_relabel_configs"]
    assert drop["action"] == "drop" and re.fullmatch(drop["regex"], "fakeai_requests_total")
    assert not re.fullmatch(drop["regex"], "sglang:num_running_reqs")
