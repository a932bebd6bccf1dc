"""The application factory: one settings object and one registry in, an ASGI app out."""

import gc
import inspect
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.multiprocess import mark_process_dead
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp

from bridge.hub import Hub, StreamSettings
from bridge.server import stream_endpoint
from bridge.sources import ChildrenSource, PrometheusSource, Source
from exporter.exposition import metrics_endpoint
from exporter.kept_bounds import HiddenBounds
from exporter.metrics import ServerMetrics
from exporter.multiprocess import FilesCollector, FilesSource
from exporter.stream import STREAM_MAPPING
from exporter.views import (
    CacheConfig,
    HttpView,
    ModelShape,
    VllmView,
    trtllm,
)
from exporter.views.aggregate import FamilySource, only_models, reusing_scrape
from fakeai import __version__, worker_index
from fakeai.context import ServerContext
from fakeai.control import LocalControl, SharedControl
from fakeai.dialects import kept_buckets, register_engine_views, speaks_sglang, vllm_models, vllm_retired
from fakeai.engines import Engines
from fakeai.errors import ErrorKind, OpenAIError, error_body
from fakeai.hot_path import HotPath
from fakeai.http_metrics import HttpMetricsMiddleware
from fakeai.openapi import add_to_schema
from fakeai.routes import admin, chat, completions, dev, embeddings, lora, misc, models, responses, sleep, tokenize
from fakeai.routes import llamacpp as llamacpp_routes
from fakeai.routes import sglang as sglang_routes
from fakeai.routes import tgi as tgi_routes
from fakeai.runtime_config import RuntimeConfig
from fakeai.scenario import load as load_scenario
from fakeai.scenario_runner import ScenarioRunner
from fakeai.settings import TEXT_ONLY_DIALECTS, Settings

log = logging.getLogger("fakeai")
SETTINGS_ENV = "FAKEAI_WORKER_SETTINGS"
MODEL_ENDPOINTS = (chat.ENDPOINT, completions.ENDPOINT, embeddings.ENDPOINT)


# fakeai reports through Prometheus; FastAPI's native OpenTelemetry hooks (in releases that have
# them) would only cost a provider check per request.
NO_OPENTELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI).parameters
    else {}
)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = {404: ErrorKind.NOT_FOUND, 405: ErrorKind.METHOD_NOT_ALLOWED}.get(exc.status_code)
    if kind is None:
        body = {"error": {"message": str(exc.detail), "type": "invalid_request_error", "param": None, "code": None}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
    message = f"{request.method} {request.url.path[:200]} is not a route of this server."
    if kind is ErrorKind.METHOD_NOT_ALLOWED:
        message = f"Method {request.method} is not allowed on {request.url.path[:200]}."
    return JSONResponse(error_body(kind, message), status_code=kind.status, headers=exc.headers)


def _openai_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, OpenAIError)
    return exc.response()


