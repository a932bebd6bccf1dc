"""vLLM's runtime LoRA endpoints: ``POST /v1/load_lora_adapter`` and ``POST /v1/unload_lora_adapter``.

As vLLM serves them (vllm/entrypoints/serve/lora/api_router.py @ 27873cab97e4, the checks and answers of
``OpenAIServingModels`` in vllm/entrypoints/openai/models/serving.py @ 00153c8b): only with
``--enable-lora`` and the environment variable ``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` set to 1 or true;
success is a 200 with a text body; a missing name or path, or a name already loaded (unless
``load_inplace``), is a 400; unloading a name not loaded is a 404. With ``--workers``, every worker loads
and unloads (``fakeai.control``). fakeai loads nothing from the path: the adapter is as good as loaded.
"""

import os
from typing import Annotated

import msgspec
from fastapi import APIRouter
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from fakeai.context import context, parse_body
from fakeai.errors import ErrorKind, OpenAIError

router = APIRouter(tags=["LoRA adapters"])
MAX_ADAPTERS = 1024
"""Adapters loaded at once: the registry's bound, so a client cannot grow it without end."""
MAX_NAME = 256


def runtime_updates_allowed() -> bool:
    """vLLM's ``envs.VLLM_ALLOW_RUNTIME_LORA_UPDATING``."""
    return os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "0").strip().lower() in ("1", "true")


class LoadLoRAAdapterRequest(msgspec.Struct, kw_only=True):
    lora_name: Annotated[str, Meta(max_length=MAX_NAME)] = ""
    lora_path: Annotated[str, Meta(max_length=4096)] = ""
    load_inplace: bool = False


class UnloadLoRAAdapterRequest(msgspec.Struct, kw_only=True):
    lora_name: Annotated[str, Meta(max_length=MAX_NAME)] = ""
    lora_int_id: int | None = None


@router.post("/v1/load_lora_adapter", summary="Load a LoRA adapter")
async def load_lora_adapter(request: Request) -> PlainTextResponse:
    ctx = context(request)
    ctx.check_auth(request)
    body = await parse_body(request, LoadLoRAAdapterRequest)
    name = body.lora_name
    if not name or not body.lora_path:
        raise OpenAIError(ErrorKind.INVALID_REQUEST, "Both 'lora_name' and 'lora_path' must be provided.")
    adapters = ctx.engines.adapters
    if name in adapters and not body.load_inplace:
        raise OpenAIError(
            ErrorKind.INVALID_REQUEST,
            f"The lora adapter '{name}' has already been loaded. If you want to load the adapter in place, "
            "set 'load_inplace' to True.",
        )
    if name in ctx.settings.models:
        raise OpenAIError(ErrorKind.INVALID_REQUEST, f"'{name}' is the name of a served model.")
    if name not in adapters and len(adapters) >= MAX_ADAPTERS:
        raise OpenAIError(ErrorKind.INVALID_REQUEST, f"{MAX_ADAPTERS} adapters are loaded: unload one first.")
    await ctx.control.submit({"op": "load_lora", "name": name, "path": body.lora_path})
    return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")


@router.post("/v1/unload_lora_adapter", summary="Unload a LoRA adapter")
async def unload_lora_adapter(request: Request) -> PlainTextResponse:
    ctx = context(request)
    ctx.check_auth(request)
    body = await parse_body(request, UnloadLoRAAdapterRequest)
    name = body.lora_name
    if not name:
        raise OpenAIError(ErrorKind.INVALID_REQUEST, "'lora_name' needs to be provided to unload a LoRA adapter.")
    if name not in ctx.engines.adapters:
        raise OpenAIError(ErrorKind.NOT_FOUND, f"The lora adapter '{name}' cannot be found.")
    await ctx.control.submit({"op": "unload_lora", "name": name})
    return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")
