"""Every event type goes through the real broker and comes back validated, on the right
topic and partition."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from encore.services import Proc, create_topics, start_broker
from models.codec import decode_record
from models.io.producer import EventProducer
from models.topics import SOURCE_TOPICS, all_topics, key_of, partition_for, topic_of
from tests.samples import every_event_type

PARTITIONS = 6


async def _consume_all(bootstrap: str, topics: list[str], expected: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[Any] = []
    try:
        async with asyncio.timeout(30):
            while sum(len(decode_record(r.value, max_bytes=2**20).events) for r in got) < expected:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    got.extend(records)
    finally:
        await consumer.stop()
    return got


async def test_every_event_type_round_trips_through_the_broker(tmp_path: Path) -> None:
    broker = start_broker(tmp_path, name="roundtrip-broker")  # its own: nothing else on it
    try:
        await _roundtrip(broker)
    finally:
        broker.stop()


async def _roundtrip(broker: Proc) -> None:
    await create_topics(broker.address, all_topics(), PARTITIONS)
    sent = every_event_type(100) + every_event_type(101) + every_event_type(102)
    async with EventProducer(broker.address, PARTITIONS) as producer:
        await producer.send_events(sent[:8])  # one record per event type and partition
        await producer.send_events(sent[8:])  # some partitions get batch envelopes
    records = await _consume_all(broker.address, list(SOURCE_TOPICS), len(sent))
    received: list[Any] = []
    for record in records:
        decoded = decode_record(record.value, max_bytes=2**20)
        assert decoded.rejected == []
        for event in decoded.events:
            assert topic_of(event) == record.topic
            assert partition_for(key_of(event), PARTITIONS) == record.partition
        received.extend(decoded.events)
    assert sorted(received, key=lambda e: e.event_id) == sorted(sent, key=lambda e: e.event_id)
