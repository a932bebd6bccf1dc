"""POST /v1/responses: OpenAI's Responses API through the same engine and metrics (in process; the openai
SDK's ``client.responses.create`` runs against a real server in tests/integration/test_sdk.py)."""

import json

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
EM = {"endpoint": "/v1/responses", "model": MODEL}


def events(text: str) -> list[tuple[str, dict]]:
    """(event line, data) of each server-sent event."""
    found = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        found.append((lines["event"], json.loads(lines["data"])))
    return found


async def test_a_response_in_one_body_with_its_usage_and_metrics(app_client):
    async with app_client(no_delay=True) as (client, registry):
        body = {"model": MODEL, "input": "Say something.", "instructions": "Be brief.", "max_output_tokens": 6}
        response = (await client.post("/v1/responses", json=body)).json()
        again = (await client.post("/v1/responses", json={**body, "max_output_tokens": 500})).json()
    assert response["object"] == "response" and response["id"].startswith("resp_")
    assert (response["status"], response["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    (message,) = response["output"]
    assert (message["type"], message["role"], message["content"][0]["type"]) == ("message", "assistant", "output_text")
    usage = response["usage"]
    assert usage["output_tokens"] == 6 and usage["total_tokens"] == usage["input_tokens"] + 6
    assert usage["input_tokens_details"] == {"cached_tokens": 0}
    assert response["instructions"] == "Be brief." and response["max_output_tokens"] == 6
    assert again["status"] == "completed" and again["incomplete_details"] is None
    assert registry.get_sample_value("fakeai_requests_total", EM) == 2
    assert registry.get_sample_value("fakeai_responses_total", {**EM, "status": "200"}) == 2
    completion = registry.get_sample_value("fakeai_completion_tokens_total", EM)
    assert completion == 6 + again["usage"]["output_tokens"]
    assert registry.get_sample_value("vllm:request_success_total", {"model_name": MODEL, "engine": "0",
                                                                   "finished_reason": "length"}) == 1  # fmt: skip


async def test_a_streamed_response_is_openais_event_sequence(app_client):
    async with app_client(no_delay=True) as (client, registry):
        body = {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}]}
        body |= {"stream": True, "max_output_tokens": 4, "ignore_eos": True}
        text = (await client.post("/v1/responses", json=body)).text
    seen = events(text)
    kinds = [kind for kind, _ in seen]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert all(data["type"] == kind for kind, data in seen)
    assert [data["sequence_number"] for _, data in seen] == list(range(len(seen)))
    deltas = "".join(data["delta"] for kind, data in seen if kind == "response.output_text.delta")
    completed = seen[-1][1]["response"]
    assert completed["output"][0]["content"][0]["text"] == deltas == seen[-4][1]["text"]
    assert completed["usage"]["output_tokens"] == 4
    assert "[DONE]" not in text
    assert registry.get_sample_value("fakeai_streams_total", {**EM, "outcome": "completed"}) == 1


async def test_a_stream_that_fails_midway_ends_with_response_failed_and_its_usage(app_client):
    async with app_client(no_delay=True) as (client, _):
        body = {"model": MODEL, "input": "hi", "stream": True, "max_output_tokens": 8, "ignore_eos": True}
        text = (await client.post("/v1/responses", json=body, headers={"X-Fakeai-Fault": "abort;after=3"})).text
    kind, failed = events(text)[-1]
    assert kind == "response.failed" and failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["code"]
    assert failed["response"]["usage"]["output_tokens"] == 3


async def test_bad_responses_bodies_are_named(app_client):
    async with app_client(no_delay=True) as (client, _):
        for body, param in [
            ({"model": MODEL}, "input"),
            ({"model": MODEL, "input": "x", "n": 2}, "n"),
            ({"model": MODEL, "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
            ({"model": MODEL, "input": [{"role": "robot", "content": "x"}]}, "input"),
        ]:
            response = await client.post("/v1/responses", json=body)
            assert response.status_code == 400, body
            assert response.json()["error"]["param"].startswith(param), response.json()
