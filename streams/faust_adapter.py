"""Every use of Faust's (and its consumer's) internals, in one place.

The worker needs three things Faust has no public hook for; this module provides
them on top of these internals, each pinned by ``tests/unit/test_faust_adapter.py``
to the exact faust-streaming and mode-streaming versions in ``pyproject.toml``:

* ``faust.App._new_consumer()``: the only place to reach Faust's consumer as it
  is built, before it starts; :class:`PositionedApp` overrides it.
* ``Consumer.perform_seek()``, replaced on the instance: Faust calls it after
  every partition assignment and seeks to Kafka's committed offsets in it; the
  replacement runs it, then seeks to the positions ``position_lookup`` gives, so
  those win. (``Consumer.seek_wait`` is Faust's public seek.)
* ``Consumer._thread._create_worker_consumer(transport)``, replaced on the
  instance: where Faust builds the aiokafka consumer, with ``fetch_max_wait_ms``
  hard-coded to 1500 ms; the replacement lowers it.
* ``aiokafka.AIOKafkaConsumer._fetch_max_wait_ms``: the setting aiokafka's
  ``start()`` hands to its fetcher; set between construction and start.
* ``Stream.noack_take(max_, within)``: batches of events that are acked only when
  the caller says so (``Stream.ack``); public on the class but not part of
  Faust's ``StreamT`` interface. Used through :func:`unacked_batches`.
* ``mode.Worker._schedule_shutdown(signal)``: the signal handler's path into a
  graceful stop; :class:`WatchdogWorker` arms its timer there.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import faust
from faust.types import TP

PositionLookup = Callable[[list[TP]], Awaitable[Mapping[TP, int]]]
"""Next offset to read per assigned partition (partitions left out keep Faust's)."""


class PositionedApp(faust.App):
    """A Faust app whose consumer seeks every assigned partition to ``position_lookup``'s
    offsets after Faust's own seek, and whose fetches wait at most ``fetch_max_wait_ms``."""

    position_lookup: PositionLookup | None = None
    fetch_max_wait_ms: int = 20

    def _new_consumer(self) -> Any:
        consumer: Any = super()._new_consumer()
        faust_seek = consumer.perform_seek

        async def perform_seek() -> None:
            await faust_seek()  # Faust seeks to Kafka's committed offsets; ours win after
            tps = list(consumer.assignment())
            if tps and self.position_lookup is not None:
                positions = await self.position_lookup(tps)
                if positions:
                    await consumer.seek_wait(positions)  # runs in the consumer's own thread

        consumer.perform_seek = perform_seek
        self._shorten_fetch_wait(consumer)
        return consumer

    def _shorten_fetch_wait(self, consumer: Any) -> None:
        """Faust hard-codes ``fetch_max_wait_ms=1500``; use ours instead."""
        thread = consumer._thread
        create = thread._create_worker_consumer

        def create_with_short_wait(transport: Any) -> Any:
            kafka_consumer = create(transport)
            kafka_consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
            return kafka_consumer

        thread._create_worker_consumer = create_with_short_wait


def unacked_batches(stream: Any, size: int, within: float) -> AsyncIterator[Sequence[Any]]:
    """Batches of at most ``size`` events (or what came within ``within`` seconds), none
    acked: the caller acks each with ``await stream.ack(event)`` once it is safe."""
    batches: AsyncIterator[Sequence[Any]] = stream.noack_take(size, within=within)
    return batches


class WatchdogWorker(faust.Worker):
    """Faust worker with a stop watchdog: a graceful stop that takes longer than
    ``stop_timeout_s`` ends in ``os._exit(1)``."""

    stop_timeout_s: float = 20.0

    def _schedule_shutdown(self, signal: Any) -> None:
        timer = threading.Timer(self.stop_timeout_s, lambda: os._exit(1))
        timer.daemon = True
        timer.start()
        super()._schedule_shutdown(signal)
