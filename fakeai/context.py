"""What the routes share: settings, the metrics recorder and the engines. Built by ``create_app``."""

import functools
import re
import secrets
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request

from exporter.metrics import ServerMetrics
from fakeai.control import LocalControl, SharedControl
from fakeai.engine.faults import Fault, parse_fault_header, parse_return_error
from fakeai.engine.scheduler import ModelEngine
from fakeai.engines import Engines
from fakeai.errors import ErrorKind, OpenAIError, missing_parameter
from fakeai.http_metrics import ARRIVAL
from fakeai.runtime_config import RuntimeConfig
from fakeai.scenario_runner import ScenarioRunner
from fakeai.schemas import CONTENT_PART_TYPES, ModelRequest
from fakeai.settings import Settings

MAX_BODY_BYTES = 8 * 1024 * 1024
DP_RANK_HEADER = b"x-data-parallel-rank"
"""vLLM's header naming the data-parallel engine a request must run on (``_get_data_parallel_rank``)."""
FAULT_HEADER = b"x-fakeai-fault"
"""A request's forced fate (``429``, ``500``, ``503``, ``abort``, ``abort;after=N``, ``delay;ms=N``)."""
RETURN_ERROR_HEADER = b"x-return-error"
"""llm-d-inference-sim's forced error status (its docs/http-endpoints.md, "Request headers")."""
FAULT_HEADERS = (FAULT_HEADER, RETURN_ERROR_HEADER)
BodyT = TypeVar("BodyT", bound=ModelRequest)
ParsedT = TypeVar("ParsedT", bound=msgspec.Struct)


@dataclass
class ServerContext:
    settings: Settings
    metrics: ServerMetrics
    engines: Engines
    control: LocalControl | SharedControl
    runtime: RuntimeConfig
    scenario: ScenarioRunner
    down: bool = False
    """A scenario phase took the server down: /v1/*, /health and /metrics answer 503."""

    def check_auth(self, request: Request) -> None:
        if not self.settings.api_keys:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not any(
            secrets.compare_digest(token.strip().encode(), key.encode()) for key in self.settings.api_keys
        ):
            raise OpenAIError(ErrorKind.UNAUTHORIZED, "Incorrect API key provided.")

    def engine_for(self, model: str, rank_header: str | None = None) -> ModelEngine:
        return self.route(model, rank_header)[0]

    def route(self, model: str, rank_header: str | None = None) -> tuple[ModelEngine, str | None]:
        """The engine that runs a request for ``model`` (a served model, or a LoRA adapter of one, which
        runs on its base model's engines), and the adapter: the least loaded of the model's
        data-parallel engines, or the one vLLM's ``X-data-parallel-rank`` header names."""
        if self.engines.loading:
            raise OpenAIError(ErrorKind.LOADING, "The model is still loading; try again shortly.")
        resolved = self.engines.resolve(model)
        if resolved is None:
            raise OpenAIError(
                ErrorKind.MODEL_NOT_FOUND,
                f"The model `{model[:200]}` does not exist. Served models: {', '.join(self.settings.models)}.",
                param="model",
            )
        base, adapter = resolved
        rank = None
        if rank_header is not None:
            try:
                rank = int(rank_header)
            except ValueError:
                raise OpenAIError(
                    ErrorKind.INVALID_REQUEST, f"X-data-parallel-rank must be an integer, got {rank_header[:20]!r}."
                ) from None
        engine = self.engines.get(base, rank)
        if engine is None:
            ranks = ", ".join(str(index) for index in self.metrics.engines)
            raise OpenAIError(
                ErrorKind.INVALID_REQUEST, f"data_parallel_rank {rank} is not an engine of this server ({ranks})."
            )
        return engine, adapter


def arrival_time(request: Request) -> float:
    """When the server first saw the request (set by the HTTP middleware), else now."""
    return request.scope.get("state", {}).get(ARRIVAL) or time.monotonic()


