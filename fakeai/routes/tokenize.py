"""vLLM's ``POST /tokenize`` and ``POST /detokenize`` (vllm/entrypoints/serve/tokenize/api_router.py @045d7575),
counted by the rule every endpoint counts by, with the ids of the shipped tokenizer
(``python -m fakeai tokenizer``). A prompt is tokenized as ``/v1/completions`` counts it, messages as
``/v1/chat/completions`` frames them. Like vLLM's, these paths are outside ``/v1``, so no API key is asked.
"""

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from fakeai.context import context, parse_body
from fakeai.engine import vocabulary
from fakeai.engine.tokens import chat_prompt_tokens, tokenize
from fakeai.errors import ErrorKind, OpenAIError, missing_parameter
from fakeai.schemas import DetokenizeRequest, TokenizeRequest

router = APIRouter(tags=["vLLM utilities"])


def _check_model(request: Request, model: str | None) -> None:
    ctx = context(request)
    if model is not None and ctx.engines.resolve(model) is None:
        raise OpenAIError(ErrorKind.MODEL_NOT_FOUND, f"The model `{model[:200]}` does not exist.", param="model")


@router.post("/tokenize", summary="Tokenize a prompt or chat messages")
async def tokenize_endpoint(request: Request) -> JSONResponse:
    body = await parse_body(request, TokenizeRequest)
    _check_model(request, body.model)
    if body.messages is not None:
        if (index := next((i for i, m in enumerate(body.messages) if m.lacks_content()), None)) is not None:
            raise missing_parameter(f"messages[{index}].content")
        pieces = chat_prompt_tokens(((m.role, m.text()) for m in body.messages), body.add_generation_prompt)
    elif body.prompt is not None:
        pieces = tokenize(body.prompt)
    else:
        raise missing_parameter("prompt")
    return JSONResponse(
        {
            "count": len(pieces),
            "max_model_len": context(request).settings.max_model_len,
            "tokens": [vocabulary.token_id(piece) for piece in pieces],
            "token_strs": pieces if body.return_token_strs else None,
        }
    )


@router.post("/detokenize", summary="Turn token ids back into text")
async def detokenize_endpoint(request: Request) -> JSONResponse:
    body = await parse_body(request, DetokenizeRequest)
    _check_model(request, body.model)
    text = vocabulary.decode(body.tokens)
    if isinstance(text, int):
        raise OpenAIError(
            ErrorKind.INVALID_REQUEST,
            f"Token id {text} is out of vocabulary (0..{vocabulary.VOCABULARY_SIZE - 1}).",
            param="tokens",
        )
    return JSONResponse({"prompt": text})
