"""The ``dynamo`` metrics dialect against NVIDIA Dynamo's own source: names, types, help, labels and bucket
bounds read from the excerpts kept verbatim in tests/data/dynamo/ (see its SOURCES.md), and values that
are exactly what fakeai's clients were given."""

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.buckets import dynamo_log_buckets, round_to_two_figures
from exporter.views.dynamo import NOT_EXPOSED, PREFIX

DATA = Path(__file__).resolve().parents[1] / "data" / "dynamo"
MODEL = "Qwen/Qwen3-0.6B"
TYPES = {"IntCounterVec": "counter", "IntGaugeVec": "gauge", "IntGauge": "gauge", "HistogramVec": "histogram"}
# One `let x = Kind::new(` of Metrics::build: its name constant, help, labels, and the bucket variable.
DEFINITION = re.compile(
    r"let (?P<var>\w+) = (?:prometheus::)?(?P<kind>\w+)::new\(\s*(?:\w+::new\(\s*)?"
    r"frontend_metric_name\(frontend_service::(?P<const>\w+)\),\s*"
    r'"(?P<help>(?:[^"\\]|\\.)*)",?\s*\)?'
    r"(?:\s*\.buckets\((?P<buckets>[^)]*\)?)\))?"
    r"(?:,\s*&\[(?P<labels>[^\]]*)\])?",
    re.S,
)
BUCKET_DEFAULTS = re.compile(r"let (?P<var>\w+) =\s*generate_log_buckets\((?P<args>[^)]*)\);", re.S)
CONFIG = re.compile(
    r"let \((?P<min>\w+), (?P<max>\w+), (?P<count>\w+)\) =\s*parse_bucket_config\(\s*env,\s*[\w:]+,\s*"
    r"(?P<dmin>[\d.]+),\s*(?P<dmax>[\d.]+),\s*(?P<dcount>\d+),?\s*\);",
    re.S,
)


def constants() -> dict[str, str]:
    """``frontend_service`` name constants (prometheus_names.rs)."""
    text = (DATA / "prometheus_names_frontend_service.rs.txt").read_text()
    return dict(re.findall(r'pub const (\w+): &str =\s*"([^"]*)";', text))


def rust_string(literal: str) -> str:
    """A Rust string literal's text: ``\\`` + newline drops the newline and the next line's indentation."""
    return re.sub(r"\\\n\s*", "", literal)


def source_catalog() -> dict[str, tuple[str, str, tuple[str, ...], tuple[float, ...] | None]]:
    """Every family ``Metrics::build`` creates: (type, help, labels, default bounds) by exposed name."""
    text = (DATA / "metrics_build.rs.txt").read_text()
    names = constants()
    defaults = {m["count"].removesuffix("_count"): m for m in CONFIG.finditer(text)}
    bounds_of: dict[str, tuple[float, ...]] = {}
    for m in BUCKET_DEFAULTS.finditer(text):
        config = defaults[m["args"].split(",")[0].strip().removesuffix("_min")]
        bounds_of[m["var"]] = dynamo_log_buckets(float(config["dmin"]), float(config["dmax"]), int(config["dcount"]))
    catalog = {}
    for m in DEFINITION.finditer(text):
        labels = tuple(re.findall(r'"(\w+)"', m["labels"] or ""))
        if m["labels"] and "frontend_service::" in m["labels"]:
            labels = ("<constant>",)  # labels named by constants: families fakeai does not expose
        variable = (m["buckets"] or "").removesuffix(".clone()")
        bounds = bounds_of.get(variable) if m["buckets"] else None
        if m["const"] in names:
            catalog[PREFIX + names[m["const"]]] = (TYPES[m["kind"]], rust_string(m["help"]), labels, bounds)
    return catalog


def unnamed() -> set[str]:
    """Constants ``Metrics::build`` uses that the stored prometheus_names.rs (another revision) lacks."""
    text = (DATA / "metrics_build.rs.txt").read_text()
    return {m["const"] for m in DEFINITION.finditer(text)} - set(constants())


def test_the_excerpt_is_read_whole():
    catalog = source_catalog()
    # Every family Metrics::build creates, but two whose name constants came after that prometheus_names.rs.
    assert len(catalog) == 28
    assert unnamed() == {"IMAGE_TOKENS_PER_REQUEST", "MODEL_MIGRATION_DURATION_SECONDS"}
    assert catalog[PREFIX + "requests_total"][2] == ("model", "endpoint", "request_type", "status", "error_type")
    assert catalog[PREFIX + "disconnected_clients"][:3] == ("gauge", "Number of disconnected clients", ())


def test_dynamos_own_bucket_examples():
    """metrics.rs's tests of ``round_to_sig_figs`` and ``generate_log_buckets``, against the port."""
    for value, rounded in [
        (0.0026, 0.0026),
        (0.26, 0.26),
        (0.2356, 0.24),
        (1.234, 1.2),
        (12.34, 12.0),
        (123.4, 120.0),
        (1234.0, 1200.0),
        (0.0, 0.0),
        (0.999, 1.0),
        (9.99, 10.0),
        (99.9, 100.0),
    ]:
        assert round_to_two_figures(value) == rounded
    buckets = dynamo_log_buckets(1.0, 100.0, 5)
    assert len(buckets) == 5 and buckets[0] == 0.0 and buckets[-1] == 100.0
    assert list(buckets) == sorted(set(buckets))


