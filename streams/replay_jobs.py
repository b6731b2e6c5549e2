"""Run a replay with one or more processes (partitions split between them).

Partitions are independent (their keys share nothing), so a replay can use one
process per core: each applies its share of every topic into the new
generation; the parent prepares the generation, shows progress from the applied
offsets in Redis, and cuts over once all have finished.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from models.io.artifacts import remote_of
from models.keys import Keys
from models.settings import Settings, load_settings
from models.topics import SOURCE_TOPICS
from streams.applier import ItemLookup
from streams.itemspace import SpaceWatcher
from streams.replay import ReplayReport, cut_over, prepare, replay_partitions
from streams.wiring import build_applier, discard_dead_letters, redis_store


async def _apply_share(
    settings: Settings, generation: int, parts: list[int], from_ms: int | None, batch_records: int
) -> ReplayReport:
    store = redis_store(settings)
    items = ItemLookup()
    remote = remote_of(settings.artifacts)
    root, kind = settings.artifacts.root, settings.stream.space_kind
    await SpaceWatcher(items, root, kind, 1.0, remote=remote).check()
    content = None
    if settings.stream.embed_text:
        from streams.content import ContentEncoder

        content = ContentEncoder(root, remote=remote)
    applier = build_applier(settings, store, discard_dead_letters, items, content)
    report = ReplayReport(generation - 1, generation)
    keys = Keys(settings.redis.key_prefix, generation, settings.kafka.partitions)
    try:
        await replay_partitions(
            applier,
            keys,
            settings.kafka.bootstrap or "",
            report,
            partitions=parts,
            from_ms=from_ms,
            batch_records=batch_records,
        )
    finally:
        await store.close()
    return report


def _child(
    overrides: dict[str, Any],
    generation: int,
    parts: list[int],
    from_ms: int | None,
    batch_records: int,
) -> dict[str, Any]:
    settings = load_settings()
    settings.kafka.partitions = overrides["partitions"]
    report = asyncio.run(_apply_share(settings, generation, parts, from_ms, batch_records))
    return dataclasses.asdict(report)


async def _applied(store: Any, keys: Keys) -> int:
    total = 0
    for topic in SOURCE_TOPICS:
        for p in range(keys.partitions):
            total += await store.get_int(keys.offset(topic, p), -1) + 1
    return total


async def run(
    settings: Settings,
    *,
    from_ms: int | None,
    cutover: bool,
    processes: int,
    batch_records: int = 5_000,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Replay into a new generation with ``processes`` processes, then (optionally) cut over."""
    store = redis_store(settings)
    prefix, n = settings.redis.key_prefix, settings.kafka.partitions
    old, new, keys = await prepare(store, prefix, n)
    shares = [list(range(i, n, processes)) for i in range(processes) if i < n]
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = ReplayReport(old, new)
    try:
        if len(shares) == 1:
            task: Any = asyncio.ensure_future(
                _apply_share(settings, new, shares[0], from_ms, batch_records)
            )
            while not task.done():
                await asyncio.wait([task], timeout=1.0)
                if progress:
                    progress(await _applied(store, keys))
            parts = [dataclasses.asdict(task.result())]
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(len(shares), mp_context=ctx) as pool:
                futures = [
                    loop.run_in_executor(
                        pool, _child, {"partitions": n}, new, share, from_ms, batch_records
                    )
                    for share in shares
                ]
                gathered = asyncio.gather(*futures)
                while not gathered.done():
                    await asyncio.wait([gathered], timeout=1.0)
                    if progress:
                        progress(await _applied(store, keys))
                parts = list(gathered.result())
        for part in parts:
            report.records += part["records"]
            report.events += part["events"]
            report.rejected += part["rejected"]
            report.duplicates += part["duplicates"]
            for topic, count in part["per_topic"].items():
                report.per_topic[topic] = report.per_topic.get(topic, 0) + count
        report.seconds = loop.time() - started
        if cutover:
            report.deleted_keys = await cut_over(store, prefix, old, new)
            report.cut_over = True
    finally:
        await store.close()
    return report
