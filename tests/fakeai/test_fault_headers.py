"""Per-request faults: ``X-Fakeai-Fault`` (and llm-d-inference-sim's ``X-Return-Error``) force one
request's fate, counted exactly as the injected faults are."""

import asyncio
import json
import time

import pytest

from fakeai.engine.faults import FaultKind, parse_fault_header

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
EM = {"endpoint": "/v1/completions", "model": MODEL}
BODY = {"model": MODEL, "prompt": "Tell me", "max_tokens": 12, "ignore_eos": True}


def test_the_header_grammar():
    assert parse_fault_header("503").kind is FaultKind.OVERLOADED
    assert parse_fault_header(" abort ; after = 4 ").abort_after == 4
    assert parse_fault_header("delay;ms=250").delay == 0.25 and parse_fault_header("delay;ms=250").kind is None
    for bad in ("404", "abort;after=0", "delay;ms=-1", "delay", "503;x=1", "abort;after=two"):
        with pytest.raises(ValueError, match="expected 429, 500, 503, abort"):
            parse_fault_header(bad)


async def test_marked_requests_fail_and_only_they_counted_as_injected_faults(app_client):
    async with app_client(**{"itl_ms": 1.0, "itl_jitter": 0.0, "overhead_ms": 0.0}) as (client, registry):

        async def one(i: int) -> tuple[bool, int]:
            marked = i % 2 == 0
            headers = {"X-Fakeai-Fault": "503"} if marked else {}
            return marked, (await client.post("/v1/completions", json=BODY, headers=headers)).status_code

        answers = await asyncio.gather(*(one(i) for i in range(200)))
        errors = registry.get_sample_value("fakeai_errors_total", {**EM, "status": "503", "type": "server_error"})
    assert sorted(status for marked, status in answers if marked) == [503] * 100
    assert sorted(status for marked, status in answers if not marked) == [200] * 100
    assert errors == 100


async def test_abort_after_n_tokens_and_a_forced_delay(app_client):
    async with app_client(no_delay=True) as (client, registry):
        stream = {**BODY, "stream": True}
        text = (await client.post("/v1/completions", json=stream, headers={"X-Fakeai-Fault": "abort;after=5"})).text
        chunks = [json.loads(line[6:]) for line in text.split("\n\n") if line.startswith("data: {")]
        assert sum(1 for c in chunks if c.get("choices")) == 5
        assert "error" in chunks[-1]
        started = time.monotonic()
        slow = await client.post("/v1/completions", json=BODY, headers={"X-Fakeai-Fault": "delay;ms=300"})
        assert slow.status_code == 200 and time.monotonic() - started >= 0.3
        success = registry.get_sample_value(
            "vllm:request_success_total", {"model_name": MODEL, "engine": "0", "finished_reason": "error"}
        )
        assert success == 1  # the abort; the delayed request finished normally


async def test_llm_d_return_error_bad_values_and_switching_the_headers_off(app_client):
    async with app_client(no_delay=True) as (client, _):
        assert (await client.post("/v1/completions", json=BODY, headers={"X-Return-Error": "429"})).status_code == 429
        bad = await client.post("/v1/completions", json=BODY, headers={"X-Fakeai-Fault": "teapot"})
        assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("x-fakeai-fault: expected")
    async with app_client(no_delay=True, fault_headers=False) as (client, _):
        ignored = await client.post("/v1/completions", json=BODY, headers={"X-Fakeai-Fault": "503"})
        assert ignored.status_code == 200
