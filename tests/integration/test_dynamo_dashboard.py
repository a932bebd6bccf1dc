"""NVIDIA Dynamo's own Grafana dashboard ("Dynamo Dashboard (generic)", kept verbatim in its Kubernetes
ConfigMap in tests/data/dynamo, see SOURCES.md) against a real Prometheus scraping fakeai in the
``dynamo`` dialect under streaming traffic, with the ``namespace`` label Kubernetes service discovery
attaches: every frontend target returns data; the others read exporters no engine serves."""

import json
import time
from pathlib import Path

import yaml
from monitoring_support import background_traffic

from fakeai.tools.dashboards import Dashboard, Prometheus, TimeRange, evaluate

CONFIGMAP = Path(__file__).resolve().parents[1] / "data" / "dynamo" / "grafana-dynamo-dashboard-configmap.yaml"
MODEL = "Qwen/Qwen3-0.6B"
NOT_AN_ENGINE = "{} is a host exporter's, which no inference engine (real or fake) serves"
# Panels whose every target reads another exporter, each with its reason.
EXEMPT = {
    "DCGM GPU Utilization": NOT_AN_ENGINE.format("DCGM_FI_DEV_* (NVIDIA's DCGM exporter)"),
    "Node CPU Utilization & Load": NOT_AN_ENGINE.format("node_* (Prometheus' node exporter)"),
    "Container CPU Usage": NOT_AN_ENGINE.format("container_* (the kubelet's cAdvisor)"),
    "Memory Usage per Pod": NOT_AN_ENGINE.format("container_* (the kubelet's cAdvisor)"),
}


def dashboard() -> Dashboard:
    configmap = yaml.safe_load(CONFIGMAP.read_text())
    return Dashboard.from_board(json.loads(configmap["data"]["dynamo-dashboard.json"]), CONFIGMAP.name)


def test_dynamos_dashboard_has_data_for_every_frontend_target(start_server, run_prometheus):
    server = start_server("--models", MODEL, "--metrics-dialect", "dynamo", "--itl-ms", "10", "--overhead-ms", "1")
    prometheus = Prometheus(run_prometheus(server.url, scrape_interval=1, labels={"namespace": "dynamo-test"}))
    load = ["--requests", "100000", "--concurrency", "4", "--max-tokens", "30", "--prompt-words", "40"]
    with background_traffic(server.url, MODEL, *load):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if prometheus.query("dynamo_frontend_inter_token_latency_seconds_count > 0"):
                break
            time.sleep(0.5)
        time.sleep(2)
        report = evaluate(dashboard(), prometheus, TimeRange(seconds=60, scrape_interval=1))
    print("\n" + report.summary())
    for outcome in report.without_data:
        print(f"  exempt: {outcome.target.panel} {outcome.target.ref}: {EXEMPT.get(outcome.target.panel)}")
    assert report.values["namespace"] == ["$__all"]
    assert len(report.outcomes) == 13
    assert {o.target.panel for o in report.without_data} == set(EXEMPT)
    assert len(report.with_data) == 6  # the frontend's requests, TTFT, ITL, duration, ISL and OSL
