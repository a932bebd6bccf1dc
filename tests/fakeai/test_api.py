"""The OpenAI-shaped endpoints, in process (the openai SDK and real sockets are in tests/integration)."""

import base64
import importlib.metadata
import json

import numpy as np
import pytest

from fakeai import __version__

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
CHAT = [{"role": "user", "content": "Say something about queues."}]
EM = {"endpoint": "/v1/chat/completions", "model": MODEL}


def sse_events(text: str) -> list:
    frames = [line.removeprefix("data: ") for line in text.split("\n\n") if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    return [json.loads(f) for f in frames[:-1]]


async def test_chat_completion_shape_and_usage(app_client):
    async with app_client(no_delay=True) as (client, registry):
        response = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": CHAT, "max_tokens": 9})
    body = response.json()
    assert response.status_code == 200 and body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-") and body["model"] == MODEL
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] <= 9 and usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert registry.get_sample_value("fakeai_prompt_tokens_total", EM) == usage["prompt_tokens"]
    assert registry.get_sample_value("fakeai_completion_tokens_total", EM) == usage["completion_tokens"]
    assert registry.get_sample_value("fakeai_responses_total", {**EM, "status": "200"}) == 1


async def test_max_completion_tokens_wins_and_ignore_eos_fills_it(app_client):
    async with app_client(no_delay=True) as (client, _):
        body = {"model": MODEL, "messages": CHAT, "max_tokens": 50, "max_completion_tokens": 6, "ignore_eos": True}
        response = await client.post("/v1/chat/completions", json=body)
    assert response.json()["usage"]["completion_tokens"] == 6
    assert response.json()["choices"][0]["finish_reason"] == "length"


async def test_natural_answers_end_with_stop(app_client):
    async with app_client(no_delay=True, output_tokens=5) as (client, _):
        response = await client.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": CHAT, "max_tokens": 4000}
        )
    assert response.json()["choices"][0]["finish_reason"] == "stop"


async def test_n_gives_n_choices(app_client):
    async with app_client(no_delay=True) as (client, _):
        body = {"model": MODEL, "messages": CHAT, "n": 3, "max_tokens": 4, "ignore_eos": True}
        response = await client.post("/v1/chat/completions", json=body)
    assert [c["index"] for c in response.json()["choices"]] == [0, 1, 2]
    assert response.json()["usage"]["completion_tokens"] == 12


