"""--kv-cache-metrics: sampled KV-block lifetimes, idle times and reuse gaps, as vLLM's collector keeps them."""

import random

from fakeai.engine.prefix_cache import PrefixCache
from fakeai.engine.residency import BlockResidency

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_sampled_block_reports_lifetime_idle_time_and_its_last_gaps():
    clock, events = Clock(), []
    residency = BlockResidency(1.0, random.Random(0), lambda *event: events.append(event), clock)
    residency.allocated("b")
    for t in (2.0, 3.0, 5.0, 6.0, 8.5):
        clock.now = t
        residency.touched("b")
    clock.now = 10.0
    residency.evicted("b")
    residency.evicted("b")  # once only
    ((lifetime, idle, gaps),) = events
    assert (lifetime, idle) == (10.0, 1.5)
    assert gaps == [2.0, 1.0, 2.5]  # the last four touches only, as vLLM's bounded history


def test_unsampled_blocks_cost_nothing_and_report_nothing():
    events = []
    residency = BlockResidency(0.25, random.Random(1), lambda *event: events.append(event), Clock())
    for block in range(1000):
        residency.allocated(block)
    followed = len(residency._tracked)
    assert 150 < followed < 350  # about a quarter are followed
    for block in range(1000):
        residency.evicted(block)
    assert len(events) == followed  # every followed block reports once; the others not at all
    assert not residency._tracked


def test_the_prefix_cache_reports_its_evictions():
    clock, events = Clock(), []
    cache = PrefixCache(4, 3, BlockResidency(1.0, random.Random(0), lambda *event: events.append(event), clock))
    cache.lookup_and_insert([*range(8), 99])  # blocks A, B
    clock.now = 1.0
    cache.lookup_and_insert([*range(8), 98])  # touches A and B
    clock.now = 2.0
    cache.lookup_and_insert([*range(100, 108), 97])  # C, D: A is evicted, oldest first
    assert len(events) == 1
    lifetime, idle, gaps = events[0]
    assert (lifetime, idle, gaps) == (2.0, 1.0, [])


async def test_the_vllm_view_exposes_them_with_the_flag_only(app_client):
    prompts = [{"role": "user", "content": f"distinct prompt number {i} " * 12} for i in range(12)]
    settings = {"no_delay": True, "kv_cache_metrics": True, "kv_cache_metrics_sample": 1.0, "num_blocks": 8}
    async with app_client(**settings) as (client, registry):
        for message in prompts:
            body = {"model": MODEL, "messages": [message], "max_tokens": 2}
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        text = (await client.get("/metrics")).text
    labels = {"model_name": MODEL, "engine": "0"}
    evicted = registry.get_sample_value("vllm:kv_block_lifetime_seconds_count", labels)
    assert evicted > 0
    assert registry.get_sample_value("vllm:kv_block_idle_before_evict_seconds_count", labels) == evicted
    assert 'vllm:kv_block_reuse_gap_seconds_bucket{engine="0",le="1800.0"' in text
    async with app_client(no_delay=True) as (client, _):
        assert "vllm:kv_block_lifetime_seconds" not in (await client.get("/metrics")).text
