"""SGLang's native probes, served when a model speaks the ``sglang`` dialect: what its clients, routers and
health checks call besides the OpenAI API. Shapes from python/sglang/srt/entrypoints/http_server.py
(sgl-project/sglang, commit 0025436eab0556737d615b36a4dd3e1e26e82f3d) and ServerArgs' defaults
(python/sglang/srt/server_args.py)."""

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fakeai.context import context

router = APIRouter()


@router.get("/get_model_info", tags=["sglang"], summary="SGLang's model info")
async def get_model_info(request: Request) -> JSONResponse:
    """The first model that speaks SGLang (an SGLang server serves one): its path is its name, as SGLang's
    ``served_model_name`` and ``tokenizer_path`` default to ``model_path``."""
    ctx = context(request)
    model = (ctx.settings.dialect_models("sglang") + ctx.settings.dialect_models("sglang_"))[0]
    return JSONResponse(
        {
            "model_path": model,
            "tokenizer_path": model,
            "is_generation": True,
            "preferred_sampling_params": None,
            "weight_version": "default",
        }
    )


@router.get("/health_generate", tags=["sglang"], summary="SGLang's generation health check")
async def health_generate(request: Request) -> Response:
    """200 when the engines would answer a one-token request; 503 while they load, sleep, or the server is
    down. SGLang sends the token and waits up to 20 s for it (``SGLANG_HEALTH_CHECK_TIMEOUT``); fakeai knows
    at once whether its engines would answer, so it says so without waiting or counting a request."""
    ctx = context(request)
    engines = ctx.engines
    healthy = not ctx.down and not engines.loading and not any(engine.is_sleeping for engine in engines.all())
    return Response(status_code=200 if healthy else 503)
