"""The applier on the in-memory store: offsets, dedup, dead letters, routing, gaps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson

from models import ops
from models.apply import TrendConfig
from models.codec import Reason, Rejected, encode_batch, encode_event
from models.events import Play, RecContext, Skip
from models.io.memory_store import MemoryStore
from models.io.store import digest_of
from models.keys import Keys
from models.records import decode_user
from models.state import FoldConfig, UserState
from models.topics import INTERACTIONS, partition_for
from streams.applier import Applier, Record
from tests.samples import T0

P = 6


class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[str, int, int, Rejected]] = []

    async def __call__(
        self, topic: str, partition: int, rejected: Sequence[tuple[int, Rejected]]
    ) -> None:
        self.got += [(topic, partition, off, r) for off, r in rejected]


def _applier(store: MemoryStore, sink: Sink, **extra: Any) -> Applier:
    return Applier(
        store,
        prefix="enc",
        partitions=P,
        fold=FoldConfig(),
        trend=TrendConfig(),
        dedup_window=1_000,
        max_record_bytes=100_000,
        dead_letters=sink,
        **extra,
    )


def _users_on(partition: int, n: int) -> list[str]:
    out, i = [], 0
    while len(out) < n:
        if partition_for(f"user{i}", P) == partition:
            out.append(f"user{i}")
        i += 1
    return out


def _play(eid: str, user: str, minutes: int = 0, arm: str | None = None) -> Any:
    ctx = RecContext(rec_id="r1", arm=arm) if arm else None
    return Play(
        event_id=eid,
        occurred_at=T0 + timedelta(minutes=minutes),
        user_id=user,
        track_id="t1",
        ms_played=100,
        completion=1.0,
        context=ctx,
    )


async def _user(store: MemoryStore, user: str) -> UserState:
    [raw] = await store.read([ops.get(Keys("enc", 0, P).user(user))])
    return decode_user(raw)


async def test_applies_counts_offsets_and_skips_what_is_at_or_below_them() -> None:
    store, sink = MemoryStore(clock=lambda: 0), Sink()
    a = _applier(store, sink)
    [u1, u2] = _users_on(2, 2)
    records = [
        Record(0, encode_event(_play("e1", u1))),
        Record(1, encode_batch([_play("e2", u2, 1), _play("e3", u1, 2, arm="balanced")])),
    ]
    r = await a.apply(INTERACTIONS, 2, records)
    assert (r.applied, r.offset, r.duplicates, r.rejected) == (3, 1, 0, 0)
    assert (await _user(store, u1)).n == 2
    again = await a.apply(INTERACTIONS, 2, records)  # redelivery after a crash
    assert (again.applied, again.stale_records) == (0, 2)
    assert (await _user(store, u1)).n == 2
    bandit = store.data[Keys("enc", 0, P).bandit(2)]
    assert bandit == {b"balanced:a": b"1000000", b"balanced:b": b"0"}


async def test_resent_event_ids_are_dropped_by_the_window() -> None:
    store, sink = MemoryStore(), Sink()
    a = _applier(store, sink)
    [u] = _users_on(0, 1)
    await a.apply(INTERACTIONS, 0, [Record(0, encode_event(_play("same", u)))])
    r = await a.apply(
        INTERACTIONS,
        0,
        [Record(1, encode_event(_play("same", u))), Record(2, encode_event(_play("same", u)))],
    )
    assert (r.applied, r.duplicates, r.offset) == (0, 2, 2)
    assert (await _user(store, u)).n == 1


async def test_bad_records_go_to_the_dead_letter_sink_and_good_ones_apply() -> None:
    store, sink = MemoryStore(), Sink()
    a = _applier(store, sink)
    [u] = _users_on(1, 1)
    [other] = _users_on(4, 1)
    good = orjson.loads(encode_event(_play("g1", u)))
    records = [
        Record(0, b"not json"),
        Record(1, encode_batch([good, {**good, "event_id": "bad", "ms_played": -1}])),
        Record(2, encode_event(_play("misrouted", other))),
        Record(3, encode_event(_play("arm", u, arm="no-such-arm"))),
        Record(4, b"x" * 200_000),
    ]
    r = await a.apply(INTERACTIONS, 1, records)
    assert (r.applied, r.rejected, r.dropped_contexts, r.offset) == (2, 4, 1, 4)
    reasons = [(off, rej.reason) for _, _, off, rej in sink.got]
    assert reasons == [
        (0, Reason.NOT_JSON),
        (1, Reason.SCHEMA_VIOLATION),
        (2, Reason.WRONG_PARTITION),
        (4, Reason.OVERSIZE),
    ]
    counts = store.data[Keys("enc", 0, P).dlq_counts(INTERACTIONS, 1)]
    assert counts[b"schema_violation"] == b"1"
    assert sum(int(v) for v in counts.values()) == 4
    # The play naming an unknown arm counts; only its recommendation context is dropped.
    state = await _user(store, u)
    assert state.n == 2
    assert [h[0] for h in state.hist] == ["t1", "t1"]
    assert Keys("enc", 0, P).bandit(1) not in store.data  # no reward for a made-up arm


def _ms(minutes: float) -> int:
    return int((T0 + timedelta(minutes=minutes)).timestamp() * 1000)


async def test_an_event_from_the_future_is_dead_lettered_and_later_ones_still_count() -> None:
    store, sink = MemoryStore(), Sink()
    now = [_ms(10) / 1000]  # the worker's clock: T0 + 10 minutes
    a = _applier(store, sink, max_skew_ms=300_000, clock=lambda: now[0])
    [u] = _users_on(2, 1)
    far = _play("far", u).model_copy(update={"occurred_at": T0.replace(year=9999)})
    ahead = _play("ahead", u, 14)  # sent at T0 + 10 min: 4 min ahead, inside the skew
    late = _play("late", u, 16)  # sent at T0 + 10 min: 6 min ahead
    first = [
        Record(0, encode_event(_play("before", u, 9)), timestamp_ms=_ms(9)),
        Record(1, encode_event(far), timestamp_ms=_ms(10)),
        Record(2, encode_batch([ahead, late]), timestamp_ms=_ms(10)),
    ]
    r = await a.apply(INTERACTIONS, 2, first)
    assert (r.applied, r.rejected) == (2, 2)
    got = [(off, rej.reason, orjson.loads(rej.raw)["event_id"]) for _, _, off, rej in sink.got]
    assert got == [(1, Reason.FUTURE_TIMESTAMP, "far"), (2, Reason.FUTURE_TIMESTAMP, "late")]
    assert "occurred_at" in sink.got[0][3].error
    counts = store.data[Keys("enc", 0, P).dlq_counts(INTERACTIONS, 2)]
    assert counts == {b"future_timestamp": b"2"}

    now[0] = _ms(12) / 1000  # later events, from a correct clock, still move the state
    for i, minutes in enumerate([11, 12]):
        skip = Skip(
            event_id=f"s{i}",
            occurred_at=T0 + timedelta(minutes=minutes),
            user_id=u,
            track_id="t2",
            ms_played=10,
        )
        await a.apply(INTERACTIONS, 2, [Record(3 + i, encode_event(skip), timestamp_ms=_ms(12))])
    state = await _user(store, u)
    assert state.n == 4
    assert (state.session["skips"], state.session["streak"]) == (2, 2)
    assert state.last_ms == _ms(14)

    # A replay a year later decides by the records' broker times: the same dead letters.
    replayed, again = MemoryStore(), Sink()
    b = _applier(replayed, again, clock=lambda: _ms(60 * 24 * 365) / 1000)
    await b.apply(INTERACTIONS, 2, first)
    assert [(off, rej) for _, _, off, rej in again.got] == [
        (off, rej) for _, _, off, rej in sink.got
    ]


async def test_a_batch_that_starts_past_the_applied_offset_asks_for_a_seek() -> None:
    store, sink = MemoryStore(), Sink()
    a = _applier(store, sink)
    [u] = _users_on(3, 1)
    await a.apply(INTERACTIONS, 3, [Record(0, encode_event(_play("e0", u)))])
    r = await a.apply(INTERACTIONS, 3, [Record(5, encode_event(_play("e5", u)))])
    assert r.seek_to == 1
    assert r.applied == 0


async def test_same_events_give_the_same_state_digest_in_any_batching() -> None:
    users = _users_on(5, 3)
    events = [_play(f"e{i}", users[i % 3], i) for i in range(30)]
    events += [
        Skip(
            event_id=f"s{i}",
            occurred_at=T0 + timedelta(minutes=i),
            user_id=users[0],
            track_id="t2",
            ms_played=10,
        )
        for i in range(5)
    ]
    records = [Record(i, encode_event(e)) for i, e in enumerate(events)]
    digests = []
    for size in (1, 7, 100):
        store = MemoryStore(clock=lambda: 0)
        a = _applier(store, Sink())
        for i in range(0, len(records), size):
            await a.apply(INTERACTIONS, 5, records[i : i + size])
        digests.append(digest_of(await store.dump("enc:g0:")))
    assert len(set(digests)) == 1


def test_worker_cuts_a_fetched_batch_into_pieces_by_bytes() -> None:
    from streams.worker import pieces

    records = [Record(i, b"x" * size) for i, size in enumerate([400, 400, 300, 900, 0, 50, 2_000])]
    cut = pieces(records, 1_000)
    assert [[r.offset for r in p] for p in cut] == [[0, 1], [2], [3, 4, 5], [6]]
    assert [r for p in cut for r in p] == records  # nothing lost, order kept
    assert pieces([Record(0, None)], 10) == [[Record(0, None)]]
    assert pieces([], 10) == []
