"""--data-parallel-size: each model runs several engines, each with its own queue, KV pool and prefix
cache, and requests go to the least loaded (vLLM's internal load balancer) or the one a header names."""

import asyncio

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
BODY = {"model": MODEL, "prompt": "Tell me", "max_tokens": 8, "ignore_eos": True}
STEADY = {"itl_ms": 2.0, "itl_jitter": 0.0, "overhead_ms": 0.0}


def series(registry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    # Only the one family, through the exposition text: rendering the whole registry (three models, two
    # engines each) took most of these tests' time.
    text = generate_latest(registry.restricted_registry([name])).decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def by_engine(registry, name: str, **labels: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for key, value in series(registry, name).items():
        found = dict(key)
        if found.get("model_name") == MODEL and all(found.get(k) == v for k, v in labels.items()):
            totals[found["engine"]] = totals.get(found["engine"], 0.0) + value
    return totals


async def test_requests_spread_over_the_engines_and_every_engine_has_its_series(app_client):
    async with app_client(data_parallel_size=2, **STEADY) as (client, registry):
        assert by_engine(registry, "vllm:num_requests_running") == {"0": 0.0, "1": 0.0}
        for _ in range(8):  # 400 requests, 50 at a time
            answers = await asyncio.gather(*(client.post("/v1/completions", json=BODY) for _ in range(50)))
            assert all(answer.status_code == 200 for answer in answers)
        done = by_engine(registry, "vllm:request_success_total")
        assert sum(done.values()) == 400
        assert max(done.values()) <= 0.65 * 400, done
        # Every engine-level family has one series per engine, the info gauge too.
        assert set(by_engine(registry, "vllm:kv_cache_usage_perc")) == {"0", "1"}
        assert set(by_engine(registry, "vllm:prompt_tokens_total")) == {"0", "1"}
        info = {dict(key)["engine"] for key in series(registry, "vllm:cache_config_info")}
        assert info == {"0", "1"}


async def test_a_header_picks_the_engine_and_each_engines_kv_pool_is_its_own(app_client):
    async with app_client(data_parallel_size=2, **STEADY) as (client, registry):
        long = {**BODY, "max_tokens": 400}
        answer = asyncio.ensure_future(client.post("/v1/completions", json=long, headers={"X-data-parallel-rank": "1"}))
        await asyncio.sleep(0.1)  # the request runs, on engine 1 only
        usage = by_engine(registry, "vllm:kv_cache_usage_perc")
        running = by_engine(registry, "vllm:num_requests_running")
        assert usage["1"] > 0 and usage["0"] == 0, usage
        assert running == {"0": 0.0, "1": 1.0}
        assert (await answer).status_code == 200
        assert by_engine(registry, "vllm:request_success_total") == {"0": 0.0, "1": 1.0}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("two", "X-data-parallel-rank must be an integer"),
        ("5", "data_parallel_rank 5 is not an engine of this server (0, 1)"),
    ],
)
async def test_a_bad_rank_header_is_a_400(app_client, header, message):
    async with app_client(data_parallel_size=2, no_delay=True) as (client, registry):
        answer = await client.post("/v1/completions", json=BODY, headers={"X-data-parallel-rank": header})
        assert answer.status_code == 400
        assert message in answer.json()["error"]["message"]
        assert sum(by_engine(registry, "vllm:request_success_total").values()) == 0


async def test_one_engine_keeps_the_native_families_without_an_engine_label(app_client):
    async with app_client(no_delay=True) as (client, registry):
        assert (await client.post("/v1/completions", json=BODY)).status_code == 200
        labels = {name for key in series(registry, "fakeai_requests_total") for name, _ in key}
        assert labels == {"endpoint", "model"}
        assert by_engine(registry, "vllm:request_success_total", finished_reason="length") == {"0": 1.0}