async def scrape(client) -> dict:
    """Families by their exposed name (the parser drops a counter's ``_total``, which Dynamo's names carry)."""
    text = (await client.get("/metrics")).text
    return {f.name + ("_total" if f.type == "counter" else ""): f for f in text_string_to_metric_families(text)}


async def test_every_family_has_dynamos_name_type_help_labels_and_bounds(app_client):
    catalog = source_catalog()
    async with app_client(no_delay=True, models=(MODEL,), metrics_dialect=("dynamo",)) as (client, _):
        for stream in (False, True):
            body = {"model": MODEL, "messages": [{"role": "user", "content": "hello " * 30}], "stream": stream}
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        assert (await client.post("/v1/embeddings", json={"model": MODEL, "input": "hi"})).status_code == 200
        refused = await client.post("/v1/chat/completions", json=body, headers={"X-Fakeai-Fault": "429"})
        assert refused.status_code == 429
        families = await scrape(client)
        response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    exposed = {name: family for name, family in families.items() if name.startswith(PREFIX)}
    for name, family in exposed.items():
        kind, help_text, labels, bounds = catalog[name]
        assert (family.type, family.documentation) == (kind, help_text), name
        for sample in family.samples:
            assert tuple(sorted(k for k in sample.labels if k != "le")) == tuple(sorted(labels)), name
        if bounds is not None:
            les = [float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")]
            assert sorted(set(les)) == [*bounds, float("inf")], name
    missing = set(catalog) - set(exposed)
    listed = {PREFIX + name.strip() for entry in NOT_EXPOSED for name in entry.split(",")}
    # A labelled family appears with its first series; no client went away in this test.
    assert missing == listed & set(catalog) | {PREFIX + "model_cancellation_total"}
    # Rust's prometheus crate speaks text 0.0.4 only, whatever is asked.
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")


def value(families: dict, name: str, **labels: str) -> float:
    family = families[PREFIX + name.removesuffix("_count")]
    return sum(
        s.value
        for s in family.samples
        if s.name == PREFIX + name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_counts_follow_what_each_client_was_given(app_client):
    settings = {"no_delay": True, "models": (MODEL, "other"), "model_dialects": {MODEL: ("dynamo",)}}
    async with app_client(**settings) as (client, _):
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "ignore_eos": True}
        for _ in range(3):
            assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
        async with client.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as streamed:
            assert streamed.status_code == 200
            await streamed.aread()
        refused = await client.post("/v1/chat/completions", json=chat, headers={"X-Fakeai-Fault": "429"})
        broken = await client.post(
            "/v1/completions", json={"model": MODEL, "prompt": "x"}, headers={"X-Fakeai-Fault": "500"}
        )
        assert (refused.status_code, broken.status_code) == (429, 500)
        assert (await client.post("/v1/chat/completions", json={**chat, "model": "other"})).status_code == 200
        families = await scrape(client)
    requests = {
        (s.labels["endpoint"], s.labels["request_type"], s.labels["status"], s.labels["error_type"]): s.value
        for s in families[PREFIX + "requests_total"].samples
    }
    assert requests == {
        ("chat_completions", "unary", "success", ""): 3,
        ("chat_completions", "stream", "success", ""): 1,
        ("chat_completions", "unary", "error", "overload"): 1,
        ("completions", "unary", "error", "internal"): 1,
    }
    assert value(families, "requests_started_total") == 6
    assert value(families, "model_rejection_total", endpoint="chat_completions") == 1
    assert value(families, "output_tokens_total") == 4 * 4
    assert value(families, "inflight_requests") == value(families, "queued_requests") == 0
    assert value(families, "request_duration_seconds_count") == 6
    assert value(families, "time_to_first_token_seconds_count") == 4
    assert value(families, "inter_token_latency_seconds_count") == 4 * 3
    # The other model speaks vLLM: none of its series take Dynamo's names.
    assert all(
        s.labels.get("model") != "other" for name, f in families.items() if name.startswith(PREFIX) for s in f.samples
    )


def test_a_dynamo_frontend_serves_many_models():
    from fakeai.settings import Settings

    assert Settings(models=("a", "b"), metrics_dialect=("dynamo",)).dialect_models("dynamo") == ("a", "b")


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        ("200", ""),
        ("400", "validation"),
        ("404", "not_found"),
        ("429", "overload"),
        ("499", "cancelled"),
        ("500", "internal"),
        ("501", "not_implemented"),
        ("503", "unavailable"),
    ],
)
def test_error_types_are_dynamos(status, error_type):
    from exporter.views.dynamo import error_type as classify

    assert classify(status) == error_type
    assert error_type == "" or error_type in constants().values()