def _unexpected(_: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(error_body(ErrorKind.SERVER_ERROR, "Internal server error."), status_code=500)


class FakeaiApp(FastAPI):
    """FastAPI with ``fakeai.hot_path.HotPath`` in front of its middleware stack, and the routes' context
    as a plain attribute (Starlette's ``app.state`` answers through ``__getattr__``, 2 us a request)."""

    hot_path: Callable[[ASGIApp], ASGIApp] | None = None
    context: ServerContext

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack if self.hot_path is None else self.hot_path(stack)


def app_from_environment() -> FakeaiApp:
    """The factory each worker process calls (``--workers``): settings come from the parent."""
    app = create_app(Settings.from_json(os.environ[SETTINGS_ENV]), CollectorRegistry())
    settle_heap()
    return app


def settle_heap() -> None:
    """Move everything start-up allocated out of the garbage collector's sight (``gc.freeze``).

    Measured: a full collection over the start-up heap held the event loop for 25 ms, and a scrape or a
    stream tick allocates enough to trigger one every few seconds: a stall every client saw in its
    latency. Objects made later are collected as usual. Called once per server process, by the CLI.
    """
    gc.collect()
    gc.freeze()


def stream_settings(settings: Settings) -> StreamSettings:
    return StreamSettings(
        min_interval=settings.stream_min_interval,
        window=settings.stream_window,
        history_seconds=settings.stream_history_seconds,
        send_timeout=settings.stream_send_timeout,
        max_message=settings.stream_max_message,
        max_clients=settings.stream_max_clients,
        max_messages_per_second=settings.stream_max_messages_per_second,
        token=settings.stream_token,
        allowed_origins=settings.stream_allowed_origins,
    )


def model_shapes(settings: Settings) -> dict[str, ModelShape]:
    """Each served model's shape for the MFU estimates, from its profile."""
    shapes = {}
    for model in settings.models:
        profile = settings.profile(model)
        shapes[model] = ModelShape(params=profile.params_billions * 1e9, kv_bytes_per_token=profile.kv_bytes_per_token)
    return shapes


def engine_indices(settings: Settings) -> tuple[list[int], bool]:
    """This process's engine indices, and whether the engine is a label: with several engines per model
    (data parallel, or one per worker), worker N's engines are numbered from N x --data-parallel-size,
    as vLLM numbers the ranks of a data-parallel deployment."""
    size = settings.data_parallel_size
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    worker = worker_index.claim(Path(multiproc_dir) / "workers", settings.workers) if multiproc_dir else 0
    return [worker * size + rank for rank in range(size)], size > 1 or settings.workers > 1


def cache_config(settings: Settings) -> CacheConfig:
    """What ``vllm:cache_config_info`` reports of the settings (it follows runtime changes)."""
    return CacheConfig(
        block_size=settings.block_size, num_gpu_blocks=settings.num_blocks, max_model_len=settings.max_model_len
    )


def create_app(settings: Settings, registry: CollectorRegistry) -> FakeaiApp:
    engines_here, engine_label = engine_indices(settings)
    metrics = ServerMetrics(
        registry,
        engines=engines_here,
        engine_label=engine_label,
        priority_label=settings.scheduling_policy == "priority",
        models=settings.models,
        endpoints=MODEL_ENDPOINTS,
        max_model_len=settings.max_model_len,
        custom_buckets=settings.custom_histogram_buckets,
        kept_buckets=kept_buckets(settings),
        kv_cache_metrics=settings.kv_cache_metrics,
        speculative_tokens=settings.speculative_tokens,
        batch_calls=bool(settings.dialect_models("tgi")),
        frontend_requests=bool(settings.dialect_models("dynamo")),
    )
    # What /metrics and the stream read. In one process: the registry itself. With workers
    # (prometheus-client multiprocess mode), every worker's values aggregated from their files, so any
    # worker answers for the whole server.
    exposed = registry
    native: FamilySource = metrics.families.collect
    # The stream reads the families' children directly in one process (a tenth of a collect()).
    wanted = STREAM_MAPPING.wanted()
    # What the native families record for dialect views alone: bounds, and whole families.
    hidden, hidden_families = metrics.families.hidden_bounds, metrics.families.hidden_families
    stream_source: Source = ChildrenSource(
        metrics.families.named(wanted.families()), exposed_bounds=metrics.families.exposed_bounds
    )
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every worker's files, read and merged for each /metrics; a view reads only the families it needs.
        files = FilesCollector()
        # The collector has no names to register under; /metrics?name[]= needs it kept all the same.
        exposed = CollectorRegistry(support_collectors_without_names=True)
        exposed.register(HiddenBounds(files, hidden, hidden_families))
        native = files.read
        # The stream reads the files straight into its snapshot, on a thread (a twentieth of a collect()).
        stream_source = FilesSource(files, exposed_bounds=metrics.families.exposed_bounds)
    else:
        # What vLLM's API server exposes from prometheus-client's default registry: process_*, python_gc_*
        # and python_info. In multiprocess mode vLLM (and prometheus-client) drop them, and so do we: a
        # worker's own process figures would not describe the server.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    native = reusing_scrape(native)
    vllm_view: VllmView | None = None
    if settings.vllm_metrics and settings.vllm_dialects():
        vllm_view = VllmView(
            only_models(native, vllm_models(settings)),
            bucket_families=metrics.buckets,
            cache_config=cache_config(settings),
            retired=vllm_retired(settings),
            mfu=model_shapes(settings) if settings.enable_mfu_metrics else None,
            kv_cache_metrics=settings.kv_cache_metrics,
            speculative=bool(settings.speculative_tokens),
            lora=settings.enable_lora,
            scheduling_policy=settings.scheduling_policy,
        )
        exposed.register(vllm_view)
    follow_views = register_engine_views(settings, native, exposed, multi_engine=engine_label)
    exposed.register(HttpView(native))
    engines = Engines(settings, metrics)

    def settings_changed(changed: Settings) -> None:
        app.context.settings = changed
        if vllm_view is not None:
            vllm_view.set_cache_config(cache_config(changed))
        follow_views(changed)

    runtime = RuntimeConfig(settings, [engines.reconfigure, settings_changed])

    async def apply(change: dict[str, Any]) -> None:
        """A runtime change (``fakeai.control``): settings, up or down, or engine operations (sleep, LoRA)."""
        if change.get("op") == "config":
            runtime.apply(change)
        elif change.get("op") == "down":
            app.context.down = bool(change["down"])
        else:
            await engines.apply(change)

    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    control: LocalControl | SharedControl = (
        SharedControl(Path(multiproc_dir) / "control", apply, settings.workers)
        if multiproc_dir
        else LocalControl(apply)
    )
    scenario = ScenarioRunner(settings, control.submit, metrics)
    if settings.stream_prometheus_url:
        stream_source = PrometheusSource(settings.stream_prometheus_url)
    hub = Hub(stream_source, STREAM_MAPPING, stream_settings(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engines.start()
        control.start()
        await hub.start()
        if settings.scenario:
            await scenario.start(load_scenario(Path(settings.scenario)), loop=settings.scenario_loop)
        try:
            yield
        finally:
            await scenario.stop()
            await hub.stop()
            await control.stop()
            await engines.stop()
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # retire this worker's live gauges

    app = FakeaiApp(
        title="fakeai",
        summary="An OpenAI-compatible fake LLM server that behaves like vLLM under load.",
        version=__version__,
        lifespan=lifespan,
        **NO_OPENTELEMETRY,
    )
    app.context = ServerContext(
        settings=settings, metrics=metrics, engines=engines, control=control, runtime=runtime, scenario=scenario
    )
    hot_routes = [chat.ROUTE, completions.ROUTE, embeddings.ROUTE, responses.ROUTE]
    app.router.routes[:0] = hot_routes  # for /docs and a wrong method's 405; POSTs take the hot path
    app.hot_path = partial(HotPath, endpoints={r.path: r.endpoint for r in hot_routes}, metrics=metrics)
    for router in (models.router, misc.router, dev.cache_router, tokenize.router):
        app.router.routes.extend(router.routes)  # no per-router wrapper on the hot path
    if settings.profile_dir:
        app.router.routes.extend(dev.profile_router.routes)
    if settings.enable_sleep_mode:
        app.router.routes.extend(sleep.router.routes)
    if settings.admin_token:
        app.router.routes.extend(admin.router.routes)
    if settings.enable_lora and lora.runtime_updates_allowed():
        app.router.routes.extend(lora.router.routes)
    if speaks_sglang(settings):
        app.router.routes.extend(sglang_routes.router.routes)
    if settings.dialect_models("llamacpp"):
        app.router.routes.extend(llamacpp_routes.router.routes)
    if settings.dialect_models("tgi"):
        app.router.routes.extend(tgi_routes.router.routes)
    add_to_schema(app, hot_routes)
    scrape = metrics_endpoint(
        exposed,
        collect_in_thread=exposed is not registry,  # --workers: files to read
        text_only=any(settings.dialect_models(dialect) for dialect in TEXT_ONLY_DIALECTS),
    )

    async def metrics_or_down(request: Request) -> Response:
        if app.context.down:  # a scenario took the server down: Prometheus sees the target down
            return PlainTextResponse("The server is down (a scenario phase).\n", status_code=503)
        return await scrape(request)

    app.add_route("/metrics", metrics_or_down, methods=["GET"], include_in_schema=False)
    if settings.dialect_models("trtllm"):
        # trtllm-serve serves Prometheus text at /prometheus/metrics (its /metrics answers JSON iteration
        # stats; fakeai's /metrics stays Prometheus text for every dialect).
        app.add_route(trtllm.METRICS_PATH, metrics_or_down, methods=["GET"], include_in_schema=False)
    app.router.routes.append(WebSocketRoute("/metrics/stream", stream_endpoint(hub)))
    app.state.hub = hub
    app.add_exception_handler(OpenAIError, _openai_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics, routes=app.router.routes)
    return app
