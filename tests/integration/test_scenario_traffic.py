"""A scenario phase's built-in traffic, against a real server: sent over HTTP by a child process, so
every family (vllm:*, fakeai_*, http_*) counts exactly the requests the phase scheduled."""

import time

from fakeai.testing import scrape

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
RUSH = """name: rush
phases:
  - name: rush
    duration: 4s
    traffic:
      rate: 25
      arrivals: even
      endpoints: {chat: 1, completions: 1}
      stream: 0.5
      prompt_tokens: 20
      output_tokens: 3
      seed: 1
  - name: quiet
    duration: 1s
"""


def test_a_traffic_phase_sends_exactly_its_requests_and_every_family_counts_them(start_server, tmp_path):
    scenario = tmp_path / "rush.yaml"
    scenario.write_text(RUSH)
    # --port 0 (ServerProcess): the traffic must find the port actually bound.
    server = start_server("--scenario", str(scenario), "--models", MODEL, "--itl-ms", "2", "--overhead-ms", "1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        metrics = scrape(server.url)
        if metrics.value("vllm:request_success_total") >= 100 and metrics.value("vllm:num_requests_running") == 0:
            break
        time.sleep(0.5)
    time.sleep(2)  # the quiet phase and the end: nothing more may arrive
    metrics = scrape(server.url)
    # Even arrivals at 25/s for 4 s: exactly 100 requests, each answered with 3 tokens (ignore_eos).
    assert metrics.value("vllm:request_success_total") == 100
    assert metrics.value("vllm:request_success_total", finished_reason="length") == 100
    assert metrics.value("vllm:generation_tokens_total") == 300
    chat = metrics.value("http_requests_total", handler="/v1/chat/completions", status="2xx")
    completions = metrics.value("http_requests_total", handler="/v1/completions", status="2xx")
    assert chat + completions == 100 and 30 <= chat <= 70  # a seeded half-and-half mix
    assert metrics.value("fakeai_responses_total", status="200") == 100
    # Completions prompts are exactly 20 tokens; chat ones add their template's framing.
    prompts = metrics.histogram("vllm:request_prompt_tokens")
    assert prompts.count == 100 and prompts.buckets[20.0] >= completions
