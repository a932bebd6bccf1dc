"""The ``sglang`` metrics dialect against SGLang's own source: names, types, bucket bounds and label names
read from the excerpts kept verbatim in tests/data/sglang/ (see its SOURCES.md), and values that are the
native families' own."""

import ast
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

DATA = Path(__file__).resolve().parents[1] / "data" / "sglang"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
NOT_EXPOSED = {"sglang:num_so_requests": "structured output (grammar) requests are not simulated"}
TYPES = {"Gauge": "gauge", "Counter": "counter", "Histogram": "histogram"}


def source_catalog() -> dict[str, tuple[str, tuple[float, ...] | None]]:
    """Every family the collector excerpts define: its exposed name, type and bucket bounds."""
    catalog: dict[str, tuple[str, tuple[float, ...] | None]] = {}
    excerpts = [
        excerpt
        for path in ("collector_excerpts.py.txt", "metrics_collector_constants.py.txt")
        for excerpt in (DATA / path).read_text().split("# ---- excerpt ----\n")[1:]
    ]
    for excerpt in excerpts:
        tree = ast.parse(textwrap.dedent(excerpt))
        lists = {
            target.id: node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.List)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in TYPES):
                continue
            keywords = {keyword.arg: keyword.value for keyword in node.keywords}
            name = ast.literal_eval(keywords["name"])
            kind = TYPES[node.func.id]
            # Every one of these takes the collector's labels unchanged: no label of its own.
            assert ast.unparse(keywords["labelnames"]) == "labels.keys()", name
            buckets = keywords.get("buckets")
            if isinstance(buckets, ast.Call):  # generate_buckets(rule, defaults): the defaults, no rule given
                buckets = buckets.args[-1]
            if isinstance(buckets, ast.Name):
                buckets = lists[buckets.id]
            bounds = tuple(float(b) for b in ast.literal_eval(buckets)) if buckets is not None else None
            # prometheus-client exposes a Counter named x_total as the family x.
            catalog[name.removesuffix("_total") if kind == "counter" else name] = (kind, bounds)
    return catalog


def label_keys(path: str) -> tuple[str, ...]:
    """The keys of the labels dict an excerpt builds, in order (a later ``labels[k] = ...`` included)."""
    tree = ast.parse(textwrap.dedent((DATA / path).read_text()))
    keys: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys += [ast.literal_eval(key) for key in node.keys if key is not None]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            keys.append(ast.literal_eval(node.slice))
    return tuple(keys)


def exposed(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text) if f.name.startswith("sglang:")}


def bounds_of(family) -> tuple[float, ...]:
    return tuple(
        sorted(
            {float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"}
        )
    )


def value(family, **labels) -> float:
    return sum(s.value for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items()))


def count(family) -> float:
    return sum(s.value for s in family.samples if s.name.endswith("_count") and s.labels["model_name"] == MODEL)


async def scrape(client) -> str:
    return (await client.get("/metrics")).text


async def test_every_family_has_sglangs_name_type_bounds_and_labels(app_client):
    catalog = source_catalog()
    scheduler_labels = label_keys("scheduler_labels.py.txt")
    tokenizer_labels = set(label_keys("tokenizer_labels.py.txt"))
    settings = {"no_delay": True, "metrics_dialect": ("sglang",), "collect_tokens_histogram": True}
    async with app_client(**settings) as (client, _):
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
        assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        families = exposed(await scrape(client))
    assert set(catalog) - set(families) == set(NOT_EXPOSED)
    assert set(families) <= set(catalog), set(families) - set(catalog)
    for name, family in families.items():
        kind, bounds = catalog[name]
        assert family.type == kind, name
        if kind == "histogram":
            assert bounds_of(family) == bounds, name
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        # One engine per model: no dp_rank, as SGLang without --dp-size.
        assert labels in ({k for k in scheduler_labels if k != "dp_rank"}, tokenizer_labels), (name, labels)
        if labels != tokenizer_labels:
            sample = family.samples[0].labels
            assert (sample["engine_type"], sample["tp_rank"], sample["pp_rank"], sample["moe_ep_rank"]) == (
                "unified",
                "0",
                "0",
                "0",
            )


