"""The workload-variant autoscaler's SGLang queries (every template its three registration files give the
SGLang engine, kept verbatim in tests/data/llm-d/) return data on a real Prometheus scraping fakeai in the
``sglang`` dialect, under the target labels Kubernetes would attach, and the values they return are the
engine's own (capacity, hit rate, token averages)."""

import re
import time
from pathlib import Path

import pytest
from monitoring_support import background_traffic

from fakeai.tools.dashboards import Prometheus

QUERIES = Path(__file__).resolve().parents[1] / "data" / "llm-d" / "wva_sglang_queries.go.txt"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
NAMESPACE = "llm"
TARGET_LABELS = {"namespace": NAMESPACE, "pod": "sglang-0", "llm_d_ai_variant": "a100"}
BLOCK_SIZE, NUM_BLOCKS = 16, 2048


def templates() -> dict[str, str]:
    """Query name -> PromQL, with the autoscaler's parameters filled in."""
    text = QUERIES.read_text()
    found = re.findall(r"Name:\s+(\w+),\n\t\tType:\s+source\.QueryTypePromQL,\n\t\tTemplate:\s+`([^`]+)`", text)
    return {name: query.replace("{{.namespace}}", NAMESPACE).replace("{{.modelID}}", MODEL) for name, query in found}


def test_every_sglang_query_of_the_autoscaler_returns_data(start_server, run_prometheus):
    queries = templates()
    assert len(queries) == 11  # 6 saturation, 3 throughput-analyzer, 2 queueing-model templates
    server = start_server(
        "--models",
        MODEL,
        "--metrics-dialect",
        "sglang",
        "--collect-tokens-histogram",
        "--block-size",
        str(BLOCK_SIZE),
        "--num-blocks",
        str(NUM_BLOCKS),
        "--itl-ms",
        "10",
        "--overhead-ms",
        "1",
    )
    prometheus = Prometheus(run_prometheus(server.url, scrape_interval=1, labels=TARGET_LABELS))
    load = ["--requests", "100000", "--concurrency", "4", "--max-tokens", "20", "--prompt-words", "40"]
    results: dict[str, list] = {}
    with background_traffic(server.url, MODEL, *load):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            results = {name: prometheus.query(query) for name, query in queries.items()}
            if all(results.values()):
                break
            time.sleep(1)
    print("\n" + "\n".join(f"{name}: {len(result)} series" for name, result in results.items()))
    assert [name for name, result in results.items() if not result] == []
    pod = {"instance": server.url.removeprefix("http://"), "pod": "sglang-0", "llm_d_ai_variant": "a100"}
    for result in results.values():
        assert [series["metric"] for series in result] == [pod]  # one series, keyed as the autoscaler keys pods

    def value(name: str) -> float:
        return float(results[name][0]["value"][1])

    assert value("QueryCacheConfigInfo") == BLOCK_SIZE * NUM_BLOCKS  # sglang:max_total_num_tokens
    assert value("QueryAvgOutputTokens") == pytest.approx(20)  # every request generates its max_tokens
    assert value("QueryAvgInputTokens") > 40
    assert 0 < value("QueryPrefixCacheHitRate") < 1  # prompts share their first half
    assert value("QueryRequestRate") > 0 and value("QueryGenerationTokenRate") > 0
    assert 0.005 < value("QueryAvgITL") < 0.1  # 10 ms steps
