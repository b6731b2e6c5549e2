"""One contract suite for every state store: the in-memory twin, a real redis-server and
a real three-master Redis Cluster (keys of one partition share a hash tag; the
other keys of a test land on other nodes, so reads, dumps and deletes cross nodes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.crc import key_slot

from encore.services import CLUSTER_SLOTS, LocalRedisCluster, Proc
from models import ops
from models.io.memory_store import MemoryStore
from models.io.redis_store import RedisStore, connect
from models.io.store import StateStore, digest_of

OFF = "enc:g0:off:{i1}"
USER = "enc:g0:u:{i1}:alice"
STATE = "enc:g0:us:{i1}:alice"
TREND = "enc:g0:trend:{i1}:7"
DEDUP = "enc:g0:dedup:{i1}"
BANDIT = "enc:g0:bandit:{i1}"


@pytest.fixture(params=["memory", "redis", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "cluster":
        nodes: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        client = connect(nodes.address, cluster=True)
        await client.flushdb(target_nodes=client.PRIMARIES)
    else:
        server: Proc = request.getfixturevalue("redis_server")
        client = connect(server.address)
        await client.flushdb()
    s = RedisStore(client)
    yield s
    await s.close()


async def test_commit_applies_writes_and_offset_together(store: StateStore) -> None:
    assert await store.get_int(OFF, -1) == -1
    applied = await store.commit(
        OFF,
        -1,
        9,
        [
            ops.hset(USER, {"vec": b"\x00\x01\xff", "doc": '{"n": 1}'}),
            ops.zincrby(TREND, "t1", 2),
            ops.zincrby(TREND, "t1", 1.5),
            ops.hincrbyfloat(BANDIT, "arm:a", 0.25),
            ops.hincrby(USER, "n", 3),
            ops.set_(STATE, b"\x01\x00\xff"),
            ops.set_(STATE, b"\x01\x00\xfe"),
        ],
    )
    assert applied
    assert await store.get_int(OFF, -1) == 9
    user, trend, bandit, state = await store.read(
        [
            ops.hgetall(USER),
            ops.zrevrange(TREND, 0, -1),
            ops.hmget(BANDIT, "arm:a", "arm:b"),
            ops.get(STATE),
        ]
    )
    assert state == b"\x01\x00\xfe"
    assert user == {b"vec": b"\x00\x01\xff", b"doc": b'{"n": 1}', b"n": b"3"}
    assert trend == [(b"t1", 3.5)]
    assert bandit == [b"0.25", None]


async def test_commit_refuses_a_stale_expected_offset_and_writes_nothing(
    store: StateStore,
) -> None:
    assert await store.commit(OFF, -1, 5, [ops.hset(USER, {"a": "1"})])
    assert not await store.commit(OFF, -1, 6, [ops.hset(USER, {"a": "2"})])
    assert not await store.commit(OFF, 4, 6, [ops.hset(USER, {"a": "3"})])
    assert await store.get_int(OFF, -1) == 5
    [user] = await store.read([ops.hgetall(USER)])
    assert user == {b"a": b"1"}
    assert await store.commit(OFF, 5, 6, [ops.hset(USER, {"a": "4"})])
    [user] = await store.read([ops.hgetall(USER)])
    assert user == {b"a": b"4"}


async def test_sorted_sets_rank_trim_and_score_lookup(store: StateStore) -> None:
    await store.commit(
        OFF,
        -1,
        1,
        [
            ops.zadd(DEDUP, {"e1": 1, "e2": 2, "e3": 3, "e4": 4}),
            ops.ztrim_keep_top(DEDUP, 2),
        ],
    )
    scores, top, card = await store.read(
        [ops.zmscore(DEDUP, "e1", "e3", "e4"), ops.zrevrange(DEDUP, 0, 0), ops.zcard(DEDUP)]
    )
    assert scores == [None, 3.0, 4.0]
    assert top == [(b"e4", 4.0)]
    assert card == 2


async def test_large_writes_are_applied_whole(store: StateStore) -> None:
    many = {f"e{i}": float(i) for i in range(9_000)}
    assert await store.commit(OFF, -1, 1, [ops.zadd(DEDUP, many), ops.ztrim_keep_top(DEDUP, 8_500)])
    [card, low] = await store.read([ops.zcard(DEDUP), ops.zmscore(DEDUP, "e0", "e499", "e500")])
    assert card == 8_500
    assert low == [None, None, 500.0]


async def test_counters_add_keep_their_expiry_and_read_together(store: StateStore) -> None:
    plays = ["enc:g0:trendn:{i1}:7", "enc:g0:trendn:{i1}:8", "enc:g0:trendn:{i1}:9"]
    far = 4_102_444_800_000
    await store.commit(OFF, -1, 1, [ops.incrby(plays[0], 2), ops.pexpireat(plays[0], far)])
    await store.commit(OFF, 1, 2, [ops.incrby(plays[0], 3), ops.incrby(plays[2], 1)])
    await store.commit(OFF, 2, 3, [ops.incrby(plays[2], 1), ops.pexpireat(plays[2], 1_000)])
    [got] = await store.read([ops.mget(*plays)])
    assert got == [b"5", None, None]  # the third expired: its time had passed


async def test_missing_keys_read_as_empty(store: StateStore) -> None:
    got = await store.read(
        [
            ops.get("nope"),
            ops.hgetall("nope"),
            ops.hmget("nope", "x"),
            ops.zmscore("nope", "m"),
            ops.zrevrange("nope", 0, -1),
            ops.zcard("nope"),
        ]
    )
    assert got == [None, {}, [None], [None], [], 0]


async def test_expired_keys_disappear(store: StateStore) -> None:
    await store.commit(OFF, -1, 1, [ops.zincrby(TREND, "t", 1), ops.pexpireat(TREND, 1_000)])
    [trend] = await store.read([ops.zrevrange(TREND, 0, -1)])
    assert trend == []


async def test_delete_and_dump_by_prefix(store: StateStore) -> None:
    writes: list[Any] = [ops.hset(USER, {"a": "1"}), ops.zincrby(TREND, "t", 2)]
    await store.commit(OFF, -1, 3, writes)
    await store.commit(
        "enc:g1:off:{i1}",
        -1,
        3,
        [ops.hset("enc:g1:u:{i1}:alice", {"a": "1"}), ops.zincrby("enc:g1:trend:{i1}:7", "t", 2)],
    )
    g0, g1 = await store.dump("enc:g0:"), await store.dump("enc:g1:")
    assert g0 == g1
    assert g0 == {"off:{i1}": "3", "u:{i1}:alice": {"a": "1"}, "trend:{i1}:7": [["t", 2.0]]}
    assert digest_of(g0) == digest_of(g1)
    await store.commit(OFF, 3, 4, [ops.hset(USER, {"a": "2"})])
    assert digest_of(await store.dump("enc:g0:")) != digest_of(g1)
    assert await store.delete_prefix("enc:g0:") == 3
    assert await store.dump("enc:g0:") == {}
    assert await store.dump("enc:g1:") == g1


async def test_partitions_on_different_nodes_read_dump_and_delete_together(
    store: StateStore,
) -> None:
    tags = [f"{{i{p}}}" for p in range(8)]
    # On the three-master cluster these tags fall on every node, not one.
    assert len({key_slot(t.encode()) * 3 // CLUSTER_SLOTS for t in tags}) == 3
    for n, tag in enumerate(tags):
        user = f"enc:g0:u:{tag}:u{n}"
        assert await store.commit(f"enc:g0:off:{tag}", -1, n, [ops.hset(user, {"n": str(n)})])
    got = await store.read([ops.hgetall(f"enc:g0:u:{t}:u{n}") for n, t in enumerate(tags)])
    assert got == [{b"n": str(n).encode()} for n in range(8)]
    dump = await store.dump("enc:g0:")
    assert len(dump) == 16
    assert dump["u:{i5}:u5"] == {"n": "5"}
    assert await store.delete_prefix("enc:g0:") == 16
    assert await store.dump("enc:g0:") == {}


async def test_store_answers_ping(store: StateStore) -> None:
    assert await store.ping()
