"""llama-server's ``GET /props`` and ``GET /slots``, served when a model speaks the ``llamacpp`` dialect: what
its web UI, llama-swap, monitors and benchmark clients read to learn the slots, what each is doing, and the
context size. Keys from ``get_res_props``, ``server_slot::to_json`` and the ``get_slots`` handler in
tools/server/server-context.cpp (ggml-org/llama.cpp, commit 001d906a6d86e2490e394361e7cc6f478b100088;
excerpts in tests/data/llamacpp/)."""

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from fakeai import __version__
from fakeai.context import context

router = APIRouter()


@router.get("/props", tags=["llama.cpp"], summary="llama-server's properties")
async def props(request: Request) -> JSONResponse:
    """The model that speaks llama.cpp (a llama-server serves one). What fakeai has no counterpart for is
    empty rather than invented: no sampling defaults, chat template, tokens, GGUF file type or web UI."""
    ctx = context(request)
    settings = ctx.settings
    (model,) = settings.dialect_models("llamacpp")
    engine = ctx.engines.get(model)
    return JSONResponse(
        {
            "default_generation_settings": {"params": {}, "n_ctx": settings.max_model_len},
            "total_slots": settings.max_num_seqs,
            "model_alias": model,
            "model_ftype": "",
            "model_path": model,
            "modalities": {"vision": False, "video": False, "audio": False},
            "media_marker": "",
            "endpoint_slots": True,
            "endpoint_props": False,
            "endpoint_metrics": True,
            "ui": False,
            "ui_settings": {},
            "chat_template": "",
            "chat_template_caps": {},
            "bos_token": "",
            "eos_token": "",
            "build_info": f"fakeai {__version__}",
            "is_sleeping": engine is not None and engine.is_sleeping,
            "cors_proxy_enabled": False,
        }
    )


@router.get("/slots", tags=["llama.cpp"], summary="llama-server's slots")
async def slots(request: Request, fail_on_no_slot: str = "") -> JSONResponse:
    """Every slot of the model's engine (of each engine, numbered on, with --data-parallel-size): whether
    it is processing, and its current or last task. With ``fail_on_no_slot`` (any value), a 503 when no
    slot is idle, as llama-server answers it."""
    ctx = context(request)
    settings = ctx.settings
    (model,) = settings.dialect_models("llamacpp")
    group = ctx.engines.by_model[model]
    answer: list[dict[str, Any]] = []
    idle = 0
    for engine in group.engines:
        assert engine.slots is not None  # kept by every engine of a model that speaks llama.cpp
        idle += engine.slots.idle
        answer += engine.slots.to_json(settings.max_model_len, engine.speculation is not None, len(answer))
    if fail_on_no_slot and not idle:
        # format_error_response(..., ERROR_TYPE_UNAVAILABLE), wrapped as res->error does
        error = {"code": 503, "message": "no slot available", "type": "unavailable_error"}
        return JSONResponse({"error": error}, status_code=503)
    return JSONResponse(answer)
