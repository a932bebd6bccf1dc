"""Request bodies, decoded and validated in one pass, so a wrong type is a 400 naming the parameter, never
a 500.

The bodies are msgspec ``Struct`` types, decoded straight from the JSON bytes by a ``msgspec.json.Decoder``
(``fakeai.context.parse_body``). Pydantic did the same job at eight times the cost: under ``wrk`` its
validation was a tenth of a request's CPU, most of it its code falling out of the instruction cache
between requests (``benchmarks/HISTORY.md``, twenty-second session). vLLM depends on msgspec too
(requirements/common.txt @ 0073e449), for its engine's messages.

Decoding is strict, as before: a string where a number belongs is an error, never converted. Unknown
fields are ignored, as vLLM does, so newer SDKs keep working. A list that may hold one of several kinds
(``prompt``, ``input``) is declared as a list of their union, which msgspec accepts, and checked to hold
one kind after decoding.
"""

import math
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from fakeai.errors import ErrorKind, OpenAIError

MAX_STOP = 4
TokenId = Annotated[int, Meta(ge=0, lt=2**31)]
MAX_N = 20
MAX_BATCH = 2048
"""Texts or token lists in one embeddings request, as OpenAI limits them."""


class _Body(msgspec.Struct, kw_only=True, gc=False):
    # ``kw_only`` (each class says it: msgspec applies it to a class's own fields): required fields may
    # follow a base's optional ones. ``gc=False``: a body holds no cycles, so the collector need not track
    # the thousands made a second.
    pass


class _Part(_Body, tag_field="type", kw_only=True):
    """A chat message's content part, told apart by its ``type``; a bad part's error names that field."""


class TextPart(_Part, tag="text", kw_only=True):
    text: str


class ImageURL(_Body, kw_only=True):
    url: str


class InputAudio(_Body, kw_only=True):
    data: str
    format: str


class ImagePart(_Part, tag="image_url", kw_only=True):
    image_url: ImageURL


class AudioPart(_Part, tag="input_audio", kw_only=True):
    input_audio: InputAudio


class FilePart(_Part, tag="file", kw_only=True):
    pass


class RefusalPart(_Part, tag="refusal", kw_only=True):
    pass


ContentPart = TextPart | ImagePart | AudioPart | FilePart | RefusalPart
CONTENT_PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal")
"""The ``type`` of each ``ContentPart``, for the error that names a part of none of them."""


class ChatMessage(_Body, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | UnsetType | None = UNSET
    """``UNSET`` when the message has no ``content`` key: a ``function`` message must give one, even null."""
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None

    def lacks_content(self) -> bool:
        """OpenAI's rule: every message needs ``content``, except an assistant message that calls a tool
        (``tool_calls`` or the older ``function_call``) and a ``function`` message, whose content may be
        null but must be given."""
        if self.role == "assistant" and (self.tool_calls or self.function_call):
            return False
        if self.role == "function":
            return self.content is UNSET
        return self.content is None or self.content is UNSET

    def text(self) -> str:
        content = self.content
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(part.text for part in content if isinstance(part, TextPart))
        return ""

    def media(self) -> list[str]:
        """The content of each image and audio item: what vLLM's multi-modal cache is keyed by."""
        if not isinstance(self.content, list):
            return []
        return [
            part.image_url.url if isinstance(part, ImagePart) else part.input_audio.data
            for part in self.content
            if isinstance(part, ImagePart | AudioPart)
        ]


class StreamOptions(_Body, kw_only=True):
    include_usage: bool = False
    continuous_usage_stats: bool = False
    """vLLM's extension: every chunk carries the usage so far."""


StopSequence = Annotated[str, Meta(min_length=1)]
Stop = StopSequence | Annotated[list[StopSequence], Meta(max_length=MAX_STOP)] | None


class ModelRequest(_Body, kw_only=True):
    """A body that names the served model it is for."""

    model: Annotated[str, Meta(min_length=1)]


class GenerationParams(ModelRequest, kw_only=True):
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, Meta(ge=1, le=MAX_N)] = 1
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    stop: Stop = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    seed: int | None = None
    user: str | None = None
    ignore_eos: bool = False
    min_tokens: Annotated[int, Meta(ge=0)] = 0
    priority: Annotated[int, Meta(ge=-(2**31), lt=2**31)] = 0
    """vLLM's extension: lower runs first under --scheduling-policy priority; anything but 0 otherwise is
    an error, as in vLLM."""

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(GenerationParams, kw_only=True):
    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    max_completion_tokens: Annotated[int, Meta(ge=1)] | None = None

    def message_without_content(self) -> int | None:
        """Index of the first message that needs ``content`` and has none."""
        for index, message in enumerate(self.messages):
            if not isinstance(message.content, str) and message.lacks_content():  # text needs no more checks
                return index
        return None

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


