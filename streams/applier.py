"""Apply one partition's batch of records to Redis, exactly once in effect.

For each batch: read the partition's applied offset, drop records at or below
it, decode (bad parts, and events dated more than the allowed clock skew after
their record's broker time, go to the dead-letter topic; a context naming an
unknown bandit arm is dropped from its event, which still applies), drop event
ids already in the dedup window, read the state the events touch, plan the
writes with the pure functions of :mod:`models.apply`, and commit them in one
atomic step with the new offset (compare-and-set on the old one). The live Faust agents and the
replay both call :meth:`Applier.apply`.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from models import ops
from models.apply import (
    ContentVectors,
    TrendConfig,
    dedup_writes,
    dlq_count_writes,
    plan_interactions,
    plan_links,
    plan_tracks,
)
from models.codec import Reason, Rejected, not_after_ms
from models.events import event_to_dict
from models.fastcodec import as_model, decode_record
from models.io.store import StateStore
from models.keys import Keys
from models.records import decode_link, decode_updated_ms, decode_user
from models.state import FoldConfig, ItemInfo, UserState
from models.topics import INTERACTIONS, LINK_HEALTH, TOPIC_OF_TYPE, TRACKS, partition_for
from streams import metrics

log = logging.getLogger(__name__)

DeadLetterSink = Callable[[str, int, Sequence[tuple[int, Rejected]]], Awaitable[None]]
ContentFn = Callable[[Sequence[Any]], Awaitable[dict[str, ContentVectors]]]


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record: its offset and value bytes (``skip``: advance past it unapplied).

    ``timestamp_ms`` is the record's broker time (when it was sent); events may be
    dated at most the allowed clock skew after it."""

    offset: int
    value: bytes | None
    skip: bool = False
    timestamp_ms: int | None = None


@dataclass
class ApplyResult:
    """What one call to :meth:`Applier.apply` did."""

    applied: int = 0
    duplicates: int = 0
    stale_records: int = 0
    rejected: int = 0
    dropped_contexts: int = 0
    seek_to: int | None = None
    offset: int = -1
    by_type: dict[str, int] = field(default_factory=dict)


class ItemLookup:
    """Item vectors for the fold: the published item space only (never the catalog
    topic, so the fold does not depend on timing between topics)."""

    def __init__(self, space: Any = None) -> None:
        self.space = space  # streams.itemspace.ItemSpace or None

    @property
    def model(self) -> str:
        """Version of the item space the fold writes vectors in ('' when none)."""
        return "" if self.space is None else str(self.space.version)

    def lookup(self, tracks: Sequence[str]) -> dict[str, ItemInfo]:
        """Unit vector per track the item space knows."""
        if self.space is None:
            return {}
        out = {}
        for t in tracks:
            vec = self.space.vector(t)
            if vec is not None:
                out[t] = ItemInfo(vector=vec)
        return out


@dataclass
class _UserCache:
    """User states as of one applied offset of one partition (valid while it matches)."""

    generation: int
    offset: int
    users: OrderedDict[str, UserState] = field(default_factory=OrderedDict)
    complete: bool = False  # seen every write of the partition: a user not here is new
    evicted: set[str] = field(default_factory=set)


