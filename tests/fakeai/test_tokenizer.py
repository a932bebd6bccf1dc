"""The shipped tokenizer counts, numbers and decodes text exactly as the server does."""

import json
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from fakeai.__main__ import main
from fakeai.engine import vocabulary
from fakeai.engine.tokens import PIECE_PATTERN, SPECIAL_TOKENS, WHITESPACE, chat_prompt_tokens, tokenize

BATCH, BATCHES = 50, 100  # 5,000 strings, drawn as lists: hypothesis draws a list far faster than 50 examples


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tokenizer")
    assert main(["tokenizer", str(directory), "--max-model-len", "4096"]) == 0
    return directory


@pytest.fixture(scope="module")
def shipped(folder: Path) -> Tokenizer:
    return Tokenizer.from_file(str(folder / "tokenizer.json"))


def ids(text: str) -> list[int]:
    return [vocabulary.token_id(piece) for piece in tokenize(text)]


# Each string: text of any Unicode category, then a chat marker or something that looks like one, then text
# of the characters the rule treats apart (digits, punctuation, every whitespace, ASCII controls, Unicode
# spaces, letters, marks and digits beyond ASCII). Three lists joined: hypothesis draws plain text far
# faster than a mix of strategies.
_MIXED = string.digits + string.punctuation + WHITESPACE + "aZ\x00\x1c\x85\xa0\u3000é你\u0301²٣😀"
_MARKERS = (*SPECIAL_TOKENS, "<unk>", "<|user", "|>", "", " the", "Hello", "ABC")
TEXTS = st.tuples(
    st.lists(st.text(max_size=30), min_size=BATCH, max_size=BATCH),
    st.lists(st.sampled_from(_MARKERS), min_size=BATCH, max_size=BATCH),
    st.lists(st.text(alphabet=_MIXED, max_size=30), min_size=BATCH, max_size=BATCH),
).map(lambda parts: ["".join(three) for three in zip(*parts, strict=True)])


@settings(max_examples=BATCHES, deadline=None, database=None)
@given(texts=TEXTS)
def test_the_shipped_tokenizer_counts_and_numbers_every_text_as_the_server(shipped: Tokenizer, texts: list[str]):
    for text, encoding in zip(texts, shipped.encode_batch(texts), strict=True):
        assert encoding.ids == ids(text), text
        if vocabulary.UNKNOWN_ID not in encoding.ids:
            assert shipped.decode(encoding.ids, skip_special_tokens=False) == text


def test_every_id_is_one_piece_and_back(shipped: Tokenizer):
    listed = dict(vocabulary.entries())
    assert shipped.get_vocab() == listed
    for piece, token in listed.items():
        if token != vocabulary.UNKNOWN_ID:
            assert tokenize(piece) == [piece] and vocabulary.token_id(piece) == token
    # The blocks meet: the highest ASCII piece is just below the first non-ASCII character.
    assert vocabulary.piece(vocabulary.NON_ASCII_BASE - 1) == " zzz"
    assert vocabulary.piece(vocabulary.NON_ASCII_BASE) == "\x80"
    assert vocabulary.piece(vocabulary.VOCABULARY_SIZE) is None
    assert vocabulary.decode([*ids("ok "), 2**40]) == 2**40


def test_every_ascii_character_is_in_exactly_one_class():
    import re

    alternatives = PIECE_PATTERN.split("|")
    for code in range(0x80):
        matching = [a for a in alternatives if re.fullmatch(a, chr(code))]
        assert len(matching) == 1, (hex(code), matching)


def test_the_chat_template_renders_the_tokens_the_server_counts(folder: Path, shipped: Tokenizer):
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 4096 and config["clean_up_tokenization_spaces"] is False
    # transformers renders chat templates in this environment with these options (apply_chat_template).
    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(config["chat_template"])
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hi "}, {"type": "image_url"}, {"type": "text", "text": "there"}],
        },
        {"role": "function", "content": "42"},
        {"role": "assistant", "content": "<|user|> is a marker"},
    ]
    pairs = [("system", "Be brief."), ("user", "Hi there"), ("function", "42"), ("assistant", "<|user|> is a marker")]
    for generation_prompt in (True, False):
        rendered = template.render(messages=messages, add_generation_prompt=generation_prompt)
        expected = [vocabulary.token_id(p) for p in chat_prompt_tokens(pairs, generation_prompt)]
        assert shipped.encode(rendered).ids == expected
