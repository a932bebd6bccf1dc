"""Token ids for fakeai's pieces (``fakeai.engine.tokens``), by arithmetic rather than a table.

Every piece the rule can produce has an id, so ``/tokenize`` then ``/detokenize`` gives back the text, and
the shipped tokenizer's vocabulary is this same numbering written out: a client's ids are the server's. The
ids come in blocks, in this order:

- 0, ``<unk>``: a code point Unicode has not assigned, a private-use one or a lone surrogate (the shipped
  vocabulary lists only assigned characters, so such a piece has no entry there either);
- the chat markers, then the six whitespace characters;
- the 60 other ASCII characters, bare then after a space;
- digit groups of one to three digits, leading zeros kept, bare then after a space;
- letter pieces: any letter, then zero to two lowercase letters, bare then after a space;
- every other code point from U+0080, at ``NON_ASCII_BASE + code point - 0x80``.

Looking a piece up is a few integer operations, so no table of a quarter of a million entries is held in
every worker, and nothing is built on the event loop at the first request.
"""

import string
import unicodedata
from collections.abc import Iterator

from fakeai.engine.tokens import SPECIAL_TOKENS, WHITESPACE

UNKNOWN_TOKEN = "<unk>"
UNKNOWN_ID = 0

_LETTERS = string.ascii_uppercase + string.ascii_lowercase
_LOWER = string.ascii_lowercase
# The characters of the rule's ASCII_OTHER class (a test holds the two to each other).
_OTHER = "".join(chr(c) for c in range(0x80) if chr(c) not in _LETTERS + string.digits + WHITESPACE)
_TAILS = 1 + 26 + 26 * 26  # "", "a".."z", "aa".."zz"
_DIGIT_GROUPS = 10 + 100 + 1000
_DIGIT_OFFSET = (0, 0, 10, 110)  # where the groups of each width start: 1 digit, 2, 3

_SPECIAL_BASE = 1
_WHITESPACE_BASE = _SPECIAL_BASE + len(SPECIAL_TOKENS)
_OTHER_BASE = _WHITESPACE_BASE + len(WHITESPACE)
_DIGITS_BASE = _OTHER_BASE + 2 * len(_OTHER)
_LETTERS_BASE = _DIGITS_BASE + 2 * _DIGIT_GROUPS
NON_ASCII_BASE = _LETTERS_BASE + 2 * len(_LETTERS) * _TAILS
VOCABULARY_SIZE = NON_ASCII_BASE + 0x110000 - 0x80
"""One more than the highest id: ids run from 0 to ``VOCABULARY_SIZE - 1``."""

_SPECIAL_ID = {marker: _SPECIAL_BASE + index for index, marker in enumerate(SPECIAL_TOKENS)}
_UNASSIGNED = frozenset(("Cn", "Co", "Cs"))


def _assigned(character: str) -> bool:
    return unicodedata.category(character) not in _UNASSIGNED


def token_id(piece: str) -> int:
    """The id of one piece that ``fakeai.engine.tokens.tokenize`` produced."""
    special = _SPECIAL_ID.get(piece)
    if special is not None:
        return special
    head = piece[0]
    if not head.isascii():
        return NON_ASCII_BASE + ord(head) - 0x80 if _assigned(head) else UNKNOWN_ID
    if len(piece) == 1 and head in WHITESPACE:
        return _WHITESPACE_BASE + WHITESPACE.index(head)
    spaced = head == " "
    body = piece[1:] if spaced else piece
    first = body[0]
    if first in _LETTERS:
        tail = body[1:]
        tail_index = 0 if not tail else 1 + _LOWER.index(tail) if len(tail) == 1 else 27 + _tail_pair(tail)
        return _LETTERS_BASE + (spaced * len(_LETTERS) + _LETTERS.index(first)) * _TAILS + tail_index
    if first in string.digits:
        return _DIGITS_BASE + spaced * _DIGIT_GROUPS + _DIGIT_OFFSET[len(body)] + int(body)
    return _OTHER_BASE + spaced * len(_OTHER) + _OTHER.index(first)


def _tail_pair(tail: str) -> int:
    return 26 * _LOWER.index(tail[0]) + _LOWER.index(tail[1])


def piece(token: int) -> str | None:
    """The text of a token id, or None for an id outside the vocabulary (``<unk>`` is in it)."""
    if token == UNKNOWN_ID:
        return UNKNOWN_TOKEN
    if token < _SPECIAL_BASE or token >= VOCABULARY_SIZE:
        return None
    if token < _WHITESPACE_BASE:
        return SPECIAL_TOKENS[token - _SPECIAL_BASE]
    if token < _OTHER_BASE:
        return WHITESPACE[token - _WHITESPACE_BASE]
    if token < _DIGITS_BASE:
        spaced, index = divmod(token - _OTHER_BASE, len(_OTHER))
        return " " * spaced + _OTHER[index]
    if token < _LETTERS_BASE:
        spaced, group = divmod(token - _DIGITS_BASE, _DIGIT_GROUPS)
        width = 1 if group < 10 else 2 if group < 110 else 3
        return " " * spaced + str(group - _DIGIT_OFFSET[width]).zfill(width)
    if token < NON_ASCII_BASE:
        head, tail_index = divmod(token - _LETTERS_BASE, _TAILS)
        spaced, first = divmod(head, len(_LETTERS))
        if tail_index == 0:
            tail = ""
        elif tail_index <= 26:
            tail = _LOWER[tail_index - 1]
        else:
            tail = "".join(_LOWER[i] for i in divmod(tail_index - 27, 26))
        return " " * spaced + _LETTERS[first] + tail
    character = chr(token - NON_ASCII_BASE + 0x80)
    return character if _assigned(character) else None


def decode(tokens: list[int]) -> str | int:
    """The text of a list of ids, or the first id that is not in the vocabulary."""
    pieces = []
    for token in tokens:
        text = piece(token)
        if text is None:
            return token
        pieces.append(text)
    return "".join(pieces)


def entries() -> Iterator[tuple[str, int]]:
    """Every ``(piece, id)`` of the vocabulary, in id order: what the shipped tokenizer lists."""
    for token in range(NON_ASCII_BASE):
        text = piece(token)
        if text is not None:
            yield text, token
    # A million code points: ``piece``'s last branch for each, without walking its other ranges every time.
    for token in range(NON_ASCII_BASE, VOCABULARY_SIZE):
        character = chr(token - NON_ASCII_BASE + 0x80)
        if _assigned(character):
            yield character, token
