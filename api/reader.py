"""Reads of the stream state, for requests: one round trip per step, all bounded in time."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from models import ops
from models.io.store import StateStore
from models.keys import Keys, generation_key, lag_key
from models.records import TRACK_FIELDS, decode_lag, decode_link_status, decode_track, decode_user
from models.serving import CatalogTrack as CatalogTrack  # re-exported for the routes
from models.state import UserState
from models.trending import TrendingWindow, window

log = logging.getLogger(__name__)

READ_CHUNK = 64
"""Buckets re-read per round trip when many changed (on start: every bucket once)."""


class Reader:
    """State reads used by the API."""

    def __init__(
        self,
        store: StateStore,
        prefix: str,
        partitions: int,
        *,
        trending_bucket_s: int,
        trending_window_s: int,
        shared_max_age_s: float = 1.0,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.partitions = partitions
        self.bucket_s = trending_bucket_s
        self.window_s = trending_window_s
        self.shared_max_age_s = shared_max_age_s
        self._bandit: tuple[float, int, list[Any]] | None = None
        self._generation = 0  # the last generation seen (the guess of user_state)
        self._shared: dict[str, tuple[float, int, Any]] = {}
        self._refreshing: dict[str, asyncio.Task[Any]] = {}
        self._trending: dict[tuple[int, int], TrendingWindow] = {}

    async def keys(self) -> Keys:
        """Key layout of the active generation."""
        gen = await self.store.get_int(generation_key(self.prefix), 0)
        return Keys(self.prefix, gen, self.partitions)

    async def user_state(self, user_id: str) -> tuple[Keys, UserState]:
        """The active key layout and a user's state, in one round trip: the generation
        is read together with the user's key under the last generation seen, and only
        when a cutover changed it is the user read again under the new one."""
        guess = self._generation
        gen_raw, raw = await self.store.read(
            [
                ops.get(generation_key(self.prefix)),
                ops.get(Keys(self.prefix, guess, self.partitions).user(user_id)),
            ]
        )
        keys = Keys(self.prefix, int(gen_raw or 0), self.partitions)
        if keys.generation != guess:
            self._generation = keys.generation
            [raw] = await self.store.read([ops.get(keys.user(user_id))])
        return keys, decode_user(raw)

    async def _shared_read(self, name: str, keys: Keys, read: Any) -> Any:
        """A value the same for every user: served from memory, re-read in the background
        once older than ``shared_max_age_s`` (only the first request waits for Redis)."""
        hit = self._shared.get(name)
        if hit is not None and hit[1] == keys.generation:
            stale = time.monotonic() - hit[0] >= self.shared_max_age_s
            if stale and name not in self._refreshing:
                task = asyncio.create_task(self._refresh(name, keys, read))
                self._refreshing[name] = task
                task.add_done_callback(lambda t: self._refreshed(name, t))
            return hit[2]
        return await self._refresh(name, keys, read)

    def _refreshed(self, name: str, task: asyncio.Task[Any]) -> None:
        """A background re-read ended; a failure keeps the old value and is logged."""
        self._refreshing.pop(name, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s re-read failed: %s", name, task.exception())

    async def _refresh(self, name: str, keys: Keys, read: Any) -> Any:
        started = time.monotonic()
        value = await read()
        self._shared[name] = (started, keys.generation, value)
        return value

    async def trending(self, keys: Keys, now_s: float, top: int = 100) -> dict[str, float]:
        """Plays per track over the trending window, summed over partitions and buckets
        (the top ``top`` of each bucket; only buckets whose play count changed are re-read,
        see :mod:`models.trending`)."""

        async def read() -> list[tuple[str, float]]:
            held = self._trending.get((keys.generation, top))
            if held is None:
                self._trending = {}  # a new generation or size: start over
                held = self._trending[(keys.generation, top)] = TrendingWindow()
            buckets = window(now_s, self.bucket_s, self.window_s)
            counts = await self.store.read(
                [
                    ops.mget(*(keys.trending_plays(p, b) for b in buckets))
                    for p in range(self.partitions)
                ]
            )
            plays = {
                (p, b): None if n is None else int(n)
                for p, row in enumerate(counts)
                for b, n in zip(buckets, row, strict=True)
            }
            stale = held.stale(plays)
            for i in range(0, len(stale), READ_CHUNK):  # the loop runs between chunks
                chunk = stale[i : i + READ_CHUNK]
                rows = await self.store.read(
                    [ops.zrevrange(keys.trending(p, b), 0, top - 1) for p, b in chunk]
                )
                held.update(
                    (pb, plays[pb], [(m.decode(), float(s)) for m, s in r])
                    for pb, r in zip(chunk, rows, strict=True)
                )
            return held.top(top)

        return dict(await self._shared_read(f"trending:{top}", keys, read))

    async def fresh(self, keys: Keys, top: int = 100) -> list[tuple[str, float]]:
        """Newest catalog arrivals over all tracks partitions (shared like trending)."""

        async def read() -> list[tuple[str, float]]:
            reads = [ops.zrevrange(keys.fresh(p), 0, top - 1) for p in range(self.partitions)]
            rows = [(m.decode(), s) for part in await self.store.read(reads) for m, s in part]
            return sorted(rows, key=lambda r: -r[1])[:top]

        return list(await self._shared_read(f"fresh:{top}", keys, read))

    async def bandit_sums(self, keys: Keys, max_age_s: float = 1.0) -> list[Any]:
        """Per-partition arm reward sums (cached for ``max_age_s``)."""
        now = time.monotonic()
        if (
            self._bandit
            and self._bandit[1] == keys.generation
            and now - self._bandit[0] < max_age_s
        ):
            return self._bandit[2]
        sums = await self.store.read([ops.hgetall(keys.bandit(p)) for p in range(self.partitions)])
        self._bandit = (now, keys.generation, sums)
        return sums

    async def links(self, keys: Keys, tracks: list[str]) -> dict[str, str]:
        """Link status per track (absent: unknown); one read per link-health partition."""
        by_part: dict[int, list[str]] = {}
        for t in tracks:
            by_part.setdefault(keys.track_partition(t), []).append(t)
        parts = sorted(by_part)
        rows = await self.store.read([ops.hmget(keys.link_status(p), *by_part[p]) for p in parts])
        out: dict[str, str] = {}
        for p, values in zip(parts, rows, strict=True):
            for t, v in zip(by_part[p], values, strict=True):
                out[t] = decode_link_status(v)
        return out

    async def link_health(self, keys: Keys, track: str) -> dict[str, str]:
        """The whole link-health record of one track."""
        [fields] = await self.store.read([ops.hgetall(keys.link(track))])
        return {k.decode(): v.decode() for k, v in fields.items()}

    async def catalog(self, keys: Keys, tracks: list[str]) -> dict[str, CatalogTrack]:
        """Catalog entries (metadata and content vectors) of the tracks that have one."""
        rows = await self.store.read([ops.hmget(keys.track(t), *TRACK_FIELDS) for t in tracks])
        out = {}
        for t, values in zip(tracks, rows, strict=True):
            track = decode_track(t, values)
            if track is not None:
                out[t] = track
        return out

    async def lag(self) -> dict[str, int]:
        """Consumer lag per partition as the workers last reported it."""
        client = getattr(self.store, "client", None)
        if client is None:
            return {}
        raw = await client.hgetall(lag_key(self.prefix))
        return {k.decode(): decode_lag(v) for k, v in raw.items()}


async def bounded(coro: Any, timeout_s: float) -> Any:
    """Await with a timeout (every dependency call of a request goes through this)."""
    async with asyncio.timeout(timeout_s):
        return await coro
