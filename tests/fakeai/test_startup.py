"""--startup-seconds: a server that listens at once but whose engines are still "loading", as a
readiness probe and vLLM's dashboards see a starting vLLM."""

import asyncio

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
ENGINE = {"model_name": MODEL, "engine": "0"}


async def test_health_requests_and_vllm_metrics_wait_for_the_engines_to_load(app_client):
    async with app_client(no_delay=True, startup_seconds=0.6) as (client, registry):
        health = await client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "loading"
        refused = await client.post("/v1/chat/completions", json=BODY)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_loading"
        # No vllm:* series for a model still loading: the Service Status board reads it as Down.
        assert registry.get_sample_value("vllm:engine_sleep_state", {**ENGINE, "sleep_state": "awake"}) is None
        assert registry.get_sample_value("vllm:num_requests_running", ENGINE) is None
        assert "vllm:cache_config_info" not in (await client.get("/metrics")).text
        assert registry.get_sample_value("fakeai_engine_loaded", {"model": MODEL}) == 0
        await asyncio.sleep(0.9)
        assert (await client.get("/health")).status_code == 200
        assert (await client.post("/v1/chat/completions", json=BODY)).status_code == 200
        assert registry.get_sample_value("vllm:engine_sleep_state", {**ENGINE, "sleep_state": "awake"}) == 1
        assert registry.get_sample_value("fakeai_engine_loaded", {"model": MODEL}) == 1


async def test_without_the_flag_the_server_is_ready_at_once(app_client):
    async with app_client(no_delay=True) as (client, registry):
        assert (await client.get("/health")).status_code == 200
        assert registry.get_sample_value("vllm:num_requests_running", ENGINE) == 0
