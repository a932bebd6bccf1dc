"""vLLM's utility endpoints: /reset_prefix_cache really empties the prefix cache, and the profile
endpoints write a Chrome trace whose steps are the engine steps vLLM's metrics counted meanwhile."""

import json

import pytest

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
PROMPT = "A long shared system prompt that fills several prefix-cache blocks. " * 8


async def cached_tokens(client) -> int:
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 2, "ignore_eos": True}
    usage = (await client.post("/v1/completions", json=body)).json()["usage"]
    return (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)


async def test_reset_prefix_cache_forgets_every_block(app_client):
    async with app_client(no_delay=True) as (client, registry):
        assert await cached_tokens(client) == 0
        assert await cached_tokens(client) > 0  # the same prompt again: its blocks are cached
        hits = registry.get_sample_value("vllm:prefix_cache_hits_total", {"model_name": MODEL, "engine": "0"})
        response = await client.post("/reset_prefix_cache")
        assert (response.status_code, response.content) == (200, b"")  # vLLM's empty 200
        assert await cached_tokens(client) == 0  # nothing left to hit
        after = registry.get_sample_value("vllm:prefix_cache_hits_total", {"model_name": MODEL, "engine": "0"})
        assert after == hits
        assert await cached_tokens(client) > 0  # and the cache fills again


def steps(registry) -> tuple[float, float]:
    labels = {"model_name": MODEL, "engine": "0"}
    count = registry.get_sample_value("vllm:iteration_tokens_total_count", labels)
    return count, registry.get_sample_value("vllm:iteration_tokens_total_sum", labels)


@pytest.mark.parametrize(
    "timing", [{"no_delay": True}, {"itl_ms": 1.0, "overhead_ms": 0.0}], ids=["no-delay", "stepped"]
)
async def test_the_profile_trace_holds_every_engine_step_in_between(app_client, tmp_path, timing):
    async with app_client(profile_dir=str(tmp_path), **timing) as (client, registry):
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "warm up"}], "max_tokens": 3}
        await client.post("/v1/chat/completions", json=chat)  # steps before the trace: not in it
        before = steps(registry)
        assert (await client.post("/start_profile")).status_code == 200
        for i in range(5):
            body = {**chat, "messages": [{"role": "user", "content": f"request {i} " * 20}], "max_tokens": 4 + i}
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        assert (await client.post("/stop_profile")).status_code == 200
        after = steps(registry)
        await client.post("/v1/chat/completions", json=chat)  # nor after it
    (trace_file,) = tmp_path.glob("*.pt.trace.json")
    trace = json.loads(trace_file.read_text())
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    names = [e for e in trace["traceEvents"] if e["ph"] == "M"]
    assert names and names[0]["args"]["name"] == f"{MODEL} (engine 0)"
    assert len(events) == after[0] - before[0] > 0  # vllm:iteration_tokens_total counted the same steps
    tokens = sum(e["args"]["prefill_tokens"] + e["args"]["decode_tokens"] for e in events)
    assert tokens == after[1] - before[1]
    assert sum(e["args"]["decode_tokens"] for e in events) == sum(4 + i for i in range(5))
    assert all(e["dur"] >= 0 and e["args"]["batch_size"] >= 1 for e in events)
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)


async def test_no_profile_endpoints_without_a_profile_dir(app_client):
    async with app_client(no_delay=True) as (client, _):
        assert (await client.post("/start_profile")).status_code == 404
