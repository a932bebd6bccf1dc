"""--enable-mfu-metrics: vLLM's estimated FLOPs and memory bytes, from the engine steps our engine ran."""

import pytest

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
ENGINE = {"model_name": MODEL, "engine": "0"}
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "estimate me"}], "max_tokens": 7, "ignore_eos": True}


async def run(app_client, **settings):
    async with app_client(itl_ms=1.0, overhead_ms=0.0, **settings) as (client, registry):
        for _ in range(3):
            assert (await client.post("/v1/chat/completions", json=BODY)).status_code == 200
        return registry


def value(registry, name: str, labels=ENGINE) -> float:
    return registry.get_sample_value(name, labels)


async def test_the_estimates_follow_the_tokens_and_steps_of_the_engine(app_client):
    registry = await run(app_client, enable_mfu_metrics=True)
    tokens = value(registry, "fakeai_iteration_tokens_sum", {"model": MODEL})
    steps = value(registry, "fakeai_iteration_tokens_count", {"model": MODEL})
    assert tokens > 0 and steps > 0
    params = 8.03e9  # the Llama-3.1-8B profile
    assert value(registry, "vllm:estimated_flops_per_gpu_total") == pytest.approx(2 * params * tokens, rel=1e-12)
    assert value(registry, "vllm:estimated_read_bytes_per_gpu_total") == pytest.approx(2 * params * steps, rel=1e-12)
    assert value(registry, "vllm:estimated_write_bytes_per_gpu_total") == 131072 * tokens


async def test_without_the_flag_they_exist_and_stay_at_zero_as_in_vllm(app_client):
    registry = await run(app_client)
    for name in ("flops", "read_bytes", "write_bytes"):
        assert value(registry, f"vllm:estimated_{name}_per_gpu_total") == 0
