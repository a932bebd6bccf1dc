"""vLLM's sleep mode endpoints (``--enable-sleep-mode``), for every model this server serves.

As vLLM's ``vllm/frontend/entrypoints/serve/dev/sleep/api_router.py`` (commit 055e47c): ``POST /sleep``
takes ``level`` (default 1) and ``mode`` (default ``abort``) and answers an empty 200 once the engines
sleep; ``POST /wake_up`` takes repeatable ``tags`` (none: everything) and answers an empty 200;
``GET /is_sleeping`` answers ``{"is_sleeping": bool}``. vLLM also requires ``VLLM_SERVER_DEV_MODE=1``
for these routes; here the one flag is enough. Where vLLM answers a bad ``level`` with a 500 (its
``int()`` fails), this answers a 400 naming the parameter.

With ``--workers``, every worker's engines sleep and wake (``fakeai.control``) before the answer.

A request that arrives while its engine sleeps is queued, not refused, and runs once the engine wakes
(vLLM's paused scheduler): its client simply waits.
"""

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fakeai.context import context
from fakeai.engine.scheduler import PAUSE_MODES, SLEEP_LEVELS, WAKE_TAGS
from fakeai.errors import ErrorKind, OpenAIError

router = APIRouter(tags=["sleep mode"])


@router.post("/sleep", summary="Put every engine to sleep")
async def sleep(request: Request) -> Response:
    level_text = request.query_params.get("level", "1")
    mode = request.query_params.get("mode", "abort")
    if level_text not in {str(level) for level in SLEEP_LEVELS}:
        raise OpenAIError(ErrorKind.INVALID_REQUEST, "level must be 0, 1 or 2.", param="level")
    if mode not in PAUSE_MODES:
        raise OpenAIError(ErrorKind.INVALID_REQUEST, f"mode must be one of {', '.join(PAUSE_MODES)}.", param="mode")
    ctx = context(request)
    with ctx.metrics.sleep_operation("sleep"):
        await ctx.control.submit({"op": "sleep", "level": int(level_text), "mode": mode})
    return Response(status_code=200)


@router.post("/wake_up", summary="Wake every engine up")
async def wake_up(request: Request) -> Response:
    tags = request.query_params.getlist("tags") or None
    if tags is not None and any(tag not in WAKE_TAGS for tag in tags):
        raise OpenAIError(ErrorKind.INVALID_REQUEST, f"tags must be among {', '.join(WAKE_TAGS)}.", param="tags")
    ctx = context(request)
    with ctx.metrics.sleep_operation("wake"):
        await ctx.control.submit({"op": "wake_up", "tags": tags})
    return Response(status_code=200)


@router.get("/is_sleeping", summary="Whether the engines sleep")
async def is_sleeping(request: Request) -> JSONResponse:
    engines = context(request).engines.all()
    return JSONResponse({"is_sleeping": any(engine.is_sleeping for engine in engines)})
