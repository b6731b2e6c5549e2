"""The served-list log: every personal list the API answers goes to ``recommendations``.

Routes call :meth:`ServedLog.offer` after computing their answer; it only puts
the record in a bounded queue, so the response never waits for the broker. A
background task (started in the lifespan) sends what is queued with the
ingest producer, waiting while the producer is not connected. When the queue
is full or a send fails, the lists are dropped, logged and counted
(``encore_served_lists_total``); a request never fails because of this log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from pydantic import ValidationError

from api import metrics
from api.state import Resources
from models.events import ServedItem, ServedList, event_to_dict, utcnow
from models.io.producer import BrokerUnavailable
from models.topics import RECOMMENDATIONS, partition_for

log = logging.getLogger(__name__)
MAX_PENDING = 10_000
"""Most lists waiting to be sent; beyond that new ones are dropped."""
SEND_BATCH = 500
"""Most lists sent per round trip."""
LOG_EVERY_S = 10.0
"""At most one warning per reason this often."""


def served_list(answer: dict[str, Any]) -> ServedList:
    """The record of a personal answer (raises ``ValidationError`` if it does not fit)."""
    return ServedList(
        rec_id=answer["rec_id"],
        user_id=answer["user_id"],
        occurred_at=utcnow(),
        arm=answer["arm"],
        propensity=answer["propensity"],
        items=tuple(
            ServedItem(
                track_id=item["track_id"], position=k, sources=tuple(item.get("sources") or ())
            )
            for k, item in enumerate(answer["items"])
        ),
        model_versions=answer.get("model_versions") or {},
        context=answer.get("context"),
    )


class ServedLog:
    """Bounded, fire-and-forget producer of served lists."""

    def __init__(self, res: Resources, max_pending: int = MAX_PENDING) -> None:
        self.res = res
        self.queue: asyncio.Queue[ServedList] = asyncio.Queue(max_pending)
        self._warned: dict[str, float] = {}

    def offer(self, answer: dict[str, Any]) -> None:
        """Queue the record of an answer; never raises, never waits."""
        try:
            record = served_list(answer)
        except (ValidationError, KeyError, TypeError) as exc:
            self._drop("invalid", 1, exc)
            return
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            self._drop("buffer_full", 1, "queue full")

    async def run(self) -> None:
        """Send queued lists until cancelled."""
        while True:
            if self.res.producer is None:  # not connected yet: keep queueing (bounded)
                await asyncio.sleep(0.2)
                continue
            batch = [await self.queue.get()]
            while len(batch) < SEND_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            await self._send(batch)

    async def flush(self, timeout_s: float) -> None:
        """Send what is queued now (at shutdown), giving up after ``timeout_s``."""
        batch = []
        while not self.queue.empty():
            batch.append(self.queue.get_nowait())
        if batch:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._send(batch), timeout_s)

    async def _send(self, batch: list[ServedList]) -> None:
        producer = self.res.producer
        if producer is None:
            self._drop("no_broker", len(batch), "the broker is not connected")
            return
        partitions = self.res.settings.kafka.partitions
        records = [
            (
                RECOMMENDATIONS,
                partition_for(s.user_id, partitions),
                s.user_id.encode(),
                orjson.dumps(event_to_dict(s)),
            )
            for s in batch
        ]
        try:
            await producer.send_records(records)
        except BrokerUnavailable as exc:
            self._drop("send_failed", len(batch), exc)
            return
        metrics.SERVED.labels("sent").inc(len(batch))

    def _drop(self, reason: str, n: int, why: object) -> None:
        metrics.SERVED.labels(reason).inc(n)
        now = time.monotonic()
        if now - self._warned.get(reason, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._warned[reason] = now
            log.warning("served lists not logged (%s, %d): %s", reason, n, why)
