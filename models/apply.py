"""Turn a batch of one partition's events into state writes (pure).

The stream workers and the replay use exactly these functions: read the
current state, call a ``plan_*`` function, commit the writes atomically with the
partition's offset. Dedup, trending, bandit and dead-letter counts live under
the partition's hash tag, so one commit touches one Redis Cluster slot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models import ops
from models.bandit import REWARD_SCALE, reward
from models.events import NewTrack
from models.keys import Keys
from models.linkhealth import LinkHealth, next_link_health
from models.ops import Write
from models.records import encode_link, encode_track, encode_user, link_status_value
from models.state import (
    FoldConfig,
    ItemInfo,
    UserState,
    apply_bookkeeping,
    event_weight,
    fold_batch,
)


@dataclass(frozen=True, slots=True)
class TrendConfig:
    """Trending buckets: width and how long buckets are kept (seconds)."""

    bucket_s: int = 300
    window_s: int = 86_400


def dedup_writes(
    keys: Keys, topic: str, partition: int, accepted: Sequence[tuple[str, int]], window: int
) -> list[Write]:
    """Remember applied event ids (score: record offset), keeping the newest ``window``."""
    if not accepted or window <= 0:
        return []
    key = keys.dedup(topic, partition)
    return [
        ops.zadd(key, {eid: float(off) for eid, off in accepted}),
        ops.ztrim_keep_top(key, window),
    ]


def dlq_count_writes(keys: Keys, topic: str, partition: int, reasons: Iterable[str]) -> list[Write]:
    """Count dead letters per reason, atomically with the offset."""
    key = keys.dlq_counts(topic, partition)
    return [ops.hincrby(key, reason, n) for reason, n in sorted(Counter(reasons).items())]


def plan_interactions(
    keys: Keys,
    partition: int,
    events: Sequence[Any],
    users: dict[str, UserState],
    items: dict[str, ItemInfo],
    fold: FoldConfig,
    trend: TrendConfig,
    model: str,
) -> list[Write]:
    """Fold interactions into user states (mutated in place) and return every write.

    Vectors are folded for all users at once (:func:`models.state.fold_batch`, bit
    for bit what :func:`models.state.apply_interaction` does event by event), so the
    result does not depend on how events were batched. Counts that are summed
    (trending, bandit rewards) are integers, so their sums do not either.
    """
    by_user: dict[str, list[Any]] = {}
    for e in events:
        seq = by_user.get(e.user_id)
        if seq is None:
            by_user[e.user_id] = [e]
        else:
            seq.append(e)
    trending: Counter[tuple[int, str]] = Counter()
    rewards: dict[str, list[int]] = {}
    touched: dict[str, UserState] = {}
    folded: list[UserState] = []
    steps: list[list[tuple[np.ndarray, float, int]]] = []
    bucket_ms = trend.bucket_s * 1000
    for user, seq in by_user.items():  # each user's events in their order
        state = users.get(user)
        if state is None:
            state = users[user] = UserState()
        touched[user] = state
        if model and state.model != model:
            state.vec, state.vec_t, state.model = None, 0, model
        mine: list[tuple[np.ndarray, float, int]] = []
        for e in seq:
            t = e.occurred_ms
            w = event_weight(e, fold)
            if model:
                item = items.get(e.track_id)
                if item is not None and item.vector is not None:
                    mine.append((item.vector, w, t))
            apply_bookkeeping(state, e, t, w, fold)
            if e.type == "play":
                trending[(t // bucket_ms * trend.bucket_s, e.track_id)] += 1
            if e.context is not None:
                r = reward(e.type, getattr(e, "completion_ratio", None), fold.full_play)
                if r is not None:
                    ab = rewards.setdefault(e.context.arm, [0, 0])
                    micro = round(r * REWARD_SCALE)
                    ab[0] += micro
                    ab[1] += REWARD_SCALE - micro
        if mine:
            folded.append(state)
            steps.append(mine)
    if steps:
        fold_batch(folded, steps, fold.half_life_s)
    writes = [ops.set_(keys.user(u), encode_user(s)) for u, s in touched.items()]
    buckets: dict[int, list[tuple[str, int]]] = {}
    for (bucket, track), n in sorted(trending.items()):
        buckets.setdefault(bucket, []).append((track, n))
    for bucket, counts in buckets.items():
        key, plays = keys.trending(partition, bucket), keys.trending_plays(partition, bucket)
        until = (bucket + trend.bucket_s + trend.window_s) * 1000
        writes += [ops.zincrby(key, track, n) for track, n in counts]
        writes += [ops.pexpireat(key, until), ops.incrby(plays, sum(n for _t, n in counts))]
        writes.append(ops.pexpireat(plays, until))
    bandit = keys.bandit(partition)
    for arm, (a, b) in sorted(rewards.items()):
        writes += [ops.hincrby(bandit, f"{arm}:a", a), ops.hincrby(bandit, f"{arm}:b", b)]
    return writes


def plan_links(
    keys: Keys, events: Sequence[Any], states: dict[str, LinkHealth], dead_after: int = 3
) -> list[Write]:
    """Advance each track's link-health state machine (``states`` updated in place)."""
    touched: dict[str, LinkHealth] = {}
    for e in events:
        state = next_link_health(states.get(e.track_id, LinkHealth()), e, dead_after=dead_after)
        states[e.track_id] = touched[e.track_id] = state
    writes = [ops.hset(keys.link(t), encode_link(s)) for t, s in touched.items()]
    status: dict[int, dict[str, Any]] = {}
    for t, s in touched.items():
        status.setdefault(keys.track_partition(t), {})[t] = link_status_value(s)
    writes += [ops.hset(keys.link_status(p), m) for p, m in sorted(status.items())]
    return writes


@dataclass(frozen=True, slots=True)
class ContentVectors:
    """Content of a new track computed before the write (all optional)."""

    text: np.ndarray | None = None
    collab: np.ndarray | None = None
    valence: float | None = None
    arousal: float | None = None
    audio: np.ndarray | None = None
    model: str = ""


def track_doc(event: NewTrack) -> dict[str, Any]:
    """The metadata kept for a track."""
    return event.model_dump(
        mode="json",
        exclude={"event_id", "schema_version", "type", "occurred_at"},
        exclude_none=True,
    )


def plan_tracks(
    keys: Keys,
    partition: int,
    events: Sequence[NewTrack],
    known: dict[str, int],
    content: dict[str, ContentVectors],
) -> list[Write]:
    """Store catalog metadata and content vectors; register first arrivals as fresh.

    ``known`` maps a track to the event time of its stored metadata (updated in
    place); an older event for a known track changes nothing.
    """
    writes: list[Write] = []
    fresh: dict[str, float] = {}
    for e in events:
        t = e.occurred_ms
        if e.track_id in known and t < known[e.track_id]:
            continue
        if e.track_id not in known:
            fresh[e.track_id] = float(t)
        known[e.track_id] = t
        c = content.get(e.track_id, ContentVectors())
        fields = encode_track(
            track_doc(e),
            t,
            model=c.model,
            text=c.text,
            cf=c.collab,
            audio=c.audio,
            valence=c.valence,
            arousal=c.arousal,
        )
        writes.append(ops.hset(keys.track(e.track_id), fields))
    if fresh:
        writes.append(ops.zadd(keys.fresh(partition), fresh))
    return writes
