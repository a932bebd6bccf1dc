"""The ``llamacpp`` metrics dialect against llama.cpp's own source: names, types and help read from the
excerpt of ``server_routes::get_metrics`` kept verbatim in tests/data/llamacpp/ (see its SOURCES.md); the
exposition written as llama-server writes it; values that are the native families' own."""

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakeai.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data" / "llamacpp"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def source_catalog() -> dict[str, tuple[str, str]]:
    """``llamacpp:name`` -> (type, help), from the ``all_metrics_def`` of the handler."""
    text = (DATA / "server_get_metrics.cpp.txt").read_text()
    counters, gauges = text.split('{"gauge", {{')
    entry = re.compile(r'\{"name",\s+"(\w+)"\},\s*\{"help",\s+"([^"]*)"\}')
    catalog = {f"llamacpp:{name}": ("counter", doc) for name, doc in entry.findall(counters)}
    catalog |= {f"llamacpp:{name}": ("gauge", doc) for name, doc in entry.findall(gauges)}
    return catalog


def exposition_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "llamacpp:" in line]


async def test_every_family_is_written_as_llama_server_writes_it(app_client):
    catalog = source_catalog()
    assert len(catalog) == 11
    settings = {"no_delay": True, "models": (MODEL,), "metrics_dialect": ("llamacpp",)}
    async with app_client(**settings) as (client, _):
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
        assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        response = await client.get("/metrics", headers={"Accept": OPENMETRICS})
    # llama-server writes text 0.0.4 whatever it is asked; so does a server that speaks its dialect.
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = exposition_lines(response.text)
    expected: list[str] = []
    values = {}
    for line in lines:
        if not line.startswith("#"):
            name, value = line.split(" ")
            values[name] = float(value)
    for name, (kind, doc) in catalog.items():
        # HELP, TYPE and one unlabelled sample under the family's own name (no _total added), in order.
        expected += [f"# HELP {name} {doc}", f"# TYPE {name} {kind}", f"{name} {lines[len(expected) + 2].split()[1]}"]
    assert lines == expected
    assert set(values) == set(catalog)
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["llamacpp:n_tokens_max"].type == "counter"


async def test_values_are_the_native_ones(app_client):
    settings = {
        "models": (MODEL,),
        "metrics_dialect": ("vllm", "llamacpp"),
        "itl_ms": 2,
        "overhead_ms": 0,
        "max_num_seqs": 7,
        "max_model_len": 4096,
    }
    async with app_client(**settings) as (client, _):
        before = await client.get("/metrics")
        assert "llamacpp:n_decode_total 0.0" in before.text
        body = {"model": MODEL, "prompt": "Tell me a story about a cat", "max_tokens": 5, "ignore_eos": True}
        for _ in range(3):
            assert (await client.post("/v1/completions", json=body)).status_code == 200
        text = (await client.get("/metrics")).text
        props = (await client.get("/props")).json()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(("llamacpp:", "vllm:", "fakeai_")) and " " in line
    }

    def native(prefix: str) -> float:
        return sum(value for name, value in values.items() if name.startswith(prefix))

    assert values["llamacpp:tokens_predicted_total"] == 15
    assert values["llamacpp:prompt_tokens_total"] == native("fakeai_prompt_tokens_total") - native(
        "fakeai_prompt_tokens_cached_total"
    )
    assert values["llamacpp:prompt_tokens_total"] > 0
    assert values["llamacpp:n_decode_total"] == native("fakeai_iteration_tokens_count") >= 5
    assert 1 <= values["llamacpp:n_busy_slots_per_decode"] <= 3
    prompt_len = native("vllm:request_prompt_tokens_sum") / 3
    assert values["llamacpp:n_tokens_max"] == prompt_len + 5
    assert values["llamacpp:tokens_predicted_seconds_total"] == pytest.approx(
        native("fakeai_request_decode_time_seconds_sum"), abs=0.004
    )
    assert values["llamacpp:predicted_tokens_seconds"] == pytest.approx(
        15 / values["llamacpp:tokens_predicted_seconds_total"]
    )
    assert values["llamacpp:requests_processing"] == values["llamacpp:requests_deferred"] == 0
    keys = re.findall(r'\{ "(\w+)",', (DATA / "server_get_props.cpp.txt").read_text())
    assert list(props) == keys
    assert (props["total_slots"], props["default_generation_settings"]["n_ctx"], props["model_path"]) == (
        7,
        4096,
        MODEL,
    )


async def test_the_props_probe_answers_only_for_the_dialect(app_client):
    async with app_client(no_delay=True) as (client, _):
        assert (await client.get("/props")).status_code == 404  # a vLLM has no such path
        response = await client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert response.headers["content-type"].startswith("application/openmetrics-text")  # vLLM negotiates


def test_one_server_speaks_llamacpp_for_one_model_only():
    with pytest.raises(ValueError, match="dialect llamacpp labels no model"):
        Settings(metrics_dialect=("llamacpp",))
