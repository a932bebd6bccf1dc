"""Settings that change while the server runs (``PATCH /admin/config``): checked whole, then applied
to every engine between two of its steps, and remembered in a bounded history.

A change is a JSON body whose keys are the settings' own names, for every model, plus ``models: {id:
{...}}`` for one model's latency profile. The new ``Settings`` is built and validated before anything
changes; each worker applies the same resulting settings (``fakeai.control``).
"""

import dataclasses
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from fakeai.engine.faults import parse_mix
from fakeai.errors import ErrorKind, OpenAIError
from fakeai.settings import PROFILE_FIELDS, Settings

log = logging.getLogger("fakeai.admin")

PROFILE_KEYS = (*PROFILE_FIELDS, "lora_load_ms")
"""Each model's latency profile: given at the top level for every model, or under ``models``."""
ENGINE_KEYS: dict[str, type] = {
    "error_rate": float,
    "error_mix": str,
    "max_num_seqs": int,
    "max_waiting": int,
    "num_blocks": int,
    "max_num_batched_tokens": int,
}
"""Server-wide settings that may change at runtime, with the JSON type each takes."""
HISTORY = 100
"""Changes remembered by ``GET /admin/config/history``."""


def _number(key: str, value: Any, kind: type) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        expected = "an integer" if kind is int else "a number"
        raise OpenAIError(ErrorKind.INVALID_REQUEST, f"Invalid '{key}': expected {expected}.", param=key)
    return value


def changed_settings(current: Settings, change: Mapping[str, Any]) -> Settings:
    """The settings after ``change``, validated whole; a 400 naming the key, and nothing applied, when
    any part of it is wrong."""
    if not isinstance(change, Mapping) or not change:
        raise OpenAIError(ErrorKind.INVALID_REQUEST, "Expected a JSON object of settings to change.")
    fields: dict[str, Any] = {}
    profile = dict(current.profile_overrides)
    per_model = {model: dict(values) for model, values in current.model_profiles.items()}
    for key, value in change.items():
        if key == "models":
            if not isinstance(value, Mapping):
                raise OpenAIError(ErrorKind.INVALID_REQUEST, "Invalid 'models': expected an object.", param=key)
            for model, values in value.items():
                param = f"models.{model}"
                if model not in current.models:
                    raise OpenAIError(ErrorKind.INVALID_REQUEST, f"Unknown model '{model}'.", param=param)
                if not isinstance(values, Mapping):
                    raise OpenAIError(ErrorKind.INVALID_REQUEST, f"Invalid '{param}': expected an object.", param=param)
                for name, number in values.items():
                    if name not in PROFILE_KEYS:
                        raise OpenAIError(
                            ErrorKind.INVALID_REQUEST, f"Unknown setting '{param}.{name}'.", param=f"{param}.{name}"
                        )
                    per_model.setdefault(model, {})[name] = float(_number(f"{param}.{name}", number, float))
        elif key in PROFILE_KEYS:
            profile[key] = float(_number(key, value, float))
        elif key == "error_mix":
            try:
                fields[key] = (
                    parse_mix(value)
                    if isinstance(value, str)
                    else parse_mix(",".join(f"{kind}={weight}" for kind, weight in dict(value).items()))
                )
            except (ValueError, TypeError) as exc:
                raise OpenAIError(ErrorKind.INVALID_REQUEST, f"Invalid 'error_mix': {exc}.", param=key) from None
        elif key in ENGINE_KEYS:
            fields[key] = _number(key, value, ENGINE_KEYS[key])
        else:
            known = ", ".join([*ENGINE_KEYS, *PROFILE_KEYS, "models"])
            raise OpenAIError(ErrorKind.INVALID_REQUEST, f"Unknown setting '{key}'; known: {known}.", param=key)
    try:
        return dataclasses.replace(current, **fields, profile_overrides=profile, model_profiles=per_model)
    except ValueError as exc:  # Settings' own checks name the setting
        raise OpenAIError(ErrorKind.INVALID_REQUEST, f"Invalid settings: {exc}.") from None


def effective(settings: Settings) -> dict[str, Any]:
    """What ``GET /admin/config`` shows: every runtime setting's value, and each model's profile."""
    values: dict[str, Any] = {key: getattr(settings, key) for key in ENGINE_KEYS}
    values["max_num_batched_tokens"] = settings.batched_tokens
    values["error_mix"] = dict(settings.error_mix)
    models = {}
    for model in settings.models:
        profile = dataclasses.asdict(settings.profile(model))
        models[model] = {key: profile[key] for key in PROFILE_KEYS}
    values["models"] = models
    return values


class RuntimeConfig:
    """The start-up settings, the current ones, and what changed when; ``apply`` runs in every worker."""

    def __init__(self, startup: Settings, listeners: list[Callable[[Settings], None]]) -> None:
        self.startup = startup
        self.current = startup
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._listeners = listeners

    def apply(self, change: Mapping[str, Any]) -> None:
        """A journal entry: ``{"op": "config", "settings": ..., "source": ..., "changes": ...}``."""
        settings = Settings.from_json(change["settings"])
        self.current = settings
        for listener in self._listeners:
            listener(settings)
        entry = {"time": time.time(), "source": change["source"], "changes": change["changes"]}
        self.history.append(entry)
        log.warning("runtime settings changed by %s: %s", entry["source"], json.dumps(entry["changes"]))
