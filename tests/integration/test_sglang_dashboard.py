"""SGLang's own Grafana dashboard (kept verbatim in tests/data/sglang/grafana, see SOURCES.md) against a
real Prometheus scraping fakeai in the ``sglang`` dialect under streaming traffic: every target returns
data, and the engine-log gauges it plots moved."""

import time
from pathlib import Path

from monitoring_support import background_traffic

from fakeai.tools.dashboards import Dashboard, Prometheus, TimeRange, evaluate

BOARD = Path(__file__).resolve().parents[1] / "data" / "sglang" / "grafana" / "sglang-dashboard.json"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"  # the dashboard's default model_name


def test_sglangs_dashboard_has_data_for_every_target(start_server, run_prometheus):
    server = start_server("--models", MODEL, "--metrics-dialect", "sglang", "--itl-ms", "10", "--overhead-ms", "1")
    prometheus = Prometheus(run_prometheus(server.url, scrape_interval=1))
    # Streams from a process of their own; prompts share their first half, so prefill batches hit the cache.
    load = ["--requests", "100000", "--concurrency", "6", "--max-tokens", "30", "--prompt-words", "40"]
    with background_traffic(server.url, MODEL, *load):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            moved = prometheus.query(
                "max_over_time(sglang:gen_throughput[1m]) > 0 and max_over_time(sglang:cache_hit_rate[1m]) > 0"
            )
            if moved and prometheus.query("count_over_time(sglang:num_running_reqs[1m]) >= 8"):
                break
            time.sleep(0.5)
        report = evaluate(Dashboard.load(BOARD), prometheus, TimeRange(seconds=60, scrape_interval=1))
    print("\n" + report.summary())
    assert report.values["model_name"] == [MODEL]
    assert len(report.outcomes) == 14  # 2 x 4 latency quantiles, 2 heatmaps, 4 gauges
    assert report.without_data == [], [(o.target.panel, o.query) for o in report.without_data]
    assert moved, "sglang:gen_throughput and sglang:cache_hit_rate never rose above 0"
