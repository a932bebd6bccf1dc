import gzip

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from fakeai.__main__ import server_registry

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


async def test_text_format_by_default(app_client):
    async with app_client(no_delay=True) as (client, _):
        response = await client.get("/metrics", headers={"accept-encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert {"fakeai_requests", "vllm:request_success", "http_requests"} <= names


async def test_openmetrics_when_asked(app_client):
    async with app_client(no_delay=True) as (client, _):
        response = await client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    found = {f.name: f for f in parse_openmetrics(response.text)}
    ttft = found["vllm:time_to_first_token_seconds"]
    # Sample names keep vLLM's colon (prometheus-client alone would write vllm_..._bucket here).
    assert {s.name for s in ttft.samples} >= {"vllm:time_to_first_token_seconds_bucket"}
    assert "vllm_time_to_first_token" not in response.text


async def test_gzip_when_accepted(app_client):
    async with app_client(no_delay=True) as (client, _):
        # httpx would decompress transparently; read the raw stream to see the wire bytes.
        request = client.build_request("GET", "/metrics", headers={"accept-encoding": "gzip"})
        response = await client.send(request, stream=True)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.headers["content-encoding"] == "gzip"
    assert b"fakeai_requests_total" in gzip.decompress(raw)


async def test_name_filter_restricts_families(app_client):
    async with app_client(no_delay=True) as (client, _):
        response = await client.get("/metrics", params=[("name[]", "fakeai_requests_total")])
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert names == {"fakeai_requests"}


async def test_name_filter_finds_the_process_families_and_the_cache_config_of_the_served_registry(app_client):
    # vLLM serves prometheus-client's default registry, where ?name[]= finds process_* and python_info;
    # our view's cache config appears only once an engine has loaded, and must be found then too.
    wanted = ("process_cpu_seconds_total", "python_info", "vllm:cache_config_info", "vllm:num_requests_running")
    async with app_client(registry=server_registry(), no_delay=True) as (client, _):
        # One name a request: a collector asked for by another name would bring the family along.
        found = {}
        for name in wanted:
            text = (await client.get("/metrics", params={"name[]": name})).text
            found[name] = {f.name for f in text_string_to_metric_families(text)}
    assert found == {
        "process_cpu_seconds_total": {"process_cpu_seconds"},
        "python_info": {"python_info"},
        "vllm:cache_config_info": {"vllm:cache_config_info"},
        "vllm:num_requests_running": {"vllm:num_requests_running"},
    }


async def test_vllm_view_can_be_switched_off(app_client):
    async with app_client(no_delay=True, vllm_metrics=False) as (client, _):
        response = await client.get("/metrics")
    assert "vllm:" not in response.text
    assert "fakeai_requests_total" in response.text
