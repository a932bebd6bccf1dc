"""The multi-modal processor cache: image and audio items of chat prompts, looked up by content, counted
in items as vLLM's ``vllm:mm_cache_queries`` and ``vllm:mm_cache_hits``."""

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fakeai.engine.mm_cache import MultiModalCache, item_key

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
VLLM = {"model_name": MODEL, "engine": "0"}


def image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def chat(*parts: dict) -> dict:
    content = [{"type": "text", "text": "what is this?"}, *parts]
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 2}


def test_repeated_items_hit_and_the_least_recently_used_leave_first():
    cache = MultiModalCache(capacity=2)
    a, b, c = (item_key(x) for x in "abc")
    assert cache.look_up([a, b, a]) == (3, 1)  # an item repeated within one prompt hits too
    assert cache.look_up([c]) == (1, 0)  # b, the least recently used, leaves
    assert cache.look_up([a, b]) == (2, 1)
    assert len(item_key("x" * 1_000_000)) == 16  # a key's size does not grow with the item


def samples(registry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("vllm:mm_cache") and s.labels == VLLM
    }


async def test_the_vllm_view_counts_items_looked_up_and_found(app_client):
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    async with app_client(no_delay=True) as (client, registry):
        assert samples(registry) == {"vllm:mm_cache_queries_total": 0.0, "vllm:mm_cache_hits_total": 0.0}
        for body in (chat(image("https://img.example/1.png"), audio), chat(image("https://img.example/1.png"))):
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        # Text-only prompts look nothing up.
        text_only = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert (await client.post("/v1/chat/completions", json=text_only)).status_code == 200
        assert samples(registry) == {"vllm:mm_cache_queries_total": 3.0, "vllm:mm_cache_hits_total": 1.0}


async def test_an_image_part_without_its_url_is_a_400_naming_it(app_client):
    async with app_client(no_delay=True) as (client, registry):
        response = await client.post("/v1/chat/completions", json=chat({"type": "image_url", "image_url": {}}))
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "messages[0].content[1].image_url.url"
        unknown = await client.post("/v1/chat/completions", json=chat({"type": "video"}))
        assert unknown.status_code == 400
        assert unknown.json()["error"]["param"] == "messages[0].content[1].type"
        assert "'image_url', 'input_audio'" in unknown.json()["error"]["message"]
        assert samples(registry)["vllm:mm_cache_queries_total"] == 0.0


def test_every_content_part_type_is_named_in_the_error_for_an_unknown_one():
    from fakeai.schemas import CONTENT_PART_TYPES, ContentPart

    assert {part.__struct_config__.tag for part in ContentPart.__args__} == set(CONTENT_PART_TYPES)
