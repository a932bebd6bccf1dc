"""Which engines' names /metrics speaks: one derived view per ``--metrics-dialect`` other than vLLM's, the
bucket bounds the native histograms keep for them, and what each view must follow when the settings
change at runtime. ``fakeai.app`` composes; this module only maps settings onto ``exporter.views``."""

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from exporter.buckets import merged
from exporter.views import DynamoView, LlamacppView, SglangView, TgiView, TrtllmView, dynamo, sglang, tgi, trtllm
from exporter.views.aggregate import FamilySource, only_models
from exporter.vllm_releases import shown_retired
from fakeai.settings import Settings, vllm_release


def speaks_sglang(settings: Settings) -> bool:
    """Whether any model answers as SGLang, under either form of its names."""
    return bool(settings.dialect_models("sglang") or settings.dialect_models("sglang_"))


def kept_buckets(settings: Settings) -> dict[str, tuple[float, ...]]:
    """The bounds the native histograms keep for the dialects served, beyond their own: each dialect's
    view then selects its exact bounds out of them (and a server without the dialect pays nothing)."""
    kept: dict[str, tuple[float, ...]] = {}
    wanted = [sglang.KEPT_BUCKETS] if speaks_sglang(settings) else []
    if speaks_sglang(settings) and settings.collect_tokens_histogram:
        wanted.append(sglang.TOKENS_KEPT_BUCKETS)
    if settings.dialect_models("trtllm"):
        wanted.append(trtllm.KEPT_BUCKETS)
    if settings.dialect_models("tgi"):
        wanted.append(tgi.kept_buckets(settings.max_model_len))
    if settings.dialect_models("dynamo"):
        wanted.append(dynamo.KEPT_BUCKETS)
    for bounds_by_family in wanted:
        for family, bounds in bounds_by_family.items():
            kept[family] = merged(kept.get(family, ()), bounds)
    return kept


def spoken_by(settings: Settings, dialect: str) -> tuple[str, ...] | None:
    """The models a dialect's view speaks for: None for all of them (no filtering at scrape time)."""
    models = settings.dialect_models(dialect)
    return None if models == settings.models else models


def vllm_models(settings: Settings) -> tuple[str, ...] | None:
    """The models the vllm view speaks for, whichever vLLM release each is pinned to (None: all)."""
    models = tuple(model for dialect in settings.vllm_dialects() for model in settings.dialect_models(dialect))
    return None if set(models) == set(settings.models) else models


def vllm_retired(settings: Settings) -> dict[str, tuple[str, ...] | None]:
    """Each name later vLLM releases retired that some model's pinned release still shows (``vllm@0.11``),
    with those models; None where every model of the vllm view shows it."""
    showing: dict[str, list[str]] = {}
    for dialect in settings.vllm_dialects():
        for name in shown_retired(vllm_release(dialect), settings.shown_hidden_for()):
            showing.setdefault(name, []).extend(settings.dialect_models(dialect))
    everyone = set(vllm_models(settings) or settings.models)
    return {name: None if set(models) == everyone else tuple(models) for name, models in showing.items()}


def dynamo_config(settings: Settings) -> dynamo.ModelConfig:
    """What Dynamo's frontend reports of each model's deployment card and runtime config."""
    return dynamo.ModelConfig(
        total_kv_blocks=settings.num_blocks,
        max_num_seqs=settings.max_num_seqs,
        max_num_batched_tokens=settings.batched_tokens,
        context_length=settings.max_model_len,
        kv_cache_block_size=settings.block_size,
    )


def register_engine_views(
    settings: Settings, native: FamilySource, exposed: CollectorRegistry, *, multi_engine: bool
) -> Callable[[Settings], None]:
    """Register the view of every dialect a model speaks, but vLLM's (its own view takes more of the
    settings); returns what to call with the settings after a runtime change."""
    pools: list[SglangView | TgiView] = []  # views whose KV pool figures follow the settings
    trtllm_view: TrtllmView | None = None
    dynamo_view: DynamoView | None = None

    def source(dialect: str) -> FamilySource:
        return only_models(native, spoken_by(settings, dialect))

    for dialect, prefix in (("sglang", sglang.PREFIX), ("sglang_", sglang.ROUTER_PREFIX)):
        if settings.dialect_models(dialect):
            sglang_view = SglangView(
                source(dialect),
                block_size=settings.block_size,
                num_blocks=settings.num_blocks,
                multi_engine=multi_engine,
                prefix=prefix,
                tokens_histogram=settings.collect_tokens_histogram,
            )
            exposed.register(sglang_view)
            pools.append(sglang_view)
    if settings.dialect_models("trtllm"):
        trtllm_view = TrtllmView(
            source("trtllm"),
            block_size=settings.block_size,
            num_blocks=settings.num_blocks,
            max_num_seqs=settings.max_num_seqs,
            max_num_tokens=settings.batched_tokens,
            speculative=bool(settings.speculative_tokens),
        )
        exposed.register(trtllm_view)
    if settings.dialect_models("llamacpp"):
        exposed.register(LlamacppView(source("llamacpp")))
    if settings.dialect_models("tgi"):
        tgi_view = TgiView(
            source("tgi"),
            max_model_len=settings.max_model_len,
            block_size=settings.block_size,
            num_blocks=settings.num_blocks,
        )
        exposed.register(tgi_view)
        pools.append(tgi_view)

    if models := settings.dialect_models("dynamo"):
        dynamo_view = DynamoView(source("dynamo"), models=models, config=dynamo_config(settings))
        exposed.register(dynamo_view)

    def follow(changed: Settings) -> None:
        for view in pools:
            view.set_pool(block_size=changed.block_size, num_blocks=changed.num_blocks)
        if trtllm_view is not None:
            trtllm_view.set_limits(
                block_size=changed.block_size,
                num_blocks=changed.num_blocks,
                max_num_seqs=changed.max_num_seqs,
                max_num_tokens=changed.batched_tokens,
            )
        if dynamo_view is not None:
            dynamo_view.set_config(dynamo_config(changed))

    return follow
