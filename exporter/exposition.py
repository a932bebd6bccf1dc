"""GET /metrics: the registry in the format the scraper asks for, gzipped when it accepts gzip."""

import gzip
from collections.abc import Awaitable, Callable
from functools import partial

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted
from starlette.requests import Request
from starlette.responses import Response

ALLOWUTF8: str | None
try:
    from prometheus_client.openmetrics.exposition import ALLOWUTF8
except ImportError:  # releases before UTF-8 metric names escape nothing, so there is nothing to undo
    ALLOWUTF8 = None


def render(registry: CollectorRegistry, accept: str, accept_encoding: str, names: list[str]) -> Response:
    """Content negotiation (Prometheus text 0.0.4 or OpenMetrics), ``name[]`` filtering and gzip."""
    encoder, content_type = choose_encoder(accept)
    if ALLOWUTF8 is not None and isinstance(encoder, partial):
        # prometheus-client escapes sample names with the label-name alphabet under "underscores"
        # escaping, turning ``vllm:x_bucket`` into ``vllm_x_bucket`` while HELP/TYPE keep the colon.
        # Every name we expose is a valid legacy name, for which "allow-utf-8" writes it unchanged:
        # exactly what correct "underscores" escaping would write.
        encoder = partial(encoder, escaping=ALLOWUTF8)
    source = registry.restricted_registry(names) if names else registry
    body = encoder(source)
    headers = {"Vary": "Accept, Accept-Encoding"}
    if gzip_accepted(accept_encoding):
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=content_type, headers=headers)


def metrics_endpoint(registry: CollectorRegistry) -> Callable[[Request], Awaitable[Response]]:
    async def metrics(request: Request) -> Response:
        return render(
            registry,
            request.headers.get("accept", ""),
            request.headers.get("accept-encoding", ""),
            request.query_params.getlist("name[]"),
        )

    return metrics
