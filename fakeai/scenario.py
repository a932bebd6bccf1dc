"""Scenario files: a timeline of phases, each changing what the simulated engine does.

A YAML file (schema in docs/SCENARIOS.md)::

    name: ttft-slo-breach
    phases:
      - name: baseline
        duration: 30s
      - name: slow
        duration: 2m
        config: {itl_ms: 150}          # a PATCH /admin/config body, over the start-up settings
      - name: outage
        duration: 20s
        down: true                     # /v1/*, /health and /metrics answer 503
      - name: rush
        duration: 1m
        traffic: {rate: {from: 5, to: 50}, stream: 0.5}   # built-in open-loop load, through HTTP

Parsing checks the whole file; an error names the file, the line and the key, in one line.
"""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

MAX_PHASES = 1000
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds, from a number (seconds) or a string such as ``30s``, ``2m``, ``1.5h``, ``250ms``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 2m or 1.5h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError("expected a duration such as 30s, 2m or 1.5h")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


MAX_RATE = 5000.0
"""Requests per second a phase's traffic may ask for: far beyond what one server process answers."""
MAX_LENGTH = 100_000
MAX_CONCURRENCY = 4096
"""Requests a phase's traffic may have in flight at once: bounds the load process's memory."""


class Ramp(BaseModel):
    """A rate that moves in a straight line from ``from`` to ``to`` over the phase."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: float = Field(alias="from", ge=0, le=MAX_RATE)
    end: float = Field(alias="to", ge=0, le=MAX_RATE)

    @model_validator(mode="after")
    def _moves(self) -> "Ramp":
        if self.start == 0 and self.end == 0:
            raise ValueError("a ramp from 0 to 0 sends nothing")
        return self


class Uniform(BaseModel):
    """A length drawn evenly from ``min`` to ``max``, both included."""

    model_config = ConfigDict(extra="forbid")
    min: int = Field(ge=1, le=MAX_LENGTH)
    max: int = Field(ge=1, le=MAX_LENGTH)

    @model_validator(mode="after")
    def _ordered(self) -> "Uniform":
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class LogNormal(BaseModel):
    """A length around ``median`` with a long tail (``sigma`` of the log), as real prompts and answers are."""

    model_config = ConfigDict(extra="forbid")
    median: int = Field(ge=1, le=MAX_LENGTH)
    sigma: float = Field(default=0.5, ge=0, le=3)


def _length_kind(value: Any) -> str:
    """Which form a length takes: parsed from a file (a dict) or serialized (a model)."""
    if isinstance(value, LogNormal) or (isinstance(value, dict) and ("median" in value or "sigma" in value)):
        return "lognormal"
    return "uniform" if isinstance(value, dict | Uniform) else "fixed"


def _rate_kind(value: Any) -> str:
    return "ramp" if isinstance(value, dict | Ramp) else "constant"


# Each union is told apart by the value's shape, so an error names the one form the user meant.
Length = Annotated[
    Annotated[int, Tag("fixed")] | Annotated[Uniform, Tag("uniform")] | Annotated[LogNormal, Tag("lognormal")],
    Discriminator(_length_kind),
]
Rate = Annotated[Annotated[float, Tag("constant")] | Annotated[Ramp, Tag("ramp")], Discriminator(_rate_kind)]
_UNION_TAGS = {"fixed", "uniform", "lognormal", "constant", "ramp"}


Endpoint = Literal["chat", "completions"]


def _chat_only() -> dict[Endpoint, float]:
    return {"chat": 1.0}


class Traffic(BaseModel):
    """Built-in load for a phase, sent over HTTP to the server itself from a process of its own: open loop,
    or bounded by ``max_concurrency``."""

    model_config = ConfigDict(extra="forbid")
    rate: Rate
    """Requests per second: a number, or ``{from, to}`` ramped across the phase."""
    arrivals: Literal["poisson", "even"] = "poisson"
    models: dict[str, float] | None = None
    """Weights of the served models to ask; ``None``: the first served model."""
    endpoints: dict[Endpoint, float] = Field(default_factory=_chat_only)
    stream: float = Field(default=0.0, ge=0, le=1)
    """The share of streaming requests."""
    prompt_tokens: Length = 64
    """Tokens of each prompt's text (a chat request adds its template's framing tokens)."""
    output_tokens: Length = 32
    """Tokens of each answer: sent as ``max_tokens`` with ``ignore_eos``, so the answer has exactly that many."""
    prefix_reuse: float = Field(default=0.0, ge=0, le=1)
    """The share of prompts that begin with a shared prefix (half the prompt), hits for the prefix cache."""
    seed: int | None = None
    max_concurrency: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY)
    """At most this many requests in flight, as ``vllm bench serve --max-concurrency``: an arrival that finds
    them all busy waits for one to end, so an overloaded phase turns into a closed loop of that many users
    (the queue in the engine stays bounded) instead of an ever-growing backlog. ``None``: open loop."""

    @field_validator("rate")
    @classmethod
    def _rate(cls, rate: float | Ramp) -> float | Ramp:
        if isinstance(rate, float | int) and not 0 < rate <= MAX_RATE:
            raise ValueError(f"a rate must be above 0 and at most {MAX_RATE:g} requests per second")
        return rate

    @field_validator("prompt_tokens", "output_tokens")
    @classmethod
    def _length(cls, length: Length) -> Length:
        if isinstance(length, int) and not 1 <= length <= MAX_LENGTH:
            raise ValueError(f"a length must be within 1 and {MAX_LENGTH}")
        return length

    @field_validator("models", "endpoints")
    @classmethod
    def _weights(cls, weights: Mapping[str, float] | None) -> Mapping[str, float] | None:
        if weights is not None and (not weights or any(w < 0 for w in weights.values()) or not sum(weights.values())):
            raise ValueError("weights must be non-negative, at least one above 0")
        return weights


class Phase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    duration: float
    config: dict[str, Any] | None = None
    down: bool = False
    traffic: Traffic | None = None

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


_ALERT_NAME = r"^[A-Za-z_][A-Za-z0-9_:]*$"
_CLOSING = {")": "(", "]": "[", "}": "{"}


def promql_problem(expr: str) -> str | None:
    """What is plainly wrong with a PromQL expression (unclosed quotes or brackets), or ``None``.
    Prometheus parses it whole when ``scenario verify`` runs; this catches a broken file before that."""
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for char in expr:
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\" and quote != "`":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in _CLOSING and (not stack or stack.pop() != _CLOSING[char]):
            return f"unbalanced '{char}'"
    if quote is not None:
        return f"unclosed {quote}"
    if stack:
        return f"unclosed '{stack[-1]}'"
    return None


class Expectation(BaseModel):
    """What must be observable during a phase: an alert firing, an alert resolved, or a PromQL expression
    with a result. ``within``: how long after the phase starts it must be seen (default: the whole phase)."""

    model_config = ConfigDict(extra="forbid")
    alert: str | None = Field(default=None, pattern=_ALERT_NAME)
    resolved: str | None = Field(default=None, pattern=_ALERT_NAME)
    promql: str | None = Field(default=None, min_length=1, max_length=10_000)
    phase: str
    within: float | None = None

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("promql")
    @classmethod
    def _promql(cls, expr: str | None) -> str | None:
        problem = None if expr is None else promql_problem(expr)
        if problem:
            raise ValueError(f"not valid PromQL: {problem}")
        return expr

    @model_validator(mode="after")
    def _one_kind(self) -> "Expectation":
        if sum(kind is not None for kind in (self.alert, self.resolved, self.promql)) != 1:
            raise ValueError("give exactly one of alert, resolved or promql")
        return self


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    phases: list[Phase] = Field(min_length=1, max_length=MAX_PHASES)
    expect: list[Expectation] = Field(default_factory=list, max_length=1000)
    _source: str = PrivateAttr("<scenario>")
    _node: Any = PrivateAttr(None)

    def where(self, location: tuple[int | str, ...], message: str) -> str:
        """An error at ``location`` of the file this scenario came from, in one line."""
        return located(self._node, self._source, location, message)

    @field_validator("phases")
    @classmethod
    def _distinct(cls, phases: list[Phase]) -> list[Phase]:
        names = [phase.name for phase in phases]
        if len(set(names)) != len(names):
            raise ValueError("phase names must be distinct")
        return phases


class ScenarioError(ValueError):
    """A scenario that cannot run: its message is one line, with the file, line and key."""


def _line_of(node: yaml.Node | None, location: tuple[int | str, ...]) -> int | None:
    """The line (from 1) of the YAML node at a pydantic error's location, as deep as the file goes."""
    line = None if node is None else node.start_mark.line + 1
    for part in location:
        if isinstance(node, yaml.MappingNode):
            node = next((value for key, value in node.value if key.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def located(node: yaml.Node | None, source: str, location: tuple[int | str, ...], message: str) -> str:
    """``source:line: key: message`` for the key at ``location`` of the file whose YAML tree is ``node``."""
    key = ".".join(str(part) for part in location) or "(top)"
    return f"{source}:{_line_of(node, location) or 1}: {key}: {message}"


def parse(text: str, source: str = "<scenario>") -> Scenario:
    """A scenario from YAML (or JSON, which is YAML); ``ScenarioError`` with ``source:line: key: why``."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}:1: expected a mapping with 'name' and 'phases'")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        # An unknown key explains a missing one (a typo), so it is reported first.
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        # Without pydantic's own steps (union tags, validator names): the path as the file spells it.
        location = tuple(
            part for part in error["loc"] if not (isinstance(part, str) and (part in _UNION_TAGS or "[" in part))
        )
        message = error["msg"].removeprefix("Value error, ")
        raise ScenarioError(located(node, source, location, message)) from None
    scenario._source, scenario._node = source, node
    _check_expectations(scenario)
    return scenario


def _check_expectations(scenario: Scenario) -> None:
    """Each expectation names a phase of the file, fits in it, and a ``resolved`` follows its ``alert``."""
    order = {phase.name: index for index, phase in enumerate(scenario.phases)}
    fired: dict[str, int] = {}
    for index, item in enumerate(scenario.expect):
        if item.phase not in order:
            message = f"no phase named {item.phase!r}; phases: {', '.join(order)}"
            raise ScenarioError(scenario.where(("expect", index, "phase"), message))
        duration = scenario.phases[order[item.phase]].duration
        if item.within is not None and item.within > duration:
            message = f"longer than phase {item.phase!r} ({duration:g} s)"
            raise ScenarioError(scenario.where(("expect", index, "within"), message))
        if item.alert is not None:
            fired.setdefault(item.alert, order[item.phase])
        if item.resolved is not None and not fired.get(item.resolved, len(order)) < order[item.phase]:
            message = f"{item.resolved} is not expected to fire in an earlier phase"
            raise ScenarioError(scenario.where(("expect", index, "resolved"), message))


def load(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    return parse(text, str(path))
