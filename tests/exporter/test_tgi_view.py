"""The ``tgi`` metrics dialect against TGI's own source: names, types, label values, help and bucket bounds
read from the excerpts kept verbatim in tests/data/tgi/ (see its SOURCES.md); the exposition written as
metrics-exporter-prometheus writes it; values that are the native families' own."""

import asyncio
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakeai.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data" / "tgi"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
MAX_MODEL_LEN = 4096
NOT_EXPOSED = {
    "tgi_batch_concat": "fakeai's engine batches continuously: no batch is ever concatenated to another",
    "tgi_batch_concat_duration": "no batch concatenation (above)",
    "tgi_batch_decode_duration": "fakeai turns tokens into text as it hands them over: that time is in the filter time",
    "tgi_batch_inference_failure": "an engine step that fails is a fakeai bug, not a simulated fault",
    "tgi_request_skipped_tokens": "TGI configures no buckets for it, so its exporter writes a summary; not imitated",
}
CALL = re.compile(r'metrics::(counter|gauge|histogram)!\(\s*"(\w+)"(?:,\s*"(\w+)"\s*=>\s*"(\w+)")?')


def source_catalog() -> dict[str, tuple[str, dict[str, set[str]]]]:
    """Every family TGI records: its type, and each label's values."""
    catalog: dict[str, tuple[str, dict[str, set[str]]]] = {}
    for kind, name, label, value in CALL.findall((DATA / "metric_calls.rs.txt").read_text()):
        _, labels = catalog.setdefault(name, (kind, {}))
        if label:
            labels.setdefault(label, set()).add(value)
    return catalog


def source_help() -> dict[str, str]:
    described = re.compile(r'describe_\w+!\(\s*"(\w+)",(?:\s*metrics::Unit::\w+,)?\s*"([^"]*)"\s*\)', re.S)
    return dict(described.findall((DATA / "server_descriptions.rs.txt").read_text()))  # the later text wins


def source_bounds(name: str) -> tuple[float, ...]:
    """The bounds TGI's router gives a histogram, computed as its Rust code computes them."""
    text = (DATA / "server_buckets.rs.txt").read_text()
    if name.endswith("duration"):  # Matcher::Suffix("duration")
        count = int(re.search(r"let n_duration_buckets = (\d+);", text)[1])
        value = float(re.search(r"let mut value = ([\d.]+);", text)[1])
        factor = float(re.search(r"value \*= ([\d.]+);", text)[1])
        bounds = []
        for _ in range(count):
            value *= factor
            bounds.append(value)
        return tuple(bounds)
    limits = {"max_input_tokens": MAX_MODEL_LEN - 1, "max_total_tokens": MAX_MODEL_LEN}  # TGI's defaults
    block = text[text.index(f'Matcher::Full(String::from("{name}"))') :]
    count = int(re.search(r"\(0\.\.(\d+)\)", block)[1])
    per = re.search(r"\((\w+) as f64 / ([\d.]+)\) \* \(x \+ 1\) as f64", block.split(";")[1])
    if per is None:  # the batch sizes: (x + 1) as f64
        return tuple(float(x + 1) for x in range(count))
    return tuple((limits[per[1]] / float(per[2])) * (x + 1) for x in range(count))


