"""vLLM's sleep mode: /sleep, /wake_up, /is_sleeping, what requests in flight and arriving get, and
vllm:engine_sleep_state (in process; the Service Status dashboard on a real Prometheus is in
tests/integration/test_vllm_dashboards.py)."""

import asyncio
import json

import pytest

from fakeai.routes.lifecycle import SLEEP_MESSAGE

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
MODELS = (MODEL, "model-b")
SLOW = {"itl_ms": 20.0, "itl_jitter": 0.0, "overhead_ms": 0.0, "enable_sleep_mode": True, "models": MODELS}
LONG_CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 30, "ignore_eos": True}


def sleep_state(registry, model: str = MODEL) -> dict[str, float | None]:
    return {
        state: registry.get_sample_value(
            "vllm:engine_sleep_state", {"model_name": model, "engine": "0", "sleep_state": state}
        )
        for state in ("awake", "weights_offloaded", "discard_all")
    }


async def is_sleeping(client) -> bool:
    response = await client.get("/is_sleeping")
    assert response.status_code == 200
    return response.json()["is_sleeping"]


async def test_the_routes_exist_only_with_the_flag(app_client):
    async with app_client(no_delay=True) as (client, _):
        assert (await client.get("/is_sleeping")).status_code == 404
        assert (await client.post("/sleep")).status_code == 404


@pytest.mark.parametrize(("level", "state"), [(1, "weights_offloaded"), (2, "discard_all")])
async def test_sleep_and_wake_move_is_sleeping_and_the_sleep_state_gauge(app_client, level, state):
    async with app_client(no_delay=True, enable_sleep_mode=True, models=MODELS) as (client, registry):
        assert not await is_sleeping(client)
        assert sleep_state(registry) == {"awake": 1.0, "weights_offloaded": 0.0, "discard_all": 0.0}
        response = await client.post(f"/sleep?level={level}")
        assert response.status_code == 200 and response.content == b""  # vLLM's empty 200
        assert await is_sleeping(client)
        for model in MODELS:
            assert sleep_state(registry, model) == {"awake": 0.0, "weights_offloaded": 0.0, "discard_all": 0.0} | {
                state: 1.0
            }
        assert (await client.post("/wake_up")).status_code == 200
        assert not await is_sleeping(client)
        assert sleep_state(registry) == {"awake": 1.0, "weights_offloaded": 0.0, "discard_all": 0.0}


async def test_a_partial_wake_up_leaves_the_engine_asleep_but_records_it_awake_as_vllm_does(app_client):
    async with app_client(no_delay=True, enable_sleep_mode=True) as (client, registry):
        await client.post("/sleep?level=1")
        await client.post("/wake_up?tags=weights")
        assert await is_sleeping(client)  # the KV cache is still to be restored
        assert sleep_state(registry)["awake"] == 1.0  # vLLM records any wake_up call as awake
        await client.post("/wake_up?tags=kv_cache")
        assert not await is_sleeping(client)