async def test_streaming_chat_chunks_usage_and_done(app_client):
    async with app_client(no_delay=True) as (client, registry):
        body = {
            "model": MODEL,
            "messages": CHAT,
            "max_tokens": 5,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        response = await client.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    # vLLM's sequence: a role-only chunk, one chunk a token, then the usage chunk with no choices; with
    # include_usage every chunk but the last says "usage": null, as OpenAI documents it.
    opening, *tokens, last = events
    assert opening["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                   "finish_reason": None}]  # fmt: skip
    assert len(tokens) == 5 and all(t["choices"][0]["delta"].keys() == {"content"} for t in tokens)
    assert tokens[-1]["choices"][0]["finish_reason"] == "length"
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert all(e["usage"] is None for e in (opening, *tokens))
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 5
    assert registry.get_sample_value("fakeai_streams_total", {**EM, "outcome": "completed"}) == 1
    assert registry.get_sample_value("fakeai_active_streams", EM) == 0


async def test_continuous_usage_stats_counts_every_chunk(app_client):
    async with app_client(no_delay=True) as (client, _):
        body = {
            "model": MODEL,
            "messages": CHAT,
            "max_tokens": 4,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"continuous_usage_stats": True},
        }
        response = await client.post("/v1/chat/completions", json=body)
    counts = [e["usage"]["completion_tokens"] for e in sse_events(response.text) if e["choices"]]
    assert counts == [0, 1, 2, 3, 4]  # the role-only chunk first, with the prompt and no completion yet


async def test_completions_both_modes_and_echo(app_client):
    async with app_client(no_delay=True) as (client, registry):
        plain = await client.post(
            "/v1/completions",
            json={"model": MODEL, "prompt": "Once upon", "max_tokens": 3, "echo": True, "ignore_eos": True},
        )
        streamed = await client.post(
            "/v1/completions",
            json={"model": MODEL, "prompt": [1, 2, 3], "stream": True, "max_tokens": 3, "ignore_eos": True},
        )
    body = plain.json()
    assert body["object"] == "text_completion" and body["choices"][0]["text"].startswith("Once upon")
    assert body["usage"]["completion_tokens"] == 3
    events = sse_events(streamed.text)
    assert len(events) == 3 and all(e["object"] == "text_completion" for e in events)
    assert (
        registry.get_sample_value("fakeai_prompt_tokens_total", {"endpoint": "/v1/completions", "model": MODEL})
        == body["usage"]["prompt_tokens"] + 3
    )


async def test_completions_default_max_tokens_is_16(app_client):
    async with app_client(no_delay=True, output_tokens=4000) as (client, _):
        response = await client.post("/v1/completions", json={"model": MODEL, "prompt": "x"})
    assert response.json()["usage"]["completion_tokens"] == 16


async def test_embeddings_are_deterministic_unit_vectors_in_both_encodings(app_client):
    async with app_client(no_delay=True) as (client, registry):
        first = (await client.post("/v1/embeddings", json={"model": MODEL, "input": ["a cat", "a dog"]})).json()
        again = (
            await client.post(
                "/v1/embeddings", json={"model": MODEL, "input": "a cat", "dimensions": 64, "encoding_format": "base64"}
            )
        ).json()
        small = (await client.post("/v1/embeddings", json={"model": MODEL, "input": "a cat", "dimensions": 64})).json()
    assert [d["index"] for d in first["data"]] == [0, 1]
    cat, dog = (np.array(d["embedding"]) for d in first["data"])
    assert len(cat) == 1536 and abs(np.linalg.norm(cat) - 1) < 1e-5 and not np.allclose(cat, dog)
    decoded = np.frombuffer(base64.b64decode(again["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, small["data"][0]["embedding"])
    assert first["usage"]["prompt_tokens"] == first["usage"]["total_tokens"] > 0
    assert registry.get_sample_value("fakeai_requests_total", {"endpoint": "/v1/embeddings", "model": MODEL}) == 3


async def test_models_health_and_landing(app_client):
    async with app_client(no_delay=True, models=("a", "b/c")) as (client, _):
        listed = (await client.get("/v1/models")).json()
        one = await client.get("/v1/models/b/c")
        missing = await client.get("/v1/models/zzz")
        health = await client.get("/health")
        landing = await client.get("/")
    assert [m["id"] for m in listed["data"]] == ["a", "b/c"] and listed["object"] == "list"
    assert one.json()["id"] == "b/c"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert health.json()["status"] == "ok"
    for link in ("/metrics", "/metrics/stream", "/docs"):
        assert f"href='{link}'" in landing.text


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (b"{not json", 400, "invalid_json", None),
        (b"[1, 2]", 400, None, None),
        (json.dumps({"model": MODEL}).encode(), 400, "missing_required_parameter", "messages"),
        (
            json.dumps({"model": MODEL, "messages": [{"role": "user"}]}).encode(),
            400,
            "missing_required_parameter",
            "messages[0].content",
        ),
        (
            json.dumps({"model": MODEL, "messages": [*CHAT, {"role": "system", "content": None}]}).encode(),
            400,
            "missing_required_parameter",
            "messages[1].content",
        ),
        (
            json.dumps({"model": MODEL, "messages": [*CHAT, {"role": "assistant"}]}).encode(),
            400,
            "missing_required_parameter",
            "messages[1].content",
        ),
        (
            json.dumps({"model": MODEL, "messages": [{"content": "hi"}]}).encode(),
            400,
            "missing_required_parameter",
            "messages[0].role",
        ),
        (json.dumps({"model": MODEL, "messages": CHAT, "n": "2"}).encode(), 400, None, "n"),
        (json.dumps({"model": MODEL, "messages": CHAT, "max_tokens": 0}).encode(), 400, None, "max_tokens"),
        (
            json.dumps({"model": MODEL, "messages": CHAT, "max_tokens": 10**6}).encode(),
            400,
            "context_length_exceeded",
            "max_tokens",
        ),
        (json.dumps({"model": "nope", "messages": CHAT}).encode(), 404, "model_not_found", "model"),
    ],
)
async def test_bad_requests_get_openai_errors(app_client, body, status, code, param):
    async with app_client(no_delay=True) as (client, registry):
        response = await client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["code"] == code and error["param"] == param
    assert registry.get_sample_value("fakeai_requests_total", EM) == 0  # refused before acceptance


@pytest.mark.parametrize(
    ("endpoint", "body", "param"),
    [
        ("/v1/completions", {"prompt": [1, "two"]}, "prompt"),
        ("/v1/completions", {"prompt": ["one", "two"]}, "prompt"),
        ("/v1/completions", {"prompt": [-1]}, "prompt[0]"),
        ("/v1/embeddings", {"input": ["a cat", [1, 2]]}, "input"),
        ("/v1/embeddings", {"input": ["a"] * 2049}, "input"),
        ("/v1/embeddings", {"input": [[1], []]}, "input[1]"),
        ("/v1/chat/completions", {"messages": CHAT, "n": True}, "n"),
        ("/v1/chat/completions", {"messages": CHAT, "stop": ["ok", ""]}, "stop[1]"),
        ("/v1/chat/completions", {"messages": CHAT, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ("/v1/chat/completions", {"messages": CHAT, "temperature": "0.5"}, "temperature"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{}]}]}, "messages[0].content[0].type"),
    ],
)
async def test_lists_of_one_kind_and_strict_types_name_the_parameter(app_client, endpoint, body, param):
    async with app_client(no_delay=True) as (client, registry):
        response = await client.post(endpoint, json={"model": MODEL, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]
    assert registry.get_sample_value("fakeai_requests_total", {"endpoint": endpoint, "model": MODEL}) == 0


async def test_each_kind_of_prompt_and_input_is_served(app_client):
    async with app_client(no_delay=True) as (client, _):
        for prompt in ("Once", [1, 2, 3], ["Once"]):
            body = {"model": MODEL, "prompt": prompt, "max_tokens": 2}
            assert (await client.post("/v1/completions", json=body)).status_code == 200, prompt
        for text in ("a cat", ["a cat", "a dog"], [1, 2], [[1, 2], [3]]):
            answer = (await client.post("/v1/embeddings", json={"model": MODEL, "input": text})).json()
            assert len(answer["data"]) == (2 if isinstance(text, list) and not isinstance(text[0], int) else 1), text


async def test_one_version_number_from_the_package_metadata(app_client):
    async with app_client(no_delay=True) as (client, _):
        health = (await client.get("/health")).json()
        schema = (await client.get("/openapi.json")).json()
    assert health["version"] == schema["info"]["version"] == importlib.metadata.version("fakeai") == __version__


async def test_messages_that_may_go_without_content_are_accepted(app_client):
    calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    messages = [
        *CHAT,
        {"role": "assistant", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "function", "name": "f", "content": None},
    ]
    async with app_client(no_delay=True) as (client, _):
        response = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": messages})
    assert response.status_code == 200, response.text


async def test_an_unknown_model_counts_under_the_route_it_matched(app_client):
    async with app_client(no_delay=True) as (client, registry):
        response = await client.post("/v1/chat/completions", json={"model": "nope", "messages": CHAT})
    assert response.status_code == 404
    route = {"endpoint": "/v1/chat/completions", "method": "POST", "status": "404"}
    assert registry.get_sample_value("fakeai_http_requests_total", route) == 1
    unmatched = {"endpoint": "unmatched", "method": "POST", "status": "404"}
    assert registry.get_sample_value("fakeai_http_requests_total", unmatched) is None


async def test_unknown_route_and_wrong_method_use_the_envelope(app_client):
    async with app_client(no_delay=True) as (client, registry):
        missing = await client.get("/v1/nothing/here")
        wrong = await client.get("/v1/chat/completions")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert (
        registry.get_sample_value(
            "fakeai_http_requests_total", {"endpoint": "unmatched", "method": "GET", "status": "404"}
        )
        == 1
    )


async def test_api_keys_are_enforced(app_client):
    async with app_client(no_delay=True, api_keys=("sk-good",)) as (client, _):
        none = await client.get("/v1/models")
        bad = await client.get("/v1/models", headers={"authorization": "Bearer sk-bad"})
        good = await client.get("/v1/models", headers={"authorization": "Bearer sk-good"})
        health = await client.get("/health")
    assert none.status_code == bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_api_key"
    assert good.status_code == 200 and health.status_code == 200


async def test_full_queue_answers_429_and_counts_it(app_client):
    async with app_client(max_num_seqs=1, max_waiting=0, itl_ms=50, itl_jitter=0) as (client, registry):
        import asyncio

        body = {"model": MODEL, "messages": CHAT, "max_tokens": 5, "ignore_eos": True}
        first = asyncio.ensure_future(client.post("/v1/chat/completions", json=body))
        await asyncio.sleep(0.1)
        refused = await client.post("/v1/chat/completions", json=body)
        await first
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "queue_full"
    assert registry.get_sample_value("fakeai_errors_total", {**EM, "status": "429", "type": "rate_limit_error"}) == 1
    assert registry.get_sample_value("fakeai_finished_requests_total", {**EM, "finished_reason": "error"}) == 1


async def test_error_rate_one_fails_everything_with_the_mix(app_client):
    async with app_client(no_delay=True, error_rate=1.0, error_mix={"503": 1.0}) as (client, registry):
        responses = [
            await client.post("/v1/chat/completions", json={"model": MODEL, "messages": CHAT}) for _ in range(5)
        ]
    assert {r.status_code for r in responses} == {503}
    assert registry.get_sample_value("fakeai_errors_total", {**EM, "status": "503", "type": "server_error"}) == 5


async def test_injected_abort_fails_a_non_streaming_request_with_usage(app_client):
    settings = {"no_delay": True, "error_rate": 1.0, "error_mix": {"abort": 1.0}}
    async with app_client(**settings) as (client, registry):
        body = {"model": MODEL, "messages": CHAT, "max_tokens": 50, "ignore_eos": True}
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 500 and response.json()["error"]["type"] == "server_error"
    wasted = response.json()["usage"]["completion_tokens"]
    assert 1 <= wasted < 50
    assert registry.get_sample_value("fakeai_completion_tokens_total", EM) == wasted
    assert registry.get_sample_value("fakeai_finished_requests_total", {**EM, "finished_reason": "error"}) == 1


async def test_openapi_documents_every_endpoint_with_its_body(app_client):
    async with app_client(no_delay=True) as (client, _):
        schema = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert docs.status_code == 200
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        ref = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[1] in schema["components"]["schemas"]
    assert {"/v1/models", "/v1/models/{model}", "/health"} <= set(schema["paths"])
    chat = schema["components"]["schemas"]["ChatCompletionRequest"]
    assert {"model", "messages"} <= set(chat["required"])


async def test_a_request_cut_by_shutdown_gets_503_and_is_counted(app_client):
    import asyncio

    async with app_client(itl_ms=50, itl_jitter=0) as (client, registry):
        body = {"model": MODEL, "messages": CHAT, "max_tokens": 100, "ignore_eos": True}
        pending = asyncio.ensure_future(client.post("/v1/chat/completions", json=body))
        await asyncio.sleep(0.2)
        await client._transport.app.context.engines.stop()
        response = await pending
    assert response.status_code == 503 and response.json()["error"]["code"] == "engine_overloaded"
    assert registry.get_sample_value("fakeai_finished_requests_total", {**EM, "finished_reason": "abort"}) == 1
    assert registry.get_sample_value("fakeai_requests_running", EM) == 0


async def test_a_stream_cut_by_shutdown_ends_with_an_error_event(app_client):
    import asyncio

    # httpx's ASGI transport buffers whole responses, so drive the ASGI app directly to act mid-stream.
    async with app_client(itl_ms=5, itl_jitter=0) as (client, registry):
        app = client._transport.app
        body = json.dumps(
            {"model": MODEL, "messages": CHAT, "max_tokens": 2000, "ignore_eos": True, "stream": True}
        ).encode()
        chunks: list[bytes] = []
        first_chunk = asyncio.Event()
        requested = asyncio.Event()

        async def receive():
            if not requested.is_set():
                requested.set()
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never leaves

        async def send(message):
            if message["type"] == "http.response.body" and message.get("body"):
                chunks.append(message["body"])
                first_chunk.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json")],
            "server": ("test", 80),
            "client": ("test", 1),
        }
        task = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.wait_for(first_chunk.wait(), 10)
        await app.context.engines.stop()
        await asyncio.wait_for(task, 10)
    frames = b"".join(chunks).decode().split("\n\n")
    assert any('"engine_overloaded"' in frame for frame in frames)
    assert [f for f in frames if f][-1] == "data: [DONE]"
    assert registry.get_sample_value("fakeai_streams_total", {**EM, "outcome": "failed"}) == 1
    assert registry.get_sample_value("fakeai_finished_requests_total", {**EM, "finished_reason": "abort"}) == 1
    assert registry.get_sample_value("fakeai_active_streams", EM) == 0


