"""The ``trtllm`` metrics dialect against TensorRT-LLM's own source: names, types, bucket bounds, labels and
path read from the excerpts kept verbatim in tests/data/trtllm/ (see its SOURCES.md), and values that are
the native families' own."""

import ast
import re
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakeai.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data" / "trtllm"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
TYPES = {"Gauge": "gauge", "Counter": "counter", "Histogram": "histogram"}
NOT_EXPOSED = {
    "trtllm_kv_cache_hit_rate": "block-level reuse is not simulated: fakeai counts prefix-cache hits in tokens",
    "trtllm_kv_cache_reused_blocks": "block-level reuse is not simulated",
    "trtllm_kv_cache_missed_blocks": "block-level reuse is not simulated",
    "trtllm_kv_cache_iter_reuse_rate": "block-level reuse is not simulated",
    "trtllm_kv_cache_iter_reused_blocks": "block-level reuse is not simulated",
    "trtllm_kv_cache_iter_full_reused_blocks": "block-level reuse is not simulated",
    "trtllm_kv_cache_iter_partial_reused_blocks": "block-level reuse is not simulated",
    "trtllm_kv_cache_iter_missed_blocks": "block-level reuse is not simulated",
    "trtllm_kv_cache_gen_alloc_blocks": "per-iteration allocation counts are not kept",
    "trtllm_kv_cache_host_utilization": "no host (secondary) KV pool",
    "trtllm_kv_cache_onboard_bytes": "no host (secondary) KV pool",
    "trtllm_kv_cache_offload_bytes": "no host (secondary) KV pool",
    "trtllm_kv_cache_disk_prefetch_blocks": "no disk KV tier",
    "trtllm_kv_cache_intra_device_copy_bytes": "no device memory",
    "trtllm_prompt_cache_hit_tokens": "no KV cache tiers",
    "trtllm_iteration_latency_seconds": "no per-iteration latency gauge is kept",
    "trtllm_gpu_memory_usage_bytes": "no device memory",
    "trtllm_cpu_memory_usage_bytes": "no device memory",
    "trtllm_pinned_memory_usage_bytes": "no device memory",
    "trtllm_num_context_requests": "per-iteration batch composition is not kept",
    "trtllm_num_generation_requests": "per-iteration batch composition is not kept",
    "trtllm_num_paused_requests": "per-iteration batch composition is not kept",
    "trtllm_num_scheduled_requests": "per-iteration batch composition is not kept",
    "trtllm_total_context_tokens": "per-iteration batch composition is not kept",
    "trtllm_avg_decoded_tokens_per_iter": "per-iteration batch composition is not kept",
    "trtllm_prefill_batch_occupancy": "per-iteration batch composition is not kept",
    "trtllm_prefill_batch_tokens": "per-iteration batch composition is not kept",
    "trtllm_prompt_cached_tokens_per_request": "no per-request cached-token histogram is kept",
    "trtllm_spec_decode_acceptance_length": "per-iteration speculative stats are not kept",
    "trtllm_spec_decode_draft_overhead": "per-iteration speculative stats are not kept",
    "trtllm_spec_decode_drafted_tokens": "per-position draft counts are not kept",
    "trtllm_spec_decode_accepted_tokens": "per-position counts are the vllm view's, by position from 0",
    "trtllm_prefill_perplexity": "no logits",
    "trtllm_generation_perplexity": "no logits",
}
SPECULATIVE = {"trtllm_spec_decode_num_draft_tokens", "trtllm_spec_decode_num_accepted_tokens"}
"""Exposed with a speculative config only: TensorRT-LLM logs them from specDecodingStats."""


def source_catalog() -> dict[str, tuple[str, tuple[float, ...] | None, str]]:
    """Every family ``MetricsCollector.__init__`` registers: exposed name, type, bounds and label set."""
    tree = ast.parse(textwrap.dedent((DATA / "collector_init.py.txt").read_text()))
    catalog: dict[str, tuple[str, tuple[float, ...] | None, str]] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in TYPES):
            continue
        keywords = {keyword.arg: keyword.value for keyword in node.keywords}
        name_expr = keywords["name"]
        assert isinstance(name_expr, ast.BinOp) and ast.unparse(name_expr.left) == "self.metric_prefix"
        name = "trtllm_" + ast.literal_eval(name_expr.right)
        kind = TYPES[node.func.id]
        buckets = keywords.get("buckets")
        if isinstance(buckets, ast.BoolOp):  # ``custom or [defaults]``
            buckets = buckets.values[-1]
        bounds = tuple(float(b) for b in ast.literal_eval(buckets)) if buckets is not None else None
        labels = ast.unparse(keywords["labelnames"]).removeprefix("self.").removesuffix(".keys()")
        # prometheus-client exposes a Counter named x_total as the family x.
        catalog[name.removesuffix("_total") if kind == "counter" else name] = (kind, bounds, labels)
    return catalog


def collector_labels() -> dict[str, str]:
    tree = ast.parse(
        textwrap.dedent((DATA / "openai_server_labels.py.txt").read_text()).replace("if ", "if True or ", 1)
    )
    (labels,) = [node for node in ast.walk(tree) if isinstance(node, ast.Dict)]
    return ast.literal_eval(labels)


def exposed(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text) if f.name.startswith("trtllm_")}