async def test_sleeping_discards_the_prefix_cache(app_client):
    prompt = {"model": MODEL, "messages": [{"role": "user", "content": "Long shared prompt. " * 40}], "max_tokens": 2}
    async with app_client(no_delay=True, enable_sleep_mode=True) as (client, _):
        await client.post("/v1/chat/completions", json=prompt)
        warm = (await client.post("/v1/chat/completions", json=prompt)).json()
        assert warm["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
        await client.post("/sleep?level=1")
        await client.post("/wake_up")
        cold = (await client.post("/v1/chat/completions", json=prompt)).json()
        assert cold["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


async def test_abort_mode_ends_requests_in_flight_with_an_error_that_says_why(app_client):
    async with app_client(**SLOW) as (client, registry):
        plain = asyncio.ensure_future(client.post("/v1/chat/completions", json=LONG_CHAT))
        streamed = asyncio.ensure_future(client.post("/v1/chat/completions", json={**LONG_CHAT, "stream": True}))
        await asyncio.sleep(0.2)  # both are generating
        assert (await client.post("/sleep?level=1&mode=abort")).status_code == 200
        plain_response, stream_response = await asyncio.wait_for(asyncio.gather(plain, streamed), 5)
        assert plain_response.status_code == 500
        body = plain_response.json()
        assert body["error"]["message"] == SLEEP_MESSAGE and 0 < body["usage"]["completion_tokens"] < 30
        events = [line[6:] for line in stream_response.text.split("\n\n") if line.startswith("data: {")]
        assert json.loads(events[-1])["error"]["message"] == SLEEP_MESSAGE
        assert registry.get_sample_value("vllm:num_requests_running", {"model_name": MODEL, "engine": "0"}) == 0


async def test_a_request_arriving_while_asleep_waits_and_runs_after_wake_up(app_client):
    async with app_client(**SLOW) as (client, registry):
        await client.post("/sleep")
        pending = asyncio.ensure_future(client.post("/v1/chat/completions", json={**LONG_CHAT, "max_tokens": 3}))
        await asyncio.sleep(0.3)
        assert not pending.done()  # queued, not refused
        assert registry.get_sample_value("vllm:num_requests_waiting", {"model_name": MODEL, "engine": "0"}) == 1
        await client.post("/wake_up")
        response = await asyncio.wait_for(pending, 5)
        assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] == 3


async def test_wait_mode_lets_requests_in_flight_finish_before_the_engine_sleeps(app_client):
    async with app_client(**SLOW) as (client, _):
        in_flight = asyncio.ensure_future(client.post("/v1/chat/completions", json={**LONG_CHAT, "max_tokens": 15}))
        await asyncio.sleep(0.1)
        await client.post("/sleep?level=1&mode=wait")
        assert in_flight.done()  # /sleep answered only once it had finished
        response = in_flight.result()
        assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] == 15
        assert await is_sleeping(client)


async def test_keep_mode_freezes_requests_in_flight_until_wake_up(app_client):
    async with app_client(**SLOW) as (client, _):
        in_flight = asyncio.ensure_future(client.post("/v1/chat/completions", json={**LONG_CHAT, "max_tokens": 15}))
        await asyncio.sleep(0.1)
        await client.post("/sleep?level=0&mode=keep")
        await asyncio.sleep(0.6)  # far longer than the request had left to run
        assert not in_flight.done()
        await client.post("/wake_up")
        response = await asyncio.wait_for(in_flight, 5)
        assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] == 15


@pytest.mark.parametrize(
    ("call", "param"),
    [
        ("/sleep?level=3", "level"),
        ("/sleep?level=one", "level"),
        ("/sleep?mode=later", "mode"),
        ("/wake_up?tags=gpu", "tags"),
    ],
)
async def test_bad_parameters_are_a_400_naming_them_and_change_nothing(app_client, call, param):
    async with app_client(no_delay=True, enable_sleep_mode=True) as (client, registry):
        response = await client.post(call)
        assert response.status_code == 400 and response.json()["error"]["param"] == param
        assert not await is_sleeping(client) and sleep_state(registry)["awake"] == 1.0


def vllm_sleep_metrics_module() -> dict:
    """vLLM's sleep-mode metrics module (tests/data/vllm/sleep_metrics.py.txt), its constants only."""
    import ast
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "data" / "vllm" / "sleep_metrics.py.txt"
    tree = ast.parse(source.read_text())
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            constants[node.targets[0].id] = ast.unparse(node.value)
    return {"BUCKETS": ast.literal_eval(constants["BUCKETS"]), "Operation": constants["Operation"]}


async def test_sleep_and_wake_calls_are_timed_by_operation_as_vllm_does(app_client):
    vllm = vllm_sleep_metrics_module()
    async with app_client(no_delay=True, enable_sleep_mode=True) as (client, registry):
        text = (await client.get("/metrics")).text
        assert "vllm:sleep_mode_operation_duration_seconds_count" not in text  # rows appear once run
        await client.post("/sleep?level=1")
        await client.post("/wake_up")
        await client.post("/wake_up")
        text = (await client.get("/metrics")).text
    for operation, count in (("sleep", 1), ("wake", 2)):
        assert operation in vllm["Operation"]
        labels = {"operation": operation}
        assert registry.get_sample_value("vllm:sleep_mode_operation_duration_seconds_count", labels) == count
        assert registry.get_sample_value("vllm:sleep_mode_operations_in_flight", labels) == 0
    bounds = [float(b) for b in vllm["BUCKETS"]] + [float("inf")]
    found = sorted(
        {
            float(line.split('le="')[1].split('"')[0])
            for line in text.splitlines()
            if line.startswith("vllm:sleep_mode_operation_duration_seconds_bucket")
        }
    )
    assert found == bounds
