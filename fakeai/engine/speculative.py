"""Speculative decoding as the engine simulates it: vLLM's ``--speculative-config`` (its JSON shape) and
a seeded acceptance model of fakeai's own.

Each decode step of a request, a proposer drafts ``num_speculative_tokens`` tokens and the target model
verifies them: the tokens accepted up to the first rejected one, plus the one token the target model
produces itself (the "bonus" token), are emitted in that step. A draft position can only be accepted if
every earlier one was, so the acceptance model is a non-increasing list of per-position rates ``r``:
one uniform draw ``u`` per draft accepts the positions with ``u < r[i]``, which makes position ``i``
accepted with probability exactly ``r[i]``. vLLM counts what happened in ``SpecDecodingStats``
(vllm/v1/spec_decode/metrics.py @ 016a8587): one draft, ``num_speculative_tokens`` draft tokens, the
accepted ones in total and per position.
"""

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

MAX_SPECULATIVE_TOKENS = 32
"""Bounds the ``position`` label (one series per draft position) and the per-step work."""
DEFAULT_RATE_BASE = 0.75
"""Without --spec-acceptance-rates, position ``i`` (from 0) is accepted with probability 0.75^(i+1)."""


def check_speculative_config(value: Any) -> dict[str, Any]:
    """vLLM's --speculative-config JSON object: ``num_speculative_tokens`` (an integer from 1) is what
    the simulation needs; ``method`` (a string) is kept for the record; vLLM's other keys (``model``,
    ``prompt_lookup_max``, ...) are accepted and have no effect here."""
    if not isinstance(value, Mapping):
        raise ValueError('expected a JSON object such as {"method": "ngram", "num_speculative_tokens": 3}')
    tokens = value.get("num_speculative_tokens")
    if isinstance(tokens, bool) or not isinstance(tokens, int):
        raise ValueError("num_speculative_tokens must be an integer")
    if not 1 <= tokens <= MAX_SPECULATIVE_TOKENS:
        raise ValueError(f"num_speculative_tokens must be within 1 and {MAX_SPECULATIVE_TOKENS}")
    method = value.get("method", "ngram")
    if not isinstance(method, str) or not method:
        raise ValueError("method must be a non-empty string")
    return dict(value)


def check_acceptance_rates(rates: Sequence[float], num_speculative_tokens: int) -> tuple[float, ...]:
    """One rate per draft position, each within 0 and 1, never rising (a later position needs every
    earlier one accepted); none given means the default curve."""
    if not rates:
        return tuple(DEFAULT_RATE_BASE ** (i + 1) for i in range(num_speculative_tokens))
    if len(rates) != num_speculative_tokens:
        raise ValueError(f"give {num_speculative_tokens} acceptance rates, one per draft position, not {len(rates)}")
    if any(not 0.0 <= r <= 1.0 for r in rates):
        raise ValueError("acceptance rates must be within 0 and 1")
    if any(later > earlier for earlier, later in pairwise(rates)):
        raise ValueError("acceptance rates must not rise with the position: a position needs all earlier ones")
    return tuple(float(r) for r in rates)


@dataclass
class Speculation:
    """One engine's drafts: the acceptance draws and the tally of what was proposed and accepted."""

    num_speculative_tokens: int
    acceptance_rates: tuple[float, ...]
    rng: random.Random
    drafts: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0
    accepted_per_position: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.accepted_per_position = [0] * self.num_speculative_tokens

    def draft(self) -> int:
        """Propose and verify one draft; returns how many of its tokens were accepted."""
        u = self.rng.random()
        accepted = 0
        for rate in self.acceptance_rates:
            if u >= rate:
                break
            self.accepted_per_position[accepted] += 1
            accepted += 1
        self.drafts += 1
        self.draft_tokens += self.num_speculative_tokens
        self.accepted_tokens += accepted
        return accepted

    def totals(self) -> tuple[int, int, int, tuple[int, ...]]:
        """(drafts, draft tokens, accepted tokens, accepted per position) so far."""
        return self.drafts, self.draft_tokens, self.accepted_tokens, tuple(self.accepted_per_position)

    def since(self, before: tuple[int, int, int, tuple[int, ...]]) -> tuple[int, int, int, list[int]]:
        """What was drafted and accepted since ``before`` (a ``totals()``): one step's ``SpecDecodingStats``."""
        drafts, draft_tokens, accepted, per_position = before
        return (
            self.drafts - drafts,
            self.draft_tokens - draft_tokens,
            self.accepted_tokens - accepted,
            [now - then for now, then in zip(self.accepted_per_position, per_position, strict=True)],
        )
