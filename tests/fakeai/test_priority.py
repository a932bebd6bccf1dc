"""--scheduling-policy priority: lower ``priority`` runs first (ties by arrival), the lowest-priority
running request is preempted first, and the finished-request metrics carry vLLM's bucketed label."""

import asyncio

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
STEADY = {"itl_ms": 2.0, "itl_jitter": 0.0, "overhead_ms": 0.0}


def samples(registry, name: str) -> list:
    text = generate_latest(registry.restricted_registry([name])).decode()  # one family, not all of them
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def by_priority(registry, name: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for sample in samples(registry, name):
        if sample.labels.get("model_name") == MODEL:
            totals[sample.labels["priority"]] = totals.get(sample.labels["priority"], 0.0) + sample.value
    return totals


def body(priority: int, max_tokens: int = 8) -> dict:
    return {"model": MODEL, "prompt": "Tell me", "max_tokens": max_tokens, "ignore_eos": True, "priority": priority}


async def test_fcfs_refuses_a_priority_and_says_which_policy_is_active(app_client):
    async with app_client(no_delay=True) as (client, registry):
        refused = await client.post("/v1/completions", json=body(3))
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == "Got priority 3 but Priority scheduling is not enabled."
        assert (await client.post("/v1/completions", json=body(0))).status_code == 200
        policy = {s.labels["policy"]: s.value for s in samples(registry, "vllm:scheduler_policy_info")}
        assert policy == {"fcfs": 1.0, "priority": 0.0}
        assert all("priority" not in s.labels for s in samples(registry, "vllm:e2e_request_latency_seconds_count"))


async def test_under_saturation_priority_0_waits_less_than_priority_10(app_client):
    async with app_client(scheduling_policy="priority", max_num_seqs=1, **STEADY) as (client, registry):
        # A long request holds the only sequence slot until all twenty are queued, so the order in which
        # they finish is the scheduler's choice alone, not the order the test client happened to send them.
        blocker = asyncio.ensure_future(client.post("/v1/completions", json=body(0, max_tokens=400)))
        finished: list[int] = []

        async def send(priority: int) -> int:
            answer = await client.post("/v1/completions", json=body(priority))
            finished.append(priority)
            return answer.status_code

        queued = [asyncio.ensure_future(send(10 * (i % 2))) for i in range(20)]
        for _ in range(500):
            if sum(s.value for s in samples(registry, "vllm:num_requests_waiting")) == 20:
                break
            await asyncio.sleep(0.01)
        assert not blocker.done(), "the blocker finished before the queue filled: make it longer"
        assert (await blocker).status_code == 200
        assert await asyncio.gather(*queued) == [200] * 20
        waited = by_priority(registry, "vllm:request_queue_time_seconds_sum")
        counted = by_priority(registry, "vllm:request_queue_time_seconds_count")
        policy = {s.labels["policy"]: s.value for s in samples(registry, "vllm:scheduler_policy_info")}
    assert finished == [0] * 10 + [10] * 10
    assert counted == {"0": 11.0, ">1": 10.0}  # 10 is labelled ">1", as vLLM buckets it
    assert waited["0"] / 10 < waited[">1"] / 10, waited  # the blocker waited for nothing
    assert policy == {"fcfs": 0.0, "priority": 1.0}


async def test_preemption_takes_the_lowest_priority_even_when_it_came_first(app_client):
    # Two long answers cannot both fit 10 blocks of 16 tokens: one of them is preempted.
    settings = {"scheduling_policy": "priority", "num_blocks": 10, **STEADY}
    async with app_client(**settings) as (client, registry):
        low = asyncio.ensure_future(client.post("/v1/completions", json=body(5, max_tokens=100)))
        await asyncio.sleep(0.02)  # the low-priority request runs first
        high = asyncio.ensure_future(client.post("/v1/completions", json=body(-5, max_tokens=100)))
        assert (await low).status_code == (await high).status_code == 200
        preemptions = by_priority(registry, "vllm:request_num_preemptions_sum")
    assert preemptions[">1"] >= 1 and preemptions["<-1"] == 0, preemptions
