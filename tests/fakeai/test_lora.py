"""LoRA adapters (--enable-lora): vLLM's flags, endpoints, model cards and errors; at most --max-loras
adapters in a running batch (others deferred); an adapter not in host memory costs a load."""

import asyncio
import time

import openai
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fakeai.settings import Settings

BASE = "meta-llama/Llama-3.1-8B-Instruct"
LORA = {
    "enable_lora": True,
    "lora_modules": ({"name": "sql", "path": "/adapters/sql"}, {"name": "chat", "path": "/adapters/chat"}),
}


WAITING = "vllm:num_requests_waiting_by_reason"


def families(registry) -> dict[str, list]:
    text = generate_latest(registry).decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


@pytest.fixture
def runtime_updates(monkeypatch):
    monkeypatch.setenv("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "True")


async def test_adapters_are_listed_loaded_and_unloaded_as_vllm_does(app_client, runtime_updates):
    async with app_client(no_delay=True, **LORA) as (client, registry):
        sdk = openai.AsyncOpenAI(api_key="x", base_url="http://fakeai.test/v1", http_client=client)
        cards = {card.id: card for card in (await sdk.models.list()).data}
        assert cards["sql"].model_extra["parent"] == BASE and cards["sql"].model_extra["root"] == "/adapters/sql"
        assert cards[BASE].model_extra["parent"] is None

        loaded = await client.post("/v1/load_lora_adapter", json={"lora_name": "new", "lora_path": "/adapters/new"})
        assert loaded.status_code == 200 and loaded.text == "Success: LoRA adapter 'new' added successfully."
        assert "new" in {card.id for card in (await sdk.models.list()).data}
        reply = await sdk.completions.create(model="new", prompt="Tell me", max_tokens=3)
        assert reply.model == "new"  # answered as the adapter, run on its base model
        again = await client.post("/v1/load_lora_adapter", json={"lora_name": "new", "lora_path": "/x"})
        assert again.status_code == 400 and "has already been loaded" in again.json()["error"]["message"]
        missing = await client.post("/v1/load_lora_adapter", json={"lora_name": "only-a-name"})
        assert missing.json()["error"]["message"] == "Both 'lora_name' and 'lora_path' must be provided."

        gone = await client.post("/v1/unload_lora_adapter", json={"lora_name": "new"})
        assert gone.status_code == 200 and gone.text == "Success: LoRA adapter 'new' removed successfully."
        unknown = await client.post("/v1/unload_lora_adapter", json={"lora_name": "new"})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["message"] == "The lora adapter 'new' cannot be found."
        with pytest.raises(openai.NotFoundError, match="The model `new` does not exist"):
            await sdk.completions.create(model="new", prompt="Tell me", max_tokens=3)
        # Every series is labelled with the base model; an adapter name is never a label value.
        models = {s.labels.get("model") for s in families(registry)["fakeai_requests"]}
        assert models == {BASE, "Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.1-70B-Instruct"}


async def test_without_the_environment_variable_there_are_no_runtime_endpoints(app_client, monkeypatch):
    monkeypatch.delenv("VLLM_ALLOW_RUNTIME_LORA_UPDATING", raising=False)
    async with app_client(no_delay=True, **LORA) as (client, _):
        answer = await client.post("/v1/load_lora_adapter", json={"lora_name": "a", "lora_path": "/a"})
        assert answer.status_code == 404


async def test_one_adapter_at_a_time_in_the_batch_the_other_deferred(app_client):
    settings = {**LORA, "max_loras": 1, "itl_ms": 2.0, "itl_jitter": 0.0, "overhead_ms": 0.0}
    async with app_client(**settings) as (client, registry):
        engine = client._transport.app.context.engines.get(BASE)
        together, deferred = [], []

        async def watch() -> None:
            while True:
                together.append({seq.request.lora for seq in engine.running})
                # Only this family, every 2 ms: rendering the whole registry so often slowed the engine.
                (waiting,) = registry.restricted_registry([WAITING]).collect()
                deferred.extend(
                    s.value
                    for s in waiting.samples
                    if s.labels["model_name"] == BASE and s.labels["reason"] == "deferred"
                )
                await asyncio.sleep(0.002)

        watcher = asyncio.ensure_future(watch())
        bodies = [
            {"model": name, "prompt": "Tell me", "max_tokens": 10, "ignore_eos": True} for name in ("sql", "chat")
        ]
        answers = await asyncio.gather(*(client.post("/v1/completions", json=bodies[i % 2]) for i in range(20)))
        watcher.cancel()
        assert all(answer.status_code == 200 for answer in answers)
        assert max(len(adapters) for adapters in together) == 1  # never both adapters in one batch
        assert max(deferred) > 0  # the other adapter's requests waited, deferred
        info = families(registry)["vllm:lora_requests_info"]
        assert {s.labels["max_lora"] for s in info} == {"1"}
        assert all("," not in s.labels["running_lora_adapters"] for s in info)
        assert {s.labels["running_lora_adapters"] for s in info} >= {"sql", "chat"}
        assert all(s.value > time.time() - 60 for s in info)  # vLLM's value: when the set was reported


async def test_an_adapter_not_in_host_memory_costs_a_load(app_client):
    settings = {**LORA, "max_loras": 1, "itl_ms": 1.0, "itl_jitter": 0.0, "overhead_ms": 0.0}
    async with app_client(**settings, model_profiles={BASE: {"lora_load_ms": 300.0}}) as (client, _):
        body = {"model": "sql", "prompt": "Tell me", "max_tokens": 2}
        started = time.monotonic()
        assert (await client.post("/v1/completions", json=body)).status_code == 200
        first = time.monotonic() - started
        started = time.monotonic()
        assert (await client.post("/v1/completions", json=body)).status_code == 200
        second = time.monotonic() - started
    assert first >= 0.3 and second < 0.2, (first, second)


def test_lora_settings_follow_vllms_rules():
    with pytest.raises(ValueError, match=r"max_cpu_loras \(1\) must be >= max_loras \(2\)"):
        Settings(enable_lora=True, max_loras=2, max_cpu_loras=1)
    with pytest.raises(ValueError, match="max_lora_rank must be one of 1, 8, 16"):
        Settings(enable_lora=True, max_lora_rank=12)
    with pytest.raises(ValueError, match="lora_modules needs enable_lora"):
        Settings(lora_modules=({"name": "a", "path": "/a"},))
