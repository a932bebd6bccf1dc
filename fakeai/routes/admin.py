"""``/admin/*``: the runtime settings, with ``--admin-token`` (without it these paths do not exist).

``GET /admin/config`` (effective values, each model's profile), ``PATCH /admin/config`` (a partial change,
checked whole: a bad key or value is a 400 naming it and nothing changes), ``POST /admin/config/reset``
(back to the start-up settings), ``GET /admin/config/history`` (the last changes). The token is a Bearer
token, compared in constant time; a wrong or missing one is a 401. Every change is logged.
"""

import json
import secrets

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from fakeai.context import ServerContext, context, read_body
from fakeai.errors import ErrorKind, OpenAIError
from fakeai.runtime_config import changed_settings, effective
from fakeai.scenario import ScenarioError
from fakeai.scenario import parse as parse_scenario

router = APIRouter(tags=["admin"])


def _authorised(request: Request) -> ServerContext:
    ctx = context(request)
    expected = ctx.settings.admin_token or ""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), expected.encode()):
        raise OpenAIError(ErrorKind.UNAUTHORIZED, "Incorrect admin token.")
    return ctx


@router.get("/admin/config", summary="The runtime settings")
async def get_config(request: Request) -> JSONResponse:
    ctx = _authorised(request)
    return JSONResponse(effective(ctx.runtime.current))


@router.patch("/admin/config", summary="Change runtime settings")
async def patch_config(request: Request) -> JSONResponse:
    ctx = _authorised(request)
    try:
        change = json.loads(await read_body(request))
    except ValueError as exc:
        raise OpenAIError(ErrorKind.INVALID_JSON, f"The body is not valid JSON: {exc}") from None
    settings = changed_settings(ctx.runtime.current, change)
    await ctx.control.submit(
        {"op": "config", "settings": settings.to_json(), "source": "PATCH /admin/config", "changes": change}
    )
    return JSONResponse(effective(settings))


@router.post("/admin/config/reset", summary="Back to the start-up settings")
async def reset_config(request: Request) -> JSONResponse:
    ctx = _authorised(request)
    startup = ctx.runtime.startup
    change = {"op": "config", "settings": startup.to_json(), "source": "POST /admin/config/reset", "changes": {}}
    await ctx.control.submit(change)
    return JSONResponse(effective(startup))


@router.post("/admin/scenario", summary="Run a scenario (replacing a running one)")
async def start_scenario(request: Request) -> JSONResponse:
    """The body is a scenario file (YAML or JSON); ``?loop=true`` runs it again and again."""
    ctx = _authorised(request)
    if ctx.settings.workers > 1:
        raise OpenAIError(ErrorKind.INVALID_REQUEST, "Scenarios need --workers 1 (one process runs the timeline).")
    text = (await read_body(request)).decode("utf-8", errors="replace")
    try:
        scenario = parse_scenario(text, "body")
        await ctx.scenario.start(scenario, loop=request.query_params.get("loop", "").lower() in ("1", "true"))
    except ScenarioError as exc:
        raise OpenAIError(ErrorKind.INVALID_REQUEST, str(exc)) from None
    return JSONResponse(ctx.scenario.status())


@router.get("/admin/scenario", summary="The running scenario: its phase, time in it, the next one")
async def scenario_status(request: Request) -> JSONResponse:
    return JSONResponse(_authorised(request).scenario.status())


@router.delete("/admin/scenario", summary="Stop the running scenario, back to the start-up settings")
async def stop_scenario(request: Request) -> JSONResponse:
    ctx = _authorised(request)
    await ctx.scenario.stop()
    return JSONResponse(ctx.scenario.status())


@router.get("/admin/config/history", summary="The last runtime changes")
async def config_history(request: Request) -> JSONResponse:
    ctx = _authorised(request)
    return JSONResponse({"changes": list(ctx.runtime.history)})
