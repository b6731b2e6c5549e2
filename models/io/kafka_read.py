"""Read Kafka partitions from a start offset to their end: the one reading loop of the
replay, the training snapshot and the dead-letter reader.

A read assigns its partitions to a plain aiokafka consumer (no group, nothing
committed, so the live workers are untouched), seeks each to its start offset
(default: the earliest), and reads it up to the high watermark it had when the
read began. It never waits for records produced later: they are dropped, and a
partition that has reached its end is paused. Records come in batches of one
partition, at most ``max_records`` per poll, in offset order.

Workarounds for the embedded broker: ends are fetch high watermarks
(``consumer.highwater``, known after a partition's first fetch), never
ListOffsets, whose end offsets it gets wrong; and a read that gets no record for
``idle_ms`` while some partition's end is still unknown or unreached stops there
(a topic it does not have, a fetch it never answers) rather than hang.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)


class KafkaRecord(Protocol):
    """What a read yields of each record (an aiokafka ``ConsumerRecord``)."""

    @property
    def offset(self) -> int: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int: ...  # broker time, ms


@dataclass(frozen=True, slots=True)
class Batch:
    """Records of one partition, ascending offsets, all below ``end``."""

    topic: str
    partition: int
    records: Sequence[KafkaRecord]
    end: int
    """The partition's high watermark when the read began: the read stops there."""
    total: int | None
    """Sum of every read partition's ``end``, once all are known (else None)."""


class PartitionReader:
    """One started consumer for reads of partitions to their ends (``async with``).

    Memory is bounded by the fetch sizes (what one fetch may bring, in all and per
    partition) and ``max_records`` (records per poll, so per batch)."""

    def __init__(
        self,
        bootstrap: str,
        *,
        max_records: int = 10_000,
        poll_ms: int = 500,
        idle_ms: int = 10_000,
        fetch_max_bytes: int = 64 * 1024 * 1024,
        partition_fetch_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.max_records = max_records
        self.poll_ms = poll_ms
        self.idle_ms = idle_ms
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_records,
            fetch_max_bytes=fetch_max_bytes,
            max_partition_fetch_bytes=partition_fetch_bytes,
        )

    async def __aenter__(self) -> PartitionReader:
        await self.consumer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.consumer.stop()

    def partitions(self, topic: str) -> list[int]:
        """The topic's partitions as the broker lists them; ``[0]`` for a topic it does
        not list (a read of it then ends after ``idle_ms``)."""
        return sorted(self.consumer.partitions_for_topic(topic) or {0})

    async def read(
        self,
        topics: str | Sequence[str],
        partitions: Sequence[int] | None = None,
        *,
        start: Mapping[tuple[str, int], int] | None = None,
    ) -> AsyncIterator[Batch]:
        """Batches of the given partitions (default: all the broker lists) of ``topics``,
        read together, each from ``start[(topic, partition)]`` (default: the earliest)
        to its end."""
        names = [topics] if isinstance(topics, str) else list(topics)
        tps = [
            TopicPartition(t, p)
            for t in names
            for p in (partitions if partitions is not None else self.partitions(t))
        ]
        consumer = self.consumer
        consumer.assign(tps)
        start = start or {}
        earliest = [tp for tp in tps if (tp.topic, tp.partition) not in start]
        if earliest:
            await consumer.seek_to_beginning(*earliest)
        for tp in tps:
            if (tp.topic, tp.partition) in start:
                consumer.seek(tp, start[(tp.topic, tp.partition)])
        ends: dict[TopicPartition, int] = {}
        active = set(tps)
        idle = 0
        while active:
            batch = await consumer.getmany(timeout_ms=self.poll_ms, max_records=self.max_records)
            # Ends from fetch high watermarks (known after a first fetch), never ListOffsets.
            for tp in tps:
                high = consumer.highwater(tp)
                if high is not None and tp not in ends:
                    ends[tp] = high
            total = sum(ends.values()) if len(ends) == len(tps) else None
            for tp, msgs in batch.items():
                end = ends.get(tp)
                if end is not None and msgs[-1].offset >= end:
                    msgs = [m for m in msgs if m.offset < end]  # arrived after the read began
                if msgs:
                    end = msgs[-1].offset + 1 if end is None else end
                    yield Batch(tp.topic, tp.partition, msgs, end, total)
            for tp in list(active):
                if tp in ends and await consumer.position(tp) >= ends[tp]:
                    active.discard(tp)
                    consumer.pause(tp)  # reached: fetch no records written since
            idle = 0 if batch else idle + 1
            if active and idle * self.poll_ms >= self.idle_ms:
                log.warning(
                    "read stopped after %d ms without records; not at the end: %s",
                    self.idle_ms,
                    sorted(f"{tp.topic}/{tp.partition}" for tp in active),
                )
                break
