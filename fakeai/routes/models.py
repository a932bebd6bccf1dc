"""GET /v1/models and /v1/models/{model}."""

import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from fakeai.context import ServerContext, context

router = APIRouter()
_CREATED = int(time.time())


def _card(model: str, root: str, parent: str | None, max_model_len: int | None) -> dict[str, object]:
    """vLLM's ``ModelCard``: a base model has its path as ``root``; a LoRA adapter its adapter path, and
    its base model as ``parent`` (vllm/entrypoints/openai/models/serving.py @ 00153c8b)."""
    return {
        "id": model,
        "object": "model",
        "created": _CREATED,
        "owned_by": "fakeai",
        "root": root,
        "parent": parent,
        "max_model_len": max_model_len,
    }


def _cards(ctx: ServerContext) -> dict[str, dict[str, object]]:
    cards = {m: _card(m, m, None, ctx.settings.max_model_len) for m in ctx.settings.models}
    for adapter in ctx.engines.adapters.values():
        cards[adapter.name] = _card(adapter.name, adapter.path, adapter.base_model, None)
    return cards


@router.get("/v1/models", tags=["models"], summary="List models")
async def list_models(request: Request) -> JSONResponse:
    ctx = context(request)
    ctx.check_auth(request)
    return JSONResponse({"object": "list", "data": list(_cards(ctx).values())})


@router.get("/v1/models/{model:path}", tags=["models"], summary="Retrieve a model")
async def retrieve_model(request: Request, model: str) -> JSONResponse:
    ctx = context(request)
    ctx.check_auth(request)
    ctx.engine_for(model)
    return JSONResponse(_cards(ctx)[model])
