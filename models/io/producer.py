"""The Encore producer: events in, Kafka records out, partitioned the one right way.

Events are grouped per (topic, partition) and sent as batch envelopes, so a
high-rate producer sends few large records instead of many small ones (a Faust
agent handles a few thousand records/s, but each record may carry thousands of
events). The partition is always set explicitly with
:func:`models.topics.partition_for`, which is Kafka's own murmur2 partitioner.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from models.codec import encode_batch
from models.events import MAX_BATCH_EVENTS, event_to_dict
from models.topics import key_of, partition_for, topic_of


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached; nothing was acknowledged."""


def plan_records(
    events: Iterable[Any], partitions: int, *, max_bytes: int, max_events: int = MAX_BATCH_EVENTS
) -> list[tuple[str, int, bytes | None, bytes]]:
    """Group events into records: ``(topic, partition, key, value)``, order kept per partition.

    A group of one event becomes a single-event record keyed by its partition key;
    larger groups become batch envelopes that stay under ``max_bytes``.
    """
    groups: dict[tuple[str, int], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for e in events:
        key = key_of(e)
        groups[(topic_of(e), partition_for(key, partitions))].append((key, event_to_dict(e)))
    records: list[tuple[str, int, bytes | None, bytes]] = []
    for (topic, partition), members in groups.items():
        chunk: list[dict[str, Any]] = []
        size = 64
        keys: set[str] = set()
        for key, doc in members:
            doc_size = len(orjson.dumps(doc)) + 1
            if chunk and (size + doc_size > max_bytes or len(chunk) >= max_events):
                records.append(_record(topic, partition, keys, chunk))
                chunk, size, keys = [], 64, set()
            chunk.append(doc)
            keys.add(key)
            size += doc_size
        if chunk:
            records.append(_record(topic, partition, keys, chunk))
    return records


def _record(
    topic: str, partition: int, keys: set[str], chunk: list[dict[str, Any]]
) -> tuple[str, int, bytes | None, bytes]:
    key = next(iter(keys)).encode() if len(keys) == 1 else None
    value = orjson.dumps(chunk[0]) if len(chunk) == 1 else encode_batch(chunk)
    return topic, partition, key, value


class EventProducer:
    """Async producer of events (acks from all in-sync replicas before returning)."""

    def __init__(
        self,
        bootstrap: str,
        partitions: int,
        *,
        max_record_bytes: int = 1_048_576,
        linger_ms: int = 5,
        request_timeout_ms: int = 5_000,
        client_id: str = "encore",
    ) -> None:
        self.partitions = partitions
        self.max_record_bytes = max_record_bytes
        self._options = {
            "bootstrap_servers": bootstrap,
            "client_id": client_id,
            "acks": "all",
            "linger_ms": linger_ms,
            "request_timeout_ms": request_timeout_ms,
            "max_request_size": max_record_bytes + 65_536,
            "max_batch_size": max(16_384, min(max_record_bytes + 1_024, 1_048_576)),
        }
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect; raises :class:`BrokerUnavailable` when the broker does not answer."""
        producer = AIOKafkaProducer(**self._options)  # needs the running loop
        try:
            await producer.start()
        except (KafkaConnectionError, KafkaTimeoutError, OSError) as exc:
            await producer.stop()
            raise BrokerUnavailable(str(exc)) from exc
        self._producer = producer

    @property
    def producer(self) -> AIOKafkaProducer:
        """The started aiokafka producer."""
        if self._producer is None:
            raise BrokerUnavailable("producer not started")
        return self._producer

    async def stop(self) -> None:
        """Flush and disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send_events(self, events: Sequence[Any]) -> int:
        """Send events as records; returns the number of records. All-or-raise."""
        records = plan_records(events, self.partitions, max_bytes=self.max_record_bytes)
        await self.send_records(records)
        return len(records)

    async def send_records(self, records: Sequence[tuple[str, int, bytes | None, bytes]]) -> None:
        """Send ``(topic, partition, key, value)`` records and wait for every ack."""
        try:
            futures = [
                await self.producer.send(topic, value, key=key, partition=partition)
                for topic, partition, key, value in records
            ]
            await asyncio.gather(*futures)
        except (KafkaError, OSError) as exc:
            raise BrokerUnavailable(str(exc)) from exc

    async def send_raw(
        self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None
    ) -> None:
        """Send one record as given (dead letters, redrive, tests)."""
        try:
            await (await self.producer.send(topic, value, key=key, partition=partition))
        except (KafkaError, OSError) as exc:
            raise BrokerUnavailable(str(exc)) from exc

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
