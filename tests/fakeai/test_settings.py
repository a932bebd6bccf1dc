"""Every setting is a flag with an env twin (flag > env > default), and every given setting takes effect."""

import argparse
import time

import pytest

from fakeai.__main__ import main
from fakeai.settings import OPTIONS, Settings, add_arguments, settings_from

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
CHAT = [{"role": "user", "content": "Tell me about caches, in some detail please."}]


def parse(argv, env=None):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from(parser.parse_args(argv), env or {})


def test_defaults():
    s = parse([])
    assert (s.host, s.port, s.seed, s.no_delay, s.vllm_metrics) == ("127.0.0.1", 8000, 0, False, True)
    assert len(s.models) >= 2


def test_flag_beats_env_beats_default():
    assert parse([], {"FAKEAI_PORT": "9001"}).port == 9001
    assert parse(["--port", "9002"], {"FAKEAI_PORT": "9001"}).port == 9002
    assert parse([], {"FAKEAI_NO_DELAY": "true"}).no_delay is True
    assert parse(["--delay"], {"FAKEAI_NO_DELAY": "true"}).no_delay is False
    assert parse(["--no-delay"]).no_delay is True
    assert parse(["--no-vllm-metrics"], {"FAKEAI_VLLM_METRICS": "1"}).vllm_metrics is False
    assert parse(["--legacy-vllm-metrics"]).legacy_vllm_metrics is True
    assert parse([], {"FAKEAI_MODELS": "a, b"}).models == ("a", "b")
    assert parse(["--itl-ms", "3"], {"FAKEAI_ITL_MS": "9"}).profile(MODEL).itl_ms == 3
    env = {"FAKEAI_MODELS": "a,b", "FAKEAI_MODEL_PROFILE": "a:itl_ms=7;b:overhead_ms=1"}
    s = parse([], env)
    assert s.profile("a").itl_ms == 7 and s.profile("b").overhead_ms == 1
    assert parse(["--api-keys", "k1,k2"]).api_keys == ("k1", "k2")
    assert parse([], {"FAKEAI_ERROR_MIX": "429=1"}).error_mix == {"429": 1.0}


