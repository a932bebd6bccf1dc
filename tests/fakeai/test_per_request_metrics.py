"""vLLM's per-request ``metrics`` object: the same readings the request put into the histograms."""

import json

import pytest

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
EM = {"endpoint": "/v1/chat/completions", "model": MODEL}
SLOW = {"itl_ms": 5.0, "itl_jitter": 0.0, "overhead_ms": 0.0, "enable_per_request_metrics": True}
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "ignore_eos": True}


def histogram_sum(registry, name: str) -> float:
    return registry.get_sample_value(f"{name}_sum", EM)


def assert_matches_histograms(metrics: dict, registry, tokens: int) -> None:
    pairs = (
        ("queue_time_ms", "fakeai_request_queue_time_seconds"),
        ("time_to_first_token_ms", "fakeai_request_prefill_time_seconds"),  # vLLM: from scheduling
        ("generation_time_ms", "fakeai_request_decode_time_seconds"),
        ("mean_itl_ms", "fakeai_request_time_per_output_token_seconds"),
    )
    for field, family in pairs:
        assert metrics[field] == pytest.approx(1000 * histogram_sum(registry, family), rel=1e-9, abs=1e-9), field
    inference = histogram_sum(registry, "fakeai_request_inference_time_seconds")
    assert metrics["tokens_per_second"] == pytest.approx(tokens / inference)
    assert set(metrics) == {
        "time_to_first_token_ms",
        "generation_time_ms",
        "queue_time_ms",
        "mean_itl_ms",
        "tokens_per_second",
    }


async def test_a_response_carries_the_readings_its_histograms_got(app_client):
    async with app_client(**SLOW) as (client, registry):
        body = (await client.post("/v1/chat/completions", json=BODY)).json()
    assert body["metrics"]["generation_time_ms"] > 0
    assert_matches_histograms(body["metrics"], registry, body["usage"]["completion_tokens"])


async def test_a_stream_carries_them_on_its_final_usage_chunk_only(app_client):
    stream = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    async with app_client(**SLOW) as (client, registry):
        text = (await client.post("/v1/chat/completions", json=stream)).text
        chunks = [json.loads(line[6:]) for line in text.split("\n\n") if line.startswith("data: {")]
        assert [("metrics" in c) for c in chunks] == [False] * (len(chunks) - 1) + [True]
        assert chunks[-1]["choices"] == []
        assert_matches_histograms(chunks[-1]["metrics"], registry, chunks[-1]["usage"]["completion_tokens"])
        bare = (await client.post("/v1/chat/completions", json={**BODY, "stream": True})).text
    assert '"metrics"' not in bare  # no usage chunk, no metrics: as vLLM


async def test_no_metrics_for_several_choices_or_without_the_flag(app_client):
    async with app_client(**SLOW) as (client, _):
        several = (await client.post("/v1/chat/completions", json={**BODY, "n": 2})).json()
    async with app_client(no_delay=True) as (client, _):
        plain = (await client.post("/v1/chat/completions", json=BODY)).json()
    assert "metrics" not in several and "metrics" not in plain
