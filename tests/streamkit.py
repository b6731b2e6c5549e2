"""Helpers for tests that run real worker processes against a real broker and Redis."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from encore.services import Proc, create_topics, spawn
from models.demo import generate
from models.events import LinkCheck, LinkStatus, PlaybackFailure
from models.io.producer import plan_records
from models.io.redis_store import RedisStore, connect
from models.io.store import digest_of
from models.keys import Keys
from models.topics import all_topics

PARTITIONS = 6


def demo_events(
    n_users: int = 150, n_tracks: int = 300, mean_events: int = 40, seed: int = 11
) -> list[Any]:
    """Catalog, link-health and interaction events with recent times (trending stays live)."""
    now = datetime.now(UTC).replace(microsecond=0)
    demo = generate(
        seed=seed,
        n_tracks=n_tracks,
        n_users=n_users,
        mean_events=mean_events,
        end=now - timedelta(minutes=1),
        days=0.5,  # trending buckets stay well inside their 24 h window during a test
    )
    links: list[Any] = []
    for i, t in enumerate(demo.tracks[:60]):
        when = now - timedelta(minutes=30 - i % 20)
        if i % 3 == 0:
            links.append(
                PlaybackFailure(
                    event_id=f"fail-{i}",
                    occurred_at=when,
                    track_id=t.track_id,
                    error="http_404",
                    http_code=404,
                )
            )
        links.append(
            LinkCheck(
                event_id=f"chk-{i}",
                occurred_at=when + timedelta(seconds=5),
                track_id=t.track_id,
                url=f"http://127.0.0.1:9/{i}.mp3",
                status=LinkStatus.VALID if i % 2 else LinkStatus.DEAD,
                http_code=200 if i % 2 else 404,
            )
        )
    return [*demo.tracks, *links, *demo.interactions]


@dataclass
class StreamEnv:
    """One broker (fresh per test) and one Redis database (on a Redis Cluster: one key
    prefix, as a cluster has only database 0), plus worker processes."""

    broker: Proc
    redis_url: str
    run_dir: Path
    workers: list[Proc] = field(default_factory=list)
    last_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    cluster: bool = False
    prefix: str = "enc"

    @property
    def env(self) -> dict[str, str]:
        return {
            "ENCORE_KAFKA_BOOTSTRAP": self.broker.address,
            "ENCORE_REDIS_URL": self.redis_url,
            "ENCORE_REDIS_CLUSTER": "true" if self.cluster else "false",
            "ENCORE_REDIS_KEY_PREFIX": self.prefix,
            "ENCORE_RUN_DIR": str(self.run_dir),
            "ENCORE_STREAM_EMBED_TEXT": "false",
            "ENCORE_ARTIFACTS_ROOT": str(self.run_dir / "artifacts"),
            **self.extra_env,
        }

    async def create_topics(self) -> None:
        await create_topics(self.broker.address, all_topics(), PARTITIONS)

    def start_worker(self, name: str | None = None) -> Proc:
        name = name or f"worker-{len(self.workers)}"
        proc = spawn(
            name, [sys.executable, "-m", "encore.cli", "worker"], self.run_dir, env=self.env
        )
        self.workers.append(proc)
        return proc

    def stop_workers(self) -> None:
        for w in self.workers:
            w.stop()

    async def produce(self, events: list[Any], chunk: int = 400) -> None:
        """Send events as records (deterministic layout) and remember the last offsets."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.broker.address, acks="all", max_request_size=4 * 2**20
        )
        await producer.start()
        try:
            for i in range(0, len(events), chunk):
                records = plan_records(events[i : i + chunk], PARTITIONS, max_bytes=2**20)
                futures = [await producer.send(t, v, key=k, partition=p) for t, p, k, v in records]
                for meta in await asyncio.gather(*futures):
                    self.last_offsets[(meta.topic, meta.partition)] = meta.offset
        finally:
            await producer.stop()

    async def produce_raw(self, topic: str, partition: int, value: bytes) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.broker.address)
        await producer.start()
        try:
            meta = await producer.send_and_wait(topic, value, partition=partition)
            self.last_offsets[(meta.topic, meta.partition)] = meta.offset
        finally:
            await producer.stop()

    def store(self) -> RedisStore:
        return RedisStore(connect(self.redis_url, cluster=self.cluster, timeout_s=5))

    async def wait_applied(self, limit_s: float = 120, generation: int = 0) -> float:
        """Wait until every produced record is applied; returns seconds waited."""
        store = self.store()
        keys = Keys(self.prefix, generation, PARTITIONS)
        started = time.monotonic()
        try:
            while True:
                behind = []
                for (topic, p), last in self.last_offsets.items():
                    if await store.get_int(keys.offset(topic, p), -1) < last:
                        behind.append(f"{topic}/{p}")
                if not behind:
                    return time.monotonic() - started
                if time.monotonic() - started > limit_s:
                    logs = "\n".join(w.tail(15) for w in self.workers)
                    raise AssertionError(f"not applied: {behind}\n{logs}")
                await asyncio.sleep(0.2)
        finally:
            await store.close()

    async def dump(self, generation: int = 0) -> dict[str, Any]:
        store = self.store()
        try:
            return await store.dump(Keys(self.prefix, generation, PARTITIONS).base)
        finally:
            await store.close()

    async def digest(self, generation: int = 0, skip: tuple[str, ...] = ()) -> str:
        dump = await self.dump(generation)
        return digest_of({k: v for k, v in dump.items() if not k.startswith(skip)})


def redis_db_url(base: str, db: int) -> str:
    """The same server, another database number."""
    return base.rsplit("/", 1)[0] + f"/{db}"


def env_without_encore() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ENCORE_")}