def test_every_option_has_a_flag_and_an_env_twin():
    flags = {o.flag for o in OPTIONS}
    envs = {o.env for o in OPTIONS}
    assert len(flags) == len(envs) == len(OPTIONS)
    assert all(e.startswith("FAKEAI_") for e in envs)


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        (["--port", "abc"], {}, "--port"),
        ([], {"FAKEAI_ERROR_RATE": "2"}, "error_rate"),
        (["--models", "a", "--model-profile", "b:itl_ms=3"], {}, "not served"),
        (["--model-profile", f"{MODEL}:warp=3"], {}, "unknown profile field"),
        (["--error-mix", "418=1"], {}, "--error-mix"),
        ([], {"FAKEAI_NO_DELAY": "maybe"}, "FAKEAI_NO_DELAY"),
        (["--max-num-seqs", "0"], {}, "max_num_seqs"),
        (["--custom-histogram-buckets", '{"request_latncy": [1]}'], {}, "unknown bucket family 'request_latncy'"),
        (["--custom-histogram-buckets", '{"request_latency": []}'], {}, "request_latency: a non-empty list"),
        (["--custom-histogram-buckets", '{"request_latency": [1, 0.5]}'], {}, "strictly increasing"),
        (["--custom-histogram-buckets", '{"iteration_tokens": [0, 8]}'], {}, "above 0"),
        (["--custom-histogram-buckets", '{"request_params_n": [true]}'], {}, "not a number"),
        ([], {"FAKEAI_CUSTOM_HISTOGRAM_BUCKETS": "[1, 2]"}, "FAKEAI_CUSTOM_HISTOGRAM_BUCKETS.*JSON object"),
        ([], {"FAKEAI_CUSTOM_HISTOGRAM_BUCKETS": "{nope"}, "not JSON"),
    ],
)
def test_bad_settings_are_clear_errors(argv, env, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse(argv, env)


def test_cli_help_lists_flags_and_env_vars(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["server", "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    for option in OPTIONS:
        assert option.flag in out and option.env in out


def test_custom_buckets_reach_workers_unchanged():
    settings = parse(["--custom-histogram-buckets", '{"request_latency": [0.01, 0.05, 1]}'], {})
    assert settings.custom_histogram_buckets == {"request_latency": (0.01, 0.05, 1.0)}
    assert Settings.from_json(settings.to_json()) == settings


def test_cli_rejects_bad_flag_with_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["server", "--error-rate", "7"])
    assert exited.value.code == 2 and "error_rate" in capsys.readouterr().err


# -- settings take effect --------------------------------------------------------------------------------


async def timed_chat(client, **extra):
    start = time.monotonic()
    response = await client.post(
        "/v1/chat/completions", json={"model": MODEL, "messages": CHAT, "ignore_eos": True, **extra}
    )
    return response, time.monotonic() - start


async def test_seed_makes_answers_reproducible(app_client):
    answers = []
    for seed in (7, 7, 8):
        async with app_client(no_delay=True, seed=seed) as (client, _):
            response, _ = await timed_chat(client, max_tokens=20)
            answers.append(response.json()["choices"][0]["message"]["content"])
    assert answers[0] == answers[1] != answers[2]


async def test_latency_profile_and_no_delay_take_effect(app_client):
    profile = {"itl_ms": 20.0, "itl_jitter": 0.0, "overhead_ms": 0.0, "prefill_ms_per_token": 0.0}
    async with app_client(**profile) as (client, registry):
        _, slow = await timed_chat(client, max_tokens=10)
        itl_sum = registry.get_sample_value(
            "fakeai_inter_token_latency_seconds_sum", {"endpoint": "/v1/chat/completions", "model": MODEL}
        )
    async with app_client(no_delay=True, **profile) as (client, _):
        _, fast = await timed_chat(client, max_tokens=10)
    assert slow >= 10 * 0.020  # ten steps of 20 ms each, at least
    assert itl_sum == pytest.approx(9 * 0.020, abs=0.05)
    assert fast < slow / 2


async def test_per_model_profile_applies_to_that_model_only(app_client):
    settings = {
        "models": ("fast", "slow"),
        "itl_jitter": 0.0,
        "itl_ms": 1.0,
        "overhead_ms": 0.0,
        "model_profiles": {"slow": {"itl_ms": 30.0}},
    }
    async with app_client(**settings) as (client, registry):
        for model in ("fast", "slow"):
            await client.post(
                "/v1/chat/completions", json={"model": model, "messages": CHAT, "max_tokens": 6, "ignore_eos": True}
            )
        means = {
            m: registry.get_sample_value(
                "fakeai_inter_token_latency_seconds_sum", {"endpoint": "/v1/chat/completions", "model": m}
            )
            / 5
            for m in ("fast", "slow")
        }
    assert means["slow"] >= 0.030 > means["fast"]


async def test_block_size_and_num_blocks_reach_the_cache(app_client):
    long_prompt = [{"role": "user", "content": "wor " * 300}]
    async with app_client(no_delay=True, block_size=32, num_blocks=77) as (client, registry):
        for _ in range(2):
            response = await client.post(
                "/v1/chat/completions", json={"model": MODEL, "messages": long_prompt, "max_tokens": 2}
            )
        info = next(s for f in registry.collect() if f.name == "vllm:cache_config_info" for s in f.samples)
    cached = response.json()["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached > 0 and cached % 32 == 0
    assert info.labels["block_size"] == "32" and info.labels["num_gpu_blocks"] == "77"


async def test_max_model_len_bounds_requests_and_buckets(app_client):
    async with app_client(no_delay=True, max_model_len=100) as (client, registry):
        too_long = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": CHAT, "max_tokens": 95})
        models = (await client.get("/v1/models")).json()
        bounds = {
            s.labels["le"]
            for f in registry.collect()
            if f.name == "vllm:request_prompt_tokens"
            for s in f.samples
            if s.name.endswith("_bucket")
        }
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"
    assert models["data"][0]["max_model_len"] == 100
    assert bounds == {"1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "100.0", "+Inf"}


async def test_legacy_vllm_names_flag(app_client):
    async with app_client(no_delay=True, legacy_vllm_metrics=True) as (client, _):
        text = (await client.get("/metrics")).text
    assert "vllm:gpu_cache_usage_perc" in text and "vllm:time_per_output_token_seconds_bucket" in text


def test_settings_validate_on_construction():
    with pytest.raises(ValueError, match="models"):
        Settings(models=())


def test_metrics_dialects_from_flag_and_env_and_an_unknown_one_named():
    assert parse([], {}).metrics_dialect == ("vllm",)
    assert parse(["--metrics-dialect", "vllm, sglang"], {}).metrics_dialect == ("vllm", "sglang")
    assert parse([], {"FAKEAI_METRICS_DIALECT": "sglang"}).metrics_dialect == ("sglang",)
    with pytest.raises(ValueError, match="metrics_dialect ollama is not one of vllm, sglang"):
        parse(["--metrics-dialect", "sglang,ollama"], {})


def test_per_model_dialects_beside_latency_fields_and_through_to_workers():
    model = "Qwen/Qwen2.5-7B-Instruct"
    settings = parse(["--model-profile", f"{model}:dialect=vllm+sglang,itl_ms=20"], {})
    assert settings.model_dialects == {model: ("vllm", "sglang")}
    assert settings.model_profiles == {model: {"itl_ms": 20.0}}
    assert settings.dialects_of(model) == ("vllm", "sglang") and settings.dialect_models("sglang") == (model,)
    assert Settings.from_json(settings.to_json()) == settings
    with pytest.raises(ValueError, match="dialect must be one or more of vllm, sglang"):
        parse(["--model-profile", f"{model}:dialect=ollama"], {})
