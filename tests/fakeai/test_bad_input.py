"""Bad input never gets a 5xx, always gets OpenAI's envelope, and never creates a labelled series."""

import json
import random
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from fakeai.app import create_app
from fakeai.settings import Settings
from fakeai.testing import MetricsSnapshot

MODEL = "m"  # random names below all start with "x", so none is served
POST_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
FIELDS = (
    "model",
    "messages",
    "prompt",
    "input",
    "stream",
    "stream_options",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "temperature",
    "top_p",
    "seed",
    "echo",
    "ignore_eos",
    "min_tokens",
    "encoding_format",
    "dimensions",
    "role",
    "content",
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | st.just(MODEL)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=25,
)
messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "bot", 3]), "content": json_values}), max_size=3
)
token_lists = st.lists(st.integers(), min_size=1, max_size=5)
inputs = st.one_of(
    st.text(max_size=20),
    st.lists(st.text(max_size=10), max_size=3),
    token_lists,
    st.lists(token_lists, max_size=3),
    json_values,
)
# Nearly valid bodies reach past validation: the engine and the renderers see odd values too.
nearly_valid = st.fixed_dictionaries(
    {"model": st.just(MODEL), "input": inputs, "prompt": inputs, "messages": messages},
    optional={k: json_values | st.integers() | st.booleans() for k in FIELDS[4:]},
)
bodies = st.one_of(
    nearly_valid,
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8),
    st.fixed_dictionaries(
        {"model": st.sampled_from([MODEL, "other", ""]), "messages": messages},
        optional={k: json_values for k in FIELDS[3:]},
    ),
    json_values,
)
raw_bodies = st.binary(max_size=200) | bodies.map(lambda b: json.dumps(b).encode())


def make_client() -> tuple[TestClient, CollectorRegistry]:
    registry = CollectorRegistry()
    settings = Settings(models=(MODEL,), no_delay=True, max_model_len=2048)
    return TestClient(create_app(settings, registry), raise_server_exceptions=False), registry


def assert_openai_answer(response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert isinstance(error["message"], str) and error["message"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(endpoint=st.sampled_from(POST_ENDPOINTS), body=raw_bodies)
def test_random_bodies_never_get_a_5xx(endpoint, body):
    client, _ = CLIENT
    response = client.post(endpoint, content=body, headers={"content-type": "application/json"})
    assert_openai_answer(response)


@settings(max_examples=100, deadline=None)
@given(
    path=st.text(alphabet=string.ascii_letters + string.digits + "-._~%/:@!$&'()*+,;=", max_size=40),
    method=st.sampled_from(["GET", "POST", "DELETE"]),
)
def test_random_paths_and_methods_never_get_a_5xx(path, method):
    client, _ = CLIENT
    response = client.request(method, "/v1/models/" + path)
    assert_openai_answer(response)


async def test_a_thousand_random_model_names_create_no_series(app_client):
    async with app_client(models=(MODEL,), no_delay=True, max_model_len=2048) as (client, registry):
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        for endpoint in POST_ENDPOINTS:  # after this, each endpoint's 404 series exists
            await client.post(endpoint, json={"model": "warm-up", **chat, "prompt": "x", "input": "x"})
        before = MetricsSnapshot.from_families(registry.collect()).series()
        rng = random.Random(5)
        alphabet = string.ascii_letters + string.digits + "/-_.:"
        names = ["x" + "".join(rng.choices(alphabet, k=rng.randint(1, 40))) for _ in range(1000)]
        for i, name in enumerate(names):
            endpoint = POST_ENDPOINTS[i % 3]
            body = {"model": name, **chat, "prompt": "x", "input": "x"}
            response = await client.post(endpoint, json=body)
            assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"
        after = MetricsSnapshot.from_families(registry.collect())
    assert after.series() == before
    label_values = {value for _, labels in after.samples for _, value in labels}
    assert not label_values & set(names)
    assert after.value("fakeai_http_requests_total", status="404") == 1003


# One app for the property tests: starting an app per example would dominate their run time.
CLIENT = make_client()
CLIENT[0].__enter__()
