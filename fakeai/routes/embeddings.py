"""POST /v1/embeddings: deterministic unit vectors, one per input, after a simulated prefill."""

import base64
import zlib
from collections.abc import Sequence

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from exporter.facts import FinishedReason
from fakeai.context import accept
from fakeai.engine.sequence import GenerationRequest
from fakeai.engine.tokens import Token, tokenize
from fakeai.jsonio import FastJSONResponse
from fakeai.openapi import DocumentedRoute
from fakeai.routes.lifecycle import Outcome, admit, hand_over, run_to_end
from fakeai.routes.prompts import check_length
from fakeai.schemas import EmbeddingRequest

ENDPOINT = "/v1/embeddings"
DEFAULT_DIMENSIONS = 1536


def embed(tokens: Sequence[Token], dimensions: int) -> np.ndarray:
    """The same input always gives the same unit vector (in every process); others give unrelated ones."""
    seed = zlib.crc32("\x1f".join(map(str, tokens)).encode())
    vector = np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _inputs(raw: str | list[str | int | list[int]]) -> list[Sequence[Token]]:
    """The token lists of ``input``, whose list holds one kind (``EmbeddingRequest`` checked it)."""
    if isinstance(raw, str):
        return [tokenize(raw)]
    if all(isinstance(item, int) for item in raw):
        return [[item for item in raw if isinstance(item, int)]]
    return [tokenize(item) if isinstance(item, str) else list(item) for item in raw if not isinstance(item, int)]


async def create_embeddings(request: Request) -> Response:
    accepted = await accept(request, EmbeddingRequest)
    ctx, body, engine = accepted.ctx, accepted.body, accepted.engine
    inputs = _inputs(body.input)
    for tokens in inputs:
        check_length(len(tokens), None, ctx.settings.max_model_len)
    prompt = [token for tokens in inputs for token in tokens]
    gen = GenerationRequest(
        endpoint=ENDPOINT,
        model=engine.model,
        lora=accepted.lora,
        prompt_tokens=prompt,
        arrival=accepted.arrival,
        generate=False,
        fault=accepted.fault or ctx.engines.faults.draw(),
    )
    recorder, seq = await admit(ctx, engine, gen)
    failure = await run_to_end(request, engine, recorder, gen, seq)
    if failure is not None:
        return failure
    hand_over(recorder, gen, seq, Outcome(200, FinishedReason.STOP))
    dimensions = body.dimensions or DEFAULT_DIMENSIONS
    data = []
    for index, tokens in enumerate(inputs):
        vector = embed(tokens, dimensions)
        encoded = (
            base64.b64encode(vector.astype("<f4").tobytes()).decode() if body.encoding_format == "base64" else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens_used = {"prompt_tokens": len(prompt), "total_tokens": len(prompt)}
    return FastJSONResponse({"object": "list", "data": data, "model": body.model, "usage": tokens_used})


# A plain Starlette route: FastAPI's per-request dependency machinery costs more than this whole
# handler's own work with --no-delay. fakeai.openapi documents it with the request model's schema.
ROUTE = DocumentedRoute(
    ENDPOINT, create_embeddings, methods=["POST"], body=EmbeddingRequest, tag="embeddings", summary="Create embeddings"
)