def bounds_of(family) -> tuple[float, ...]:
    les = {float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"}
    return tuple(sorted(les))


def value(families: dict, name: str, sample: str | None = None, **labels: str) -> float:
    """prometheus-client's parser names every counter sample ``_total``, TGI's bare ones included."""
    family = families[name]
    sample = sample or (name + "_total" if family.type == "counter" else name)
    return sum(
        s.value for s in family.samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def traffic(client) -> None:
    """Successes (chat and completions, one streamed), a 429, an engine error and an abort mid-stream."""
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5}
    for _ in range(3):
        assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
    body = {"model": MODEL, "prompt": "Tell me a story", "max_tokens": 6, "ignore_eos": True, "stream": True}
    assert (await client.post("/v1/completions", json=body)).status_code == 200
    assert (await client.post("/v1/chat/completions", json=chat, headers={"X-Fakeai-Fault": "429"})).status_code == 429
    assert (await client.post("/v1/chat/completions", json=chat, headers={"X-Fakeai-Fault": "500"})).status_code == 500
    aborted = await client.post("/v1/chat/completions", json=chat, headers={"X-Fakeai-Fault": "abort"})
    assert aborted.status_code == 500  # fails mid-generation: TGI's "generation" failure


SETTINGS = {
    "models": (MODEL,),
    "metrics_dialect": ("tgi",),
    "max_model_len": MAX_MODEL_LEN,
    "itl_ms": 1,
    "overhead_ms": 0,
}


async def test_every_family_has_tgis_name_type_labels_help_and_bounds(app_client):
    catalog, help_of = source_catalog(), source_help()
    async with app_client(**SETTINGS) as (client, _):
        await traffic(client)
        response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    text = response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")  # TGI answers nothing else
    families = {f.name: f for f in text_string_to_metric_families(text) if f.name.startswith("tgi_")}
    assert set(catalog) - set(families) == set(NOT_EXPOSED)
    assert set(families) <= set(catalog), set(families) - set(catalog)
    for name, family in families.items():
        kind, labels = catalog[name]
        assert family.type == kind, name
        assert f"# TYPE {name} {kind}\n" in text  # counters too: under their own name, no _total
        if name in help_of:
            assert f"# HELP {name} {help_of[name]}\n" in text, name
        seen: dict[str, set[str]] = {}
        for sample in family.samples:
            for label, label_value in sample.labels.items():
                if label != "le":
                    seen.setdefault(label, set()).add(label_value)
        assert set(seen) == set(labels), name
        for label, values in seen.items():
            assert values <= labels[label], (name, label, values)
        if kind == "histogram":
            assert bounds_of(family) == source_bounds(name), name


async def test_values_are_the_native_ones(app_client):
    async with app_client(**SETTINGS) as (client, _):
        before = {f.name for f in text_string_to_metric_families((await client.get("/metrics")).text)}
        # metrics-rs creates a series when it is first recorded: nothing recorded, no request families.
        assert "tgi_request_count" not in before and "tgi_request_duration" not in before
        assert "tgi_queue_size" in before
        await traffic(client)
        text = (await client.get("/metrics")).text
        info = (await client.get("/info")).json()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert value(families, "tgi_request_count") == value(families, "fakeai_requests", "fakeai_requests_total") == 7
    assert value(families, "tgi_request_success") == 4
    failures = {s.labels["err"]: s.value for s in families["tgi_request_failure"].samples}
    assert failures == {"overloaded": 1, "generation": 2}
    assert value(families, "tgi_request_generated_tokens", "tgi_request_generated_tokens_sum") == value(
        families, "fakeai_request_completion_tokens", "fakeai_request_completion_tokens_sum"
    )
    prefill = value(families, "tgi_batch_inference_count", method="prefill")
    decode = value(families, "tgi_batch_inference_count", method="decode")
    assert (
        prefill >= 1
        and decode >= 4
        and prefill + decode == value(families, "fakeai_iteration_tokens", "fakeai_iteration_tokens_count")
    )
    assert value(families, "tgi_batch_next_size", "tgi_batch_next_size_sum") == value(
        families, "tgi_batch_next_size", "tgi_batch_next_size_count"
    )  # one request at a time: every admitted batch has one request
    forward = value(families, "tgi_batch_forward_duration", "tgi_batch_forward_duration_sum")
    send = value(families, "tgi_batch_filter_duration", "tgi_batch_filter_duration_sum")
    total = value(families, "tgi_batch_inference_duration", "tgi_batch_inference_duration_sum")
    assert total == pytest.approx(forward + send) and forward > send > 0
    assert value(families, "tgi_batch_max_total_tokens") == 4096 * 16
    assert (info["model_id"], info["max_input_tokens"], info["max_total_tokens"]) == (
        MODEL,
        MAX_MODEL_LEN - 1,
        MAX_MODEL_LEN,
    )
    assert info["router"] == "text-generation-router"


async def test_the_info_probe_answers_only_for_the_dialect(app_client):
    async with app_client(no_delay=True) as (client, _):
        assert (await client.get("/info")).status_code == 404


def test_one_server_speaks_tgi_for_one_model_only():
    with pytest.raises(ValueError, match="dialect tgi labels no model"):
        Settings(metrics_dialect=("tgi",))


async def test_requests_admitted_together_are_one_next_batch(app_client):
    async with app_client(**(SETTINGS | {"itl_ms": 20})) as (client, _):
        # One token each: they finish in the step that admitted them, which must still count them.
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 1}
        responses = await asyncio.gather(*(client.post("/v1/chat/completions", json=chat) for _ in range(3)))
        assert [r.status_code for r in responses] == [200] * 3
        families = {f.name: f for f in text_string_to_metric_families((await client.get("/metrics")).text)}
    # The three arrive before the engine's first step: one batch of three, not three of one.
    assert value(families, "tgi_batch_next_size", "tgi_batch_next_size_count") == 1
    assert value(families, "tgi_batch_next_size", "tgi_batch_next_size_sum") == 3


def test_batch_sizes_are_exact_at_every_bound_from_steps_counted_by_admitted():
    from exporter.views.tgi import batch_sizes

    group = batch_sizes({("1",): 2.0, ("3",): 1.0, ("2000",): 1.0})  # 2000: above TGI's last bound
    assert len(group.bounds) == 1024 and group.bounds[0] == 1.0 and group.bounds[-1] == 1024.0
    assert group.cumulative[:4] == [2.0, 2.0, 3.0, 3.0]
    assert group.cumulative[-1] == 3.0 and group.count == 4.0  # the 2000 is only in +Inf
    assert group.total == 1 * 2 + 3 + 2000
