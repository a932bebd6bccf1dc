"""Chunked prefill (--max-num-batched-tokens): a step's token budget goes to the running decodes first,
then to prefill chunks, so a long prompt is prefilled over several steps and slows running streams while
it is, as in vLLM v1."""

import pytest

from fakeai.settings import Settings

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
VLLM = {"model_name": MODEL, "engine": "0"}
LONG = " wor" * 6000  # one token each: 6,000 prompt tokens, plus the chat template's


def test_the_budget_must_hold_the_running_batch():
    with pytest.raises(
        ValueError, match=r"max_num_batched_tokens \(100\) must be greater than or equal to max_num_seqs"
    ):
        Settings(max_num_batched_tokens=100)
    assert Settings().batched_tokens == 8192
    assert Settings(max_num_seqs=10_000).batched_tokens == 10_000


async def test_a_long_prompt_is_prefilled_over_several_steps_under_the_budget(app_client):
    settings = {"max_num_batched_tokens": 2048, "itl_ms": 2.0, "itl_jitter": 0.0, "overhead_ms": 0.0}
    async with app_client(**settings) as (client, registry):
        body = {"model": MODEL, "prompt": LONG, "max_tokens": 1}
        answer = await client.post("/v1/completions", json=body)
        assert answer.status_code == 200 and answer.json()["usage"]["prompt_tokens"] == 6000

        def bucket(le: str) -> float:
            return registry.get_sample_value("vllm:iteration_tokens_total_bucket", {**VLLM, "le": le})

        steps = registry.get_sample_value("vllm:iteration_tokens_total_count", VLLM)
    # 2,048 + 2,048 + 1,904 (the last chunk also yields the first token): three steps, none over the budget.
    assert steps == 3
    assert bucket("2048.0") == steps
    assert bucket("1024.0") == 0
