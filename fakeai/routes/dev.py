"""vLLM's utility endpoints that benchmark clients call between runs (NVIDIA AIPerf's ``--reset-kv-cache`` and
``--server-profiler``), as ``vllm/entrypoints/serve/cache/api_router.py`` and
``vllm/entrypoints/serve/profile/api_router.py`` answer them: an empty 200.

- ``POST /reset_prefix_cache`` forgets every cached block of every engine, so the next requests find
  nothing cached (the prefix-cache hit counters show it). vLLM also takes ``reset_running_requests`` and
  ``reset_external``; fakeai's running requests keep their KV blocks either way (the simulated cache
  holds block hashes, not the blocks' memory), and it has no external cache. vLLM serves it only with
  ``VLLM_SERVER_DEV_MODE=1``; here it is always served.
- ``POST /start_profile`` and ``POST /stop_profile`` (only with ``--profile-dir``, as vLLM has them only
  with a profiler configured) record the engine steps between them and write them to that folder as a
  Chrome trace (``fakeai.engine.profiler``).

With ``--workers`` every worker does it (``fakeai.control``) before the answer.
"""

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fakeai.context import context

cache_router = APIRouter(tags=["vLLM utilities"])
profile_router = APIRouter(tags=["vLLM utilities"])


@cache_router.post("/reset_prefix_cache", summary="Forget every cached prefix block")
async def reset_prefix_cache(request: Request) -> Response:
    await context(request).control.submit({"op": "reset_prefix_cache"})
    return Response(status_code=200)


@profile_router.post("/start_profile", summary="Start recording engine steps")
async def start_profile(request: Request) -> Response:
    await context(request).control.submit({"op": "start_profile"})
    return Response(status_code=200)


@profile_router.post("/stop_profile", summary="Stop recording and write the trace")
async def stop_profile(request: Request) -> Response:
    await context(request).control.submit({"op": "stop_profile"})
    return Response(status_code=200)
