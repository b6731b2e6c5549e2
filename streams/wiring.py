"""Build stream components from settings (shared by the worker, replay and prober)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models.apply import TrendConfig
from models.codec import Rejected
from models.io.redis_store import RedisStore, connect
from models.settings import Settings
from models.state import fold_config
from streams.applier import Applier, ContentFn, DeadLetterSink, ItemLookup


def redis_store(settings: Settings, timeout_s: float | None = None) -> RedisStore:
    """A Redis state store for the configured Redis."""
    if settings.redis.url is None:
        raise SystemExit("set ENCORE_REDIS_URL (or use `encore up`)")
    client = connect(
        settings.redis.url.get_secret_value(),
        cluster=settings.redis.cluster,
        timeout_s=timeout_s or max(settings.redis.timeout_s, 2.0),
        max_connections=settings.redis.max_connections,
    )
    return RedisStore(client)


async def discard_dead_letters(
    topic: str, partition: int, rejected: Sequence[tuple[int, Rejected]]
) -> None:
    """Dead-letter sink for replays: the live workers already sent these."""


def build_applier(
    settings: Settings,
    store: Any,
    dead_letters: DeadLetterSink,
    items: ItemLookup | None = None,
    content: ContentFn | None = None,
) -> Applier:
    """An applier configured from settings."""
    s = settings.stream
    return Applier(
        store,
        prefix=settings.redis.key_prefix,
        partitions=settings.kafka.partitions,
        fold=fold_config(settings),
        trend=TrendConfig(bucket_s=s.trending_bucket_s, window_s=s.trending_window_s),
        dedup_window=s.dedup_window,
        max_record_bytes=settings.kafka.max_record_bytes,
        dead_letters=dead_letters,
        items=items,
        content=content,
        max_skew_ms=round(s.max_clock_skew_s * 1000),
    )
