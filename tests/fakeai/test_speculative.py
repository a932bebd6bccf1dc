"""Speculative decoding (--speculative-config): each decode step emits 1 + the accepted draft tokens, and
vLLM's spec_decode counters count exactly what the engine drafted and accepted."""

import asyncio
import json
import random

import pytest

from fakeai.engine.speculative import Speculation, check_acceptance_rates, check_speculative_config
from fakeai.engine.tokens import count_tokens
from fakeai.settings import Settings

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
VLLM = {"model_name": MODEL, "engine": "0"}
RATES = (0.8, 0.6, 0.3)
SPEC = {"speculative_config": {"method": "ngram", "num_speculative_tokens": 3}, "spec_acceptance_rates": RATES}


def test_each_position_is_accepted_at_its_rate():
    speculation = Speculation(3, RATES, random.Random(1))
    draws = [speculation.draft() for _ in range(20_000)]
    assert speculation.drafts == 20_000 and speculation.draft_tokens == 60_000
    assert speculation.accepted_tokens == sum(draws)
    for position, rate in enumerate(RATES):
        assert speculation.accepted_per_position[position] == sum(d > position for d in draws)
        assert abs(speculation.accepted_per_position[position] / 20_000 - rate) < 0.02


@pytest.mark.parametrize(
    ("rates", "error"),
    [
        ((0.5, 0.6, 0.1), "must not rise"),
        ((0.5, 0.4), "give 3 acceptance rates"),
        ((1.2, 0.4, 0.1), "within 0 and 1"),
    ],
)
def test_bad_acceptance_rates_are_refused(rates, error):
    with pytest.raises(ValueError, match=error):
        check_acceptance_rates(rates, 3)
    with pytest.raises(ValueError, match="spec_acceptance_rates: .*" + error):
        Settings(speculative_config={"num_speculative_tokens": 3}, spec_acceptance_rates=rates)


def test_the_default_curve_and_bad_configs():
    assert check_acceptance_rates((), 2) == (0.75, 0.5625)
    with pytest.raises(ValueError, match="num_speculative_tokens must be within 1 and 32"):
        check_speculative_config({"method": "ngram", "num_speculative_tokens": 0})
    with pytest.raises(ValueError, match="JSON object"):
        check_speculative_config([3])
    with pytest.raises(ValueError, match="spec_acceptance_rates: given without --speculative-config"):
        Settings(spec_acceptance_rates=(0.5,))


def value(registry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {**VLLM, **labels})


async def test_drafts_follow_the_rates_and_the_counters_equal_the_engines_tally(app_client):
    requests, tokens = 300, 200
    body = {"model": MODEL, "prompt": "Tell me", "max_tokens": tokens, "ignore_eos": True}
    async with app_client(no_delay=True, seed=7, **SPEC) as (client, registry):
        engine = client._transport.app.context.engines.get(MODEL)
        for _ in range(requests // 50):
            answers = await asyncio.gather(*(client.post("/v1/completions", json=body) for _ in range(50)))
            assert all(a.status_code == 200 and a.json()["usage"]["completion_tokens"] == tokens for a in answers)
        tally = engine.speculation
        assert value(registry, "vllm:spec_decode_num_drafts_total") == tally.drafts
        assert value(registry, "vllm:spec_decode_num_draft_tokens_total") == tally.draft_tokens == 3 * tally.drafts
        assert value(registry, "vllm:spec_decode_num_accepted_tokens_total") == tally.accepted_tokens
        for position, rate in enumerate(RATES):
            accepted = value(registry, "vllm:spec_decode_num_accepted_tokens_per_pos_total", position=str(position))
            assert accepted == tally.accepted_per_position[position]
            assert abs(accepted / tally.drafts - rate) < 0.05
        # Every decode step of a request is one draft and one output: one inter-token gap each.
        assert value(registry, "vllm:inter_token_latency_seconds_count") == tally.drafts
        # A decode step emits 1 + the accepted tokens (the last one of a request may be cut short by
        # max_tokens), so the tokens per step average 1 + the sum of the rates.
        per_step = (requests * tokens - requests) / tally.drafts
        assert 1 + tally.accepted_tokens / tally.drafts - 0.05 < per_step <= 1 + tally.accepted_tokens / tally.drafts
        assert abs(per_step - (1 + sum(RATES))) < 0.1


async def test_a_stream_carries_each_steps_tokens_in_one_chunk(app_client):
    body = {"model": MODEL, "prompt": "Tell me", "max_tokens": 32, "ignore_eos": True, "stream": True}
    body["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
    settings = {"speculative_config": {"num_speculative_tokens": 3}, "spec_acceptance_rates": (0.9, 0.9, 0.9)}
    async with app_client(no_delay=True, **settings) as (client, _):
        text = (await client.post("/v1/completions", json=body)).text
    chunks = [json.loads(line[6:]) for line in text.split("\n\n") if line.startswith("data: {")]
    content = [c for c in chunks if c["choices"]]
    assert chunks[-1]["usage"]["completion_tokens"] == 32
    assert len(content) < 20  # 1 + about 2.7 tokens per decode step, one chunk per step
    # The running usage counts tokens, not chunks.
    assert [c["usage"]["completion_tokens"] for c in content][-1] == 32
    assert count_tokens("".join(c["choices"][0]["text"] for c in content)) == 32
