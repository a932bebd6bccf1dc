"""Fault injection: a seeded share of requests fails, with a configurable mix of failure kinds."""

import random
from dataclasses import dataclass

from fakeai.errors import ErrorKind

ABORT = "abort"
FAULT_KINDS: dict[str, ErrorKind | None] = {
    "429": ErrorKind.RATE_LIMITED,
    "500": ErrorKind.SERVER_ERROR,
    "503": ErrorKind.OVERLOADED,
    ABORT: None,  # fails mid-generation: an error event on a stream, a 500 otherwise
}
DEFAULT_MIX: dict[str, float] = {"429": 0.3, "500": 0.3, "503": 0.2, ABORT: 0.2}


@dataclass(frozen=True)
class Fault:
    error: ErrorKind | None
    """Returned before the engine sees the request; None for a mid-generation abort."""
    abort_fraction: float = 0.5
    """For an abort: the share of the answer generated before it fails."""


def parse_mix(text: str) -> dict[str, float]:
    """``"429=0.5,abort=0.5"`` -> weights; unknown kinds and non-positive totals are errors."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, weight = part.partition("=")
        if not sep or kind.strip() not in FAULT_KINDS:
            raise ValueError(f"expected KIND=WEIGHT with KIND in {', '.join(FAULT_KINDS)}, got {part!r}")
        mix[kind.strip()] = float(weight)
    if not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError("error mix needs non-negative weights with a positive sum")
    return mix


class FaultInjector:
    def __init__(self, rate: float, mix: dict[str, float], rng: random.Random) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("error rate must be within 0 and 1")
        self.rate = rate
        self._kinds = list(mix)
        self._weights = [mix[k] for k in self._kinds]
        self._rng = rng

    def draw(self) -> Fault | None:
        if self.rate <= 0.0 or self._rng.random() >= self.rate:
            return None
        kind = self._rng.choices(self._kinds, self._weights)[0]
        return Fault(error=FAULT_KINDS[kind], abort_fraction=self._rng.uniform(0.2, 0.8))