async def test_oversized_body_is_refused_with_the_envelope(app_client):
    from fakeai.context import MAX_BODY_BYTES

    async with app_client(no_delay=True) as (client, _):
        response = await client.post(
            "/v1/chat/completions", content=b" " * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"}
        )
    assert response.status_code == 400 and "bytes" in response.json()["error"]["message"]


async def test_json_nested_past_the_recursion_limit_is_a_400(app_client):
    deep = b"[" * 100_000 + b"]" * 100_000
    body = b'{"model": "%s", "messages": [{"role": "assistant", "tool_calls": [{"a": %s}]}]}' % (MODEL.encode(), deep)
    async with app_client(no_delay=True) as (client, _):
        response = await client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        again = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": CHAT, "max_tokens": 2})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    assert again.status_code == 200


async def test_a_bug_behind_a_generation_endpoint_is_an_openai_500_and_counted(app_client, monkeypatch, caplog):
    def broken(self, request, recorder):
        raise RuntimeError("bug in the engine")

    monkeypatch.setattr("fakeai.engine.scheduler.ModelEngine.submit", broken)
    async with app_client(no_delay=True) as (client, registry):
        response = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": CHAT})
    assert response.status_code == 500 and response.json()["error"]["type"] == "server_error"
    labels = {"endpoint": "/v1/chat/completions", "method": "POST", "status": "500"}
    assert registry.get_sample_value("fakeai_http_requests_total", labels) == 1
    assert any("unhandled error on /v1/chat/completions" in r.getMessage() for r in caplog.records)