def _one_kind(param: str, items: list[Any], expected: str, most: dict[type, float]) -> None:
    """A 400 naming ``param`` unless a decoded list holds one kind of ``most``, and at most that many."""
    kind = next(k for k in most if isinstance(items[0], k))
    if len(items) > most[kind] or any(not isinstance(item, kind) for item in items):
        raise OpenAIError(ErrorKind.INVALID_REQUEST, f"Invalid '{param}': expected {expected}.", param=param)


class CompletionRequest(GenerationParams, kw_only=True):
    prompt: str | Annotated[list[TokenId | str], Meta(min_length=1)]
    """Text, token ids, or a list of one text."""
    echo: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.prompt, list):
            expected = "a string, a list of token ids, or a list of one string"
            _one_kind("prompt", self.prompt, expected, {int: math.inf, str: 1})

    def token_limit(self) -> int | None:
        return 16 if self.max_tokens is None else self.max_tokens  # OpenAI's legacy default


class EmbeddingRequest(ModelRequest, kw_only=True):
    input: str | Annotated[list[str | TokenId | Annotated[list[TokenId], Meta(min_length=1)]], Meta(min_length=1)]
    """Text, texts, token ids, or lists of token ids."""
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Meta(ge=1, le=8192)] | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.input, list):
            expected = f"a string, at most {MAX_BATCH} strings, token ids, or at most {MAX_BATCH} lists of token ids"
            _one_kind("input", self.input, expected, {str: MAX_BATCH, int: math.inf, list: MAX_BATCH})


class ResponseContentPart(_Body, kw_only=True):
    """A part of a Responses API input message; only text parts count as prompt text."""

    type: Literal["input_text", "output_text", "input_image", "input_file", "input_audio", "refusal"]
    text: str | None = None


class ResponseInputMessage(_Body, kw_only=True):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ResponseContentPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type in ("input_text", "output_text"))


class ResponsesRequest(GenerationParams, kw_only=True):
    """OpenAI's ``POST /v1/responses``: ``input`` (text, or messages), ``instructions`` (a system message
    before them), ``max_output_tokens``. One answer (no ``n``); streamed as the Responses events."""

    input: str | Annotated[list[ResponseInputMessage], Meta(min_length=1)]
    instructions: str | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None

    def messages(self) -> list[tuple[str, str]]:
        """(role, text) of the conversation the model answers, ``instructions`` first."""
        framed = [("system", self.instructions)] if self.instructions else []
        if isinstance(self.input, str):
            return [*framed, ("user", self.input)]
        return [*framed, *((m.role, m.text()) for m in self.input)]


class TokenizeRequest(_Body, kw_only=True):
    """vLLM's ``POST /tokenize``: ``TokenizeCompletionRequest`` (``prompt``) or ``TokenizeChatRequest``
    (``messages``), as vllm/entrypoints/serve/tokenize/protocol.py @030ea52e declares them. fakeai's
    tokenizer adds no BOS, so ``add_special_tokens`` changes nothing."""

    model: str | None = None
    prompt: str | None = None
    messages: Annotated[list[ChatMessage], Meta(min_length=1)] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool = True
    return_token_strs: bool | None = False


class DetokenizeRequest(_Body, kw_only=True):
    """vLLM's ``POST /detokenize`` (same file): token ids back to text."""

    model: str | None = None
    tokens: list[Annotated[int, Meta(ge=0, le=2**63 - 1)]]