def bounds_of(family) -> tuple[float, ...]:
    les = {float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"}
    return tuple(sorted(les))


def value(family, suffix: str = "", **labels) -> float:
    return sum(
        s.value
        for s in family.samples
        if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def run_some(client, times: int = 3) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
    for _ in range(times):
        assert (await client.post("/v1/chat/completions", json=body)).status_code == 200


async def test_every_family_has_trtllms_name_type_bounds_and_labels(app_client):
    catalog = source_catalog()
    labels = collector_labels()
    label_sets = {
        "labels": set(labels),
        "labels_with_finished_reason": {*labels, "finished_reason"},
        "labels_with_http_code": {*labels, "http_code"},
    }
    settings = {"no_delay": True, "models": (MODEL,), "metrics_dialect": ("trtllm",), "error_rate": 0.0}
    async with app_client(**settings) as (client, _):
        await run_some(client)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
        busy = await client.post("/v1/chat/completions", json=body, headers={"X-Fakeai-Fault": "429"})
        assert busy.status_code == 429
        families = exposed((await client.get("/metrics")).text)
    assert set(catalog) - set(families) == set(NOT_EXPOSED) | SPECULATIVE
    assert set(families) <= set(catalog), set(families) - set(catalog)
    for name, family in families.items():
        kind, bounds, label_set = catalog[name]
        assert family.type == kind, name
        if kind == "histogram":
            assert bounds_of(family) == bounds, name
        assert family.samples, name  # each family the requests above move has its series
        for sample in family.samples:
            assert {k for k in sample.labels if k != "le"} == label_sets[label_set], name
            assert {k: sample.labels[k] for k in labels} == labels, name  # model_name="undefined", as there


async def test_values_are_the_native_ones(app_client):
    settings = {
        "no_delay": True,
        "models": (MODEL,),
        "metrics_dialect": ("vllm", "trtllm"),
        "num_blocks": 300,
        "block_size": 32,
        "max_num_seqs": 48,
        "max_num_batched_tokens": 4096,
    }
    async with app_client(**settings) as (client, _):
        before = exposed((await client.get("/metrics")).text)
        # TensorRT-LLM creates a child on its first increment: nothing counted yet, no series.
        assert not before["trtllm_request_success"].samples
        assert not before["trtllm_prompt_tokens"].samples
        assert not before["trtllm_e2e_request_latency_seconds"].samples
        assert value(before["trtllm_prompt_cached_tokens"]) == 0  # the one created up front
        await run_some(client, 4)
        body = {"model": MODEL, "prompt": "Tell me a story", "max_tokens": 6}
        aborted = await client.post("/v1/completions", json=body, headers={"X-Fakeai-Fault": "abort"})
        assert aborted.status_code == 500
        text = (await client.get("/metrics")).text
    families = exposed(text)
    vllm = {f.name: f for f in text_string_to_metric_families(text) if f.name.startswith("vllm:")}
    success = families["trtllm_request_success"]
    assert value(success, "_total", finished_reason="length") == 4
    assert value(families["trtllm_num_requests_completed"], "_total") == 5
    assert value(families["trtllm_request_error"], "_total", http_code="500") == 1
    for trtllm_name, vllm_name in (
        ("trtllm_prompt_tokens", "vllm:prompt_tokens"),
        ("trtllm_generation_tokens", "vllm:generation_tokens"),
    ):
        assert value(families[trtllm_name], "_total") == value(vllm[vllm_name], "_total") > 0, trtllm_name
    for trtllm_name, vllm_name in (
        ("trtllm_e2e_request_latency_seconds", "vllm:e2e_request_latency_seconds"),
        ("trtllm_time_to_first_token_seconds", "vllm:time_to_first_token_seconds"),
        ("trtllm_request_queue_time_seconds", "vllm:request_queue_time_seconds"),
        ("trtllm_request_inference_time_seconds", "vllm:request_inference_time_seconds"),
    ):
        for suffix in ("_count", "_sum"):
            assert value(families[trtllm_name], suffix) == value(vllm[vllm_name], suffix), trtllm_name
    limits = {
        "trtllm_kv_cache_max_blocks": 300,
        "trtllm_kv_cache_used_blocks": 0,
        "trtllm_kv_cache_free_blocks": 300,
        "trtllm_kv_cache_tokens_per_block": 32,
        "trtllm_kv_cache_utilization": 0,
        "trtllm_max_num_active_requests": 48,
        "trtllm_max_batch_size_static": 48,
        "trtllm_max_num_tokens_runtime": 4096,
        "trtllm_num_requests_running": 0,
    }
    assert {name: value(families[name]) for name in limits} == limits


async def test_speculative_counters_appear_with_a_speculative_config(app_client):
    settings = {
        "no_delay": True,
        "models": (MODEL,),
        "metrics_dialect": ("trtllm",),
        "speculative_config": {"method": "ngram", "num_speculative_tokens": 3},
    }
    async with app_client(**settings) as (client, _):
        await run_some(client, 2)
        families = exposed((await client.get("/metrics")).text)
    drafts = value(families["trtllm_spec_decode_num_draft_tokens"], "_total")
    assert drafts > 0
    assert 0 <= value(families["trtllm_spec_decode_num_accepted_tokens"], "_total") <= drafts


async def test_the_exposition_is_also_where_trtllm_serve_mounts_it(app_client):
    (path,) = re.findall(r'Mount\("([^"]+)"', (DATA / "openai_server_mount.py.txt").read_text())
    async with app_client(no_delay=True, models=(MODEL,), metrics_dialect=("trtllm",)) as (client, _):
        mounted = await client.get(path)
        assert mounted.status_code == 200
        assert "trtllm_num_requests_running" in mounted.text
    async with app_client(no_delay=True) as (client, _):
        assert (await client.get(path)).status_code == 404  # a vLLM has no such path


def test_one_server_speaks_trtllm_for_one_model_only():
    with pytest.raises(ValueError, match="speaks for one model, not 3"):
        Settings(metrics_dialect=("trtllm",))
    two = Settings(models=(MODEL, "other"), model_dialects={"other": ("trtllm",)})
    assert two.dialect_models("trtllm") == ("other",)
