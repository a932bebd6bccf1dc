"""``/admin/config`` (--admin-token): runtime settings, checked whole, applied between engine steps."""

import asyncio

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
TOKEN = {"Authorization": "Bearer s3cret"}
BODY = {"model": MODEL, "prompt": "Tell me", "max_tokens": 4, "ignore_eos": True}


def samples(registry, name: str) -> list:
    text = generate_latest(registry.restricted_registry([name])).decode()  # one family, not all of them
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


async def test_no_token_no_admin_and_a_wrong_token_is_a_401(app_client):
    async with app_client(no_delay=True) as (client, _):
        assert (await client.get("/admin/config", headers=TOKEN)).status_code == 404
    async with app_client(no_delay=True, admin_token="s3cret") as (client, _):
        wrong = await client.get("/admin/config", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
        right = await client.get("/admin/config", headers=TOKEN)
        assert right.status_code == 200 and right.json()["models"][MODEL]["itl_ms"] == 12.0


async def test_a_change_with_one_bad_key_changes_nothing(app_client):
    async with app_client(no_delay=True, admin_token="s3cret") as (client, _):
        before = (await client.get("/admin/config", headers=TOKEN)).json()
        for body, param in (
            ({"itl_ms": 30, "itl_mss": 5}, "itl_mss"),
            ({"error_rate": 0.5, "max_num_seqs": "many"}, "max_num_seqs"),
            ({"models": {MODEL: {"itl_ms": 30, "color": 1}}}, f"models.{MODEL}.color"),
            ({"models": {"gpt-9": {"itl_ms": 30}}}, "models.gpt-9"),
        ):
            answer = await client.patch("/admin/config", json=body, headers=TOKEN)
            assert answer.status_code == 400 and answer.json()["error"]["param"] == param, answer.json()
        out_of_range = await client.patch("/admin/config", json={"error_rate": 2, "itl_ms": 30}, headers=TOKEN)
        assert out_of_range.status_code == 400 and "error_rate" in out_of_range.json()["error"]["message"]
        assert (await client.get("/admin/config", headers=TOKEN)).json() == before
        assert (await client.get("/admin/config/history", headers=TOKEN)).json() == {"changes": []}


async def test_error_rate_one_then_zero_fails_exactly_the_requests_in_between(app_client):
    async with app_client(no_delay=True, admin_token="s3cret") as (client, registry):
        patch = {"error_rate": 1, "error_mix": "503=1"}
        assert (await client.patch("/admin/config", json=patch, headers=TOKEN)).status_code == 200
        failing = await asyncio.gather(*(client.post("/v1/completions", json=BODY) for _ in range(25)))
        assert (await client.patch("/admin/config", json={"error_rate": 0}, headers=TOKEN)).status_code == 200
        passing = await asyncio.gather(*(client.post("/v1/completions", json=BODY) for _ in range(25)))
        errors = sum(s.value for s in samples(registry, "fakeai_errors_total") if s.labels["status"] == "503")
        history = (await client.get("/admin/config/history", headers=TOKEN)).json()["changes"]
    assert [a.status_code for a in failing] == [503] * 25 and [a.status_code for a in passing] == [200] * 25
    assert errors == 25
    assert [entry["changes"] for entry in history] == [patch, {"error_rate": 0}]


async def test_a_new_itl_moves_later_requests_into_its_bucket_and_the_pool_size_shows(app_client):
    settings = {"itl_ms": 10.0, "itl_jitter": 0.0, "overhead_ms": 0.0, "admin_token": "s3cret"}
    async with app_client(**settings) as (client, registry):

        def itl_buckets() -> dict[str, float]:
            return {
                s.labels["le"]: s.value
                for s in samples(registry, "vllm:inter_token_latency_seconds_bucket")
                if s.labels["model_name"] == MODEL
            }

        assert (await client.post("/v1/completions", json=BODY)).status_code == 200
        before = itl_buckets()
        assert before["0.025"] == before["+Inf"] == 3  # three gaps of about 10 ms
        patch = {"models": {MODEL: {"itl_ms": 200}}, "num_blocks": 512}
        assert (await client.patch("/admin/config", json=patch, headers=TOKEN)).status_code == 200
        assert (await client.post("/v1/completions", json=BODY)).status_code == 200
        after = itl_buckets()
        info = [s.labels["num_gpu_blocks"] for s in samples(registry, "vllm:cache_config_info")]
        reset = await client.post("/admin/config/reset", headers=TOKEN)
        assert reset.status_code == 200 and reset.json()["models"][MODEL]["itl_ms"] == 10.0
    assert after["0.15"] == 3 and after["0.3"] == after["+Inf"] == 6  # the new gaps: about 200 ms each
    assert info == ["512"]
