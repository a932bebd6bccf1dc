"""One server playing a mixed fleet: each model under its own engine's names, and nowhere else, with
exact counts in every dialect and in the native families."""

from prometheus_client.parser import text_string_to_metric_families

VLLM, SGLANG, TRTLLM, LLAMACPP, TGI, DYNAMO = (
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.1-70B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "tiiuae/falcon-7b-instruct",
    "Qwen/Qwen3-0.6B",
)
SENT = {VLLM: 2, SGLANG: 3, TRTLLM: 4, LLAMACPP: 5, TGI: 6, DYNAMO: 7}
TOKENS = 3


def total(families: dict, name: str, sample: str, **labels: str) -> float:
    family = families.get(name)
    if family is None:
        return 0.0
    return sum(
        s.value for s in family.samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_six_models_on_six_dialects_each_under_its_own_names(app_client):
    dialects = {
        VLLM: ("vllm",),
        SGLANG: ("sglang",),
        TRTLLM: ("trtllm",),
        LLAMACPP: ("llamacpp",),
        TGI: ("tgi",),
        DYNAMO: ("dynamo",),
    }
    async with app_client(no_delay=True, models=tuple(SENT), model_dialects=dialects) as (client, _):
        for model, times in SENT.items():
            body = {"model": model, "prompt": "Hi there", "max_tokens": TOKENS, "ignore_eos": True}
            for _ in range(times):
                assert (await client.post("/v1/completions", json=body)).status_code == 200
        text = (await client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def named(prefix: str) -> set[str]:
        return {
            s.labels["model_name"]
            for name, f in families.items()
            if name.startswith(prefix)
            for s in f.samples
            if "model_name" in s.labels
        }

    assert named("vllm:") == {VLLM}
    assert named("sglang:") == {SGLANG}
    dynamo = [s for n, f in families.items() if n.startswith("dynamo_") for s in f.samples if "model" in s.labels]
    assert {s.labels["model"] for s in dynamo} == {DYNAMO}
    assert named("trtllm_") == {"undefined"}  # trtllm-serve names no model; only the Qwen speaks it
    assert total(families, "vllm:request_success", "vllm:request_success_total") == SENT[VLLM]
    assert total(families, "vllm:generation_tokens", "vllm:generation_tokens_total") == SENT[VLLM] * TOKENS
    assert total(families, "sglang:num_requests", "sglang:num_requests_total") == SENT[SGLANG]
    assert total(families, "sglang:generation_tokens", "sglang:generation_tokens_total") == SENT[SGLANG] * TOKENS
    assert total(families, "trtllm_request_success", "trtllm_request_success_total") == SENT[TRTLLM]
    assert total(families, "trtllm_generation_tokens", "trtllm_generation_tokens_total") == SENT[TRTLLM] * TOKENS
    llamacpp = total(families, "llamacpp:tokens_predicted", "llamacpp:tokens_predicted_total")
    assert llamacpp == SENT[LLAMACPP] * TOKENS
    assert total(families, "tgi_request_success", "tgi_request_success_total") == SENT[TGI]
    tgi_tokens = total(families, "tgi_request_generated_tokens", "tgi_request_generated_tokens_sum")
    assert tgi_tokens == SENT[TGI] * TOKENS
    # The parser names a Rust counter's family without its "_total"; the samples keep it.
    assert total(families, "dynamo_frontend_requests", "dynamo_frontend_requests_total") == SENT[DYNAMO]
    dynamo_tokens = total(families, "dynamo_frontend_output_tokens", "dynamo_frontend_output_tokens_total")
    assert dynamo_tokens == SENT[DYNAMO] * TOKENS
    # The native families keep every model, whatever its dialect.
    assert {model: total(families, "fakeai_requests", "fakeai_requests_total", model=model) for model in SENT} == SENT


async def test_a_runtime_pool_change_reaches_every_dialect_view(app_client):
    dialects = {SGLANG: ("sglang",), TRTLLM: ("trtllm",), TGI: ("tgi",), DYNAMO: ("dynamo",)}
    settings = {"no_delay": True, "models": tuple(dialects), "model_dialects": dialects, "admin_token": "t"}
    settings["block_size"] = 16
    async with app_client(**settings) as (client, _):
        patch = {"num_blocks": 123, "max_num_seqs": 7}  # block_size is fixed at start
        headers = {"Authorization": "Bearer t"}
        assert (await client.patch("/admin/config", json=patch, headers=headers)).status_code == 200
        families = {f.name: f for f in text_string_to_metric_families((await client.get("/metrics")).text)}
    assert total(families, "sglang:num_pages", "sglang:num_pages") == 123
    assert total(families, "sglang:max_total_num_tokens", "sglang:max_total_num_tokens") == 123 * 16
    assert total(families, "trtllm_kv_cache_max_blocks", "trtllm_kv_cache_max_blocks") == 123
    assert total(families, "trtllm_max_num_active_requests", "trtllm_max_num_active_requests") == 7
    assert total(families, "tgi_batch_max_total_tokens", "tgi_batch_max_total_tokens") == 123 * 16
    assert total(families, "dynamo_frontend_model_total_kv_blocks", "dynamo_frontend_model_total_kv_blocks") == 123
    assert total(families, "dynamo_frontend_model_max_num_seqs", "dynamo_frontend_model_max_num_seqs") == 7
