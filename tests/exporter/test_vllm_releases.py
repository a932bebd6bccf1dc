"""vLLM pins (``--metrics-dialect vllm@0.11``): each release's retired names, per model, with exact counts;
``--legacy-vllm-metrics`` as the 0.10 pin; vLLM's --show-hidden-metrics-for-version escape hatch."""

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.vllm_releases import RETIRED, parse_release, shown_retired
from fakeai.settings import Settings

GPU_NAMES = ("vllm:gpu_cache_usage_perc", "vllm:gpu_prefix_cache_queries", "vllm:gpu_prefix_cache_hits")
TPOT = "vllm:time_per_output_token_seconds"
PINS = {"old": "vllm@0.10", "middle": "vllm@0.11", "newer": "vllm@0.12", "current": "vllm"}
SENT = {"old": 2, "middle": 3, "newer": 4, "current": 5}
TOKENS = 4


def test_each_release_shows_what_vllms_comments_say_it_shows():
    # "Deprecated in 0.9.2 ... With 0.11.x you can enable with --show-hidden-metrics-for-version=0.10 ...
    # TODO: remove in 0.12.0"; "Deprecated in 0.11 ... With 0.12.x you can enable with
    # --show-hidden-metrics-for-version=0.11 ... TODO: remove in 0.13.0" (vllm/v1/metrics/loggers.py).
    assert shown_retired((0, 10)) == (*GPU_NAMES, TPOT)
    assert shown_retired((0, 11)) == (TPOT,)
    assert shown_retired((0, 11), (0, 10)) == (*GPU_NAMES, TPOT)
    assert shown_retired((0, 12)) == ()
    assert shown_retired((0, 12), (0, 11)) == (TPOT,)
    assert shown_retired((0, 12), (0, 10)) == ()  # only the previous minor opens the hatch
    assert shown_retired(None) == shown_retired(None, (0, 12)) == ()
    assert {retired.successor for retired in RETIRED} == {
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_queries",
        "vllm:prefix_cache_hits",
        "vllm:inter_token_latency_seconds",
    }


@pytest.mark.parametrize("pin", ["0.9", "0.13", "1.0", "latest", "0.10.2", ""])
def test_a_pin_outside_the_known_releases_is_refused_by_name(pin):
    named = re.escape(f"vllm@{pin}: a vLLM pin is one of 0.10, 0.11, 0.12 (plain vllm is current vLLM)")
    with pytest.raises(ValueError, match=named):
        parse_release(pin)
    with pytest.raises(ValueError, match=named):
        Settings(metrics_dialect=(f"vllm@{pin}",))


def test_one_model_speaks_one_vllm_release_and_the_hatch_takes_a_version():
    with pytest.raises(ValueError, match="model-a: one vLLM release per model"):
        Settings(models=("model-a",), metrics_dialect=("vllm", "vllm@0.11"))
    with pytest.raises(ValueError, match=r"show_hidden_metrics_for_version 'ten' is not a version such as 0\.11"):
        Settings(show_hidden_metrics_for_version="ten")
    assert Settings(metrics_dialect=("vllm@0.11", "sglang")).vllm_dialects() == ("vllm@0.11",)


def families_of(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def models_under(families: dict, name: str) -> set[str]:
    family = families.get(name)
    return set() if family is None else {s.labels["model_name"] for s in family.samples}


def value(families: dict, sample: str, model: str) -> float:
    family = families[sample.removesuffix("_total").removesuffix("_count")]
    return sum(s.value for s in family.samples if s.name == sample and s.labels["model_name"] == model)


async def test_four_models_on_four_vllm_releases_each_under_its_releases_names(app_client):
    dialects = {model: (pin,) for model, pin in PINS.items()}
    async with app_client(no_delay=True, models=tuple(PINS), model_dialects=dialects) as (client, _):
        for model, times in SENT.items():
            body = {"model": model, "prompt": "Hi there", "max_tokens": TOKENS, "ignore_eos": True, "stream": True}
            for _ in range(times):
                assert (await client.post("/v1/completions", json=body)).status_code == 200
        families = families_of((await client.get("/metrics")).text)
    for name in GPU_NAMES:
        assert models_under(families, name) == {"old"}, name
    assert models_under(families, TPOT) == {"old", "middle"}
    # Every release keeps the current names, and every name counts the same observations.
    assert models_under(families, "vllm:inter_token_latency_seconds") == set(PINS)
    for model in ("old", "middle"):
        gaps = SENT[model] * (TOKENS - 1)
        assert value(families, TPOT + "_count", model) == gaps
        assert value(families, "vllm:inter_token_latency_seconds_count", model) == gaps
    old_queries = value(families, "vllm:gpu_prefix_cache_queries_total", "old")
    assert old_queries == value(families, "vllm:prefix_cache_queries_total", "old") > 0
    for model, times in SENT.items():
        assert value(families, "vllm:request_success_total", model) == times
    assert families["vllm:gpu_cache_usage_perc"].documentation == RETIRED[0].help


async def test_the_legacy_flag_is_the_010_pin_and_the_hatch_opens_the_previous_minor(app_client):
    async def names(**settings) -> set[str]:
        async with app_client(no_delay=True, **settings) as (client, _):
            return set(families_of((await client.get("/metrics")).text))

    legacy = await names(legacy_vllm_metrics=True)
    assert legacy == await names(metrics_dialect=("vllm@0.10",))
    assert {*GPU_NAMES, TPOT} <= legacy
    current = await names()
    assert not {*GPU_NAMES, TPOT} & current and current < legacy
    hidden_in_011 = await names(metrics_dialect=("vllm@0.11",))
    assert TPOT in hidden_in_011 and not set(GPU_NAMES) & hidden_in_011
    assert set(GPU_NAMES) <= await names(metrics_dialect=("vllm@0.11",), show_hidden_metrics_for_version="0.10")
