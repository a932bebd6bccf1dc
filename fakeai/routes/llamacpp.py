"""llama-server's ``GET /props``, served when a model speaks the ``llamacpp`` dialect: what its web UI,
llama-swap and benchmark clients read to learn the slots and the context size. Keys from
``get_res_props`` in tools/server/server-context.cpp (ggml-org/llama.cpp, commit
001d906a6d86e2490e394361e7cc6f478b100088; excerpt in tests/data/llamacpp/)."""

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
            "endpoint_slots": False,
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
