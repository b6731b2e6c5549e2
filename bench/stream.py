"""Stream throughput: one worker process over a backlog of 1M events, beside its ceilings.

In one run, on one embedded stack:

* the load generator (its own process) produces N interactions in batch envelopes;
* the raw aiokafka consume rate over the same records (the broker/client ceiling);
* the raw Redis pipelined write rate of user-state-sized hashes (the store ceiling);
* one ``encore worker`` process applies the backlog: decode, validate, dedup, fold,
  atomic Redis write; events/s from its first to its last applied batch;
* the replay of the same topics (plain consumer, same applier) into a new generation.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import loadgen, machine, publish_random_space, save, stack, table
from encore.services import start_redis_cluster
from models.io.redis_store import RedisStore, connect
from models.keys import Keys
from models.settings import load_settings
from models.topics import INTERACTIONS
from streams import replay_jobs
from streams.replay import state_digest


async def raw_consume(bootstrap: str, partitions: int, records: int) -> dict[str, float]:
    """Records/s of a bare aiokafka consumer reading the topic from the start."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_poll_records=10_000,
        fetch_max_bytes=64 * 2**20,
        max_partition_fetch_bytes=16 * 2**20,
    )
    await consumer.start()
    tps = [TopicPartition(INTERACTIONS, p) for p in range(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    got = nbytes = 0
    t0 = time.perf_counter()
    while got < records:
        for msgs in (await consumer.getmany(timeout_ms=1_000, max_records=10_000)).values():
            got += len(msgs)
            nbytes += sum(len(m.value) for m in msgs)
    seconds = time.perf_counter() - t0
    await consumer.stop()
    return {
        "records": got,
        "seconds": round(seconds, 3),
        "records_per_s": round(got / seconds, 1),
        "mb_per_s": round(nbytes / seconds / 2**20, 1),
    }


async def raw_redis(
    url: str, writes: int = 200_000, value_bytes: int = 500, pipeline: int = 1_000
) -> dict[str, float]:
    """String writes/s through redis-py pipelines (user-state-sized values)."""
    client = connect(url, timeout_s=10)
    value = b"x" * value_bytes
    t0 = time.perf_counter()
    for start in range(0, writes, pipeline):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(writes, start + pipeline)):
            pipe.set(f"rawbench:{i % 50_000}", value)
        await pipe.execute()
    seconds = time.perf_counter() - t0
    await client.flushdb()
    await client.aclose()
    return {
        "writes": writes,
        "seconds": round(seconds, 3),
        "writes_per_s": round(writes / seconds, 1),
    }


async def wait_applied(
    url: str,
    partitions: int,
    last: dict[int, int],
    generation: int = 0,
    limit_s: float = 1_800,
    *,
    cluster: bool = False,
) -> dict[str, float]:
    """Poll the applied offsets until every partition reaches its last offset."""
    store = RedisStore(connect(url, timeout_s=5, cluster=cluster))
    keys = Keys("enc", generation, partitions)
    first_progress = None
    t0 = time.perf_counter()
    try:
        while True:
            applied = [
                await store.get_int(keys.offset(INTERACTIONS, p), -1) for p in range(partitions)
            ]
            now = time.perf_counter()
            if first_progress is None and any(a >= 0 for a in applied):
                first_progress = now
            if all(applied[p] >= last[p] for p in last):
                return {
                    "first_progress_s": round((first_progress or now) - t0, 2),
                    "done_s": round(now - t0, 2),
                    "applying_s": round(now - (first_progress or now), 3),
                }
            if now - t0 > limit_s:
                raise TimeoutError(f"not applied after {limit_s}s: {applied} vs {last}")
            await asyncio.sleep(0.05)
    finally:
        await store.close()


async def high_watermarks(bootstrap: str, partitions: int) -> dict[int, int]:
    """Last offset per partition, from fetch high watermarks (not ListOffsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    tps = [TopicPartition(INTERACTIONS, p) for p in range(partitions)]
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, 0)
    highs: dict[int, int] = {}
    while len(highs) < partitions:
        await consumer.getmany(timeout_ms=200, max_records=1)
        for tp in tps:
            h = consumer.highwater(tp)
            if h is not None:
                highs[tp.partition] = h - 1
    await consumer.stop()
    return highs


def rss_mib(pid: int) -> float:
    """Resident memory of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def redis_memory(url: str, sample: int = 500) -> dict[str, float]:
    """Redis memory in use and the mean size of a user's state (MEMORY USAGE over every
    field, on a sample of users)."""
    client = connect(url, timeout_s=10)
    info = await client.info("memory")
    sizes = []
    async for key in client.scan_iter(match="enc:g0:us:*", count=1_000):
        sizes.append(await client.memory_usage(key, samples=0) or 0)
        if len(sizes) >= sample:
            break
    users = 0
    async for _ in client.scan_iter(match="enc:g0:us:*", count=5_000):
        users += 1
    await client.aclose()
    return {
        "used_mib": round(info["used_memory"] / 2**20, 1),
        "users": users,
        "bytes_per_user": round(float(np.mean(sizes)), 0) if sizes else 0.0,
    }


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def same_state(old: int, new: int) -> bool:
    """Whether the replayed generation equals the live one, key by key and value by value."""
    from streams.wiring import redis_store

    settings = load_settings()
    store = redis_store(settings)
    try:
        prefix = settings.redis.key_prefix
        return await state_digest(store, prefix, old) == await state_digest(store, prefix, new)
    finally:
        await store.close()


async def track_memory(n: int = 2_000, dim: int = 64) -> dict[str, float]:
    """Redis bytes per catalog track: ``n`` new-track events applied by the workers' applier.

    The content vectors have production sizes (384-d text, ``dim``-d collaborative
    projection, mood); their values are random, because only their size matters here.
    """
    from datetime import UTC, datetime

    from models.apply import ContentVectors
    from models.codec import encode_batch
    from models.events import NewTrack
    from models.topics import TRACKS, partition_for
    from streams.applier import Record
    from streams.wiring import build_applier, discard_dead_letters, redis_store

    settings = load_settings()
    rng = np.random.default_rng(3)

    async def content(events: Any) -> dict[str, ContentVectors]:
        return {
            e.track_id: ContentVectors(
                text=rng.normal(size=384).astype(np.float32),
                collab=rng.normal(size=dim).astype(np.float32),
                valence=0.1,
                arousal=-0.2,
                model="bench",
            )
            for e in events
        }

    store = redis_store(settings)
    applier = build_applier(settings, store, discard_dead_letters, content=content)
    now = datetime.now(UTC)
    parts = settings.kafka.partitions
    by_part: dict[int, list[NewTrack]] = {p: [] for p in range(parts)}
    for i in range(n):
        e = NewTrack(
            event_id=f"memtrack-{i}",
            occurred_at=now,
            track_id=f"memtrack:{i}",
            title=f"Track number {i}",
            artist=f"Artist {i % 300}",
            album=f"Album {i % 900}",
            genre="electronic",
            tags=("chill", "night", "synth"),
            year=2020,
            duration_ms=215_000,
            audio_url=f"https://cdn.example.com/audio/{i}.mp3",
        )
        by_part[partition_for(e.track_id, parts)].append(e)
    keys = await applier.keys()
    for p, evs in by_part.items():
        for start in range(0, len(evs), 200):
            value = encode_batch(evs[start : start + 200])
            await applier.apply(TRACKS, p, [Record(start // 200, value)], keys=keys)
    sizes = []
    async for key in store.client.scan_iter(match=f"{keys.base}t:*", count=1_000):
        sizes.append(await store.client.memory_usage(key, samples=0) or 0)
    await store.close()
    return {"tracks": len(sizes), "bytes_per_track": round(float(np.mean(sizes)), 0)}


def live_on_cluster(s: Any, last: dict[int, int], events: int) -> dict[str, Any]:
    """One worker applying the same backlog into a local 3-master Redis Cluster (a new
    consumer group, so it reads from the start)."""
    cluster = start_redis_cluster(s.run_dir, nodes=3, name="bench-cluster")
    try:
        worker = s.spawn(
            "worker-cluster",
            [sys.executable, "-m", "encore.cli", "worker"],
            ENCORE_REDIS_URL=cluster.address,
            ENCORE_REDIS_CLUSTER="true",
            ENCORE_STREAM_APP_ID="encore-streams-bench-cluster",
        )
        applied = asyncio.run(wait_applied(cluster.address, s.partitions, last, cluster=True))
        worker.stop()
    finally:
        cluster.stop()
    return {
        **applied,
        "nodes": 3,
        "events_per_s": round(events / applied["applying_s"], 1),
    }


def run(events: int = 1_000_000, users: int = 50_000, tracks: int = 20_000) -> dict[str, Any]:
    """The whole benchmark; returns the result document."""
    with stack("stream") as s:
        space = publish_random_space(s.run_dir / "artifacts", tracks)
        gen = loadgen(s.broker.address, events, users, tracks)
        last = asyncio.run(high_watermarks(s.broker.address, s.partitions))
        consume = asyncio.run(raw_consume(s.broker.address, s.partitions, gen["records"]))
        redis_raw = asyncio.run(raw_redis(s.redis.address))

        worker = s.spawn("worker", [sys.executable, "-m", "encore.cli", "worker"])
        applied = asyncio.run(wait_applied(s.redis.address, s.partitions, last))
        worker_cpu = cpu_seconds(worker.pid)
        worker_rss = rss_mib(worker.pid)
        memory = asyncio.run(redis_memory(s.redis.address))
        worker.stop()
        os.environ.update(s.env())  # replay processes read their settings from here
        live_eps = events / applied["applying_s"]

        replays = {}
        for processes in (1, 2):
            rep = asyncio.run(
                replay_jobs.run(
                    load_settings(),
                    from_ms=None,
                    cutover=False,
                    processes=processes,
                    batch_records=200,
                )
            )
            replays[processes] = {
                "equals_live_state": asyncio.run(
                    same_state(rep.old_generation, rep.new_generation)
                ),
                "events": rep.events,
                "seconds": round(rep.seconds, 2),
                "events_per_s": round(rep.events_per_s, 1),
            }
        on_cluster = live_on_cluster(s, last, events)
        memory.update(asyncio.run(track_memory()))  # last: these tracks are not in the topics

    events_per_record = events / gen["records"]
    raw_eps = consume["records_per_s"] * events_per_record
    return {
        "name": "stream",
        "machine": machine(),
        "params": {
            "events": events,
            "users": users,
            "tracks": tracks,
            "item_space": space,
            "events_per_record": round(events_per_record, 1),
            "partitions": 6,
        },
        "load_generator": gen,
        "raw_aiokafka_consume": {**consume, "events_per_s": round(raw_eps, 1)},
        "raw_redis_pipeline": redis_raw,
        "worker": {
            **applied,
            "events_per_s": round(live_eps, 1),
            "cpu_s": round(worker_cpu, 2),
            "rss_mib": worker_rss,
            "ratio_to_raw_consume": round(live_eps / raw_eps, 4),
        },
        "memory": memory,
        "worker_on_redis_cluster": on_cluster,
        "replay": replays[1],
        "replay_2_processes": replays[2],
        "goals": {"worker_events_per_s": 50_000, "replay_events_per_s": 150_000},
    }


def render(r: dict[str, Any]) -> str:
    """The markdown table of a result."""
    rows = [
        ["load generator (produce)", f"{r['load_generator']['events_per_s']:,.0f} events/s", ""],
        [
            "raw aiokafka consume",
            f"{r['raw_aiokafka_consume']['events_per_s']:,.0f} events/s",
            f"{r['raw_aiokafka_consume']['records_per_s']:,.0f} records/s",
        ],
        [
            "raw Redis pipeline",
            f"{r['raw_redis_pipeline']['writes_per_s']:,.0f} writes/s",
            "500-byte strings (a user state)",
        ],
        [
            "**one worker, live**",
            f"**{r['worker']['events_per_s']:,.0f} events/s**",
            f"{r['worker']['ratio_to_raw_consume']:.1%} of raw consume; "
            f"goal {r['goals']['worker_events_per_s']:,}",
        ],
        [
            "one worker, live, on a Redis Cluster",
            f"{r['worker_on_redis_cluster']['events_per_s']:,.0f} events/s",
            f"3 masters on the same cores; "
            f"{r['worker_on_redis_cluster']['events_per_s'] / r['worker']['events_per_s']:.2f}x "
            "the single Redis",
        ]
        if "worker_on_redis_cluster" in r
        else ["one worker, live, on a Redis Cluster", "not measured", ""],
        [
            "**replay, 1 process**",
            f"**{r['replay']['events_per_s']:,.0f} events/s**",
            f"{r['replay']['events_per_s'] / r['raw_aiokafka_consume']['events_per_s']:.1%} "
            f"of raw consume; goal {r['goals']['replay_events_per_s']:,}; equals live state: "
            + ("yes" if r["replay"].get("equals_live_state") else "**no**"),
        ],
        [
            "**replay, 2 processes**",
            f"**{r['replay_2_processes']['events_per_s']:,.0f} events/s**",
            "one per core; equals live state: "
            + ("yes" if r["replay_2_processes"].get("equals_live_state") else "**no**"),
        ],
    ]
    m = r["memory"]
    rows += [
        ["Redis per user", f"{m['bytes_per_user']:,.0f} bytes", f"{m['users']:,} users"],
        ["Redis per track", f"{m.get('bytes_per_track', 0):,.0f} bytes", "with 384-d text vector"],
        ["Redis in use", f"{m['used_mib']:,.1f} MiB", "after the live run"],
        ["worker resident memory", f"{r['worker']['rss_mib']:,.0f} MiB", ""],
    ]
    return table(rows, ["stage", "rate", "note"])


def main() -> None:
    n = int(os.environ.get("ENCORE_BENCH_EVENTS", "1000000"))
    result = run(events=n)
    path = save("stream", result)
    print(render(result))
    print(f"\n{path}")


if __name__ == "__main__":
    main()
