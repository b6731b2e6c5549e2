"""The one reading loop (models/io/kafka_read.py) on the real embedded broker: it reads
every partition exactly to the high watermark it had when the read began, ends at once
on empty partitions, and starts where it is told."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict

from aiokafka import AIOKafkaProducer

from encore.services import Proc, create_topics
from models.io.kafka_read import Batch, PartitionReader

_names = itertools.count()


async def _topic(broker: Proc, partitions: int) -> str:
    name = f"kafka-read-{next(_names)}-{time.time_ns()}"
    await create_topics(broker.address, [name], partitions)
    return name


async def _produce(broker: Proc, topic: str, values: dict[int, list[bytes]]) -> None:
    # Small record batches, so that small fetches return a few records each.
    producer = AIOKafkaProducer(bootstrap_servers=broker.address, acks="all", max_batch_size=512)
    await producer.start()
    try:
        for p, vs in values.items():
            futures = [await producer.send(topic, v, partition=p) for v in vs]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _by_partition(batches: list[Batch]) -> dict[int, list[tuple[int, bytes | None]]]:
    out: dict[int, list[tuple[int, bytes | None]]] = defaultdict(list)
    for b in batches:
        out[b.partition].extend((m.offset, m.value) for m in b.records)
    return dict(out)


async def test_reads_exactly_to_the_high_watermark_while_more_is_produced(broker: Proc) -> None:
    topic = await _topic(broker, 3)
    await _produce(broker, topic, {p: [f"{p}-{i}".encode() for i in range(300)] for p in range(3)})
    stop = asyncio.Event()

    async def keep_producing() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.address, acks="all")
        await producer.start()
        try:
            for i in itertools.count(300):
                if stop.is_set():
                    return
                for p in range(3):
                    await producer.send_and_wait(topic, f"{p}-{i}".encode(), partition=p)
                await asyncio.sleep(0.005)
        finally:
            await producer.stop()

    producing = asyncio.create_task(keep_producing())
    try:
        batches = []
        async with PartitionReader(
            broker.address, max_records=40, idle_ms=30_000, partition_fetch_bytes=2_048
        ) as reader:
            async for batch in reader.read(topic, range(3)):
                assert len(batch.records) <= 40
                batches.append(batch)
                await asyncio.sleep(0.02)  # a slow reader: records keep arriving meanwhile
            await asyncio.sleep(0.3)
            later = [b async for b in reader.read(topic, range(3))]  # the reader is reusable
    finally:
        stop.set()
        await producing
    ends = {b.partition: b.end for b in batches}
    got = _by_partition(batches)
    for p in range(3):
        assert ends[p] >= 300
        assert got[p] == [(o, f"{p}-{o}".encode()) for o in range(ends[p])]
        assert all(b.end == ends[p] for b in batches if b.partition == p)
    assert batches[-1].total == sum(ends.values())
    later_ends = {b.partition: b.end for b in later}
    assert all(later_ends[p] > ends[p] for p in range(3)), "nothing arrived during the read"
    assert _by_partition(later)[0] == [(o, f"0-{o}".encode()) for o in range(later_ends[0])]


async def test_empty_partitions_end_the_read_at_once(broker: Proc) -> None:
    topic = await _topic(broker, 4)
    empty = await _topic(broker, 2)
    await _produce(broker, topic, {1: [b"a", b"b"], 3: [b"c"]})
    async with PartitionReader(broker.address, idle_ms=60_000) as reader:
        started = time.monotonic()
        batches = [b async for b in reader.read(topic)]  # partitions as the broker lists them
        assert [b async for b in reader.read(empty, range(2))] == []
        seconds = time.monotonic() - started
    assert seconds < 15, "waited for records instead of ending at the high watermarks"
    assert _by_partition(batches) == {1: [(0, b"a"), (1, b"b")], 3: [(0, b"c")]}
    assert {b.total for b in batches} == {3}


async def test_reads_from_the_given_start_offsets(broker: Proc) -> None:
    topic = await _topic(broker, 3)
    await _produce(broker, topic, {p: [f"{p}-{i}".encode() for i in range(20)] for p in range(3)})
    async with PartitionReader(broker.address, idle_ms=60_000) as reader:
        batches = [b async for b in reader.read(topic, [0, 1, 2], start={(topic, 0): 15})]
        at_end = [b async for b in reader.read(topic, [2], start={(topic, 2): 20})]
    got = _by_partition(batches)
    assert got[0] == [(o, f"0-{o}".encode()) for o in range(15, 20)]
    assert got[1] == [(o, f"1-{o}".encode()) for o in range(20)]
    assert got[2] == [(o, f"2-{o}".encode()) for o in range(20)]
    assert at_end == []


async def test_reads_several_topics_together(broker: Proc) -> None:
    first, second = await _topic(broker, 1), await _topic(broker, 2)
    await _produce(broker, first, {0: [b"x"]})
    await _produce(broker, second, {1: [b"y", b"z"]})
    async with PartitionReader(broker.address, poll_ms=250, idle_ms=60_000) as reader:
        batches = [b async for b in reader.read([first, second])]
    got = {(b.topic, b.partition, m.offset, m.value) for b in batches for m in b.records}
    assert got == {(first, 0, 0, b"x"), (second, 1, 0, b"y"), (second, 1, 1, b"z")}
