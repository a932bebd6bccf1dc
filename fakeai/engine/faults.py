"""Fault injection: a seeded share of requests fails, with a configurable mix of failure kinds.

The engine only decides *that* and *how* a request fails (a ``FaultKind``); the routes decide what
the client sees for each kind (``fakeai.routes.lifecycle.FAULT_ERRORS``).
"""

import random
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    """How an injected fault shows, named as ``--error-mix`` names it."""

    RATE_LIMITED = "429"
    SERVER_ERROR = "500"
    OVERLOADED = "503"
    ABORT = "abort"
    """Fails mid-generation: an error event on a stream, a 500 otherwise."""


DEFAULT_MIX: dict[str, float] = {"429": 0.3, "500": 0.3, "503": 0.2, "abort": 0.2}


@dataclass(frozen=True)
class Fault:
    kind: FaultKind | None
    """How the request fails; None for a request that is only delayed (``delay;ms=N``)."""
    abort_fraction: float = 0.5
    """For an abort: the share of the answer generated before it fails."""
    abort_after: int | None = None
    """For an abort: the tokens generated before it fails, when given (``abort;after=N``)."""
    delay: float = 0.0
    """Seconds the request waits before it reaches the engine (``delay;ms=N``)."""

    @property
    def mid_generation(self) -> bool:
        """True when the engine runs the request and fails it part-way; otherwise it is refused first."""
        return self.kind is FaultKind.ABORT


MAX_FAULT_DELAY_MS = 600_000
"""A forced delay's bound: ten minutes, so a header cannot hold a request (and its memory) for ever."""


def parse_fault_header(text: str) -> Fault:
    """A request's forced fate, ``X-Fakeai-Fault``: ``429``, ``500``, ``503``, ``abort``, ``abort;after=N``
    (N tokens first) or ``delay;ms=N``. Raises ``ValueError`` saying what is accepted."""
    kind, _, option = (part.strip() for part in text.partition(";"))
    name, _, value = (part.strip() for part in option.partition("="))
    try:
        if kind in (FaultKind.RATE_LIMITED, FaultKind.SERVER_ERROR, FaultKind.OVERLOADED) and not option:
            return Fault(FaultKind(kind))
        if kind == FaultKind.ABORT and not option:
            return Fault(FaultKind.ABORT)
        if kind == FaultKind.ABORT and name == "after" and int(value) >= 1:
            return Fault(FaultKind.ABORT, abort_after=int(value))
        if kind == "delay" and name == "ms" and 0 <= int(value) <= MAX_FAULT_DELAY_MS:
            return Fault(None, delay=int(value) / 1000.0)
    except ValueError:
        pass
    raise ValueError(
        f"expected 429, 500, 503, abort, abort;after=N (N >= 1) or delay;ms=N (0-{MAX_FAULT_DELAY_MS}), "
        f"got {text[:40]!r}"
    )


RETURN_ERROR_STATUSES = {"429": FaultKind.RATE_LIMITED, "500": FaultKind.SERVER_ERROR, "503": FaultKind.OVERLOADED}


def parse_return_error(text: str) -> Fault:
    """llm-d-inference-sim's ``X-Return-Error: <status>``, for the statuses fakeai's faults answer with."""
    kind = RETURN_ERROR_STATUSES.get(text.strip())
    if kind is None:
        raise ValueError(f"expected one of {', '.join(RETURN_ERROR_STATUSES)}, got {text[:40]!r}")
    return Fault(kind)


def parse_mix(text: str) -> dict[str, float]:
    """``"429=0.5,abort=0.5"`` -> weights; unknown kinds and non-positive totals are errors."""
    known = [kind.value for kind in FaultKind]
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, weight = part.partition("=")
        if not sep or kind.strip() not in known:
            raise ValueError(f"expected KIND=WEIGHT with KIND in {', '.join(known)}, got {part!r}")
        mix[kind.strip()] = float(weight)
    if not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError("error mix needs non-negative weights with a positive sum")
    return mix


class FaultInjector:
    def __init__(self, rate: float, mix: dict[str, float], rng: random.Random) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("error rate must be within 0 and 1")
        self.rate = rate
        self._kinds = [FaultKind(kind) for kind in mix]
        self._weights = [mix[kind] for kind in mix]
        self._rng = rng

    def update(self, rate: float, mix: dict[str, float]) -> None:
        """New odds (``PATCH /admin/config``); the stream of draws goes on."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("error rate must be within 0 and 1")
        self.rate = rate
        self._kinds = [FaultKind(kind) for kind in mix]
        self._weights = [mix[kind] for kind in mix]

    def draw(self) -> Fault | None:
        if self.rate <= 0.0 or self._rng.random() >= self.rate:
            return None
        kind = self._rng.choices(self._kinds, self._weights)[0]
        return Fault(kind, abort_fraction=self._rng.uniform(0.2, 0.8))
