"""GuideLLM, as users run it on an offline machine, against fakeai with the shipped tokenizer: its synthetic
prompts have exactly the tokens it asked for by the server's count, its request and token totals equal the
server's counters, and its TTFT quantiles fall in the server's histogram buckets for the same requests."""

import json
import subprocess

import numpy as np
from support.clients import MODEL, client_venv

from fakeai.testing import Metrics
from fakeai.tools.compare import agrees, bucket_of

# GuideLLM asks for torch unpinned, which from PyPI is a CUDA build of several GB; the CPU build of torch
# 2.13.0 that this machine keeps on disk satisfies it (pip takes that file).
REQUIREMENTS = ("torch==2.13.0", "guidellm==0.8.1")
REQUESTS = 200
PROMPT, OUTPUT = 100, 24
FRAMING = 3  # the chat template's tokens around one user message: <|user|>, <|end|>, <|assistant|>


def test_guidellm_counts_what_the_server_counts(tokenizer_folder, server, tmp_path):
    guidellm = client_venv("guidellm", REQUIREMENTS) / "guidellm"
    report = tmp_path / "guidellm.json"
    with Metrics.of_server(server.url).delta() as delta:
        run = subprocess.run(
            [
                str(guidellm), "run",
                "--backend", f"kind=openai_http,target={server.url},model={MODEL}",
                "--tokenizer", f"kind=hf_auto,model={tokenizer_folder}",
                "--data", f"kind=synthetic_text,prompt_tokens={PROMPT},output_tokens={OUTPUT}",
                "--profile", "kind=concurrent,streams=8",
                "--constraint", f"kind=max_requests,count={REQUESTS}",
                "--output", f"kind=json,path={report}",
                "--disable-console-interactive",
            ],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (benchmark,) = json.loads(report.read_text())["benchmarks"]
    requests = benchmark["requests"]
    ok = requests["successful"]
    assert len(ok) == REQUESTS and not requests["errored"] and not requests["incomplete"]
    endpoint = "/v1/chat/completions"
    assert delta.value("fakeai_responses_total", endpoint=endpoint, status="200") == REQUESTS
    # Its generator built each prompt to PROMPT tokens with the shipped tokenizer: the server counts exactly
    # that, plus the chat template's framing.
    assert {r["prompt_tokens"] for r in ok} == {PROMPT + FRAMING}
    assert {r["output_tokens"] for r in ok} == {OUTPUT}
    assert sum(r["prompt_tokens"] for r in ok) == delta.value("vllm:prompt_tokens_total", model_name=MODEL)
    assert sum(r["output_tokens"] for r in ok) == delta.value("vllm:generation_tokens_total", model_name=MODEL)
    server_ttft = delta.histogram("fakeai_time_to_first_token_seconds", model=MODEL)
    client_ttft = [r["time_to_first_token_ms"] / 1000 for r in ok]
    assert server_ttft.count == REQUESTS
    for q in (0.5, 0.9):
        bucket = bucket_of(server_ttft, q)
        assert agrees(float(np.quantile(client_ttft, q)), bucket), (q, np.quantile(client_ttft, q), bucket)
