"""NVIDIA AIPerf, as users run it on an offline machine, against fakeai with the shipped tokenizer: its
request count and token totals equal the server's counters exactly, and its TTFT quantiles fall in the
server's histogram buckets for the same requests."""

import json
import subprocess

import numpy as np
from support.clients import MODEL, client_venv

from fakeai.testing import Metrics
from fakeai.tools.compare import agrees, bucket_of

# AIPerf 0.13 counts a chat request's template tokens (--apply-chat-template) only when transformers'
# apply_chat_template returns a list of ids; transformers 5 returns a BatchEncoding, and AIPerf then counts
# the bare message text (aiperf/records/inference_result_parser.py, _compute_chat_template_token_count).
REQUIREMENTS = ("aiperf==0.13.0", "transformers>=4.56,<5")
REQUESTS = 200


def test_aiperf_counts_what_the_server_counts(tokenizer_folder, server, tmp_path):
    aiperf = client_venv("aiperf", REQUIREMENTS) / "aiperf"
    with Metrics.of_server(server.url).delta() as delta:
        run = subprocess.run(
            [
                str(aiperf), "profile", "--model", MODEL, "--url", server.url,
                "--endpoint-type", "chat", "--streaming",
                "--tokenizer", str(tokenizer_folder), "--apply-chat-template",
                "--request-count", str(REQUESTS), "--concurrency", "8",
                "--prompt-input-tokens-mean", "120", "--prompt-input-tokens-stddev", "30",
                "--prompt-output-tokens-mean", "24", "--prompt-output-tokens-stddev", "6",
                "--extra-inputs", "ignore_eos:true", "--random-seed", "7",
                "--ui-type", "none", "--output-artifact-dir", str(tmp_path / "artifacts"),
            ],
            # Not HF_HUB_OFFLINE=1: AIPerf 0.13 then looks a folder up as a name in the hub's cache
            # (Tokenizer._from_pretrained_local). A folder is never looked up online either way.
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "artifacts" / "profile_export.jsonl").open()]
    ok = [r["metrics"] for r in records if r.get("error") is None]
    assert len(records) == len(ok) == REQUESTS
    endpoint = "/v1/chat/completions"
    assert delta.value("fakeai_responses_total", endpoint=endpoint, status="200") == REQUESTS
    assert delta.value("fakeai_requests_total", endpoint=endpoint) == REQUESTS
    # AIPerf counts with the tokenizer: the prompt through its chat template, the answer's text.
    client_input = sum(m["input_sequence_length"]["value"] for m in ok)
    client_output = sum(m["output_sequence_length"]["value"] for m in ok)
    assert client_input == delta.value("vllm:prompt_tokens_total", model_name=MODEL)
    assert client_output == delta.value("vllm:generation_tokens_total", model_name=MODEL)
    # And per request against the server's usage (AIPerf's own check of the two).
    assert all(m["usage_prompt_tokens"]["value"] == m["input_sequence_length"]["value"] for m in ok)
    assert all(m["usage_completion_tokens"]["value"] == m["output_sequence_length"]["value"] for m in ok)
    server_ttft = delta.histogram("fakeai_time_to_first_token_seconds", model=MODEL)
    client_ttft = [m["time_to_first_token"]["value"] / 1000 for m in ok]
    assert server_ttft.count == REQUESTS
    for q in (0.5, 0.9):
        bucket = bucket_of(server_ttft, q)
        assert agrees(float(np.quantile(client_ttft, q)), bucket), (q, np.quantile(client_ttft, q), bucket)
