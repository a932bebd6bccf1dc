"""Text Generation Inference's ``GET /info``, served when a model speaks the ``tgi`` dialect: what
``text_generation`` clients, TGI's benchmark and health checks read to learn the model and its limits.
Fields of ``Info`` (router/src/lib.rs) as router/src/server.rs fills them, and the launcher's defaults
(docs/source/reference/launcher.md), huggingface/text-generation-inference commit
db931fcf42da018a3657580c64bf2720f167f9ab; the excerpt is kept in tests/data/tgi/."""

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from fakeai import __version__
from fakeai.context import context

router = APIRouter()

# The launcher's defaults for what fakeai has no setting of its own.
MAX_BEST_OF = 2
MAX_STOP_SEQUENCES = 4
VALIDATION_WORKERS = 2
MAX_CLIENT_BATCH_SIZE = 4


@router.get("/info", tags=["tgi"], summary="Text Generation Inference's router info")
async def info(request: Request) -> JSONResponse:
    """The model that speaks TGI (a TGI server serves one). ``max_total_tokens`` is the context length
    and ``max_input_tokens`` one less (the launcher's defaults for a model of that length);
    ``max_concurrent_requests`` is what fakeai holds before it answers 429 (running and waiting), as TGI
    answers 429 beyond it."""
    settings = context(request).settings
    (model,) = settings.dialect_models("tgi")
    return JSONResponse(
        {
            "model_id": model,
            "model_sha": None,
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": settings.max_num_seqs + settings.max_waiting,
            "max_best_of": MAX_BEST_OF,
            "max_stop_sequences": MAX_STOP_SEQUENCES,
            "max_input_tokens": settings.max_model_len - 1,
            "max_total_tokens": settings.max_model_len,
            "validation_workers": VALIDATION_WORKERS,
            "max_client_batch_size": MAX_CLIENT_BATCH_SIZE,
            "router": "text-generation-router",
            "version": __version__,
            "sha": None,
            "docker_label": None,
        }
    )
