"""Fault drills on the embedded stack, with exact accounting per drill.

For every drill the same kind of stream is sent: interaction events of many
users, each event counted per user. After the drill the state is read back and
compared user by user with what was sent: ``applied once`` is every sent event
reflected exactly once, ``lost`` is sent but not reflected, ``applied twice``
is reflected more often than sent. Dead letters are counted from the
dead-letter topic (distinct by origin) and from the counts committed in Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from bench.common import Stack, machine, publish_random_space, save, stack, table
from bench.loadgen import records, synthetic
from encore.services import create_topics, start_broker, start_redis
from models.io.dlq import read_dead_letters
from models.io.redis_store import RedisStore, connect
from models.keys import Keys
from models.records import decode_user
from models.topics import INTERACTIONS, all_topics

PARTITIONS = 6


def events(n: int, seed: int, users: int = 2_000) -> list[dict[str, Any]]:
    """Interaction event documents with recent times, all in the past (the synthetic
    times span an hour; events dated ahead of the clock are dead letters)."""
    return synthetic(
        n, users, 5_000, seed, datetime.now(UTC) - timedelta(hours=1), prefix=f"drill{seed}"
    )


async def produce(bootstrap: str, docs: list[dict[str, Any]], per_record: int = 250) -> int:
    """Send as batch records; returns records sent."""
    recs = records(docs, PARTITIONS, per_record)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=8 * 2**20
    )
    await producer.start()
    try:
        futures = [await producer.send(INTERACTIONS, v, partition=p) for p, v, _ in recs]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(recs)


async def produce_raw(bootstrap: str, values: list[tuple[int, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(INTERACTIONS, v, partition=p) for p, v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def applied_counts(
    url: str, users: set[str], generation: int = 0, *, cluster: bool = False
) -> dict[str, int]:
    """Events reflected per user (the state's event counter)."""
    store = RedisStore(connect(url, timeout_s=10, cluster=cluster))
    keys = Keys("enc", generation, PARTITIONS)
    out = {}
    try:
        for u in users:
            out[u] = decode_user(await store.client.get(keys.user(u))).n
    finally:
        await store.close()
    return out


async def settle(
    url: str, users: set[str], want: int, limit_s: float = 240, *, cluster: bool = False
) -> None:
    """Wait until the counters stop moving (or reach the number sent)."""
    t0 = time.monotonic()
    last, still = -1, 0
    while time.monotonic() - t0 < limit_s:
        total = sum((await applied_counts(url, users, cluster=cluster)).values())
        if total >= want:
            await asyncio.sleep(1.0)  # anything more would be a double: give it time to show
            return
        still = still + 1 if total == last else 0
        if still >= 40:  # 20 s without progress
            return
        last = total
        await asyncio.sleep(0.5)


def account(sent: Counter[str], got: dict[str, int]) -> dict[str, int]:
    """Exact per-user accounting."""
    once = sum(min(sent[u], got.get(u, 0)) for u in sent)
    lost = sum(max(0, sent[u] - got.get(u, 0)) for u in sent)
    twice = sum(max(0, got.get(u, 0) - sent[u]) for u in got)
    return {"sent": sum(sent.values()), "applied_once": once, "lost": lost, "applied_twice": twice}


def worker(s: Stack, name: str) -> Any:
    return s.spawn(name, [sys.executable, "-m", "encore.cli", "worker"])


def drill_sigkill(n: int = 60_000) -> dict[str, Any]:
    """SIGKILL a worker mid-stream three times (two workers share the partitions)."""
    with stack("drill-kill") as s:
        docs = events(n, 1)
        sent = Counter(d["user_id"] for d in docs)
        a, b = worker(s, "w-a"), worker(s, "w-b")
        time.sleep(5)
        third = len(docs) // 3
        for i in range(3):
            asyncio.run(
                produce(s.broker.address, docs[i * third : (i + 1) * third if i < 2 else None])
            )
            time.sleep(1.5)
            victim = a if i % 2 == 0 else b
            victim.kill()
            replacement = worker(s, f"{victim.name}-{i}")
            a, b = (replacement, b) if victim is a else (a, replacement)
        asyncio.run(settle(s.redis.address, set(sent), n))
        got = asyncio.run(applied_counts(s.redis.address, set(sent)))
    return {
        "drill": "SIGKILL a worker 3x mid-stream",
        **account(sent, got),
        "dead_lettered": 0,
        "expected_dead_letters": 0,
    }


def drill_redis_restart(n: int = 60_000) -> dict[str, Any]:
    """Stop Redis (AOF on) mid-stream, restart it on the same port and data."""
    with stack("drill-redis") as s:
        s.redis.stop()
        port = int(s.redis.address.rsplit(":", 1)[1].split("/")[0])
        s.redis = start_redis(s.run_dir, name="redis-aof", port=port, appendonly=True)
        docs = events(n, 2)
        sent = Counter(d["user_id"] for d in docs)
        worker(s, "w")
        half = len(docs) // 2
        asyncio.run(produce(s.broker.address, docs[:half]))
        time.sleep(2)
        s.redis.stop()
        time.sleep(6)
        s.redis = start_redis(s.run_dir, name="redis-aof", port=port, appendonly=True)
        asyncio.run(produce(s.broker.address, docs[half:]))
        asyncio.run(settle(s.redis.address, set(sent), n))
        got = asyncio.run(applied_counts(s.redis.address, set(sent)))
    return {
        "drill": "restart Redis (AOF) mid-stream",
        **account(sent, got),
        "dead_lettered": 0,
        "expected_dead_letters": 0,
    }


def drill_broker_restart(n: int = 40_000) -> dict[str, Any]:
    """Restart the embedded (memory) broker mid-stream: it forgets everything."""
    with stack("drill-broker") as s:
        docs = events(n, 3)
        sent = Counter(d["user_id"] for d in docs)
        worker(s, "w")
        half = len(docs) // 2
        asyncio.run(produce(s.broker.address, docs[:half]))
        asyncio.run(settle(s.redis.address, {d["user_id"] for d in docs[:half]}, half, 60))
        port = int(s.broker.address.rsplit(":", 1)[1])
        s.broker.stop()
        s.broker = start_broker(s.run_dir, name="broker-again", port=port)
        asyncio.run(create_topics(s.broker.address, all_topics(), PARTITIONS))
        asyncio.run(produce(s.broker.address, docs[half:]))
        asyncio.run(settle(s.redis.address, set(sent), n, 60))
        got = asyncio.run(applied_counts(s.redis.address, set(sent)))
    return {
        "drill": "restart the embedded broker mid-stream",
        **account(sent, got),
        "dead_lettered": 0,
        "expected_dead_letters": 0,
        "note": "memory broker: restarted empty, offsets reused from 0; records at or "
        "below the applied offsets look already applied and are skipped. Apache "
        "Kafka keeps its log and offsets, so this drill loses nothing there.",
    }


def drill_malformed(good_n: int = 100_000, bad_n: int = 10_000) -> dict[str, Any]:
    """10,000 malformed records mixed into 100,000 good events."""
    with stack("drill-bad") as s:
        docs = events(good_n, 4, users=5_000)
        sent = Counter(d["user_id"] for d in docs)
        worker(s, "w")
        bad_kinds = [
            b"{not json",
            b'{"type": "scrobble"}',
            b'{"type": "play", "event_id": "x", "user_id": "u", "track_id": "t",'
            b' "occurred_at": "2024-01-01T00:00:00Z", "ms_played": -1,'
            b' "duration_ms": 5}',
        ]
        step = good_n // 10
        for i in range(10):
            asyncio.run(produce(s.broker.address, docs[i * step : (i + 1) * step]))
            bad = [
                (j % PARTITIONS, bad_kinds[j % 3] if j % 3 else bad_kinds[0] + str(j).encode())
                for j in range(bad_n // 10)
            ]
            asyncio.run(produce_raw(s.broker.address, bad))
        asyncio.run(settle(s.redis.address, set(sent), good_n))
        got = asyncio.run(applied_counts(s.redis.address, set(sent)))
        letters = asyncio.run(read_dead_letters(s.broker.address, [INTERACTIONS]))
    return {
        "drill": f"{bad_n:,} malformed among {good_n:,} good",
        **account(sent, got),
        "dead_lettered": len(letters.entries),
        "expected_dead_letters": bad_n,
    }


def drill_duplicates(n: int = 50_000) -> dict[str, Any]:
    """Every event sent twice."""
    with stack("drill-dup") as s:
        docs = events(n, 5)
        sent = Counter(d["user_id"] for d in docs)
        worker(s, "w")
        asyncio.run(produce(s.broker.address, docs))
        asyncio.run(produce(s.broker.address, docs))
        asyncio.run(settle(s.redis.address, set(sent), n))
        got = asyncio.run(applied_counts(s.redis.address, set(sent)))
    return {
        "drill": "every event sent twice",
        **account(sent, got),
        "dead_lettered": 0,
        "expected_dead_letters": 0,
    }


def drill_swap_under_load(seconds: float = 15.0) -> dict[str, Any]:
    """The API under load while a new artifact version is published."""
    with stack("drill-swap") as s:
        root = s.run_dir / "artifacts"
        publish_random_space(root, 20_000, seed=1)
        port = _free_port()
        s.spawn(
            "api",
            [sys.executable, "-m", "encore.cli", "api"],
            ENCORE_API_PORT=str(port),
            ENCORE_ARTIFACTS_WATCH_INTERVAL_S="0.2",
        )
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/healthz")
        results: Counter[str] = Counter()
        versions: set[str] = set()
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(timeout=5) as c:
                while not stop.is_set():
                    try:
                        r = c.get(base + f"/v1/users/u{results.total() % 1000}/recommendations")
                        results["ok" if r.status_code == 200 else f"http_{r.status_code}"] += 1
                        if r.status_code == 200:
                            versions.add(r.json()["model_versions"]["als"])
                    except httpx.HTTPError as exc:
                        results[type(exc).__name__] += 1

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(seconds / 3)
        publish_random_space(root, 20_000, seed=2)
        time.sleep(seconds / 3)
        publish_random_space(root, 20_000, seed=3)
        time.sleep(seconds / 3)
        stop.set()
        for t in threads:
            t.join()
    errors = sum(v for k, v in results.items() if k != "ok")
    return {
        "drill": "API under load while 2 new artifacts publish",
        "sent": results.total(),
        "applied_once": results["ok"],
        "lost": errors,
        "applied_twice": 0,
        "dead_lettered": 0,
        "expected_dead_letters": 0,
        "note": f"requests; errors {dict(results)}; versions served {len(versions)}",
    }


def _free_port() -> int:
    from encore.services import free_port

    return free_port()


def _wait_http(url: str, limit_s: float = 60) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


DRILLS: list[Callable[[], dict[str, Any]]] = [
    drill_sigkill,
    drill_redis_restart,
    drill_broker_restart,
    drill_malformed,
    drill_duplicates,
    drill_swap_under_load,
]


def render(rows: list[dict[str, Any]]) -> str:
    """One table for every drill."""
    return table(
        [
            [
                r["drill"],
                f"{r['sent']:,}",
                f"{r['applied_once']:,}",
                r["lost"],
                r["applied_twice"],
                f"{r['dead_lettered']:,} / {r['expected_dead_letters']:,}",
            ]
            for r in rows
        ],
        ["drill", "sent", "applied once", "lost", "applied twice", "dead-lettered / expected"],
    )


def main() -> None:
    os.environ.setdefault("ENCORE_STREAM_EMBED_TEXT", "false")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rows = []
    for drill in DRILLS:
        print(f"drill: {drill.__doc__}", flush=True)
        rows.append(drill())
    result = {"name": "drills", "machine": machine(), "drills": rows}
    path = save("drills", result)
    print(render(rows))
    for r in rows:
        if r.get("note"):
            print(f"- {r['drill']}: {r['note']}")
    print(f"\n{path}")


if __name__ == "__main__":
    main()
