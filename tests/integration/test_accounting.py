"""300+ concurrent requests of every kind (chat, text and Responses API, streamed or not): every counter equals
what the clients observed, exactly."""

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import openai
import pytest

from exporter.views.dynamo import error_type as dynamo_error_type
from fakeai.testing import scrape

FAST, SLOW = "fast", "slow"
ADAPTER = "fast-adapter"  # a LoRA adapter of FAST, when the engine features are on
N_REQUESTS = 320
CONCURRENCY = 32
SHARED = "A system prompt every request of this test shares, long enough to fill cache blocks. " * 3


@dataclass
class Seen:
    status: int
    reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


def cached(usage) -> int:
    details = usage.prompt_tokens_details if usage is not None else None
    return (details.cached_tokens or 0) if details is not None else 0


def reason_of(finish_reasons: list[str | None]) -> str:
    return "length" if "length" in finish_reasons else "stop"


async def non_streaming(client: openai.AsyncOpenAI, i: int, chat_model: str = FAST) -> Seen:
    try:
        if i % 2:
            prompt = SHARED + f"request {i} " * (i % 7 + 1)
            r = await client.completions.create(model=FAST, prompt=prompt, max_tokens=12)
        elif i % 4 == 2:  # OpenAI's Responses API
            content = SHARED + f"request {i} " * (i % 5 + 1)
            response = await client.responses.create(model=chat_model, input=content, max_output_tokens=12)
            reason = "length" if response.status == "incomplete" else "stop"
            u = response.usage
            return Seen(200, reason, u.input_tokens, u.output_tokens, u.input_tokens_details.cached_tokens)
        else:
            content = SHARED + f"request {i} " * (i % 5 + 1)
            r = await client.chat.completions.create(
                model=chat_model, messages=[{"role": "user", "content": content}], max_tokens=12
            )
    except openai.APIStatusError as exc:
        usage = exc.response.json().get("usage") or {}  # an injected mid-generation abort reports its usage
        hit = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        return Seen(exc.status_code, "error", usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), hit)
    reason = reason_of([c.finish_reason for c in r.choices])
    return Seen(200, reason, r.usage.prompt_tokens, r.usage.completion_tokens, cached(r.usage))


async def streaming_response(client: openai.AsyncOpenAI, i: int) -> Seen:
    """A streamed Responses API request; a failure after its start ends with ``response.failed``, which
    carries the usage so far."""
    try:
        stream = await client.responses.create(
            model=FAST, input=SHARED + f"stream {i}", max_output_tokens=15 + i % 10, stream=True
        )
    except openai.APIStatusError as exc:
        return Seen(exc.status_code, "error")
    async for event in stream:
        if event.type in ("response.completed", "response.failed"):
            final = event.response
    u = final.usage
    seen = Seen(200, "error", u.input_tokens, u.output_tokens, u.input_tokens_details.cached_tokens)
    if final.status != "failed":
        seen.reason = "length" if final.status == "incomplete" else "stop"
    return seen


async def streaming(client: openai.AsyncOpenAI, i: int) -> Seen:
    if i % 9 == 6:
        return await streaming_response(client, i)
    reasons: list[str | None] = []
    usage = None
    try:
        stream = await client.chat.completions.create(
            model=FAST,
            messages=[{"role": "user", "content": f"stream {i}"}],
            max_tokens=15 + i % 10,
            stream=True,
            stream_options={"include_usage": True, "continuous_usage_stats": True},
        )
    except openai.APIStatusError as exc:
        return Seen(exc.status_code, "error")
    try:
        async for chunk in stream:
            usage = chunk.usage or usage
            reasons += [c.finish_reason for c in chunk.choices if c.finish_reason]
    except openai.APIError:  # the injected mid-stream abort: HTTP 200, then an error event
        return Seen(200, "error", usage.prompt_tokens, usage.completion_tokens, cached(usage))
    return Seen(200, reason_of(reasons), usage.prompt_tokens, usage.completion_tokens, cached(usage))


