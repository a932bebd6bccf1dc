"""promtool (Debian's prometheus package, installed by .ci/run) lints a real /metrics response."""

import re
import shutil
import subprocess

import httpx
import openai
import pytest

MODEL = "Qwen/Qwen2.5-7B-Instruct"
# promtool's linter rejects two things in vLLM's own names, which we must reproduce exactly: the colon
# of the ``vllm:`` prefix (reserved for recording rules) and ``vllm:iteration_tokens_total`` being a
# histogram. vLLM's /metrics gets the same two findings; nothing else may be reported.
VLLM_BY_DESIGN = re.compile(
    r"^vllm:\S+ (metric names should not contain ':'|non-counter metrics should not have \"_total\" suffix)$"
)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install Debian's 'prometheus' package (.ci/run does)")
    return path


def metrics_after_traffic(url: str) -> str:
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True
        )
    )
    client.embeddings.create(model=MODEL, input="x")
    return httpx.get(url + "/metrics").text


def check(text: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)


def lint_findings(text: str) -> set[str]:
    """promtool's lint lines on ``text``, which must parse: exit 3 is findings only, 1 a parse error."""
    result = check(text)
    assert result.returncode in (0, 3), result.stderr
    return {line for line in (result.stdout + result.stderr).splitlines() if line.strip()}


def test_native_and_http_families_pass_promtool(start_server):
    server = start_server("--no-delay", "--no-vllm-metrics")
    text = metrics_after_traffic(server.url)
    assert "fakeai_time_to_first_token_seconds_bucket" in text and "http_requests_total" in text
    result = check(text)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_response_parses_and_only_vllms_own_names_are_linted(start_server):
    server = start_server("--no-delay")
    text = metrics_after_traffic(server.url)
    findings = lint_findings(text)
    assert findings, "expected promtool's known findings on vLLM's names"
    unexpected = [line for line in findings if not VLLM_BY_DESIGN.match(line)]
    assert unexpected == []
    # With the vLLM families removed from the same response, promtool is clean: it is only their names.
    native_only = "\n".join(line for line in text.splitlines() if "vllm:" not in line) + "\n"
    assert check(native_only).returncode == 0


def test_sglang_dialect_parses_and_only_its_colon_is_linted(start_server):
    # SGLang's names carry a colon too (``sglang:``); promtool's only finding on them must be that.
    server = start_server("--no-delay", "--metrics-dialect", "sglang")
    text = metrics_after_traffic(server.url)
    assert "sglang:time_to_first_token_seconds_bucket" in text and "vllm:" not in text
    findings = lint_findings(text)
    assert findings and all(re.match(r"^sglang:\S+ metric names should not contain ':'$", f) for f in findings)


def test_sglang_router_form_passes_promtool_clean(start_server):
    server = start_server("--no-delay", "--metrics-dialect", "sglang_")
    text = metrics_after_traffic(server.url)
    assert "sglang_time_to_first_token_seconds_bucket" in text and "sglang:" not in text
    result = check(text)
    assert result.returncode == 0, result.stdout + result.stderr


def test_trtllm_dialect_passes_promtool_clean_on_both_paths(start_server):
    server = start_server("--no-delay", "--models", MODEL, "--metrics-dialect", "trtllm")
    text = metrics_after_traffic(server.url)
    assert "trtllm_time_to_first_token_seconds_bucket" in text and "vllm:" not in text
    result = check(text)
    assert result.returncode == 0, result.stdout + result.stderr
    mounted = httpx.get(server.url + "/prometheus/metrics").text  # where trtllm-serve mounts it
    assert "trtllm_request_success_total" in mounted


def test_llamacpp_dialect_parses_and_is_linted_as_llama_server_is(start_server):
    # llama-server names its families with a colon and types two of them counter without "_total":
    # promtool says exactly that of it, and nothing else.
    server = start_server("--no-delay", "--models", MODEL, "--metrics-dialect", "llamacpp")
    text = metrics_after_traffic(server.url)
    assert "# TYPE llamacpp:n_tokens_max counter\nllamacpp:n_tokens_max " in text
    findings = lint_findings(text)
    bare = {"llamacpp:n_tokens_max", "llamacpp:n_busy_slots_per_decode"}
    expected_suffix = {f'{name} counter metrics should have "_total" suffix' for name in bare}
    colons = {f for f in findings if re.match(r"^llamacpp:\S+ metric names should not contain ':'$", f)}
    assert findings - colons == expected_suffix, findings - colons


def test_tgi_dialect_parses_and_is_linted_as_tgi_is(start_server):
    # TGI's exporter names its counters without "_total", two of them "_count", and describes not every
    # family: promtool says exactly that of it, and nothing else.
    server = start_server("--no-delay", "--models", MODEL, "--metrics-dialect", "tgi")
    text = metrics_after_traffic(server.url)
    assert "# TYPE tgi_request_count counter\ntgi_request_count " in text
    findings = lint_findings(text)
    counters = set(re.findall(r"^# TYPE (tgi_\w+) counter$", text, flags=re.M))
    undescribed = set(re.findall(r"^# HELP (tgi_\w+) $", text, flags=re.M))
    expected = {f'{name} counter metrics should have "_total" suffix' for name in counters}
    expected |= {
        f'{name} non-histogram and non-summary metrics should not have "_count" suffix'
        for name in counters
        if name.endswith("_count")
    }
    expected |= {f"{name} no help text" for name in undescribed}
    assert counters and undescribed and findings == expected


def test_dynamo_dialect_passes_promtool_clean(start_server):
    # Dynamo's frontend writes its counters under names that already end in "_total" (Rust's prometheus
    # crate adds nothing), and text 0.0.4 only: promtool finds nothing to say.
    server = start_server("--no-delay", "--models", MODEL, "--metrics-dialect", "dynamo")
    text = metrics_after_traffic(server.url)
    assert "# TYPE dynamo_frontend_requests_total counter\ndynamo_frontend_requests_total{" in text
    result = check(text)
    assert result.returncode == 0, result.stdout + result.stderr
