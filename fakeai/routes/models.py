"""GET /v1/models and /v1/models/{model}."""

import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from fakeai.context import context

router = APIRouter()
_CREATED = int(time.time())


def _card(model: str, max_model_len: int) -> dict[str, object]:
    return {
        "id": model,
        "object": "model",
        "created": _CREATED,
        "owned_by": "fakeai",
        "root": model,
        "max_model_len": max_model_len,
    }


@router.get("/v1/models", tags=["models"], summary="List models")
async def list_models(request: Request) -> JSONResponse:
    ctx = context(request)
    ctx.check_auth(request)
    cards = [_card(m, ctx.settings.max_model_len) for m in ctx.settings.models]
    return JSONResponse({"object": "list", "data": cards})


@router.get("/v1/models/{model:path}", tags=["models"], summary="Retrieve a model")
async def retrieve_model(request: Request, model: str) -> JSONResponse:
    ctx = context(request)
    ctx.check_auth(request)
    ctx.engine_for(model)
    return JSONResponse(_card(model, ctx.settings.max_model_len))
