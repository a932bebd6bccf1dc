"""What the llm-d router's endpoint picker scrapes from each engine (its ``defaultEngineConfigs``, kept
verbatim in tests/data/llm-d/) is on fakeai's /metrics in the matching dialect, with the value the picker
wants: queue and running counts, KV usage, and the pool's block size and block count."""

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

DATA = Path(__file__).resolve().parents[1] / "data" / "llm-d" / "factories_default_engine_configs.go.txt"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
DIALECTS = {"vllm": "vllm", "sglang": "sglang", "trtllm-serve": "trtllm"}
NOT_SERVED = {
    "atom": "not an engine fakeai imitates",
    "triton-tensorrt-llm": "Triton's TensorRT-LLM backend is not a dialect of fakeai",
    "triton": "Triton's non-LLM metrics are not a dialect of fakeai",
}
NOT_EXPORTED = {
    ("vllm", "LoRALoadedSpec"): "proposed for vLLM (PR #45411, closed unmerged): no vLLM exports it",
    ("vllm", "LoRAGPULoadedSpec"): "proposed for vLLM (PR #45411, closed unmerged): no vLLM exports it",
    ("vllm", "LoRAGPUSlotsSpec"): "proposed for vLLM (PR #45411, closed unmerged): no vLLM exports it",
}
BLOCK_SIZE, NUM_BLOCKS = 32, 700


def engine_configs() -> dict[str, dict[str, str]]:
    """``Name`` -> its non-empty ``...Spec`` fields (and label-name overrides), parsed from the Go literal."""
    configs: dict[str, dict[str, str]] = {}
    for block in re.findall(r"\t\{\n(.*?)\n\t\}", DATA.read_text(), flags=re.S):
        fields = dict(re.findall(r'^\t\t(\w+):\s+"([^"]*)",$', block, flags=re.M))
        configs[fields.pop("Name")] = {key: spec for key, spec in fields.items() if spec}
    return configs


def find(families: dict, spec: str) -> list:
    """The samples a picker spec (``name`` or ``name{label=value}``) selects."""
    name, _, selector = spec.partition("{")
    wanted = dict(pair.split("=") for pair in selector.rstrip("}").split(",") if pair)
    family = families.get(name.removesuffix("_total"))
    samples = family.samples if family is not None else []
    return [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in wanted.items())]


async def test_the_picker_finds_every_metric_it_reads_in_the_matching_dialect(app_client):
    configs = engine_configs()
    assert set(configs) == set(DIALECTS) | set(NOT_SERVED)
    checked = 0
    for engine, dialect in DIALECTS.items():
        settings = {
            "itl_ms": 1,  # an engine that steps (with no_delay nothing is scheduled, and LoRA reports nothing)
            "overhead_ms": 0,
            "models": (MODEL,),
            "metrics_dialect": (dialect,),
            "block_size": BLOCK_SIZE,
            "num_blocks": NUM_BLOCKS,
            "enable_lora": True,
        }
        async with app_client(**settings) as (client, _):
            body = {"model": MODEL, "prompt": "Hi", "max_tokens": 2}
            assert (await client.post("/v1/completions", json=body)).status_code == 200
            families = {f.name: f for f in text_string_to_metric_families((await client.get("/metrics")).text)}
        config = configs[engine]
        for field, spec in config.items():
            if not field.endswith("Spec") or (engine, field) in NOT_EXPORTED:
                continue
            samples = find(families, spec)
            assert samples, (engine, field, spec)
            checked += 1
            if field == "CacheInfoSpec":  # an info gauge: the geometry is in its labels
                labels = samples[0].labels
                size_label = config.get("CacheBlockSizeLabelName", "block_size")
                count_label = config.get("CacheNumBlocksLabelName", "num_gpu_blocks")
                assert (labels[size_label], labels[count_label]) == (str(BLOCK_SIZE), str(NUM_BLOCKS)), engine
            elif field == "CacheBlockSizeSpec":
                assert [s.value for s in samples] == [BLOCK_SIZE], engine
            elif field == "CacheNumBlocksSpec":
                assert [s.value for s in samples] == [NUM_BLOCKS], engine
            elif field in ("QueuedRequestsSpec", "RunningRequestsSpec", "KVUsageSpec"):
                assert all(s.value == 0 for s in samples), (engine, field)  # nothing in flight any more
    assert checked == 15  # vLLM: queue, running, KV, LoRA, cache info; SGLang and trtllm-serve: 5 each
