"""The official openai SDK against a real server: the calls users make, in both modes."""

import subprocess
import venv
from pathlib import Path

import numpy as np
import openai
import pytest

from fakeai.testing import ServerProcess

REPO = Path(__file__).resolve().parents[2]
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def exercise(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-test", max_retries=0)
    models = [m.id for m in client.models.list()]
    assert MODEL in models
    assert client.models.retrieve(MODEL).id == MODEL

    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello!"}], max_tokens=8)
    assert chat.choices[0].message.content and chat.usage.completion_tokens <= 8

    pieces, usage = [], None
    for chunk in client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    ):
        pieces += [c.delta.content for c in chunk.choices if c.delta.content]
        usage = chunk.usage or usage
    assert pieces and usage.completion_tokens == len(pieces)

    text = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    assert text.choices[0].text and text.usage.completion_tokens <= 5
    streamed = [
        c.choices[0].text
        for c in client.completions.create(model=MODEL, prompt="x", max_tokens=4, stream=True)
        if c.choices
    ]
    assert 1 <= len(streamed) <= 4

    # The SDK asks for base64 by default and decodes it itself.
    embedding = client.embeddings.create(model=MODEL, input=["a", "b"])
    vectors = np.array([d.embedding for d in embedding.data])
    assert vectors.shape == (2, 1536) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    floats = client.embeddings.create(model=MODEL, input="a", dimensions=8, encoding_format="float")
    assert len(floats.data[0].embedding) == 8

    # OpenAI's Responses API, in both modes.
    response = client.responses.create(model=MODEL, input="Hello!", instructions="Be brief.", max_output_tokens=16)
    assert response.output_text and response.usage.output_tokens <= 16
    assert response.usage.input_tokens > 0 and response.usage.input_tokens_details.cached_tokens >= 0
    deltas, completed = [], None
    for event in client.responses.create(model=MODEL, input=[{"role": "user", "content": "Hi"}], stream=True,
                                         max_output_tokens=6):  # fmt: skip
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.completed":
            completed = event.response
    assert completed is not None and completed.output_text == "".join(deltas)
    assert completed.usage.output_tokens == len(deltas)

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=[], max_tokens=1)
    assert bad.value.body["param"] == "messages"


def test_sdk_calls_succeed(start_server):
    exercise(start_server("--no-delay").url)


def test_sdk_sees_authentication_errors(start_server):
    server = start_server("--no-delay", "--api-keys", "sk-right")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0).models.list()
    assert openai.OpenAI(base_url=server.url + "/v1", api_key="sk-right").models.list().data


def test_fresh_venv_install_then_serve(tmp_path):
    """``pip install .`` into an empty venv, then ``python -m fakeai server`` from outside the source tree."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(REPO)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    where = subprocess.run(
        [python, "-c", "import fakeai; print(fakeai.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert str(env_dir) in where  # the installed copy, not the checkout
    script = subprocess.run([str(env_dir / "bin" / "fakeai"), "--version"], capture_output=True, text=True)
    assert script.returncode == 0 and "fakeai 0.1.0" in script.stdout
    with ServerProcess(["--no-delay"], python=python, cwd=tmp_path) as server:
        exercise(server.url)
