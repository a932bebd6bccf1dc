"""LoRA adapters as the engine simulates them, with vLLM's flags, shapes and rules.

- ``--lora-modules`` entries are ``name=path`` or a JSON object ``{"name", "path", "base_model_name"}``
  (vLLM's ``LoRAParserAction`` and ``LoRAModulePath``, vllm/entrypoints/openai/cli_args.py).
- At most ``max_loras`` distinct adapters are in a running batch at once; a request whose adapter would
  exceed that waits, and requests behind it may go first (vLLM v1's scheduler skips it, "deferred").
- ``max_cpu_loras`` adapters stay in host memory, least recently used out; scheduling a request whose
  adapter is not there loads it first, which costs the step ``lora_load_ms`` (fakeai's setting).
"""

import json
from collections import OrderedDict
from dataclasses import dataclass

MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""``LoRAConfig.max_lora_rank``'s allowed values (vllm/config/lora.py @ a78dc92f43ae)."""


@dataclass(frozen=True)
class Adapter:
    name: str
    path: str
    base_model: str


def parse_lora_module(text: str) -> dict[str, str]:
    """One ``--lora-modules`` entry: ``name=path``, or vLLM's JSON object form."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("name"), str)
            or not isinstance(value.get("path"), str)
        ):
            raise ValueError('expected {"name": "...", "path": "...", "base_model_name": "..."}')
        module = {"name": value["name"], "path": value["path"]}
        if isinstance(value.get("base_model_name"), str):
            module["base_model_name"] = value["base_model_name"]
        return module
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"expected name=path or a JSON object, got {text!r}")
    return {"name": name, "path": path}


class Residency:
    """Which adapters are in host memory (``max_cpu_loras``, least recently used out)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._resident: OrderedDict[str, None] = OrderedDict()

    def use(self, name: str) -> bool:
        """Mark ``name`` used; True when it had to be loaded first."""
        if name in self._resident:
            self._resident.move_to_end(name)
            return False
        self._resident[name] = None
        if len(self._resident) > self.capacity:
            self._resident.popitem(last=False)
        return True

    def drop(self, name: str) -> None:
        self._resident.pop(name, None)
