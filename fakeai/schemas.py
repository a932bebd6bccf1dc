"""Request bodies, validated strictly so a wrong type is a 400 naming the parameter, never a 500."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_STOP = 4
TokenId = Annotated[int, Field(ge=0, lt=2**31)]
MAX_N = 20


class _Body(BaseModel):
    # Unknown parameters are ignored, as vLLM does, so newer SDKs keep working.
    model_config = ConfigDict(extra="ignore", strict=True)


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ImageURL(_Body):
    url: str


class InputAudio(_Body):
    data: str
    format: str


class ImagePart(_Body):
    type: Literal["image_url"]
    image_url: ImageURL


class AudioPart(_Body):
    type: Literal["input_audio"]
    input_audio: InputAudio


class OtherPart(_Body):
    type: Literal["file", "refusal"]


# Tagged by ``type``, so a bad part's error names the field it lacks, not every kind of part.
ContentPart = Annotated[TextPart | ImagePart | AudioPart | OtherPart, Field(discriminator="type")]


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
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
            return "content" not in self.model_fields_set
        return self.content is None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    def media(self) -> list[str]:
        """The content of each image and audio item: what vLLM's multi-modal cache is keyed by."""
        if not isinstance(self.content, list):
            return []
        return [
            part.image_url.url if isinstance(part, ImagePart) else part.input_audio.data
            for part in self.content
            if isinstance(part, ImagePart | AudioPart)
        ]


class StreamOptions(_Body):
    include_usage: bool = False
    continuous_usage_stats: bool = False
    """vLLM's extension: every chunk carries the usage so far."""


Stop = str | Annotated[list[str], Field(max_length=MAX_STOP)] | None


class ModelRequest(_Body):
    """A body that names the served model it is for."""

    model: str = Field(min_length=1)


class GenerationParams(ModelRequest):
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=MAX_N)
    max_tokens: int | None = Field(None, ge=1)
    stop: Stop = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    user: str | None = None
    ignore_eos: bool = False
    min_tokens: int = Field(0, ge=0)
    priority: int = Field(0, ge=-(2**31), lt=2**31)
    """vLLM's extension: lower runs first under --scheduling-policy priority; anything but 0 otherwise is
    an error, as in vLLM."""

    @field_validator("stop")
    @classmethod
    def _non_empty_stops(cls, value: Stop) -> Stop:
        stops = [value] if isinstance(value, str) else value or []
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return value

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(GenerationParams):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    def message_without_content(self) -> int | None:
        """Index of the first message that needs ``content`` and has none."""
        for index, message in enumerate(self.messages):
            if message.content is None and message.lacks_content():  # the rule's cases all lack content first
                return index
        return None

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(GenerationParams):
    prompt: (
        str | Annotated[list[TokenId], Field(min_length=1)] | Annotated[list[str], Field(min_length=1, max_length=1)]
    )
    echo: bool = False

    def token_limit(self) -> int | None:
        return 16 if self.max_tokens is None else self.max_tokens  # OpenAI's legacy default


class EmbeddingRequest(ModelRequest):
    input: (
        str
        | Annotated[list[str], Field(min_length=1, max_length=2048)]
        | Annotated[list[TokenId], Field(min_length=1)]
        | Annotated[list[Annotated[list[TokenId], Field(min_length=1)]], Field(min_length=1, max_length=2048)]
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, le=8192)
    user: str | None = None


class ResponseContentPart(_Body):
    """A part of a Responses API input message; only text parts count as prompt text."""

    type: Literal["input_text", "output_text", "input_image", "input_file", "input_audio", "refusal"]
    text: str | None = None


class ResponseInputMessage(_Body):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ResponseContentPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type in ("input_text", "output_text"))


class ResponsesRequest(GenerationParams):
    """OpenAI's ``POST /v1/responses``: ``input`` (text, or messages), ``instructions`` (a system message
    before them), ``max_output_tokens``. One answer (no ``n``); streamed as the Responses events."""

    input: str | Annotated[list[ResponseInputMessage], Field(min_length=1)]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)

    def messages(self) -> list[tuple[str, str]]:
        """(role, text) of the conversation the model answers, ``instructions`` first."""
        framed = [("system", self.instructions)] if self.instructions else []
        if isinstance(self.input, str):
            return [*framed, ("user", self.input)]
        return [*framed, *((m.role, m.text()) for m in self.input)]


class TokenizeRequest(_Body):
    """vLLM's ``POST /tokenize``: ``TokenizeCompletionRequest`` (``prompt``) or ``TokenizeChatRequest``
    (``messages``), as vllm/entrypoints/serve/tokenize/protocol.py @030ea52e declares them. fakeai's
    tokenizer adds no BOS, so ``add_special_tokens`` changes nothing."""

    model: str | None = None
    prompt: str | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1)] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool = True
    return_token_strs: bool | None = False


class DetokenizeRequest(_Body):
    """vLLM's ``POST /detokenize`` (same file): token ids back to text."""

    model: str | None = None
    tokens: list[Annotated[int, Field(ge=0, le=2**63 - 1)]]
