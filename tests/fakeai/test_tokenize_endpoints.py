"""vLLM's /tokenize and /detokenize: the counts the generation endpoints bill, the shipped tokenizer's ids."""

import pytest

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count 12345 tokens, naïvely!"}]


async def test_tokenize_counts_a_prompt_as_completions_bills_it_and_detokenize_gives_it_back(app_client):
    prompt = "Count 12345 tokens, naïvely! 你好 <|user|>"
    async with app_client(no_delay=True, max_model_len=4096) as (client, _):
        answer = (await client.post("/tokenize", json={"model": MODEL, "prompt": prompt})).json()
        billed = await client.post("/v1/completions", json={"model": MODEL, "prompt": prompt, "max_tokens": 1})
        assert answer["count"] == len(answer["tokens"]) == billed.json()["usage"]["prompt_tokens"]
        assert answer["max_model_len"] == 4096 and answer["token_strs"] is None
        back = await client.post("/detokenize", json={"model": MODEL, "tokens": answer["tokens"]})
        assert back.status_code == 200 and back.json() == {"prompt": prompt}
        strs = (await client.post("/tokenize", json={"prompt": prompt, "return_token_strs": True})).json()
        assert "".join(strs["token_strs"]) == prompt and strs["tokens"] == answer["tokens"]
        assert strs["token_strs"][:3] == ["Cou", "nt", " 123"]
        assert len(set(strs["tokens"])) == len(set(strs["token_strs"])) == 16  # one id a piece: one space twice


async def test_tokenize_frames_messages_as_chat_completions_bills_them(app_client):
    async with app_client(no_delay=True) as (client, _):
        answer = (await client.post("/tokenize", json={"model": MODEL, "messages": MESSAGES})).json()
        billed = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES, "max_tokens": 1})
        assert answer["count"] == billed.json()["usage"]["prompt_tokens"]
        bare = await client.post("/tokenize", json={"messages": MESSAGES, "add_generation_prompt": False})
        assert bare.json()["count"] == answer["count"] - 1  # without the marker that primes the reply
        text = (await client.post("/detokenize", json={"tokens": answer["tokens"]})).json()["prompt"]
        assert text == "<|system|>Be brief.<|end|><|user|>Count 12345 tokens, naïvely!<|end|><|assistant|>"


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/tokenize", {"model": MODEL}, 400, "prompt"),
        ("/tokenize", {"model": "no-such-model", "prompt": "x"}, 404, "model"),
        ("/tokenize", {"prompt": 5}, 400, "prompt"),
        ("/tokenize", {"messages": [{"role": "user"}]}, 400, "messages[0].content"),
        ("/detokenize", {"tokens": [-1]}, 400, "tokens[0]"),
        ("/detokenize", {"tokens": [10**12]}, 400, "tokens"),
        ("/detokenize", {"model": "no-such-model", "tokens": [1]}, 404, "model"),
    ],
)
async def test_bad_requests_get_openai_errors_naming_the_parameter(app_client, path, body, status, param):
    async with app_client(no_delay=True) as (client, _):
        answer = await client.post(path, json=body)
    assert answer.status_code == status
    assert answer.json()["error"]["param"] == param
