"""Latency facts a client can check: TTFT buckets, prefix-cache speed-ups, real queueing."""

import asyncio
import threading
import time

import httpx
import openai

from fakeai.testing import scrape

MODEL = "m"
EM = {"endpoint": "/v1/chat/completions", "model": MODEL}


def bucket_that_grew(before, after, name: str, **labels: str) -> tuple[float, float]:
    """The (lower, upper] bounds of the one bucket a single observation landed in."""
    bounds = sorted(
        (float(dict(ls)["le"]), after.samples[(n, ls)] - before.samples.get((n, ls), 0.0))
        for n, ls in after.samples
        if n == name + "_bucket" and set(labels.items()) <= ls
    )
    cumulative_delta = [delta for _, delta in bounds]
    assert cumulative_delta[-1] == 1, "expected exactly one new observation"
    index = next(i for i, delta in enumerate(cumulative_delta) if delta == 1)
    lower = bounds[index - 1][0] if index else 0.0
    return lower, bounds[index][0]


def test_client_ttft_falls_in_the_bucket_the_server_recorded(start_server):
    # A fixed profile: TTFT = 480 ms overhead + one 40 ms step, no jitter. The server can only be late
    # (sleeps never end early), so its TTFT is just over 0.52 s, and the client's adds its own few
    # milliseconds: both inside (0.5, 0.75], with 0.23 s to spare for a busy machine.
    server = start_server(
        "--models", MODEL, "--overhead-ms", "480", "--itl-ms", "40", "--itl-jitter", "0", "--prefill-ms-per-token", "0"
    )
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    for _ in client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "warm up"}], max_tokens=1, stream=True
    ):
        pass
    for _ in range(3):
        before = scrape(server.url)
        start = time.monotonic()
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True
        )
        client_ttft = None
        for chunk in stream:
            if client_ttft is None and chunk.choices and chunk.choices[0].delta.content:
                client_ttft = time.monotonic() - start
        lower, upper = bucket_that_grew(before, scrape(server.url), "fakeai_time_to_first_token_seconds", **EM)
        assert lower < client_ttft <= upper, (lower, client_ttft, upper)
        vllm_lower, vllm_upper = bucket_that_grew(before, scrape(server.url), "vllm:time_to_first_token_seconds")
        assert vllm_lower < client_ttft <= vllm_upper


def test_repeated_long_prompt_hits_the_prefix_cache_and_is_faster(start_server):
    # Prefill costs 1 ms a token: a 2,000-token cold prompt needs ~2 s more than a cached one.
    server = start_server(
        "--models", MODEL, "--overhead-ms", "0", "--itl-ms", "5", "--itl-jitter", "0", "--prefill-ms-per-token", "1"
    )
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    prompt = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 180}]
    ttfts, cached = [], []
    for _ in range(2):
        before = scrape(server.url)
        start = time.monotonic()
        stream = client.chat.completions.create(
            model=MODEL, messages=prompt, max_tokens=2, stream=True, stream_options={"include_usage": True}
        )
        first = None
        for chunk in stream:
            if first is None and chunk.choices:
                first = time.monotonic() - start
            if chunk.usage:
                cached.append(chunk.usage.prompt_tokens_details.cached_tokens)
                prompt_tokens = chunk.usage.prompt_tokens
        ttfts.append(first)
        after = scrape(server.url)
    assert cached[0] == 0 and cached[1] > 0.9 * prompt_tokens
    assert ttfts[1] < ttfts[0] / 3
    assert (
        after.value("fakeai_prefix_cache_lookup_hits_total") - before.value("fakeai_prefix_cache_lookup_hits_total")
        == 1
    )
    assert after.value("fakeai_prefix_cache_hits_total") - before.value("fakeai_prefix_cache_hits_total") == cached[1]
    assert after.value("vllm:prefix_cache_hits_total") == cached[1]
    assert after.value("vllm:prefix_cache_queries_total") == 2 * prompt_tokens


def test_max_num_seqs_two_makes_ten_requests_wait(start_server):
    server = start_server(
        "--models", MODEL, "--max-num-seqs", "2", "--overhead-ms", "0", "--itl-ms", "20", "--itl-jitter", "0"
    )
    peak_waiting = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak_waiting.append(scrape(server.url).value("fakeai_requests_waiting", model=MODEL))
            time.sleep(0.02)

    async def ten() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": "q"}],
                "max_tokens": 10,
                "ignore_eos": True,
            }
            responses = await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(10)))
        assert all(r.status_code == 200 for r in responses)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        asyncio.run(ten())
    finally:
        done.set()
        watcher.join()
    m = scrape(server.url)
    assert max(peak_waiting) >= 1
    assert m.value("fakeai_request_queue_time_seconds_count", **EM) == 10
    # Ten requests of ten 20 ms steps through two slots: the last pair waits about four rounds (0.8 s).
    waited = sum(
        m.samples[k] for k in m.series("fakeai_request_queue_time_seconds_bucket") if dict(k[1]).get("le") == "0.1"
    )
    assert waited <= 4  # at most the first pair and a few early ones waited under 0.1 s
    assert m.value("vllm:request_queue_time_seconds_sum") > 1.0