def context(request: Request) -> ServerContext:
    ctx: ServerContext = request.scope["app"].context  # set by ``create_app`` on its ``FakeaiApp``
    return ctx


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs several times more, per request
class Accepted(Generic[BodyT]):
    """A request a model endpoint has accepted: authorised, its body valid, its model served."""

    ctx: ServerContext
    arrival: float
    body: BodyT
    engine: ModelEngine
    lora: str | None = None
    """The LoRA adapter the request names; ``engine`` is then one of its base model's."""
    fault: Fault | None = None
    """The fate a request header forces (``X-Fakeai-Fault``, ``X-Return-Error``), if any."""


async def accept(request: Request, body_type: type[BodyT]) -> Accepted[BodyT]:
    """What every model endpoint does first: arrival time, API key, body, and the model's engine."""
    ctx = context(request)
    arrival = arrival_time(request)
    if ctx.down:
        raise OpenAIError(ErrorKind.OVERLOADED, "The server is down (a scenario phase).")
    ctx.check_auth(request)
    body = await parse_body(request, body_type)
    settings = ctx.settings
    rank = fault = None
    if settings.data_parallel_size > 1 or settings.fault_headers:
        # The raw headers, without building Starlette's ``Headers`` on the hot path.
        for name, value in request.scope["headers"]:
            if name == DP_RANK_HEADER and settings.data_parallel_size > 1:
                rank = value.decode("latin-1")
            elif name in FAULT_HEADERS and settings.fault_headers:
                fault = _forced_fault(name, value.decode("latin-1"))
    engine, lora = ctx.route(body.model, rank)
    return Accepted(ctx, arrival, body, engine, lora, fault)


def _forced_fault(header: bytes, value: str) -> Fault:
    parse = parse_fault_header if header == FAULT_HEADER else parse_return_error
    try:
        return parse(value)
    except ValueError as exc:
        raise OpenAIError(ErrorKind.INVALID_REQUEST, f"{header.decode()}: {exc}.") from None


async def read_body(request: Request) -> bytes:
    """The request body, refused as soon as it grows past ``MAX_BODY_BYTES`` (memory stays bounded)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise OpenAIError(ErrorKind.INVALID_REQUEST, f"Request body over {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_ERROR_AT = re.compile(r"(?P<message>.*) - at `\$(?P<path>.*)`", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]*)`")


def openai_param(path: str) -> str:
    """A JSON path as msgspec writes it after ``$`` (``.messages[0].role``) as OpenAI names the parameter
    (``messages[0].role``)."""
    return path.removeprefix(".")


@functools.cache
def decoder(body_type: type[ParsedT]) -> msgspec.json.Decoder[ParsedT]:
    """One decoder per body type: building one compiles the type's validators, once."""
    return msgspec.json.Decoder(body_type)


async def parse_body(request: Request, body_type: type[ParsedT]) -> ParsedT:
    """Decode and validate a JSON body; every failure is a 400 in OpenAI's envelope naming the parameter."""
    body = await read_body(request)
    try:
        parsed: ParsedT = decoder(body_type).decode(body)  # ``functools.cache`` keeps no type parameters
    except msgspec.ValidationError as exc:
        raise invalid_body(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise OpenAIError(ErrorKind.INVALID_JSON, f"The body is not valid JSON: {exc}") from None
    except RecursionError:  # msgspec stops at the interpreter's recursion limit, as json.loads does
        raise OpenAIError(ErrorKind.INVALID_JSON, "The body is not valid JSON: nested too deeply.") from None
    return parsed


def invalid_body(error: str) -> OpenAIError:
    """msgspec's validation error (``Expected `int` >= 1 - at `$.max_tokens```) as OpenAI's 400."""
    found = _ERROR_AT.fullmatch(error)
    message, path = (found["message"], found["path"]) if found else (error, "")
    missing = _MISSING.fullmatch(message)
    if missing is not None:
        return missing_parameter(openai_param(f"{path}.{missing['field']}"))
    if not path:
        return OpenAIError(ErrorKind.INVALID_REQUEST, "The body must be a JSON object.")
    param = openai_param(path)
    if message.startswith("Invalid value ") and ".content[" in path:  # a content part's unknown ``type`` tag
        message += f"; supported values are {', '.join(map(repr, CONTENT_PART_TYPES))}"
    return OpenAIError(ErrorKind.INVALID_REQUEST, f"Invalid '{param}': {message}.", param=param)