async def test_metrics_carry_process_and_python_collectors_as_vllm_does(app_client):
    async with app_client(no_delay=True) as (client, registry):
        text = (await client.get("/metrics")).text
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "python_info",
        "python_gc_objects_collected_total",
    ):
        assert f"\n{name}" in text, name
    assert registry.get_sample_value("process_resident_memory_bytes") > 0


async def test_http_sizes_are_the_content_lengths_of_each_request_and_response(app_client):
    async with app_client(no_delay=True) as (client, registry):
        body = {"model": MODEL, "messages": CHAT, "max_tokens": 5}
        plain = await client.post("/v1/chat/completions", json=body)
        streamed = await client.post("/v1/chat/completions", json={**body, "stream": True})
    handler = {"handler": "/v1/chat/completions"}
    sent = len(plain.request.content) + len(streamed.request.content)
    assert registry.get_sample_value("http_request_size_bytes_sum", handler) == sent
    # A stream has no Content-Length: it counts 0, as the instrumentator counts it.
    assert registry.get_sample_value("http_response_size_bytes_sum", handler) == len(plain.content)
    assert registry.get_sample_value("http_response_size_bytes_count", handler) == 2


async def test_streams_carry_usage_only_when_asked_and_each_choice_opens_with_its_role(app_client):
    async with app_client(no_delay=True) as (client, _):
        body = {"model": MODEL, "messages": CHAT, "max_tokens": 3, "ignore_eos": True, "stream": True, "n": 2}
        chat = sse_events((await client.post("/v1/chat/completions", json=body)).text)
        prompt = {"model": MODEL, "prompt": "hi", "max_tokens": 3, "ignore_eos": True, "stream": True}
        completion = sse_events((await client.post("/v1/completions", json=prompt)).text)
    assert all("usage" not in e for e in chat + completion)  # no stream_options: no usage key at all
    openings = [e["choices"][0] for e in chat if "role" in e["choices"][0]["delta"]]
    assert [o["index"] for o in openings] == [0, 1]  # one role-only chunk per choice, before its tokens

    def position(choice: int, role: bool) -> int:
        """Where a choice's role-only chunk (or its first token) is."""
        return next(
            i
            for i, e in enumerate(chat)
            if e["choices"][0]["index"] == choice and role == ("role" in e["choices"][0]["delta"])
        )

    assert all(position(choice, True) < position(choice, False) for choice in (0, 1))
    assert len(completion) == 3 and all(e["choices"][0]["text"] for e in completion)  # no opening chunk
