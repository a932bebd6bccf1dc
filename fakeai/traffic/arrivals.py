"""The arithmetic of a scenario phase's built-in load: when requests arrive and what each one asks.

Pure functions of their arguments and a seeded ``random.Random``: the same traffic spec and seed give the
same requests, so a scenario run can be repeated exactly.

Arrivals follow a rate that is constant or moves in a straight line from ``start`` to ``end`` across the
phase. With the cumulative rate Lambda(t) = start * t + (end - start) * t^2 / (2 * duration), the k-th
arrival is where Lambda reaches a mass: k + 1/2 for even arrivals, a running sum of unit exponentials for
Poisson ones (time rescaling of a Poisson process), so a ramp needs no thinning and no rejected draws.
"""

import math
import random
from collections.abc import Iterator, Mapping
from typing import Any, Literal, TypeVar

from fakeai.scenario import MAX_LENGTH, LogNormal, Traffic, Uniform

K = TypeVar("K", bound=str)
PATHS: dict[str, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


def time_of_mass(mass: float, start: float, end: float, duration: float) -> float | None:
    """The time at which the cumulative rate reaches ``mass``; ``None`` if it never does in the phase."""
    slope = (end - start) / duration
    if slope == 0:
        return mass / start if start > 0 and mass / start <= duration else None
    discriminant = start * start + 2 * slope * mass
    if discriminant < 0:
        return None
    # The smaller root: the rate is still non-negative there. Written to avoid cancellation.
    t = 2 * mass / (start + math.sqrt(discriminant))
    return t if t <= duration else None


def arrival_times(
    start: float, end: float, duration: float, arrivals: Literal["poisson", "even"], rng: random.Random
) -> Iterator[float]:
    """Seconds from the phase start at which requests arrive, in order."""
    mass = 0.5 if arrivals == "even" else 0.0
    while True:
        mass += rng.expovariate(1.0) if arrivals == "poisson" else 0.0
        t = time_of_mass(mass, start, end, duration)
        if t is None:
            return
        yield t
        if arrivals == "even":
            mass += 1.0


def draw_length(length: int | Uniform | LogNormal, rng: random.Random) -> int:
    if isinstance(length, Uniform):
        return rng.randint(length.min, length.max)
    if isinstance(length, LogNormal):
        return max(1, min(MAX_LENGTH, round(length.median * rng.lognormvariate(0.0, length.sigma))))
    return length


def choose(weights: Mapping[K, float], rng: random.Random) -> K:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def prompt_text(tokens: int, index: int, shared: bool) -> str:
    """Exactly ``tokens`` tokens under fakeai's counting rule (``fakeai.engine.tokens``): three-letter
    lowercase words and groups of at most three digits are one token each. A shared prompt opens with the same half for
    every request (prefix-cache hits); then the request's number, so no two prompts are the same."""
    head = ["ctx"] * (tokens // 2) if shared else []
    digits = str(index)
    number = [digits[max(i - 3, 0) : i] for i in range(len(digits), 0, -3)][::-1]
    words = [*head, *number, *["say"] * tokens][:tokens]
    return " ".join(words)


def request(traffic: Traffic, index: int, default_model: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """The path and JSON body of the ``index``-th request of a phase."""
    model = choose(traffic.models, rng) if traffic.models else default_model
    endpoint = choose(traffic.endpoints, rng)
    prompt = prompt_text(draw_length(traffic.prompt_tokens, rng), index, rng.random() < traffic.prefix_reuse)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": draw_length(traffic.output_tokens, rng),
        "ignore_eos": True,  # the answer is as long as drawn, not as the model "wants"
        "stream": rng.random() < traffic.stream,
    }
    if endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return PATHS[endpoint], body
