"""The stream worker: Faust agents that fold every event into Redis, exactly once in effect.

Delivery is at-least-once; the effect is exactly once because every batch is
committed to Redis atomically with its partition's applied offset (see
:mod:`streams.applier`). Redis, not Kafka's committed offset and not a Faust
table, is the source of truth for both state and position:

* events are acked to Faust only after their Redis commit, so Kafka's committed
  offset never runs ahead of Redis (:func:`streams.faust_adapter.unacked_batches`);
* on every partition assignment the consumer seeks to Redis's applied offset + 1
  (after Faust's own seek to the committed offset, which it does last);
* a batch that starts past applied + 1 (records lost in a rewind) makes the agent
  seek back and drop stale buffered events until the wanted offset arrives;
* Redis or broker failures rewind the batch and retry with backoff; nothing is
  acked, nothing is dropped.

Workarounds for the embedded broker, by name: ``consumer_auto_offset_reset``
is ``earliest`` (its ListOffsets end offsets are wrong, so ``latest`` misbehaves);
lag uses fetch high watermarks (``consumer.highwater``), not end-offset lookups;
the session timeout is short (it joins a group in half of it); fetches wait at
most ``ENCORE_KAFKA_FETCH_MAX_WAIT_MS`` (it does not answer a waiting fetch when
data arrives); no ``exactly_once`` guarantee (it has no transactions); no tables.

What Faust offers no public hook for (the seek after assignment, the fetch wait,
the stop watchdog) is in :mod:`streams.faust_adapter`, the one module that
touches Faust's internals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faust.types import TP
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from models.codec import Rejected, dlq_record
from models.io.artifacts import remote_of
from models.io.producer import BrokerUnavailable, EventProducer
from models.keys import lag_key
from models.records import encode_lag
from models.settings import Settings
from models.topics import SOURCE_TOPICS, dlq_topic
from streams import metrics
from streams.applier import ApplyResult, ItemLookup, Record
from streams.content import ContentEncoder
from streams.faust_adapter import PositionedApp, WatchdogWorker, unacked_batches
from streams.itemspace import SpaceWatcher
from streams.wiring import build_applier, redis_store

log = logging.getLogger("encore.worker")
STOP_TIMEOUT_S = 20.0


class Worker:
    """Wires settings, Redis, the producer and the applier into Faust agents."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        s = settings.stream
        if settings.redis.url is None or not settings.kafka.bootstrap:
            raise SystemExit("the worker needs ENCORE_KAFKA_BOOTSTRAP and ENCORE_REDIS_URL")
        self.store = redis_store(settings)
        self.redis = self.store.client
        self.producer = EventProducer(
            settings.kafka.bootstrap,
            settings.kafka.partitions,
            max_record_bytes=settings.kafka.max_record_bytes * 2,
        )
        self.items = ItemLookup()
        root = Path(settings.artifacts.root)
        remote = remote_of(settings.artifacts)
        self.watcher = SpaceWatcher(
            self.items,
            root,
            s.space_kind,
            settings.artifacts.watch_interval_s,
            retry_max_s=settings.artifacts.retry_max_s,
            remote=remote,
        )
        content = ContentEncoder(root, remote=remote) if s.embed_text else None
        self.applier = build_applier(settings, self.store, self.dead_letter, self.items, content)
        self.pending_seek: dict[tuple[str, int], int] = {}
        self._space_checked = False
        self.app = self._build_app()

    def _build_app(self) -> PositionedApp:
        s, k = self.settings.stream, self.settings.kafka
        app = PositionedApp(
            s.app_id,
            broker=[f"kafka://{b.strip()}" for b in (k.bootstrap or "").split(",")],
            store="memory://",
            datadir=str(Path(self.settings.run.dir) / "faust"),
            value_serializer="raw",
            key_serializer="raw",
            web_enabled=False,
            topic_disable_leader=True,
            topic_allow_declare=False,
            broker_session_timeout=k.session_timeout_ms / 1000,
            broker_heartbeat_interval=max(0.5, k.session_timeout_ms / 6000),
            broker_rebalance_timeout=k.session_timeout_ms / 1000,
            broker_request_timeout=max(30.0, k.session_timeout_ms / 1000 + 5),
            broker_commit_interval=1.0,
            broker_max_poll_records=max(s.batch_size, 500),
            stream_buffer_maxsize=max(4 * s.batch_size, 8_192),
            consumer_auto_offset_reset="earliest",
            stream_wait_empty=True,
            stream_recovery_delay=0.0,
        )
        app.position_lookup = self.positions
        # Workaround: the embedded broker does not answer a waiting fetch when data
        # arrives, so a fetch waits its full fetch_max_wait_ms (Faust hard-codes 1500,
        # which put 700 ms into every event's latency). Kafka answers at once either way.
        app.fetch_max_wait_ms = k.fetch_max_wait_ms
        for name in SOURCE_TOPICS:
            topic = app.topic(name, value_serializer="raw", key_serializer="raw")
            app.agent(topic, name=f"apply-{name}")(self._agent(name))
        app.timer(interval=2.0)(self.report_lag)
        app.task(self.watcher.run)
        app.task(self._start_producer)
        return app

    async def _start_producer(self) -> None:
        while True:
            try:
                await self.producer.start()
                return
            except BrokerUnavailable as exc:
                log.warning("dead-letter producer not ready: %s", exc)
                await asyncio.sleep(1)

    async def positions(self, tps: list[TP]) -> dict[TP, int]:
        """Next offset to read per partition: Redis's applied offset + 1 (retries until
        Redis answers: without it there is no position to resume from)."""
        delay = self.settings.stream.retry_backoff_s
        while True:
            try:
                return await self._positions(tps)
            except (RedisError, OSError) as exc:
                metrics.INFRA_ERRORS.labels("*", "redis").inc()
                log.warning("Redis unavailable while positioning (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _positions(self, tps: list[TP]) -> dict[TP, int]:
        keys = await self.applier.keys()
        out = {}
        self.pending_seek.clear()
        for tp in tps:
            applied = await self.store.get_int(keys.offset(tp.topic, tp.partition), -1)
            if applied >= 0:
                out[tp] = applied + 1
                self.pending_seek[(tp.topic, tp.partition)] = applied + 1
        log.info(
            "positioned from Redis: %s", {f"{tp.topic}/{tp.partition}": o for tp, o in out.items()}
        )
        return out

    async def dead_letter(
        self, topic: str, partition: int, rejected: Sequence[tuple[int, Rejected]]
    ) -> None:
        """Send rejected events to ``<topic>.dlq`` (awaiting acks) before the commit."""
        member: dict[int, int] = defaultdict(int)
        for offset, r in rejected:
            value = dlq_record(
                r, topic=topic, partition=partition, offset=offset, member=member[offset]
            )
            member[offset] += 1
            await self.producer.send_raw(dlq_topic(topic), value)
            metrics.DEAD_LETTERS.labels(topic, r.reason.value).inc()

    def _agent(self, topic: str) -> Any:
        async def agent(stream: Any) -> None:
            s = self.settings.stream
            async for events in unacked_batches(stream, s.batch_size, s.batch_timeout_s):
                await self._process(topic, stream, events)

        agent.__name__ = f"apply_{topic.replace('-', '_')}"
        return agent

    async def _first_space(self) -> None:
        """Load the item space published now before the first batch is applied.

        The watcher's own loop loads it too, but possibly after the first records
        arrive; a batch folded without the space would give listeners other vectors
        than a replay, which loads the space first."""
        if not self._space_checked:
            await self.watcher.check()  # concurrent first batches wait for one load
            self._space_checked = True

    async def _process(self, topic: str, stream: Any, events: Sequence[Any]) -> None:
        await self._first_space()
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for ev in events:
            m = ev.message
            want = self.pending_seek.get((topic, m.partition))
            if want is not None:
                if m.offset != want:
                    metrics.STALE.labels(topic).inc()
                    continue  # fetched before our seek: it will come again, in order
                del self.pending_seek[(topic, m.partition)]
            by_partition[m.partition].append(ev)
        # Partitions share no keys: apply them concurrently (their Redis round trips overlap).
        await asyncio.gather(
            *(
                self._partition(topic, stream, p, evs)
                for p, evs in sorted(by_partition.items())
                if evs
            )
        )

    async def _partition(self, topic: str, stream: Any, partition: int, evs: list[Any]) -> None:
        records = [
            Record(e.message.offset, e.message.value, timestamp_ms=_millis(e.message.timestamp))
            for e in evs
        ]
        for piece in pieces(records, self.settings.stream.apply_max_bytes):
            result = await self._apply_until_done(topic, partition, piece)
            if result.seek_to is not None:
                break
        if result.seek_to is not None:
            metrics.GAPS.labels(topic).inc()
            log.warning(
                "%s/%d: records start at %d, applied is %d; seeking back",
                topic,
                partition,
                records[0].offset,
                result.seek_to - 1,
            )
            await self._seek(topic, partition, result.seek_to)
            return
        for ev in evs:
            await stream.ack(ev)

    async def _apply_until_done(
        self, topic: str, partition: int, records: list[Record]
    ) -> ApplyResult:
        """Apply, retrying in place with backoff while Redis or the broker is down.

        The records stay in hand and unacknowledged, so nothing is skipped or lost;
        Faust pauses fetching while the agent waits."""
        delay = self.settings.stream.retry_backoff_s
        while True:
            try:
                return await self.applier.apply(topic, partition, records)
            except (RedisError, BrokerUnavailable, OSError) as exc:
                kind = "redis" if isinstance(exc, RedisError | OSError) else "broker"
                metrics.INFRA_ERRORS.labels(topic, kind).inc()
                log.warning(
                    "%s/%d: %s unavailable (%s); retrying in %.1fs",
                    topic,
                    partition,
                    kind,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _seek(self, topic: str, partition: int, offset: int) -> None:
        self.pending_seek[(topic, partition)] = offset
        await self.app.consumer.seek_wait({TP(topic, partition): offset})  # Faust's public seek

    async def report_lag(self) -> None:
        """Lag per assigned partition from fetch high watermarks (not ListOffsets)."""
        consumer = self.app.consumer
        try:
            keys = await self.applier.keys()
            lags = {}
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                if high is None:
                    continue
                applied = await self.store.get_int(keys.offset(tp.topic, tp.partition), -1)
                lag = max(0, int(high) - (applied + 1))
                metrics.LAG.labels(tp.topic, str(tp.partition)).set(lag)
                lags[f"{tp.topic}:{tp.partition}"] = encode_lag(lag, int(time.time() * 1000))
            if lags:
                await self.redis.hset(lag_key(keys.prefix), mapping=lags)
        except (RedisError, OSError) as exc:
            log.warning("lag report skipped: %s", exc)


def pieces(records: list[Record], max_bytes: int) -> list[list[Record]]:
    """Consecutive runs of records of at most ``max_bytes`` (at least one record each).

    Applying is batch-invariant, so the state is the same however a batch is cut;
    smaller pieces keep fewer decoded events in memory at once."""
    out: list[list[Record]] = []
    size = 0
    for r in records:
        n = len(r.value or b"")
        if not out or size + n > max_bytes:
            out.append([])
            size = 0
        out[-1].append(r)
        size += n
    return out


def _millis(timestamp_s: float | None) -> int | None:
    """Faust's record time (seconds, a float) as the broker's milliseconds."""
    return None if timestamp_s is None else round(timestamp_s * 1000)


def run_worker(settings: Settings) -> None:
    """Run one worker process until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        import mode.loop

        mode.loop.use("uvloop")  # about 20% more records/s through Faust; before the app
    except ImportError:
        pass
    worker = Worker(settings)
    if settings.stream.web_port >= 0:
        server, _ = start_http_server(
            settings.stream.web_port,
            addr="127.0.0.1" if settings.mode.value == "development" else "0.0.0.0",
        )
        log.info("metrics on :%d/metrics", server.server_port)
    runner = WatchdogWorker(worker.app, loglevel="INFO", redirect_stdouts=False, quiet=True)
    runner.stop_timeout_s = STOP_TIMEOUT_S  # safe: nothing is acked before its Redis commit
    runner.execute_from_commandline()
