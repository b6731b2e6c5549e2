"""Stream workers as real processes on a real broker and Redis: exactly-once effect through
SIGKILL, duplicates, malformed input and replay."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer

from encore.services import LocalRedisCluster, Proc, free_port, start_broker, start_redis
from models import ops
from models.codec import encode_event
from models.events import Play, RecContext, Skip
from models.io.dlq import read_dead_letters
from models.keys import Keys
from models.records import decode_user
from models.state import UserState
from models.topics import INTERACTIONS, partition_for
from streams.replay import replay
from streams.wiring import discard_dead_letters
from tests.streamkit import PARTITIONS, StreamEnv, demo_events, redis_db_url

pytestmark = pytest.mark.slow
EnvFactory = Callable[[], StreamEnv]


@pytest.fixture
def make_env(run_dir: Path, redis_server: Proc, tmp_path: Path) -> Iterator[EnvFactory]:
    """Build isolated environments: a fresh broker each, its own Redis database."""
    made: list[StreamEnv] = []

    def factory() -> StreamEnv:
        db = len(made) + 1
        url = redis_db_url(redis_server.address, db)
        redis.Redis.from_url(url).flushdb()
        broker = start_broker(tmp_path / f"env{db}", name=f"broker-{db}")
        env = StreamEnv(broker, url, tmp_path / f"env{db}")
        made.append(env)
        return env

    yield factory
    for env in made:
        env.stop_workers()
        env.broker.stop()


_cluster_envs = itertools.count(1)


@pytest.fixture
def make_cluster_env(redis_cluster: LocalRedisCluster, tmp_path: Path) -> Iterator[EnvFactory]:
    """Like ``make_env`` on the three-master Redis Cluster: a cluster has only database
    0, so each environment gets its own key prefix instead."""
    made: list[StreamEnv] = []

    def factory() -> StreamEnv:
        n = next(_cluster_envs)
        broker = start_broker(tmp_path / f"cenv{n}", name=f"broker-c{n}")
        env = StreamEnv(
            broker, redis_cluster.address, tmp_path / f"cenv{n}", cluster=True, prefix=f"cl{n}"
        )
        made.append(env)
        return env

    yield factory
    for env in made:
        env.stop_workers()
        env.broker.stop()


def _stored_user(value: str) -> UserState:
    """A user state from its entry in a state dump (binary values are shown as hex)."""
    return decode_user(bytes.fromhex(value[2:]) if value.startswith("0x") else value.encode())


async def _run_once(env: StreamEnv, events: list[Any]) -> None:
    await env.create_topics()
    env.start_worker()
    await env.produce(events)
    await env.wait_applied()


async def test_sigkill_mid_stream_gives_the_same_state_as_an_uninterrupted_run(
    make_env: EnvFactory,
) -> None:
    await _sigkill_drill(make_env)


async def test_sigkill_drill_on_a_redis_cluster(
    make_cluster_env: EnvFactory, redis_cluster: LocalRedisCluster
) -> None:
    """The same drill with the state spread over three masters (commits by hash tag)."""
    env = await _sigkill_drill(make_cluster_env)
    for node in redis_cluster.nodes:  # the state really is spread over every master
        client = redis.Redis.from_url(node.address)
        assert any(client.scan_iter(match=f"{env.prefix}:g0:*", count=1_000))
        client.close()


async def _sigkill_drill(make_env: EnvFactory) -> StreamEnv:
    events = demo_events()
    reference = make_env()
    await _run_once(reference, events)
    expected = await reference.digest()

    env = make_env()
    await env.create_topics()
    first, second = env.start_worker(), env.start_worker()
    third = len(events) // 3 // 400 * 400  # same record layout (and offsets) as the reference
    for i in range(3):  # kill -9 a worker mid-stream three times, restarting it each time
        part = events[i * third : (i + 1) * third if i < 2 else None]
        await env.produce(part)
        await asyncio.sleep(1.5)
        victim = first if i % 2 == 0 else second
        victim.kill()
        replacement = env.start_worker(f"{victim.name}-r{i}")
        if victim is first:
            first = replacement
        else:
            second = replacement
    waited = await env.wait_applied(limit_s=180)
    print(f"caught up {waited:.1f}s after the last produce, through 3 SIGKILLs")
    got, want = await env.dump(), await reference.dump()
    diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    if diff:
        import json

        k = diff[0]
        print("DIFF", len(diff), diff[:5])
        print(json.dumps(got[k])[:3000])
        print(json.dumps(want.get(k))[:3000])
    assert diff == []
    assert await env.digest() == expected
    return env


async def test_every_event_sent_twice_changes_nothing(make_env: EnvFactory) -> None:
    events = demo_events(seed=12)
    once = make_env()
    await _run_once(once, events)
    twice = make_env()
    await twice.create_topics()
    twice.start_worker()
    await twice.produce(events)
    await twice.produce(events)  # a client resending everything, as new records
    await twice.wait_applied()
    # Offsets differ (twice the records); every piece of state is identical.
    bookkeeping = ("off:", "dedup:")
    assert await twice.digest(skip=bookkeeping) == await once.digest(skip=bookkeeping)
    dump = await twice.dump()
    assert dump["dedup:{i0}"] == (await once.dump())["dedup:{i0}"]


async def test_malformed_events_go_to_the_dlq_and_good_ones_all_apply(
    make_env: EnvFactory,
) -> None:
    env = make_env()
    await env.create_topics()
    worker = env.start_worker()
    good = [e for e in demo_events(n_users=250, mean_events=80) if e.type == "play"][:10_000]
    assert len(good) == 10_000
    bad_kinds = [
        b"{not json",
        b'{"type": "scrobble", "event_id": "x"}',
        b'{"type": "play", "event_id": "x", "user_id": "u", "track_id": "t",'
        b' "occurred_at": "2024-01-01T00:00:00Z", "ms_played": -3, "duration_ms": 10}',
        b'{"type": "like", "schema_version": 7, "event_id": "x", "user_id": "u",'
        b' "track_id": "t", "occurred_at": "2024-01-01T00:00:00Z"}',
    ]
    for i in range(0, 10_000, 1_000):
        await env.produce(good[i : i + 1_000], chunk=1_000)
        for j in range(100):
            await env.produce_raw(INTERACTIONS, j % PARTITIONS, bad_kinds[j % len(bad_kinds)])
    await env.wait_applied()
    assert worker.alive()
    dump = await env.dump()
    users = {k: v for k, v in dump.items() if k.startswith("us:")}
    applied = sum(_stored_user(v).n for v in users.values())
    assert applied == 10_000
    committed = sum(int(n) for k, v in dump.items() if k.startswith("dlq:") for n in v.values())
    assert committed == 1_000
    letters = await read_dead_letters(env.broker.address, [INTERACTIONS])
    assert len(letters.entries) == 1_000
    assert letters.by_reason() == {
        "interactions/not_json": 250,
        "interactions/schema_violation": 250,
        "interactions/unknown_type": 250,
        "interactions/unsupported_version": 250,
    }
    assert all(e["error"] and e["original"] for e in letters.entries)


async def test_replay_from_earliest_rebuilds_the_live_state_then_cuts_over(
    make_env: EnvFactory,
) -> None:
    await _replay_and_cut_over(make_env)


async def test_replay_and_cutover_on_a_redis_cluster(make_cluster_env: EnvFactory) -> None:
    """Replay into generation 1 beside the live one, then cutover, across three masters."""
    await _replay_and_cut_over(make_cluster_env)


async def _replay_and_cut_over(make_env: EnvFactory) -> None:
    env = make_env()
    await _run_once(env, demo_events(seed=13))
    live = await env.digest(0)
    from models.settings import load_settings
    from streams.wiring import build_applier

    settings = load_settings()
    settings.kafka.partitions = PARTITIONS
    settings.redis.key_prefix = env.prefix
    store = env.store()
    applier = build_applier(settings, store, discard_dead_letters)
    report = await replay(applier, store, env.broker.address, cutover=False)
    assert report.events > 0
    print(
        f"replay: {report.events} events in {report.seconds:.2f}s "
        f"({report.events_per_s:.0f} events/s)"
    )
    assert await env.digest(1) == live

    report = await replay(applier, store, env.broker.address, cutover=True)
    assert (report.old_generation, report.new_generation) == (0, 1)  # rebuilt again, then used
    assert await store.get_int(f"{env.prefix}:gen", 0) == 1
    assert await env.dump(0) == {}
    assert await env.digest(1) == live
    # the live worker follows the pointer: new events land in the new generation
    user = "after-cutover"
    skip = Skip(
        event_id="late-1",
        occurred_at=datetime.now(UTC),
        user_id=user,
        track_id="x",
        ms_played=1_000,
    )
    await env.produce([skip])
    await env.wait_applied(generation=1)
    [raw] = await store.read([ops.get(Keys(env.prefix, 1, PARTITIONS).user(user))])
    assert decode_user(raw).n == 1
    await store.close()


async def test_a_skip_reaches_redis_quickly(make_env: EnvFactory) -> None:
    env = make_env()
    await _run_once(env, demo_events(n_users=20, mean_events=10))
    client = redis.Redis.from_url(env.redis_url)
    user = "latency-user"
    key = Keys("enc", 0, PARTITIONS).user(user)
    partition = partition_for(user, PARTITIONS)
    delays = []
    producer = AIOKafkaProducer(bootstrap_servers=env.broker.address, linger_ms=0)
    await producer.start()
    try:
        for i in range(40):
            skip = Skip(
                event_id=f"lat-{i}",
                occurred_at=datetime.now(UTC),
                user_id=user,
                track_id=f"t{i}",
                ms_played=2_000,
            )
            t0 = time.perf_counter()
            await producer.send(INTERACTIONS, encode_event(skip), partition=partition)
            while True:
                if decode_user(client.get(key)).n == i + 1:
                    break
                await asyncio.sleep(0.001)
            delays.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()
    delays.sort()
    print(
        f"produce -> Redis user state: p50 {delays[20]:.1f} ms, "
        f"p95 {delays[37]:.1f} ms, max {delays[-1]:.1f} ms"
    )
    assert len(delays) == 40


async def test_redis_restart_mid_stream_loses_nothing_and_applies_nothing_twice(
    make_env: EnvFactory, tmp_path: Path
) -> None:
    events = demo_events(seed=14)
    reference = make_env()
    await _run_once(reference, events)
    expected = await reference.digest()

    port = free_port()
    aof = start_redis(tmp_path / "aof", name="redis-aof", port=port, appendonly=True)
    env = make_env()
    env.redis_url = aof.address
    try:
        await env.create_topics()
        env.start_worker()
        third = len(events) // 3 // 400 * 400
        await env.produce(events[:third])
        await env.wait_applied()
        aof.stop()  # Redis goes away mid-stream ...
        await env.produce(events[third : 2 * third])
        await asyncio.sleep(8)  # longer than the client's own retries
        aof = start_redis(tmp_path / "aof", name="redis-aof", port=port, appendonly=True)
        await env.produce(events[2 * third :])  # ... and comes back with its AOF
        await env.wait_applied(limit_s=180)
        assert await env.digest() == expected
        assert "unavailable" in env.workers[0].log.read_text()
    finally:
        env.stop_workers()
        aof.stop()


async def test_replay_under_live_traffic_hands_over_exactly(make_env: EnvFactory) -> None:
    events = demo_events(seed=15, n_users=200)
    reference = make_env()
    await _run_once(reference, events)
    expected = await reference.digest()

    env = make_env()
    await env.create_topics()
    env.start_worker()
    half = len(events) // 2 // 400 * 400
    await env.produce(events[:half])
    await env.wait_applied()

    async def keep_producing() -> None:
        rest = events[half:]
        for i in range(0, len(rest), 400):
            await env.produce(rest[i : i + 400])
            await asyncio.sleep(0.25)  # traffic outlasts the replay

    from models.settings import load_settings
    from streams.wiring import build_applier

    settings = load_settings()
    settings.kafka.partitions = PARTITIONS
    store = env.store()
    traffic = asyncio.create_task(keep_producing())
    await asyncio.sleep(0.3)
    report = await replay(
        build_applier(settings, store, discard_dead_letters),
        store,
        env.broker.address,
        cutover=True,
    )
    await traffic
    await store.close()
    assert report.cut_over
    await env.wait_applied(generation=1, limit_s=120)
    assert await env.dump(0) == {}
    assert await env.digest(1) == expected
    handovers = env.workers[0].tail(2_000).count("seeking back")
    print(
        f"replay under traffic: {report.events} events replayed, worker sought back "
        f"{handovers} times to hand over"
    )


async def test_an_event_from_the_future_is_dead_lettered_and_later_ones_move_the_state(
    make_env: EnvFactory,
) -> None:
    """A play dated 9999-12-31 sent straight to the topic (not through the API) goes to
    the dead-letter topic as future_timestamp, live and in replay; the listener's later
    events still move the state, a play whose context names an unknown arm included
    (only its context is dropped)."""
    env = make_env()
    await env.create_topics()
    env.start_worker()
    user = "clock-victim"
    part = partition_for(user, PARTITIONS)
    now = datetime.now(UTC).replace(microsecond=0)
    future = {
        "type": "play",
        "event_id": "from-9999",
        "user_id": user,
        "track_id": "t0",
        "occurred_at": "9999-12-31T23:59:59Z",
        "ms_played": 200_000,
        "duration_ms": 200_000,
    }
    await env.produce_raw(INTERACTIONS, part, orjson.dumps(future))
    later = [
        Skip(
            event_id=f"after-{i}",
            occurred_at=now - timedelta(seconds=30 - i),
            user_id=user,
            track_id=f"t{i + 1}",
            ms_played=2_000,
        )
        for i in range(3)
    ]
    made_up = Play(
        event_id="made-up-arm",
        occurred_at=now - timedelta(seconds=40),
        user_id=user,
        track_id="t9",
        ms_played=1_000,
        completion=0.9,
        context=RecContext(rec_id="r1", arm="made-up"),
    )
    for event in [made_up, *later]:  # one record each, as an app sends them
        await env.produce([event])
    await env.wait_applied()
    letters = await read_dead_letters(env.broker.address, [INTERACTIONS])
    assert letters.by_reason() == {"interactions/future_timestamp": 1}
    assert "occurred_at" in letters.entries[0]["error"]
    dump = await env.dump()
    state = _stored_user(dump[f"us:{{i{part}}}:{user}"])
    assert state.n == 4
    s = state.session
    assert (s["plays"], s["skips"], s["streak"]) == (1, 3, 3)
    assert state.last_ms == int(later[-1].occurred_at.timestamp() * 1000)
    assert dump[f"dlq:{{i{part}}}"] == {"future_timestamp": "1"}
    assert f"bandit:{{i{part}}}" not in dump  # nothing credited to a made-up arm

    from models.settings import load_settings
    from streams.wiring import build_applier

    settings = load_settings()
    settings.kafka.partitions = PARTITIONS
    store = env.store()
    report = await replay(
        build_applier(settings, store, discard_dead_letters),
        store,
        env.broker.address,
        cutover=False,
    )
    await store.close()
    assert report.rejected == 1  # the replay refuses it again, by the record's broker time
    assert await env.digest(1) == await env.digest(0)