class Applier:
    """Applies batches of one topic-partition; safe to call from several workers.

    User states of recent batches are kept in memory per partition and reused only
    while the partition's applied offset in Redis is still the one this applier
    committed, so a write by anyone else is never shadowed.
    """

    def __init__(
        self,
        store: StateStore,
        *,
        prefix: str,
        partitions: int,
        fold: FoldConfig,
        trend: TrendConfig,
        dedup_window: int,
        max_record_bytes: int,
        dead_letters: DeadLetterSink,
        items: ItemLookup | None = None,
        content: ContentFn | None = None,
        cache_users: int = 20_000,
        max_skew_ms: int = 300_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.partitions = partitions
        self.fold = fold
        self.trend = trend
        self.dedup_window = dedup_window
        self.max_record_bytes = max_record_bytes
        self.dead_letters = dead_letters
        self.items = items or ItemLookup()
        self.content = content
        self.generation: int | None = None
        self.cache_users = cache_users
        self.max_skew_ms = max_skew_ms
        self.clock = clock
        self._cache: dict[tuple[str, int], _UserCache] = {}

    async def keys(self) -> Keys:
        """Key layout of the active generation (re-read on every batch)."""
        gen = await self.store.get_int(f"{self.prefix}:gen", 0)
        self.generation = gen
        return Keys(self.prefix, gen, self.partitions)

    async def apply(
        self, topic: str, partition: int, records: Sequence[Record], keys: Keys | None = None
    ) -> ApplyResult:
        """Apply records (ascending offsets) of one partition; retries lost CAS races."""
        while True:
            k = keys or await self.keys()
            result = await self._attempt(k, topic, partition, records)
            if result is not None:
                return result
            metrics.CAS_RETRIES.labels(topic).inc()

    async def _attempt(
        self, keys: Keys, topic: str, partition: int, records: Sequence[Record]
    ) -> ApplyResult | None:
        started = time.perf_counter()
        off_key = keys.offset(topic, partition)
        applied = await self.store.get_int(off_key, -1)
        result = ApplyResult(offset=applied)
        fresh = [r for r in records if r.offset > applied]
        result.stale_records = len(records) - len(fresh)
        if not fresh:
            return result
        if applied >= 0 and fresh[0].offset > applied + 1:
            result.seek_to = applied + 1  # a gap: these records come after unapplied ones
            return result

        events: list[tuple[int, Any]] = []
        rejected: list[tuple[int, Rejected]] = []
        dropped_contexts = 0
        now_ms = int(self.clock() * 1000)
        for r in fresh:
            if r.skip:
                continue
            decoded = decode_record(
                r.value,
                max_bytes=self.max_record_bytes,
                not_after_ms=not_after_ms(r.timestamp_ms, now_ms, self.max_skew_ms),
            )
            rejected += [(r.offset, x) for x in decoded.rejected]
            dropped_contexts += decoded.dropped_contexts
            for e in decoded.events:
                problem = self._misrouted(e, topic, partition)
                if problem:
                    rejected.append((r.offset, problem))
                else:
                    events.append((r.offset, e))

        ids = list(dict.fromkeys(e.event_id for _, e in events))
        seen: set[str] = set()
        if ids and self.dedup_window > 0:
            [scores] = await self.store.read([ops.zmscore(keys.dedup(topic, partition), *ids)])
            seen = {i for i, s in zip(ids, scores, strict=True) if s is not None}
        accepted: list[tuple[int, Any]] = []
        for off, e in events:
            if e.event_id in seen:
                result.duplicates += 1
                continue
            seen.add(e.event_id)
            accepted.append((off, e))

        batch = [e for _, e in accepted]
        cache = self._cache.pop((topic, partition), None)
        if cache is None or cache.offset != applied or cache.generation != keys.generation:
            cache = _UserCache(keys.generation, applied, complete=applied == -1)
        writes = await self._plan(keys, topic, partition, batch, cache)
        writes += dedup_writes(
            keys, topic, partition, [(e.event_id, off) for off, e in accepted], self.dedup_window
        )
        writes += dlq_count_writes(keys, topic, partition, (r.reason.value for _, r in rejected))
        if rejected:
            await self.dead_letters(topic, partition, rejected)  # before the commit: never lost
        new_offset = fresh[-1].offset
        if not await self.store.commit(off_key, applied, new_offset, writes):
            return None
        if topic == INTERACTIONS and self.cache_users > 0:
            cache.offset = new_offset
            while len(cache.users) > self.cache_users:
                gone, _ = cache.users.popitem(last=False)
                if cache.complete:
                    cache.evicted.add(gone)
            if len(cache.evicted) > 50 * self.cache_users:
                cache.complete, cache.evicted = False, set()
            self._cache[(topic, partition)] = cache
        result.applied = len(accepted)
        result.rejected = len(rejected)
        result.dropped_contexts = dropped_contexts
        result.offset = new_offset
        for e in batch:
            result.by_type[e.type] = result.by_type.get(e.type, 0) + 1
        metrics.observe_batch(topic, partition, result, time.perf_counter() - started)
        return result

    def _misrouted(self, event: Any, topic: str, partition: int) -> Rejected | None:
        """Why an event may not be applied here (wrong topic or partition), or None."""
        kind = event.type
        if TOPIC_OF_TYPE[kind] != topic:
            return _reject(
                Reason.WRONG_TOPIC,
                event,
                f"type: a {kind} event belongs on {TOPIC_OF_TYPE[kind]}, not {topic}",
            )
        key = event.user_id if topic == INTERACTIONS else event.track_id
        want = partition_for(key, self.partitions)
        if want != partition:
            return _reject(
                Reason.WRONG_PARTITION,
                event,
                f"key {key!r} belongs on partition {want}, not {partition}",
            )
        return None

    async def _plan(
        self, keys: Keys, topic: str, partition: int, batch: list[Any], cache: _UserCache
    ) -> list[Any]:
        if not batch:
            return []
        if topic == INTERACTIONS:
            users = list(dict.fromkeys(e.user_id for e in batch))
            tracks = list(dict.fromkeys(e.track_id for e in batch))
            missing = [
                u
                for u in users
                if u not in cache.users and (not cache.complete or u in cache.evicted)
            ]
            rows = await self.store.read([ops.get(keys.user(u)) for u in missing])
            for u in users:
                if u not in cache.users:
                    cache.users[u] = UserState()  # new: nothing of it is stored yet
            items = self.items.lookup(tracks)
            for u, f in zip(missing, rows, strict=True):
                cache.users[u] = decode_user(f)
            for u in users:
                cache.users.move_to_end(u)
            states = {u: cache.users[u] for u in users}
            return plan_interactions(
                keys, partition, batch, states, items, self.fold, self.trend, self.items.model
            )
        batch = [as_model(e) for e in batch]  # few events: the folds below take the models
        if topic == LINK_HEALTH:
            tracks = list(dict.fromkeys(e.track_id for e in batch))
            rows = await self.store.read([ops.hgetall(keys.link(t)) for t in tracks])
            links = {t: decode_link(f) for t, f in zip(tracks, rows, strict=True)}
            return plan_links(keys, batch, links)
        if topic == TRACKS:
            tracks = list(dict.fromkeys(e.track_id for e in batch))
            rows = await self.store.read([ops.hmget(keys.track(t), "updated_ms") for t in tracks])
            stored = {t: decode_updated_ms(r[0]) for t, r in zip(tracks, rows, strict=True)}
            known = {t: ms for t, ms in stored.items() if ms is not None}
            todo = [e for e in batch if e.occurred_ms >= known.get(e.track_id, -1)]
            content = await self.content(todo) if self.content and todo else {}
            return plan_tracks(keys, partition, batch, known, content)
        raise ValueError(f"unknown topic {topic}")


def _reject(reason: Reason, event: Any, error: str) -> Rejected:
    return Rejected(reason, error, orjson.dumps(event_to_dict(as_model(event))))
