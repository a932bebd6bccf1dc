"""Checks shared by the generation routes."""

from fakeai.errors import ErrorKind, OpenAIError


def check_length(prompt_tokens: int, max_tokens: int | None, max_model_len: int) -> None:
    """vLLM's rule: the prompt plus the requested output must fit the context."""
    wanted = prompt_tokens + (max_tokens or 1)
    if wanted > max_model_len:
        raise OpenAIError(
            ErrorKind.CONTEXT_LENGTH,
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{wanted} tokens ({prompt_tokens} in the messages, {max_tokens or 1} in the completion).",
            param="max_tokens" if max_tokens else "messages",
        )
