"""llama-server's ``GET /slots`` against its own source: the keys are read from the excerpts of
``server_slot::to_json`` and of the ``get_slots`` handler kept in tests/data/llamacpp/ (see SOURCES.md)."""

import asyncio
import gc
import re
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from fakeai.engine.sequence import Sequence, State
from fakeai.engine.slots import Slots

DATA = Path(__file__).resolve().parents[1] / "data" / "llamacpp"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
LLAMACPP = {"models": (MODEL,), "metrics_dialect": ("llamacpp",), "max_num_seqs": 2}
SLOW = {**LLAMACPP, "itl_ms": 20.0, "itl_jitter": 0.0, "overhead_ms": 0.0, "max_num_seqs": 1}


def source_keys() -> tuple[list[str], list[str], list[str]]:
    """The keys every slot has, those of a slot that has run a task, and those of its ``next_token``."""
    text = (DATA / "server_slot_to_json.cpp.txt").read_text()
    before_task, task_part = text.split("const auto & ptask")
    metrics_part = task_part.split("if (!only_metrics)")[0]
    always = re.findall(r'\{"(\w+)",\s', before_task)
    with_task = re.findall(r'res\["(\w+)"\]', metrics_part)
    next_token = re.findall(r'\{"(\w+)",\s', metrics_part)
    return always, with_task, next_token


def test_the_handler_writes_the_metrics_form_and_503s_when_asked_for_a_free_slot():
    handler = (DATA / "server_get_slots.cpp.txt").read_text()
    assert "slot.to_json(slots_debug == 0)" in handler  # no prompt or generated text unless debugging
    assert 'format_error_response("no slot available", ERROR_TYPE_UNAVAILABLE)' in handler


async def test_every_slot_has_the_keys_llama_server_writes_and_the_last_tasks_figures(app_client):
    always, with_task, next_token = source_keys()
    assert always == ["id", "n_ctx", "speculative", "is_processing"] and "next_token" in with_task
    async with app_client(no_delay=True, **LLAMACPP) as (client, _):
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 7}
        usage = (await client.post("/v1/chat/completions", json=body)).json()["usage"]
        slots = (await client.get("/slots")).json()
        props = (await client.get("/props")).json()
    assert props["endpoint_slots"] is True and props["total_slots"] == len(slots) == 2
    used, unused = slots
    assert list(used) == always + with_task and list(unused) == always
    assert [used["id"], unused["id"]] == [0, 1] and used["n_ctx"] == props["default_generation_settings"]["n_ctx"]
    assert used["is_processing"] is False and used["speculative"] is False
    (token,) = used["next_token"]
    assert list(token) == next_token
    assert token == {"has_next_token": False, "has_new_line": False, "n_remain": 0, "n_decoded": 7}
    cached = usage["prompt_tokens_details"]["cached_tokens"] if usage.get("prompt_tokens_details") else 0
    assert used["n_prompt_tokens_cache"] == cached
    assert used["n_prompt_tokens_processed"] == usage["prompt_tokens"] - cached
    assert used["n_prompt_tokens"] == usage["prompt_tokens"] + 7 - 1  # the last token sampled, never fed back
    assert used["params"] == {"max_tokens": 7, "n_predict": 7, "ignore_eos": False, "stream": False}


async def test_a_running_request_holds_its_slot_and_fail_on_no_slot_says_so(app_client):
    async with app_client(**SLOW) as (client, _):
        body = {"model": MODEL, "prompt": "count", "max_tokens": 30, "ignore_eos": True, "stream": True}
        running = asyncio.ensure_future(client.post("/v1/completions", json=body))
        await asyncio.sleep(0.25)
        (busy,) = (await client.get("/slots")).json()
        full = await client.get("/slots?fail_on_no_slot=1")
        await asyncio.wait_for(running, 10)
        (done,) = (await client.get("/slots")).json()
        free = await client.get("/slots?fail_on_no_slot=1")
    assert busy["is_processing"] is True and busy["next_token"][0]["has_next_token"] is True
    assert 0 < busy["next_token"][0]["n_decoded"] < 30
    assert busy["next_token"][0]["n_remain"] == 30 - busy["next_token"][0]["n_decoded"]
    assert full.status_code == 503
    assert full.json() == {"error": {"code": 503, "message": "no slot available", "type": "unavailable_error"}}
    assert done["is_processing"] is False and done["id_task"] == busy["id_task"]
    assert done["next_token"][0] == {"has_next_token": False, "has_new_line": False, "n_remain": 0, "n_decoded": 30}
    assert free.status_code == 200


async def test_slots_of_every_engine_numbered_on_and_no_slots_without_the_dialect(app_client):
    async with app_client(no_delay=True, **LLAMACPP, data_parallel_size=2) as (client, _):
        slots = (await client.get("/slots")).json()
    assert [slot["id"] for slot in slots] == [0, 1, 2, 3]
    async with app_client(no_delay=True, models=(MODEL,)) as (client, _):
        assert (await client.get("/slots")).status_code == 404


class StandIn:
    """What a slot reads of a sequence (hashed by identity, as a Sequence is)."""

    def __init__(self, state: State) -> None:
        self.state, self.request = state, SimpleNamespace(max_tokens=None, ignore_eos=False, stream=True)
        self.max_choice_tokens, self.prompt_len, self.cached_tokens, self.prefill_left, self.unfinished = 0, 4, 0, 4, 1


def test_slots_go_lowest_first_keep_a_preempted_task_and_follow_a_new_limit():
    slots = Slots(2)
    first, second, third = (cast(Sequence, StandIn(State.RUNNING)) for _ in range(3))
    slots.take(first)
    slots.take(second)
    assert slots.idle == 0
    slots.release(first)  # preempted: back to the queue, still the same task
    slots.take(third)  # the freed slot 0
    slots.take(first)  # over the limit while it lasts: a slot past it
    shown = slots.to_json(n_ctx=128, speculative=False)
    assert [(s["id"], s["is_processing"], s["id_task"]) for s in shown] == [(0, True, 2), (1, True, 1), (2, True, 0)]
    first.state = State.FINISHED
    slots.release(first)
    assert [s["id"] for s in slots.to_json(n_ctx=128, speculative=False)] == [0, 1]  # the extra slot is gone
    slots.resize(1)
    second.state = State.FINISHED
    slots.release(second)
    assert [s["id"] for s in slots.to_json(n_ctx=128, speculative=False)] == [0]
    assert slots.idle == 0  # slot 0 still runs the third


def test_a_request_preempted_and_cancelled_while_waiting_leaves_nothing_behind():
    slots = Slots(1)
    seq = StandIn(State.RUNNING)
    slots.take(cast(Sequence, seq))
    seq.state = State.WAITING  # preempted: out of its slot, keeping its task id for its return
    slots.release(cast(Sequence, seq))
    slots.take(cast(Sequence, StandIn(State.RUNNING)))  # another takes the slot; the first is then cancelled
    del seq
    gc.collect()
    assert len(slots._task_ids) == 1  # only the one running
