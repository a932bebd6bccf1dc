"""A deterministic stand-in for a tokenizer, and the text the fake model writes.

No real tokenizer can be downloaded at run time, so prompts are split with OpenAI's rule of thumb of
about four characters a token: every run of up to four letters, up to three digits, or one other
visible character is a token, with a leading space belonging to the token after it. A token is the
piece of text itself (or the id a client sent): the prefix cache only needs tokens it can compare and
hash, and skipping a numeric vocabulary keeps tokenizing off the profile.
"""

import random
import re
from collections.abc import Iterable, Sequence

_PIECE = re.compile(r" ?[^\W\d_]{1,4}| ?\d{1,3}| ?[^\w\s]| ?_|\s+?(?=\s)|\s")

Token = str | int
"""A piece of prompt text, or a token id given by the client."""

# Chat framing, as chat templates add it: a role marker before each message, an end marker after,
# and the assistant marker that primes the reply. No text tokenizes to these (pieces are at most
# four letters), so a message cannot forge them.
_ROLE = {role: f"<|{role}|>" for role in ("system", "user", "assistant", "tool", "developer")}
_END = "<|end|>"
_OTHER_ROLE = "<|other|>"


def tokenize(text: str) -> list[Token]:
    return _PIECE.findall(text)


def count_tokens(text: str) -> int:
    return len(_PIECE.findall(text))


def chat_prompt_tokens(messages: Iterable[tuple[str, str]]) -> list[Token]:
    """Tokens of a rendered chat: ``(role, text)`` pairs framed as a chat template would."""
    ids: list[Token] = []
    for role, text in messages:
        ids.append(_ROLE.get(role, _OTHER_ROLE))
        ids.extend(tokenize(text))
        ids.append(_END)
    ids.append(_ROLE["assistant"])
    return ids


# Each entry is one output token: a non-empty piece that the tokenizer above also reads as one token.
_WORDS = (
    "the of and to in is it that for on as with was by at be this are from or an have not they but one all we can "
    "her has you had more will some out so what up its only new two may then them time like over also when into "
    "most each than any such way even made many much must well very data load test node pod rate slo ttft gpu kv "
    "fast slow warm cold hot hit miss peak mean tail big wait lot word step busy idle ok yes sure here why how now"
)
VOCABULARY: tuple[str, ...] = (*(" " + word for word in _WORDS.split(" ")), ".", ",")


class Writer:
    """The fake model's text: slices of one seeded stream of vocabulary tokens.

    A slice at a random offset costs one random draw however long the answer is, where drawing each
    token would cost one per token on the hot path; the stream is long enough that answers overlap
    rarely, and the same seed gives the same answers.
    """

    def __init__(self, rng: random.Random, length: int = 1 << 16) -> None:
        self._rng = rng
        self._stream = rng.choices(VOCABULARY, k=length)

    def words(self, count: int) -> list[str]:
        stream = self._stream
        start = self._rng.randrange(len(stream))
        taken = stream[start : start + count]
        while len(taken) < count:  # wrap around for answers longer than what is left
            taken += stream[: count - len(taken)]
        return taken


def first_stop(text: str, stops: Sequence[str]) -> int:
    """Index where the earliest stop sequence starts in ``text``, or -1."""
    positions = [i for i in (text.find(stop) for stop in stops) if i >= 0]
    return min(positions) if positions else -1
