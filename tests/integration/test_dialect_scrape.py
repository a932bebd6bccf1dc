"""A real Prometheus scrapes the one-model dialects: llama-server's hand-written text (counters without
``_total``, answered as text 0.0.4 though Prometheus asks for OpenMetrics first) and trtllm-serve's
families, and records each family under its engine's name and type."""

import time

import httpx
import openai

from fakeai.tools.dashboards import Prometheus

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
TOKENS = 4


def test_prometheus_records_llamacpp_and_trtllm_as_their_engines_write_them(start_server, run_prometheus):
    llamacpp = start_server("--no-delay", "--models", MODEL, "--metrics-dialect", "llamacpp")
    trtllm = start_server("--no-delay", "--models", MODEL, "--metrics-dialect", "trtllm")
    for server in (llamacpp, trtllm):
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        for _ in range(3):
            client.completions.create(model=MODEL, prompt="Hi", max_tokens=TOKENS, extra_body={"ignore_eos": True})
    url = run_prometheus([llamacpp.url, trtllm.url], scrape_interval=1)
    prometheus = Prometheus(url)
    wanted = {
        "llamacpp:tokens_predicted_total": 3 * TOKENS,
        "llamacpp:n_decode_total": 3 * TOKENS,
        "trtllm_generation_tokens_total": 3 * TOKENS,
        'trtllm_request_success_total{finished_reason="length"}': 3,
    }
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and seen != wanted:
        seen = {}
        for query in wanted:
            result = prometheus.query(query)
            if result:
                seen[query] = float(result[0]["value"][1])
        time.sleep(0.5)
    assert seen == wanted
    metadata = httpx.get(url + "/api/v1/metadata", timeout=10).json()["data"]
    assert metadata["llamacpp:n_tokens_max"][0]["type"] == "counter"  # a counter under its own name
    assert metadata["llamacpp:requests_processing"][0]["type"] == "gauge"
    assert metadata["trtllm_kv_cache_utilization"][0]["type"] == "gauge"
    up = prometheus.query("up")
    assert sorted(float(series["value"][1]) for series in up) == [1.0, 1.0]
