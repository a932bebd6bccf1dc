"""OpenAI's error envelope, and the one exception every route raises for a client-visible error."""

from enum import Enum
from typing import Any

from starlette.responses import JSONResponse


class ErrorKind(Enum):
    """Status, OpenAI error ``type`` and ``code``: the bounded set errors are labelled with."""

    INVALID_REQUEST = (400, "invalid_request_error", None)
    INVALID_JSON = (400, "invalid_request_error", "invalid_json")
    MISSING_PARAMETER = (400, "invalid_request_error", "missing_required_parameter")
    CONTEXT_LENGTH = (400, "invalid_request_error", "context_length_exceeded")
    UNAUTHORIZED = (401, "authentication_error", "invalid_api_key")
    MODEL_NOT_FOUND = (404, "invalid_request_error", "model_not_found")
    NOT_FOUND = (404, "invalid_request_error", "not_found")
    METHOD_NOT_ALLOWED = (405, "invalid_request_error", "method_not_allowed")
    RATE_LIMITED = (429, "rate_limit_error", "rate_limit_exceeded")
    QUEUE_FULL = (429, "rate_limit_error", "queue_full")
    SERVER_ERROR = (500, "server_error", "internal_error")
    OVERLOADED = (503, "server_error", "engine_overloaded")
    LOADING = (503, "server_error", "model_loading")

    @property
    def status(self) -> int:
        status: int = self.value[0]
        return status

    @property
    def type(self) -> str:
        error_type: str = self.value[1]
        return error_type

    @property
    def code(self) -> str | None:
        code: str | None = self.value[2]
        return code


class OpenAIError(Exception):
    def __init__(self, kind: ErrorKind, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param

    def body(self) -> dict[str, Any]:
        return error_body(self.kind, self.message, self.param)

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.kind is ErrorKind.UNAUTHORIZED else None
        return JSONResponse(self.body(), status_code=self.kind.status, headers=headers)


def missing_parameter(param: str) -> OpenAIError:
    """OpenAI's answer to a required parameter left out (``param`` as OpenAI writes it: ``messages[0].content``)."""
    return OpenAIError(ErrorKind.MISSING_PARAMETER, f"Missing required parameter: '{param}'.", param=param)


def error_body(kind: ErrorKind, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind.type, "param": param, "code": kind.code}}
