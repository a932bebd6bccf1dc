import pytest

from fakeai.engine.prefix_cache import PrefixCache, block_hashes
from fakeai.engine.tokens import VOCABULARY, chat_prompt_tokens, count_tokens, first_stop, tokenize


def test_tokenizer_is_deterministic_and_about_three_characters_a_token():
    text = "The quick brown fox jumps over the lazy dog, 12345 times!"
    assert tokenize(text) == tokenize(text)
    assert count_tokens(text) == len(tokenize(text))
    assert len(text) / 4 < count_tokens(text) < len(text) / 2
    assert tokenize(text)[:4] == ["The", " qui", "ck", " bro"]


def test_tokenizer_loses_no_character():
    for text in ["a  b\n\tc", "über-naïve_x 9999", "   ", "🙂 ok", "<|user|>x<|end|><|"]:
        assert "".join(str(piece) for piece in tokenize(text)) == text


def test_every_output_token_reads_back_as_one_token():
    assert all(count_tokens(word) == 1 for word in VOCABULARY)


def test_chat_framing_adds_three_tokens_per_message_plus_reply_primer():
    messages = [("system", "be brief"), ("user", "hello")]
    assert len(chat_prompt_tokens(messages)) == sum(count_tokens(t) + 2 for _, t in messages) + 1
    assert chat_prompt_tokens([("user", "hi")]) != chat_prompt_tokens([("system", "hi")])
    # A marker written in a message is one token, as a tokenizer's special tokens are found in any text.
    assert chat_prompt_tokens([("user", "<|end|>")]) == ["<|user|>", "<|end|>", "<|end|>", "<|assistant|>"]
    assert chat_prompt_tokens([("function", "x")], generation_prompt=False) == ["<|other|>", "x", "<|end|>"]


def test_first_stop_finds_the_earliest():
    assert first_stop("one two three", ("three", "two")) == 4
    assert first_stop("one", ("x",)) == -1


def test_block_hashes_are_chained():
    a = block_hashes([1, 2, 3, 4, 5, 6, 7, 8], 4)
    b = block_hashes([9, 2, 3, 4, 5, 6, 7, 8], 4)
    assert len(a) == 2 and a[0] != b[0] and a[1] != b[1]  # same second block, different prefix


def test_prefix_cache_hits_the_longest_cached_prefix():
    cache = PrefixCache(block_size=4, num_blocks=100)
    prompt = list(range(20))
    assert cache.lookup_and_insert(prompt) == 0
    # 20 tokens = 5 blocks, but the last token is always computed: 4 blocks can hit.
    assert cache.lookup_and_insert(prompt) == 16
    assert cache.lookup_and_insert(list(range(10)) + [99] * 10) == 8
    assert cache.lookup_and_insert([7, *list(range(1, 20))]) == 0


def test_prefix_cache_evicts_least_recently_used():
    cache = PrefixCache(block_size=2, num_blocks=3)
    cache.lookup_and_insert([1, 2, 3, 4, 5])  # 2 blocks
    cache.lookup_and_insert([9, 9, 8, 8, 0])  # 2 more: the oldest block goes
    assert len(cache) == 3
    assert cache.lookup_and_insert([1, 2, 3, 4, 5]) == 0


def test_prefix_cache_rejects_nonsense_sizes():
    with pytest.raises(ValueError):
        PrefixCache(0, 10)


def test_writer_is_seeded_varied_and_wraps():
    import random

    from fakeai.engine.tokens import Writer

    a, b = Writer(random.Random(1), length=50), Writer(random.Random(1), length=50)
    first = [a.words(30) for _ in range(5)]
    assert first == [b.words(30) for _ in range(5)]
    assert len({tuple(w) for w in first}) > 1
    assert len(a.words(120)) == 120 and all(w in VOCABULARY for w in a.words(120))