async def test_values_are_the_engines_own_beside_the_vllm_names(app_client):
    settings = {"no_delay": True, "metrics_dialect": ("vllm", "sglang"), "num_blocks": 512, "block_size": 16}
    async with app_client(**settings) as (client, _):
        body = {"model": MODEL, "prompt": "Tell me a story", "max_tokens": 6, "ignore_eos": True}
        for _ in range(5):
            assert (await client.post("/v1/completions", json=body)).status_code == 200
        aborted = await client.post("/v1/completions", json=body, headers={"X-Fakeai-Fault": "abort"})
        assert aborted.status_code == 500  # a failure mid-generation
        text = await scrape(client)
    families = exposed(text)
    vllm = {f.name: f for f in text_string_to_metric_families(text) if f.name.startswith("vllm:")}
    model = {"model_name": MODEL}
    assert value(families["sglang:num_requests"], **model) == 6
    assert value(families["sglang:num_aborted_requests"], **model) == 1
    assert value(vllm["vllm:request_success"], finished_reason="error", **model) == 1  # SGLang: FINISH_ABORT
    for sglang_name, vllm_name in (
        ("sglang:prompt_tokens", "vllm:prompt_tokens"),
        ("sglang:generation_tokens", "vllm:generation_tokens"),
        ("sglang:num_retracted_requests", "vllm:num_preemptions"),
    ):
        assert value(families[sglang_name], **model) == value(vllm[vllm_name], **model), sglang_name
    for sglang_name, vllm_name in (
        ("sglang:time_to_first_token_seconds", "vllm:time_to_first_token_seconds"),
        ("sglang:e2e_request_latency_seconds", "vllm:e2e_request_latency_seconds"),
        ("sglang:queue_time_seconds", "vllm:request_queue_time_seconds"),
    ):
        assert count(families[sglang_name]) == count(vllm[vllm_name]) >= 5, sglang_name
    assert value(families["sglang:max_total_num_tokens"], **model) == 512 * 16
    assert value(families["sglang:num_used_tokens"], **model) == 0  # nothing running any more


async def test_data_parallel_ranks_label_the_scheduler_side_only(app_client):
    async with app_client(no_delay=True, metrics_dialect=("sglang",), data_parallel_size=2) as (client, _):
        families = exposed(await scrape(client))
    running = families["sglang:num_running_reqs"]
    assert {s.labels["dp_rank"] for s in running.samples if s.labels["model_name"] == MODEL} == {"0", "1"}
    assert all("dp_rank" not in s.labels for s in families["sglang:prompt_tokens"].samples)


async def test_sglang_names_appear_only_when_the_dialect_is_on(app_client):
    for dialects, spoken in ((("vllm",), False), (("vllm", "sglang"), True)):
        async with app_client(no_delay=True, metrics_dialect=dialects) as (client, _):
            text = await scrape(client)
        assert ("sglang:" in text) is spoken, dialects


