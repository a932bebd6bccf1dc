"""fakeai's tokenizer: one counting rule, written so that Python's ``re`` and a Hugging Face ``tokenizers``
pipeline (Oniguruma) read it identically, and the shipped tokenizer (``python -m fakeai tokenizer``) counts
every text exactly as the server does.

No real tokenizer can be downloaded at run time, so text is split by a rule near what BPE vocabularies do
to English (about three characters a token): a letter and up to two lowercase letters after it, up to three
digits, or one other ASCII character, each with the space before it; every whitespace character alone; and
every non-ASCII character alone. The classes are spelled in ASCII ranges because ``\\w``, ``\\d`` and
``\\s`` differ between the two regex engines beyond ASCII (combining marks, other numbers, ``\\x1c``).
The chat template's markers (``<|user|>``, ...) are special tokens: found in any text before the rule runs,
as a tokenizer's added tokens are.

A token is the piece of text itself (or the id a client sent): the prefix cache only needs tokens it can
compare and hash; ``fakeai.engine.vocabulary`` turns pieces into ids when a client asks for them.
"""

import random
import re
from collections.abc import Iterable, Sequence

import numpy as np

ROLES = ("system", "user", "assistant", "tool", "developer")
# Chat framing, as chat templates add it: a role marker before each message, an end marker after, and the
# assistant marker that primes the reply. ``function`` and any other role share one marker.
END_MARKER = "<|end|>"
OTHER_ROLE_MARKER = "<|other|>"
_ROLE_MARKER = {role: f"<|{role}|>" for role in ROLES}
SPECIAL_TOKENS: tuple[str, ...] = (*_ROLE_MARKER.values(), END_MARKER, OTHER_ROLE_MARKER)

ASCII_OTHER = r"\x00-\x08\x0e-\x1f\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f"
"""ASCII characters that are neither letters, digits nor whitespace (the range form, for a character class)."""
WHITESPACE = "\t\n\x0b\x0c\r "
PIECE_PATTERN = rf" ?[A-Za-z][a-z]{{0,2}}| ?[0-9]{{1,3}}| ?[{ASCII_OTHER}]|[\x09-\x0d\x20]|[^\x00-\x7f]"
"""The rule, in the syntax both engines share: every character of any text falls in exactly one piece."""

_PIECE = re.compile(PIECE_PATTERN)
_SPECIAL = re.compile("(" + "|".join(re.escape(marker) for marker in SPECIAL_TOKENS) + ")")

Token = str | int
"""A piece of prompt text, or a token id given by the client."""


def tokenize(text: str) -> list[str]:
    """The pieces of ``text``, in order: their concatenation is the text."""
    if "<|" not in text:  # no marker can be in it: the common case skips the split
        return _PIECE.findall(text)
    tokens: list[str] = []
    for index, part in enumerate(_SPECIAL.split(text)):
        if index % 2:  # the split's odd parts are the markers it found
            tokens.append(part)
        else:
            tokens.extend(_PIECE.findall(part))
    return tokens


def count_tokens(text: str) -> int:
    return len(tokenize(text))


def role_marker(role: str) -> str:
    return _ROLE_MARKER.get(role, OTHER_ROLE_MARKER)


def chat_prompt_tokens(messages: Iterable[tuple[str, str]], generation_prompt: bool = True) -> list[str]:
    """Tokens of a rendered chat: ``(role, text)`` pairs framed as a chat template would (the shipped
    tokenizer's ``chat_template`` renders the same tokens), then the marker that primes the reply."""
    ids: list[str] = []
    for role, text in messages:
        ids.append(role_marker(role))
        ids.extend(tokenize(text))
        ids.append(END_MARKER)
    if generation_prompt:
        ids.append(_ROLE_MARKER["assistant"])
    return ids


# Each entry is one output token: a non-empty piece that the tokenizer above also reads as one token.
_WORDS = (
    "the of and to in is it for on as was by at be are or an not but one all we can her has you had out so up "
    "its new two may any way big lot ok yes why how now pod slo gpu kv hot hit low few day put get see use set "
    "run end key top log job old own fit mix gap cap max min sum raw ask got let too far via per due yet"
)
VOCABULARY: tuple[str, ...] = (*(" " + word for word in _WORDS.split(" ")), ".", ",")
_VOCABULARY_ARRAY = np.array(VOCABULARY, dtype=object)


class Writer:
    """The fake model's text: slices of one seeded stream of vocabulary tokens.

    A slice at a random offset costs one random draw however long the answer is, where drawing each
    token would cost one per token on the hot path; the stream is long enough that answers overlap
    rarely, and the same seed gives the same answers. The stream is drawn by numpy from a seed taken
    from ``rng``: ``rng.choices`` drew it one token at a time, 6 ms an engine at every start (about half of
    what creating a three-model server cost).
    """

    def __init__(self, rng: random.Random, length: int = 1 << 16) -> None:
        self._rng = rng
        drawn = np.random.default_rng(rng.getrandbits(64)).integers(len(VOCABULARY), size=length)
        self._stream: list[str] = _VOCABULARY_ARRAY[drawn].tolist()

    def words(self, count: int) -> list[str]:
        stream = self._stream
        start = int(self._rng.random() * len(stream))  # ``randrange`` is Python-level, per request
        taken = stream[start : start + count]
        while len(taken) < count:  # wrap around for answers longer than what is left
            taken += stream[: count - len(taken)]
        return taken


def first_stop(text: str, stops: Sequence[str]) -> int:
    """Index where the earliest stop sequence starts in ``text``, or -1."""
    positions = [i for i in (text.find(stop) for stop in stops) if i >= 0]
    return min(positions) if positions else -1
