"""One streaming chat request, timed as the bytes arrive; the SSE parsing happens after the clock reads."""

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


@dataclass
class Timing:
    """What a client measured of one request. Times in seconds from just before the request was sent."""

    status: int = 0
    started: float = 0.0
    """When the request was sent, in seconds from the start of its run (``run`` fills it in)."""
    ttft: float | None = None
    """Arrival of the first content token."""
    itl: list[float] = field(default_factory=list)
    """Gaps between arrivals of successive content tokens (tokens that arrived together count 0)."""
    e2e: float = 0.0
    completion_tokens: int = 0
    prompt_tokens: int = 0
    error: str | None = None
    """A transport failure (the server never answered in full); HTTP errors are only a status."""


def _events(arrivals: list[tuple[float, bytes]]) -> list[tuple[float, dict[str, Any]]]:
    """The SSE ``data:`` events, each with the arrival time of the read that completed it."""
    events: list[tuple[float, dict[str, Any]]] = []
    pending = b""
    for stamp, chunk in arrivals:
        pending += chunk
        *complete, pending = pending.split(b"\n\n")
        for event in complete:
            for line in event.split(b"\n"):
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    events.append((stamp, orjson.loads(line[6:])))
    return events


def timing_of(status: int, start: float, arrivals: list[tuple[float, bytes]]) -> Timing:
    timing = Timing(status=status, e2e=(arrivals[-1][0] if arrivals else time.monotonic()) - start)
    last: float | None = None
    for stamp, event in _events(arrivals):
        if event.get("usage"):
            timing.prompt_tokens = event["usage"]["prompt_tokens"]
            timing.completion_tokens = event["usage"]["completion_tokens"]
        for choice in event.get("choices") or ():
            if (choice.get("delta") or {}).get("content") or choice.get("text"):
                if timing.ttft is None:
                    timing.ttft = stamp - start
                elif last is not None:
                    timing.itl.append(stamp - last)
                last = stamp
    return timing


async def stream_chat(
    client: httpx.AsyncClient, model: str, prompt: str, max_tokens: int, image: str | None = None
) -> Timing:
    """POST a streaming chat completion on ``client`` (a keep-alive pool) and time it; with ``image`` (a
    URL), the prompt shows that image too."""
    content: str | list[dict[str, Any]] = prompt
    if image is not None:
        content = [{"type": "text", "text": prompt}, {"type": "image_url", "image_url": {"url": image}}]
    body = orjson.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    arrivals: list[tuple[float, bytes]] = []
    start = time.monotonic()
    try:
        async with client.stream(
            "POST", "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        ) as response:
            async for chunk in response.aiter_raw():
                arrivals.append((time.monotonic(), chunk))
            status = response.status_code
    except httpx.HTTPError as exc:
        return Timing(error=type(exc).__name__, e2e=time.monotonic() - start)
    if status != 200:
        return Timing(status=status, e2e=time.monotonic() - start)
    return timing_of(status, start, arrivals)
