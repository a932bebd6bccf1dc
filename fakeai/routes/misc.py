"""GET /health and the landing page."""

import html
import os
from pathlib import Path

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from fakeai import __version__
from fakeai.context import context

router = APIRouter()


@router.get("/health", tags=["ops"], summary="Readiness")
async def health(request: Request) -> JSONResponse:
    """200 once the engines have loaded; 503 while they load (``--startup-seconds``), as a readiness probe
    sees a starting vLLM."""
    ctx = context(request)
    loading = ctx.engines.loading
    if ctx.down:
        return JSONResponse({"status": "down", "version": __version__, "pid": os.getpid()}, status_code=503)
    return JSONResponse(
        {
            "status": "loading" if loading else "ok",
            "version": __version__,
            "models": list(ctx.settings.models),
            "pid": os.getpid(),
        },
        status_code=503 if loading else 200,
    )


DASHBOARD = Path(__file__).resolve().parent.parent / "static" / "metrics_streaming_dashboard.html"


@router.get("/dashboard", include_in_schema=False)
async def dashboard() -> HTMLResponse:
    """The live dashboard of examples/, talking to this server's /metrics/stream."""
    return HTMLResponse(DASHBOARD.read_text(encoding="utf-8"))


@router.get("/", include_in_schema=False)
async def landing(request: Request) -> HTMLResponse:
    ctx = context(request)
    models = "".join(f"<li><code>{html.escape(m)}</code></li>" for m in ctx.settings.models)
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'><title>fakeai</title></head><body>"
        "<h1>fakeai</h1><p>An OpenAI-compatible fake LLM server that behaves like vLLM under load.</p>"
        "<ul><li><a href='/metrics'>/metrics</a>: Prometheus metrics (vLLM names included)</li>"
        "<li><a href='/metrics/stream'>/metrics/stream</a>: live metrics over WebSocket</li>"
        "<li><a href='/dashboard'>/dashboard</a>: live dashboard</li>"
        "<li><a href='/docs'>/docs</a>: the API</li><li><a href='/health'>/health</a></li></ul>"
        f"<h2>Models</h2><ul>{models}</ul></body></html>"
    )
