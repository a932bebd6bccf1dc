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

Parsing checks the whole file; an error names the file, the line and the key, in one line.
"""

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

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


class Phase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    duration: float
    config: dict[str, Any] | None = None
    down: bool = False

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    phases: list[Phase] = Field(min_length=1, max_length=MAX_PHASES)
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
        location = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        raise ScenarioError(located(node, source, location, message)) from None
    scenario._source, scenario._node = source, node
    return scenario


def load(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    return parse(text, str(path))
