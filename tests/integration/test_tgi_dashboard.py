"""TGI's own Grafana dashboard (kept verbatim in tests/data/tgi/grafana, see SOURCES.md) against a real
Prometheus scraping fakeai in the ``tgi`` dialect under streaming traffic with failures: every target has
data but those exempted below, each for a stated reason. And a client that goes away is TGI's ``dropped``
failure."""

import time
from pathlib import Path

import httpx
from monitoring_support import background_traffic

from fakeai.tools.dashboards import Dashboard, Prometheus, TimeRange, evaluate

BOARD = Path(__file__).resolve().parents[1] / "data" / "tgi" / "grafana" / "tgi_grafana.json"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
CONTAINER = "tgi-llama"  # what Kubernetes service discovery puts in the label the dashboard selects on
EXEMPT = {
    "tgi_request_skipped_tokens_bucket": "TGI itself writes this family as a summary (no buckets set for it): "
    "the dashboard has no data for it on a real TGI either",
    "tgi_batch_decode_duration_bucket": "fakeai turns tokens into text as it hands them over (the filter time)",
    "tgi_batch_concat_duration_bucket": "continuous batching concatenates no batches",
    "tgi_batch_concat": "continuous batching concatenates no batches",
}


def exemption(query: str) -> str | None:
    return next((name for name in EXEMPT if f"{name}{{" in query), None)


def test_tgis_dashboard_has_data_for_every_target_but_the_exempt(start_server, run_prometheus):
    server = start_server(
        "--models", MODEL, "--metrics-dialect", "tgi", "--itl-ms", "10", "--overhead-ms", "1", "--error-rate", "0.05"
    )
    prometheus = Prometheus(run_prometheus(server.url, scrape_interval=1, labels={"container": CONTAINER}))
    load = ["--requests", "100000", "--concurrency", "6", "--max-tokens", "30", "--prompt-words", "40"]
    with background_traffic(server.url, MODEL, *load):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(prometheus.query("increase(tgi_request_failure[1m]) > 0")) >= 2:
                break  # failures of two kinds have happened, as the "Requests" panel plots them
            time.sleep(0.5)
        report = evaluate(Dashboard.load(BOARD), prometheus, TimeRange(seconds=60, scrape_interval=1))
    exempt = [o for o in report.outcomes if exemption(o.query)]
    print(f"\n{report.summary()} ({len(exempt)} exempt: {', '.join(sorted({exemption(o.query) for o in exempt}))})")
    assert report.values["service"] == [CONTAINER]
    assert len(report.outcomes) == 55  # the targets with an expression
    assert len(exempt) == 12
    assert [o.query for o in report.without_data if not exemption(o.query)] == []
    assert all(not o.has_data for o in exempt)  # what is exempt has no data, as on a real TGI


def test_a_client_that_goes_away_is_a_dropped_request(start_server):
    server = start_server("--models", MODEL, "--metrics-dialect", "tgi", "--itl-ms", "20")
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 200, "stream": True}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", "/v1/chat/completions", json=chat) as response:
            next(response.iter_lines())  # one chunk, then the client leaves
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline and 'tgi_request_failure{err="dropped"} 1.0' not in text:
            time.sleep(0.2)
            text = client.get("/metrics").text
    assert 'tgi_request_failure{err="dropped"} 1.0' in text
    assert "tgi_request_success " not in text  # a dropped request is no success