async def test_one_server_plays_a_mixed_fleet_each_model_under_its_own_names(app_client):
    # --model-profile MODEL:dialect=...: the 8B answers as vLLM, the 70B as SGLang, the Qwen as both.
    vllm_only, sglang_only, both = (
        "meta-llama/Llama-3.1-8B-Instruct",
        "meta-llama/Llama-3.1-70B-Instruct",
        "Qwen/Qwen2.5-7B-Instruct",
    )
    dialects = {sglang_only: ("sglang",), both: ("vllm", "sglang")}
    async with app_client(no_delay=True, models=(vllm_only, sglang_only, both), model_dialects=dialects) as (client, _):
        sent = {vllm_only: 2, sglang_only: 3, both: 4}
        for model, times in sent.items():
            for _ in range(times):
                body = {"model": model, "prompt": "Hi", "max_tokens": 2}
                assert (await client.post("/v1/completions", json=body)).status_code == 200
        text = await scrape(client)
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def models_in(prefix: str) -> set[str]:
        named = {
            s.labels.get("model_name") for name, f in families.items() if name.startswith(prefix) for s in f.samples
        }
        return named - {None}  # server-wide families (scheduler_policy_info, ...) name no model

    assert models_in("vllm:") == {vllm_only, both}
    assert models_in("sglang:") == {sglang_only, both}
    finished = families["vllm:request_success"]
    for model in (vllm_only, both):
        assert value(finished, model_name=model) == sent[model]
    for model in (sglang_only, both):
        assert value(families["sglang:num_requests"], model_name=model) == sent[model]
    # The native families and the HTTP view keep every model, whatever its dialect.
    native = families["fakeai_requests"]
    assert {model: value(native, model=model) for model in sent} == sent


async def test_sglangs_probes_answer_as_its_http_server_does_and_only_for_the_dialect(app_client):
    settings = {"no_delay": True, "metrics_dialect": ("sglang",), "enable_sleep_mode": True}
    async with app_client(**settings) as (client, _):
        info = (await client.get("/get_model_info")).json()
        assert info == {
            "model_path": MODEL,
            "tokenizer_path": MODEL,
            "is_generation": True,
            "preferred_sampling_params": None,
            "weight_version": "default",
        }
        assert (await client.get("/health_generate")).status_code == 200
        assert (await client.post("/sleep?level=1")).status_code == 200
        assert (await client.get("/health_generate")).status_code == 503  # an engine asleep answers nothing
        assert (await client.post("/wake_up")).status_code == 200
        assert (await client.get("/health_generate")).status_code == 200
    async with app_client(no_delay=True) as (client, _):
        assert (await client.get("/get_model_info")).status_code == 404  # a vLLM has no such path


async def test_the_router_form_has_the_same_families_with_an_underscore(app_client):
    async with app_client(no_delay=True, metrics_dialect=("sglang",)) as (client, _):
        colon = {f.name: f for f in text_string_to_metric_families(await scrape(client)) if f.name.startswith("sglang")}
    async with app_client(no_delay=True, metrics_dialect=("sglang_",)) as (client, _):
        text = await scrape(client)
        assert (await client.get("/get_model_info")).status_code == 200
    underscore = {f.name: f for f in text_string_to_metric_families(text) if f.name.startswith("sglang")}
    assert "sglang:" not in text
    assert set(underscore) == {name.replace("sglang:", "sglang_") for name in colon}
    for name, family in colon.items():
        twin = underscore[name.replace("sglang:", "sglang_")]
        assert (twin.type, [s.labels for s in twin.samples]) == (family.type, [s.labels for s in family.samples])


async def test_token_length_histograms_only_with_collect_tokens_histogram(app_client):
    for collect, shown in ((False, False), (True, True)):
        settings = {"no_delay": True, "metrics_dialect": ("sglang",), "collect_tokens_histogram": collect}
        async with app_client(**settings) as (client, _):
            body = {"model": MODEL, "prompt": "Hi there", "max_tokens": 3, "ignore_eos": True}
            assert (await client.post("/v1/completions", json=body)).status_code == 200
            text = await scrape(client)
        assert ("sglang:generation_tokens_histogram" in text) is shown
        native = {f.name: f for f in text_string_to_metric_families(text)}["fakeai_request_completion_tokens"]
        assert 1100000.0 not in bounds_of(native)  # SGLang's last bound: recorded for its view, not exposed
        if shown:
            generation = exposed(text)["sglang:generation_tokens_histogram"]
            assert value(generation) > 0
            sums = [s.value for s in generation.samples if s.name.endswith("_sum") and s.labels["model_name"] == MODEL]
            assert sums == [3.0]
