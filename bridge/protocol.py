"""The /metrics/stream messages: parsing and validating what clients send, building what they get.

Pure functions: no sockets, no clock (``now`` is passed in).
"""

import functools
import json
import math
from dataclasses import dataclass, replace
from typing import Any

from bridge.categories import METRIC_TYPES, Selection, selection_of

ALL = "all"
MAX_INTERVAL = 3600.0
MIN_WINDOW, MAX_WINDOW = 1.0, 3600.0
MAX_FILTER_VALUES = 64  # endpoints or models one subscription may name
MAX_VALUE_LENGTH = 256


@dataclass(frozen=True)
class Filters:
    endpoints: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    metric_types: frozenset[str] = frozenset(METRIC_TYPES)
    interval: float = 1.0
    window: float = 10.0

    @functools.cached_property
    def group_key(self) -> tuple[Any, ...]:
        """Clients whose filters agree on this share one computed, serialized payload per tick. (Made
        once: a hundred subscribers' filters are grouped, and checked again, every tick.)"""
        return (self.endpoints, self.models, self.metric_types, self.window)

    @functools.cached_property
    def selection(self) -> Selection:
        """The series these filters select (one object for all filters that select the same)."""
        return selection_of(self.endpoints, self.models)

    def describe(self) -> dict[str, Any]:
        return {
            "endpoints": sorted(self.endpoints),
            "models": sorted(self.models),
            "metric_types": sorted(self.metric_types) if self.metric_types != frozenset(METRIC_TYPES) else [ALL],
            "interval": self.interval,
            "window": self.window,
        }


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ClientMessage:
    type: str  # subscribe, unsubscribe or ping
    id: Any = None
    filters: dict[str, Any] | None = None


def parse(text: str | bytes) -> ClientMessage:
    """One client frame -> a message, or ``ProtocolError`` with a stable code."""
    try:
        payload = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("invalid_json", "The message is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise ProtocolError("invalid_message", "A message must be a JSON object.")
    message_id = payload.get("id")
    if message_id is not None and (
        isinstance(message_id, bool) or not isinstance(message_id, str | int) or len(str(message_id)) > MAX_VALUE_LENGTH
    ):
        raise ProtocolError("invalid_message", "'id' must be a short string or an integer.")
    kind = payload.get("type")
    if kind not in ("subscribe", "unsubscribe", "ping"):
        shown = kind if isinstance(kind, str) and len(kind) <= 40 else type(kind).__name__
        raise ProtocolError("unknown_type", f"Unknown message type {shown!r}: use subscribe, unsubscribe or ping.")
    filters = payload.get("filters")
    if kind == "subscribe" and filters is not None and not isinstance(filters, dict):
        raise ProtocolError("invalid_filter", "'filters' must be an object.")
    return ClientMessage(kind, message_id, filters)


def _strings(key: str, value: Any) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ProtocolError("invalid_filter", f"'{key}' must be a string or a list of strings.")
    if len(values) > MAX_FILTER_VALUES or any(len(v) > MAX_VALUE_LENGTH for v in values):
        raise ProtocolError("invalid_filter", f"'{key}' names too many or too long values.")
    return values


def _number(key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ProtocolError("invalid_filter", f"'{key}' must be a number.")
    if not low <= value <= high:
        raise ProtocolError("invalid_filter", f"'{key}' must be within {low:g} and {high:g}.")
    return float(value)


def apply(current: Filters, changes: dict[str, Any], *, min_interval: float) -> Filters:
    """New filters after a subscribe; any invalid part raises and changes nothing."""
    unknown = set(changes) - {"endpoint", "model", "metric_type", "interval", "window"}
    if unknown:
        raise ProtocolError("invalid_filter", f"Unknown filter key {sorted(unknown)[0][:40]!r}.")
    updated = current
    if "endpoint" in changes:
        updated = replace(updated, endpoints=updated.endpoints | frozenset(_strings("endpoint", changes["endpoint"])))
    if "model" in changes:
        updated = replace(updated, models=updated.models | frozenset(_strings("model", changes["model"])))
    if "metric_type" in changes:
        types = _strings("metric_type", changes["metric_type"])
        bad = [t for t in types if t != ALL and t not in METRIC_TYPES]
        if bad:
            raise ProtocolError(
                "invalid_filter", f"Unknown metric_type {bad[0][:40]!r}: use {', '.join(METRIC_TYPES)} or all."
            )
        if ALL in types:
            chosen = frozenset(METRIC_TYPES)
        elif current.metric_types == frozenset(METRIC_TYPES):
            chosen = frozenset(types)  # the first explicit value replaces the default "all"
        else:
            chosen = current.metric_types | frozenset(types)
        updated = replace(updated, metric_types=chosen)
    if "interval" in changes:
        updated = replace(updated, interval=_number("interval", changes["interval"], min_interval, MAX_INTERVAL))
    if "window" in changes:
        updated = replace(updated, window=_number("window", changes["window"], MIN_WINDOW, MAX_WINDOW))
    return updated


def from_query(params: dict[str, list[str]], defaults: Filters, *, min_interval: float) -> Filters:
    """Filters given as query parameters (``?metric_type=latency&interval=2``), as an initial subscribe."""
    changes: dict[str, Any] = {}
    for key, values in params.items():
        if key == "token":
            continue
        if key in ("interval", "window"):
            try:
                changes[key] = float(values[-1])
            except ValueError:
                raise ProtocolError("invalid_filter", f"'{key}' must be a number.") from None
        else:
            changes[key] = values
    return apply(defaults, changes, min_interval=min_interval)


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def reply(kind: str, now: float, message_id: Any = None, **fields: Any) -> str:
    message: dict[str, Any] = {"type": kind, "timestamp": now, **fields}
    if message_id is not None:
        message["id"] = message_id
    return dumps(message)


def error(code: str, message: str, now: float, message_id: Any = None) -> str:
    return reply("error", now, message_id, message=message, code=code)
