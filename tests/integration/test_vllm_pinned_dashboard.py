"""A dashboard vLLM shipped before 0.11 (tests/data/vllm/grafana-0.10, see SOURCES.md) against a real
Prometheus scraping one fakeai whose models speak three vLLM releases: pinned to 0.10 every target has
data; pinned to 0.11 (which hides ``gpu_cache_usage_perc``) and unpinned (current vLLM, which has removed
it and ``time_per_output_token_seconds``) exactly the targets of the retired names have none."""

import contextlib
import time
from pathlib import Path

from monitoring_support import background_traffic

from fakeai.tools.dashboards import Dashboard, Prometheus, TimeRange, evaluate

BOARD = Path(__file__).resolve().parents[1] / "data" / "vllm" / "grafana-0.10" / "grafana.json"
PINS = {"model-0.10": "vllm@0.10", "model-0.11": "vllm@0.11", "model-current": "vllm"}
TPOT_PANEL = "Time Per Output Token Latency"  # vllm:time_per_output_token_seconds: hidden in 0.12, gone in 0.13
CACHE_PANEL = "Cache Utilization"  # vllm:gpu_cache_usage_perc: hidden in 0.11, gone in 0.12
WITHOUT_DATA = {"model-0.10": set(), "model-0.11": {CACHE_PANEL}, "model-current": {CACHE_PANEL, TPOT_PANEL}}


def test_a_pre_011_dashboard_has_data_with_its_pin_and_loses_the_retired_names_without(start_server, run_prometheus):
    profiles = [
        arg for model, pin in PINS.items() if pin != "vllm" for arg in ("--model-profile", f"{model}:dialect={pin}")
    ]
    server = start_server("--models", ",".join(PINS), *profiles, "--itl-ms", "10", "--overhead-ms", "1")
    prometheus = Prometheus(run_prometheus(server.url, scrape_interval=1))
    load = ["--requests", "100000", "--concurrency", "2", "--max-tokens", "20", "--prompt-words", "30"]
    with contextlib.ExitStack() as traffic:
        for model in PINS:
            traffic.enter_context(background_traffic(server.url, model, *load))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(prometheus.query("rate(vllm:e2e_request_latency_seconds_count[10s]) > 0")) == len(PINS):
                break
            time.sleep(0.5)
        time.sleep(3)  # a few more scrapes, so every rate() over $__rate_interval has two points
        span = TimeRange(seconds=60, scrape_interval=1)
        reports = {model: evaluate(Dashboard.load(BOARD), prometheus, span, {"model_name": [model]}) for model in PINS}
    for model, report in reports.items():
        print(f"\n{PINS[model]} ({model}): " + report.summary())
    for model, report in reports.items():
        assert report.values["model_name"] == [model]
        assert len(report.outcomes) == 27  # 3 panels of 5 targets, 3 of 2, 6 of 1
        empty = {outcome.target.panel for outcome in report.without_data}
        assert empty == WITHOUT_DATA[model], (PINS[model], [(o.target.panel, o.query) for o in report.without_data])
    # The panels that lose their data lose all of it: every target of the retired name, none besides.
    retired_targets = [o for o in reports["model-current"].outcomes if o.target.panel in (CACHE_PANEL, TPOT_PANEL)]
    assert len(retired_targets) == 6 and not any(o.has_data for o in retired_targets)
