"""The facts the server hands to the exporter: plain data, no metric names.

The engine and the routes describe what happened (a request finished, a step emitted tokens); only
``exporter`` decides which families those facts feed.
"""

from dataclasses import dataclass
from enum import StrEnum


class FinishedReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"
    ERROR = "error"
    REPETITION = "repetition"


class StreamOutcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Status recorded for a request whose client went away before the response ended (nginx's code).
CLIENT_CLOSED_REQUEST = 499


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs five times more, per request
class RequestRecord:
    """Everything measured about one accepted request, handed over once when it ends.

    Times are ``time.monotonic()`` readings; a phase that never happened is ``None``.
    """

    endpoint: str
    model: str
    status: int
    finished_reason: FinishedReason
    arrival: float
    finished: float
    scheduled: float | None = None
    queued: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens found in the prefix cache (not computed in prefill)."""
    preemptions: int = 0
    completion_tokens: int = 0
    max_choice_tokens: int = 0
    error_status: int | None = None
    """The error the client was given, which differs from ``status`` for a stream failing after its 200."""
    error_type: str | None = None
    stream_outcome: StreamOutcome | None = None
    stream: bool = False
    """Whether the client asked for a stream (``stream_outcome`` is None for one refused before it began)."""

    @property
    def duration(self) -> float:
        return self.finished - self.arrival
