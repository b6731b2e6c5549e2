"""Personal recommendations: gather state and candidates, pick an arm, rerank, explain."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from redis.exceptions import RedisError

from api import candidates as cands
from api import metrics
from api.bundle import Bundle
from api.reader import CatalogTrack, Reader, bounded
from models.bandit import ARMS, Posterior, thompson
from models.keys import Keys
from models.rerank import Candidate, Context, Filters, Ranked, describe, merge, rerank
from models.state import FoldConfig, UserState, artist_signals

log = logging.getLogger(__name__)
INFRA = (RedisError, OSError, TimeoutError)


@dataclass
class Timer:
    """Per-stage timings of one request, in milliseconds."""

    route: str
    stages: dict[str, float] = field(default_factory=dict)
    _t: float = field(default_factory=time.perf_counter)

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        ms = (now - self._t) * 1000
        self.stages[stage] = round(self.stages.get(stage, 0) + ms, 3)
        metrics.STAGE_SECONDS.labels(self.route, stage).observe(ms / 1000)
        self._t = now


@dataclass
class Engine:
    """What the recommendation routes need (built once in the lifespan)."""

    reader: Reader | None
    fold: FoldConfig
    timeout_s: float
    mmr_lambda: float
    artist_gap: int
    collab_cache: cands.LRU = field(default_factory=lambda: cands.LRU(20_000))
    rng: np.random.Generator = field(default_factory=np.random.default_rng)


def track_info(bundle: Bundle, catalog: dict[str, CatalogTrack], track: str) -> dict[str, Any]:
    """Metadata of a track: the content artifact, else the catalog topic's entry."""
    if bundle.content is not None and track in bundle.content.row:
        return dict(bundle.content.items[bundle.content.row[track]])
    if track in catalog:
        return dict(catalog[track].meta)
    if bundle.collab is not None and track in bundle.collab.row:
        artist = bundle.collab.artists[bundle.collab.row[track]]
        return {"artist_id": artist} if artist else {}
    return {}


def artist_key(info: dict[str, Any]) -> str | None:
    """One artist identity per track: its id, else its lower-case name."""
    if info.get("artist_id"):
        return str(info["artist_id"])
    return "name:" + str(info["artist"]).lower() if info.get("artist") else None


async def gather_state(
    engine: Engine, user_id: str, timer: Timer
) -> tuple[
    Keys | None,
    UserState,
    dict[str, Posterior],
    dict[str, float],
    list[tuple[str, float]],
    list[str],
]:
    """User state, arm posteriors, trending and fresh tracks; degrades to empty on failure."""
    degraded: list[str] = []
    state, trending, fresh = UserState(), {}, []
    post = {a: Posterior(1.0, 1.0) for a in ARMS}
    keys = None
    if engine.reader is None:
        degraded.append("redis_not_configured")
    else:
        try:
            keys = await bounded(engine.reader.keys(), engine.timeout_s)
            now = time.time()
            state = await bounded(engine.reader.user(keys, user_id), engine.timeout_s)
            post = await bounded(engine.reader.bandit(keys), engine.timeout_s)
            trending = await bounded(engine.reader.trending(keys, now), engine.timeout_s)
            fresh = await bounded(engine.reader.fresh(keys), engine.timeout_s)
        except INFRA as exc:
            log.warning("state unavailable: %s", exc)
            degraded.append("redis_unavailable")
            keys = None
    timer.lap("state")
    return keys, state, post, trending, fresh, degraded


async def enrich(
    engine: Engine,
    bundle: Bundle,
    keys: Keys | None,
    pool: list[Candidate],
    catalog: dict[str, CatalogTrack],
    degraded: list[str],
) -> None:
    """Artist, genre, year, link status and a diversity vector for every candidate."""
    links: dict[str, str] = {}
    if keys is not None and engine.reader is not None and pool:
        try:
            unknown = [
                c.track_id
                for c in pool
                if c.track_id not in catalog
                and (bundle.content is None or c.track_id not in bundle.content.row)
            ]
            if unknown:
                catalog.update(
                    await bounded(engine.reader.catalog(keys, unknown), engine.timeout_s)
                )
            links = await bounded(
                engine.reader.links(keys, [c.track_id for c in pool]), engine.timeout_s
            )
        except INFRA as exc:
            log.warning("link health unavailable: %s", exc)
            if "redis_unavailable" not in degraded:
                degraded.append("redis_unavailable")
    collab, content = bundle.collab, bundle.content
    for c in pool:
        info = track_info(bundle, catalog, c.track_id)
        c.artist = artist_key(info)
        c.genre = info.get("genre")
        c.year = info.get("year")
        c.link = links.get(c.track_id, "unknown")
        if collab is not None and c.track_id in collab.row:
            c.vector = collab.items[collab.row[c.track_id]]
        elif content is not None and c.track_id in content.row:
            c.vector = content.text[content.row[c.track_id]]