async def walks_away(client: openai.AsyncOpenAI, i: int) -> Seen:
    """Asks the slow model, whose API overhead is 2 s and first step 1 s, and gives up after 1 s: long
    enough for a busy server to have read the request (a client gone before that was never accepted,
    and CI once saw one after 0.3 s), well before any answer."""
    impatient = client.with_options(timeout=1.0)
    try:
        if i % 2:
            stream = await impatient.chat.completions.create(
                model=SLOW, messages=[{"role": "user", "content": "x"}], max_tokens=20, stream=True
            )
            async for _ in stream:
                pass
        else:
            await impatient.chat.completions.create(
                model=SLOW, messages=[{"role": "user", "content": "x"}], max_tokens=20
            )
    except openai.APITimeoutError:
        return Seen(499, "abort")
    except openai.APIStatusError as exc:  # an injected fault answers before the overhead
        return Seen(exc.status_code, "error")
    raise AssertionError("the slow model answered within 1 s")


async def drive(base_url: str, chat_model: str = FAST) -> list[Seen]:
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="test", max_retries=0, timeout=60)
    gate = asyncio.Semaphore(CONCURRENCY)
    kinds = [non_streaming] * 4 + [streaming] * 4 + [walks_away]

    async def one(i: int) -> Seen:
        async with gate:
            kind = kinds[i % len(kinds)]
            return await (non_streaming(client, i, chat_model) if kind is non_streaming else kind(client, i))

    try:
        return await asyncio.gather(*(one(i) for i in range(N_REQUESTS)))
    finally:
        await client.close()


