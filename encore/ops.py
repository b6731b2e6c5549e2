"""Operator commands: replay, dead-letter inspection and redrive, the link prober."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from tqdm import tqdm

from models.io.dlq import read_dead_letters, redrive
from models.io.producer import EventProducer
from models.keys import Keys, generation_key
from models.settings import Settings
from streams.prober import ProbeConfig, probe_catalog
from streams.wiring import redis_store

log = logging.getLogger(__name__)


def _bootstrap(settings: Settings) -> str:
    if not settings.kafka.bootstrap:
        raise SystemExit("set ENCORE_KAFKA_BOOTSTRAP (or use `encore up`)")
    return settings.kafka.bootstrap


async def run_replay(
    settings: Settings, from_ms: int | None, cutover: bool, processes: int = 1
) -> dict[str, Any]:
    """Replay into a new generation with a progress bar; returns the report."""
    from streams import replay_jobs

    bar = tqdm(desc="replay", unit="rec")

    def progress(applied: int) -> None:
        bar.n = applied
        bar.refresh()

    try:
        report = await replay_jobs.run(
            settings, from_ms=from_ms, cutover=cutover, processes=processes, progress=progress
        )
    finally:
        bar.close()
    out = dataclasses.asdict(report)
    out["events_per_s"] = round(report.events_per_s, 1)
    return out


async def inspect_dlq(settings: Settings, topics: list[str] | None, limit: int) -> dict[str, Any]:
    """Counts by reason (from the topics and from Redis) and the latest entries."""
    letters = await read_dead_letters(_bootstrap(settings), topics)
    store = redis_store(settings)
    try:
        gen = await store.get_int(generation_key(settings.redis.key_prefix), 0)
        keys = Keys(settings.redis.key_prefix, gen, settings.kafka.partitions)
        committed: dict[str, int] = {}
        for key, value in (await store.dump(keys.base)).items():
            if key.startswith("dlq:"):
                for reason, n in value.items():
                    committed[reason] = committed.get(reason, 0) + int(n)
    finally:
        await store.close()
    latest = [{k: v for k, v in e.items() if k != "original"} for e in letters.entries[-limit:]]
    return {
        "distinct": len(letters.entries),
        "resent_copies": letters.duplicates,
        "by_topic_reason": letters.by_reason(),
        "committed_counts": committed,
        "latest": latest,
    }


async def redrive_dlq(
    settings: Settings, topics: list[str] | None, reason: str | None, dry_run: bool
) -> dict[str, Any]:
    """Send dead letters that validate now back to their topics."""
    report = await redrive(
        _bootstrap(settings),
        settings.kafka.partitions,
        topics=topics,
        reason=reason,
        dry_run=dry_run,
        max_record_bytes=settings.kafka.max_record_bytes,
        max_skew_ms=round(settings.stream.max_clock_skew_s * 1000),
    )
    return dataclasses.asdict(report)


async def run_probe(settings: Settings, *, once: bool, interval_s: float, recheck_s: float) -> None:
    """Probe catalog links once or forever."""
    store = redis_store(settings)
    async with EventProducer(_bootstrap(settings), settings.kafka.partitions) as producer:
        while True:
            gen = await store.get_int(generation_key(settings.redis.key_prefix), 0)
            keys = Keys(settings.redis.key_prefix, gen, settings.kafka.partitions)
            n = await probe_catalog(store, keys, producer, ProbeConfig(), recheck_s)
            print(f"checked {n} links", flush=True)
            if once:
                break
            await asyncio.sleep(interval_s)
    await store.close()