def item_json(r: Ranked, bundle: Bundle, catalog: dict[str, CatalogTrack]) -> dict[str, Any]:
    """One recommended track in a response."""
    info = track_info(bundle, catalog, r.candidate.track_id)
    return {
        "track_id": r.candidate.track_id,
        "title": info.get("title"),
        "artist": info.get("artist"),
        "genre": info.get("genre"),
        "score": r.score,
        "contributions": r.contributions,
        "reason": r.reason,
        "sources": r.candidate.sources,
        "link": r.candidate.link,
        "permalink_url": info.get("permalink_url"),
        "audio_url": info.get("audio_url"),
    }


async def personal(
    engine: Engine, bundle: Bundle, user_id: str, n: int, filters: Filters, context: str | None
) -> dict[str, Any]:
    """``GET /v1/users/{user_id}/recommendations``."""
    timer = Timer("personal")
    keys, state, post, trending, fresh, degraded = await gather_state(engine, user_id, timer)
    arm, propensity = thompson(post, engine.rng)
    weights = ARMS[arm]
    timer.lap("bandit")

    catalog: dict[str, CatalogTrack] = {}
    collab, content = bundle.collab, bundle.content
    hist_new = [t for t, *_ in state.hist if collab is None or t not in collab.row]
    if keys is not None and hist_new and engine.reader is not None:
        try:
            catalog = await bounded(engine.reader.catalog(keys, hist_new[-50:]), engine.timeout_s)
        except INFRA:
            degraded.append("redis_unavailable")
    groups: list[list[Candidate]] = []
    if collab is not None:
        groups.append(cands.collab_candidates(collab, user_id, 200, engine.collab_cache))
        vec = cands.realtime_vector(collab, state, catalog, engine.fold)
        groups.append(cands.realtime_candidates(collab, vec, 200))
        groups.append(cands.popular_candidates(collab, 100))
    else:
        degraded.append("no_collab_model")
    if content is not None:
        groups.append(cands.content_candidates(content, state, 30))
    groups.append(cands.trending_candidates(trending))
    groups.append(cands.fresh_candidates(fresh, time.time() * 1000))
    pool = merge(groups)
    for source, count in describe(pool).items():
        metrics.CANDIDATES.labels(source).inc(count)
    timer.lap("candidates")

    await enrich(engine, bundle, keys, pool, catalog, degraded)
    artist_of = {c.track_id: c.artist for c in pool if c.artist}
    for t in state.neg_artist_of:
        a = artist_key(track_info(bundle, catalog, t))
        if a:
            artist_of[t] = a
    for t, *_ in state.hist:
        if t not in artist_of:
            a = artist_key(track_info(bundle, catalog, t))
            if a:
                artist_of[t] = a
    signals = artist_signals(state, artist_of, int(time.time() * 1000))
    ctx = Context(
        recent=frozenset(t for t, *_ in state.hist[-50:]),
        disliked=frozenset(state.neg_tracks),
        blocked_artists=frozenset(signals.blocked),
        artist_skips=signals.skips,
    )
    timer.lap("enrich")

    titles = {
        t: str(track_info(bundle, catalog, t).get("title") or t)
        for t in {c.seed for c in pool if c.seed}
    }
    ranked = rerank(
        pool,
        weights,
        n=n,
        filters=filters,
        ctx=ctx,
        lam=engine.mmr_lambda,
        artist_gap=engine.artist_gap,
        titles=titles,
    )
    timer.lap("rerank")
    metrics.ARM_PULLS.labels(arm).inc()
    for reason in degraded:
        metrics.DEGRADED.labels(reason).inc()
    return {
        "user_id": user_id,
        "rec_id": uuid.uuid4().hex,
        "arm": arm,
        "propensity": propensity,
        "context": context,
        "degraded": bool(degraded),
        "degraded_reasons": sorted(set(degraded)),
        "model_versions": bundle.versions(),
        "session": {"skip_streak": state.session.get("streak", 0), "events": state.n},
        "candidates": describe(pool),
        "items": [item_json(r, bundle, catalog) for r in ranked],
        "timings_ms": timer.stages,
    }