def wait_until_settled(url: str, expected: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        snapshot = scrape(url)
        if snapshot.value("fakeai_responses_total") >= expected or time.monotonic() > deadline:
            return snapshot
        time.sleep(0.2)


# The engine's features that change who runs and when tokens come, all at once: speculative decoding,
# chunked prefill (a budget smaller than the shared prompt), two data-parallel engines per model, the
# priority policy, and a LoRA adapter that the non-streaming chat requests name.
ENGINE_FEATURES = (
    "--speculative-config", '{"method": "ngram", "num_speculative_tokens": 3}',
    "--max-num-batched-tokens", "24",
    "--data-parallel-size", "2",
    "--scheduling-policy", "priority",
    "--enable-lora", "--lora-modules", f'{{"name": "{ADAPTER}", "path": "/a", "base_model_name": "{FAST}"}}',
)  # fmt: skip


# The plain run also speaks Dynamo's frontend names, whose counters split requests by stream and outcome.
DYNAMO = ("--metrics-dialect", "vllm,dynamo")


def dynamo_outcomes(seen: list[Seen]) -> Counter[tuple[str, str, str]]:
    """(request_type, status, error_type) of every request, as Dynamo's frontend counts them: the kind
    follows from the request's index (``drive``), the outcome from what its client was finally given (a
    stream failing after its 200 gave an error event with a 500)."""
    outcomes: Counter[tuple[str, str, str]] = Counter()
    for i, s in enumerate(seen):
        streamed = 4 <= i % 9 < 8 or (i % 9 == 8 and i % 2 == 1)
        kind = "stream" if streamed else "unary"
        if s.status == 200 and s.reason != "error":
            outcomes[kind, "success", ""] += 1
        else:
            final = 500 if s.status == 200 else s.status
            outcomes[kind, "error", dynamo_error_type(str(final))] += 1
    return outcomes


@pytest.mark.parametrize("features", [DYNAMO, ENGINE_FEATURES], ids=["plain", "engine-features"])
def test_counters_equal_client_observations(start_server, features):
    # fmt: off
    server = start_server(
        "--models", f"{FAST},{SLOW}", "--seed", "3", "--max-num-seqs", "8",
        "--itl-ms", "2", "--overhead-ms", "1", "--prefill-ms-per-token", "0.01",
        # The slow model's first step (its prefill) takes a second too: a client that gave up during
        # the 2 s overhead is noticed before its prompt is prefilled, however busy the machine.
        "--model-profile", f"{SLOW}:overhead_ms=2000,itl_ms=1000",
        "--error-rate", "0.2", "--error-mix", "429=0.25,500=0.25,503=0.25,abort=0.25",
        *features,
    )
    # fmt: on
    seen = asyncio.run(drive(server.url, ADAPTER if features == ENGINE_FEATURES else FAST))
    m = wait_until_settled(server.url, N_REQUESTS)

    statuses = Counter(str(s.status) for s in seen)
    reasons = Counter(s.reason for s in seen)
    # The mix really happened: errors of each kind, mid-stream aborts, walk-aways.
    assert {"200", "429", "500", "503", "499"} <= set(statuses), statuses
    assert "404" not in statuses  # the adapter's requests were served
    assert reasons["error"] >= 20 and reasons["abort"] >= 20

    assert m.value("fakeai_requests_total") == N_REQUESTS
    responses = sum(1 for i in range(N_REQUESTS) if (i % 9 < 4 and i % 4 == 2) or i % 9 == 6)
    assert m.value("fakeai_requests_total", endpoint="/v1/responses") == responses > 50
    for status, count in statuses.items():
        assert m.value("fakeai_responses_total", status=status) == count, status
    assert m.value("fakeai_responses_total") == N_REQUESTS
    assert m.value("fakeai_prompt_tokens_total") == sum(s.prompt_tokens for s in seen)
    assert m.value("fakeai_completion_tokens_total") == sum(s.completion_tokens for s in seen)
    assert m.value("vllm:prompt_tokens_total") == sum(s.prompt_tokens for s in seen)
    assert m.value("vllm:generation_tokens_total") == sum(s.completion_tokens for s in seen)
    for reason in ("stop", "length", "abort", "error", "repetition"):
        assert m.value("vllm:request_success_total", finished_reason=reason) == reasons[reason], reason
    # Prompt tokens by source add up to the prompt tokens; cached tokens are what the clients were told,
    # in every tier's total and in the device tier (the only one fakeai's cache has).
    hits = sum(s.cached_tokens for s in seen)
    assert hits > 0  # the shared system prompt was found in the prefix cache
    assert m.value("vllm:prompt_tokens_cached_total") == hits
    assert m.value("vllm:prompt_tokens_by_source_total", source="local_cache_hit") == hits
    assert m.value("vllm:prompt_tokens_by_source_total") == m.value("vllm:prompt_tokens_total")
    assert m.value("vllm:prompt_tokens_by_source_total", source="external_kv_transfer") == 0
    assert m.value("vllm:prompt_tokens_cached_by_source_total") == hits
    assert m.value("vllm:prompt_tokens_cached_by_source_total", source="device") == hits
    for gauge in (
        "fakeai_requests_running",
        "fakeai_requests_waiting",
        "fakeai_active_streams",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
    ):
        assert m.value(gauge) == 0, gauge
    # Queueing happened at concurrency 32 with 8 slots.
    assert m.value("fakeai_request_queue_time_seconds_sum") > 0
    assert m.value("fakeai_streams_total", outcome="cancelled") == sum(
        1 for i, s in enumerate(seen) if i % 9 == 8 and i % 2 and s.status == 499
    )
    if features == DYNAMO:
        counted = Counter[tuple[str, str, str]]()
        for name, labels in m.series("dynamo_frontend_requests_total"):
            by = dict(labels)
            counted[by["request_type"], by["status"], by["error_type"]] += int(m.samples[name, labels])
        assert counted == dynamo_outcomes(seen)
        assert m.value("dynamo_frontend_requests_started_total") == N_REQUESTS
        assert m.value("dynamo_frontend_request_duration_seconds_count") == N_REQUESTS
        assert m.value("dynamo_frontend_model_cancellation_total") == statuses["499"]
        assert m.value("dynamo_frontend_disconnected_clients") == statuses["499"]
        assert m.value("dynamo_frontend_model_rejection_total") == statuses["429"]
        assert m.value("dynamo_frontend_output_tokens_total") == sum(s.completion_tokens for s in seen)
        for gauge in ("inflight_requests", "active_requests", "queued_requests"):
            assert m.value("dynamo_frontend_" + gauge) == 0, gauge
