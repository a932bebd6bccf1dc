"""GET /metrics: the registry in the format the scraper asks for, gzipped when it accepts gzip.

A scrape never holds the event loop (which runs requests, engine steps and streams) for more than
about a millisecond at a time: families are collected and written in slices with a yield to the loop
between them, and compression runs on a worker thread (zlib releases the GIL). A worker thread for the
whole render would not do: the loop thread would wait up to the interpreter's 5 ms switch interval for
the GIL after every socket operation. With ``--workers``, reading the workers' files is one call that
cannot be sliced, so it runs on a thread.

Families are read in slices, so two families of one scrape may be read a few milliseconds apart (as in
any multi-threaded server); every derived view reads the very native families the same scrape exposes.
The text format, what Prometheus asks for, is written by ``TextWriter``.
"""

import asyncio
import gzip
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, generate_latest, gzip_accepted
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from exporter.textformat import TextWriter
from exporter.views.aggregate import SCRAPED

ALLOWUTF8: str | None
try:
    from prometheus_client.openmetrics.exposition import ALLOWUTF8
except ImportError:  # releases before UTF-8 metric names escape nothing, so there is nothing to undo
    ALLOWUTF8 = None

SLICE_SECONDS = 0.001
"""The longest a scrape works on the event loop before letting it run other tasks."""


class _Collected(Collector):
    """Families collected already, for an encoder that wants a collector."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def collect_once(source: Collector) -> list[Metric]:
    """Every family of ``source``, each collected once: views read the native families this same pass
    has collected (``exporter.views.aggregate.reusing_scrape``) instead of collecting them again."""
    seen: list[Metric] = []
    token = SCRAPED.set(seen)
    try:
        seen.extend(source.collect())
    finally:
        SCRAPED.reset(token)
    return seen


async def collect_sliced(source: Collector) -> list[Metric]:
    """``collect_once``, yielding to the event loop whenever a slice has run for ``SLICE_SECONDS``."""
    seen: list[Metric] = []
    token = SCRAPED.set(seen)  # this task's context only: a concurrent scrape keeps its own
    try:
        due = time.perf_counter() + SLICE_SECONDS
        for metric in source.collect():
            seen.append(metric)
            if time.perf_counter() >= due:
                await asyncio.sleep(0)
                due = time.perf_counter() + SLICE_SECONDS
    finally:
        SCRAPED.reset(token)
    return seen


async def write_sliced(writer: TextWriter, families: list[Metric]) -> bytes:
    parts: list[str] = []
    due = time.perf_counter() + SLICE_SECONDS
    for metric in families:
        parts.append(writer.family(metric))
        if time.perf_counter() >= due:
            await asyncio.sleep(0)
            due = time.perf_counter() + SLICE_SECONDS
    return "".join(parts).encode("utf-8")


def encode(families: list[Metric], accept: str) -> tuple[bytes, str]:
    """Any format but the plain text one, through prometheus-client's own encoders."""
    encoder, content_type = choose_encoder(accept)
    if ALLOWUTF8 is not None and isinstance(encoder, partial):
        # prometheus-client escapes sample names with the label-name alphabet under "underscores"
        # escaping, turning ``vllm:x_bucket`` into ``vllm_x_bucket`` while HELP/TYPE keep the colon.
        # Every name we expose is a valid legacy name, for which "allow-utf-8" writes it unchanged:
        # exactly what correct "underscores" escaping would write.
        encoder = partial(encoder, escaping=ALLOWUTF8)
    return encoder(_Collected(families)), content_type


async def scrape(
    registry: CollectorRegistry,
    accept: str,
    accept_encoding: str,
    names: list[str],
    writer: TextWriter,
    *,
    collect_in_thread: bool = False,
    text_only: bool = False,
) -> Response:
    """Content negotiation (Prometheus text 0.0.4 or OpenMetrics; ``text_only``: 0.0.4 whatever is asked),
    ``name[]`` filtering and gzip."""
    source = registry.restricted_registry(names) if names else registry
    families = await (asyncio.to_thread(collect_once, source) if collect_in_thread else collect_sliced(source))
    encoder, content_type = choose_encoder("" if text_only else accept)
    if encoder is generate_latest:
        body = await write_sliced(writer, families)
    else:
        body, content_type = encode(families, accept)
    headers = {"Vary": "Accept, Accept-Encoding"}
    if gzip_accepted(accept_encoding):
        body = await asyncio.to_thread(gzip.compress, body, 6)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=content_type, headers=headers)


def metrics_endpoint(
    registry: CollectorRegistry, *, collect_in_thread: bool = False, text_only: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """``text_only``: answer text 0.0.4 to every scraper, as engines that write their exposition by hand
    do (llama.cpp, TGI); their counters named without ``_total`` have no valid OpenMetrics form."""
    writer = TextWriter()

    async def metrics(request: Request) -> Response:
        return await scrape(
            registry,
            request.headers.get("accept", ""),
            request.headers.get("accept-encoding", ""),
            request.query_params.getlist("name[]"),
            writer,
            collect_in_thread=collect_in_thread,
            text_only=text_only,
        )

    return metrics
