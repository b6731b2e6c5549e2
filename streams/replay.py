"""Rebuild all state from the topics into a shadow keyspace, then cut readers over.

The replay reads every partition with
:class:`models.io.kafka_read.PartitionReader` (no group, no Faust per-event
machinery), in large batches, and applies them with the same
:class:`streams.applier.Applier` (so the same pure update functions) into
generation ``g+1`` while the live workers keep writing generation ``g``. Topics
are replayed in dependency order (catalog, link health, interactions). When every
partition has reached the high watermark seen at its start, the generation
pointer flips: readers and workers switch on their next request or batch, and a
worker whose position is past the new generation's offsets seeks back and
applies the tail itself (the offset compare-and-set makes the hand-over exact).
Then the old generation's keys are deleted.

``--from`` a time replays only records at or after it (by record timestamp;
the embedded broker's ListOffsets is unreliable, so records are filtered rather
than looked up by time).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from models.io.kafka_read import PartitionReader
from models.io.store import StateStore, digest_of
from models.keys import Keys, generation_key
from models.topics import SOURCE_TOPICS
from streams import metrics
from streams.applier import Applier, Record

log = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    """What a replay did."""

    old_generation: int
    new_generation: int
    records: int = 0
    events: int = 0
    rejected: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    cut_over: bool = False
    deleted_keys: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        """Applied events per second of wall time."""
        return self.events / self.seconds if self.seconds else 0.0


Progress = Callable[[str, int, int], None]
"""Called as (topic, records done, records total)."""


async def prepare(store: StateStore, prefix: str, partitions: int) -> tuple[int, int, Keys]:
    """The live and the new generation; the new one emptied of an interrupted replay."""
    old = await store.get_int(generation_key(prefix), 0)
    keys = Keys(prefix, old + 1, partitions)
    await store.delete_prefix(keys.base)
    return old, old + 1, keys


async def cut_over(store: StateStore, prefix: str, old: int, new: int) -> int:
    """Point everyone at the new generation, then delete the old one's keys."""
    await store.set_int(generation_key(prefix), new)
    await asyncio.sleep(0.5)  # readers and workers pick the pointer up per request/batch
    return await store.delete_prefix(Keys(prefix, old, 1).base)


async def replay_partitions(
    applier: Applier,
    keys: Keys,
    bootstrap: str,
    report: ReplayReport,
    *,
    partitions: list[int] | None = None,
    from_ms: int | None = None,
    batch_records: int = 5_000,
    progress: Progress | None = None,
) -> None:
    """Apply every record of the given partitions (default all) into ``keys``' generation."""
    parts = partitions if partitions is not None else list(range(applier.partitions))
    started = time.perf_counter()
    async with PartitionReader(bootstrap, max_records=batch_records) as reader:
        for topic in SOURCE_TOPICS:
            report.per_topic[topic] = report.per_topic.get(topic, 0) + await _replay_topic(
                reader, applier, keys, topic, parts, from_ms, report, progress
            )
    report.seconds += time.perf_counter() - started


async def replay(
    applier: Applier,
    store: StateStore,
    bootstrap: str,
    *,
    from_ms: int | None = None,
    cutover: bool = True,
    batch_records: int = 5_000,
    progress: Progress | None = None,
) -> ReplayReport:
    """Replay every source topic into a new generation in this process; optionally cut over."""
    old, new, keys = await prepare(store, applier.prefix, applier.partitions)
    report = ReplayReport(old, new)
    await replay_partitions(
        applier,
        keys,
        bootstrap,
        report,
        from_ms=from_ms,
        batch_records=batch_records,
        progress=progress,
    )
    if cutover:
        report.deleted_keys = await cut_over(store, applier.prefix, old, new)
        report.cut_over = True
    return report


async def _replay_topic(
    reader: PartitionReader,
    applier: Applier,
    keys: Keys,
    topic: str,
    parts: list[int],
    from_ms: int | None,
    report: ReplayReport,
    progress: Progress | None,
) -> int:
    done: dict[int, int] = dict.fromkeys(parts, 0)
    applied_records = 0
    async for batch in reader.read(topic, parts):
        msgs = batch.records
        records = [
            Record(
                m.offset,
                m.value,
                skip=from_ms is not None and m.timestamp < from_ms,
                timestamp_ms=m.timestamp,
            )
            for m in msgs
        ]
        result = await applier.apply(topic, batch.partition, records, keys=keys)
        report.records += len(msgs)
        report.events += result.applied
        report.rejected += result.rejected
        report.duplicates += result.duplicates
        applied_records += len(msgs)
        done[batch.partition] = msgs[-1].offset + 1
        remaining = max(0, batch.end - done[batch.partition])
        metrics.REPLAY_PROGRESS.labels(topic, str(batch.partition)).set(remaining)
        if progress:
            progress(topic, sum(done.values()), batch.total or 0)
    return applied_records


async def state_digest(store: StateStore, prefix: str, generation: int) -> str:
    """Digest of every key of one generation (key names without the generation)."""
    return digest_of(await store.dump(Keys(prefix, generation, 1).base))
