"""Personal recommendations: gather state and candidates, pick an arm, rerank, explain."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from redis.exceptions import RedisError

from api import metrics
from api.pool import WorkPool
from api.reader import Reader, bounded
from models import ranking
from models.bandit import Policy, Posterior, choose, posteriors
from models.keys import Keys
from models.pool import Pool
from models.ranking import LRU, RankConfig, track_info
from models.rerank import Filters, Ranked
from models.serving import Bundle, CatalogTrack, artist_key
from models.state import FoldConfig, UserState
from models.taste import TASTE_WEIGHT
from models.urls import is_web

log = logging.getLogger(__name__)
INFRA = (RedisError, OSError, TimeoutError)
__all__ = [
    "Engine",
    "Timer",
    "artist_key",
    "enrich",
    "item_json",
    "personal",
    "public_audio",
    "public_info",
    "public_link",
    "rank_alive",
    "track_info",
]


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
    pool: WorkPool  # CPU-heavy work (encoding, large searches, decoding) runs here
    collab_cache: LRU = field(default_factory=lambda: LRU(20_000))
    taste_weight: float = TASTE_WEIGHT
    taste_k: int = 50

    def rank_config(self, bundle: Bundle) -> RankConfig:
        """List settings: the published policy's tuned MMR weight, else the configured one."""
        lam = self.mmr_lambda
        if bundle.policy is not None and bundle.policy.mmr_lambda is not None:
            lam = bundle.policy.mmr_lambda
        return RankConfig(
            fold=self.fold,
            mmr_lambda=lam,
            artist_gap=self.artist_gap,
            taste_k=self.taste_k,
            taste_weight=self.taste_weight,
        )


@dataclass(frozen=True)
class Snapshot:
    """What a personal request reads from Redis before ranking (``keys`` None: Redis was
    unavailable or not configured, and the rest is empty; ``degraded`` says why)."""

    keys: Keys | None
    state: UserState
    sums: list[Mapping[Any, Any]]
    trending: dict[str, float]
    fresh: list[tuple[str, float]]
    degraded: list[str]


async def gather_state(engine: Engine, user_id: str, timer: Timer) -> Snapshot:
    """User state, arm reward sums, trending and fresh tracks under one deadline: one
    round trip for the generation and the user's state (the rest is shared by every
    request and re-read in the background); degrades to empty on failure."""
    reader = engine.reader
    if reader is None:
        timer.lap("state")
        return Snapshot(None, UserState(), [], {}, [], ["redis_not_configured"])
    try:
        async with asyncio.timeout(engine.timeout_s):
            keys, state = await reader.user_state(user_id)
            snap = Snapshot(
                keys,
                state,
                await reader.bandit_sums(keys),
                await reader.trending(keys, time.time()),
                await reader.fresh(keys),
                [],
            )
    except INFRA as exc:
        log.warning("state unavailable: %s", exc)
        snap = Snapshot(None, UserState(), [], {}, [], ["redis_unavailable"])
    timer.lap("state")
    return snap


async def read_catalog(
    engine: Engine,
    keys: Keys | None,
    tracks: list[str],
    catalog: dict[str, CatalogTrack],
    degraded: list[str],
) -> None:
    """Add the catalog rows of ``tracks`` (those that have one) to ``catalog``."""
    if keys is None or engine.reader is None or not tracks:
        return
    try:
        catalog.update(await bounded(engine.reader.catalog(keys, tracks), engine.timeout_s))
    except INFRA as exc:
        log.warning("catalog unavailable: %s", exc)
        if "redis_unavailable" not in degraded:
            degraded.append("redis_unavailable")


async def read_links(
    engine: Engine, keys: Keys | None, tracks: list[str], degraded: list[str]
) -> dict[str, str]:
    """Link status of the given tracks (empty when Redis is unavailable)."""
    if keys is None or engine.reader is None or not tracks:
        return {}
    try:
        links: dict[str, str] = await bounded(engine.reader.links(keys, tracks), engine.timeout_s)
        return links
    except INFRA as exc:
        log.warning("link health unavailable: %s", exc)
        if "redis_unavailable" not in degraded:
            degraded.append("redis_unavailable")
        return {}


LINK_ROUNDS = 4
"""Most rankings per request while picked tracks turn out to have dead links."""


async def rank_alive(
    engine: Engine,
    keys: Keys | None,
    degraded: list[str],
    pool: Pool,
    rank_once: Callable[[], list[Ranked]],
) -> list[Ranked]:
    """Rank, then read the link status of the picked tracks only; while one is dead, rank
    again without it.

    The pool comes with every link "unknown", so nothing is filtered as dead at
    first. Reading the status of the few picked tracks instead of the whole pool
    (hundreds) gives the same list as filtering the whole pool first: a dead track the
    list never picked changed no greedy step. After ``LINK_ROUNDS`` rankings any dead
    track still picked is dropped (the list can then be shorter).
    """
    ranked = rank_once()
    known: set[str] = set()
    for _ in range(LINK_ROUNDS):
        ask = [r.candidate for r in ranked if r.candidate.track_id not in known]
        if not ask:
            break
        links = await read_links(engine, keys, [c.track_id for c in ask], degraded)
        for c in ask:
            c.link = links.get(c.track_id, "unknown")
            pool.set_link(c.position, c.link)
            known.add(c.track_id)
        if not any(c.link == "dead" for c in ask):
            return ranked
        ranked = rank_once()  # the dead ones are now dropped after scoring
    return [r for r in ranked if r.candidate.link != "dead"]


async def enrich(
    engine: Engine,
    bundle: Bundle,
    keys: Keys | None,
    pool: Pool,
    catalog: dict[str, CatalogTrack],
    degraded: list[str],
) -> None:
    """Read the catalog rows of the candidates no artifact describes and join their facts
    (link status stays "unknown": :func:`rank_alive` reads it for the tracks a list
    picks)."""
    unknown = [t for t in pool.needs_catalog() if t not in catalog]
    await read_catalog(engine, keys, unknown, catalog, degraded)
    pool.join(catalog)


def public_link(url: Any) -> str | None:
    """A catalog link as a response may carry it: http(s) only (a ``file://`` link would
    tell the server's paths)."""
    return url if is_web(url) else None


def public_audio(track_id: str, url: Any) -> str | None:
    """Where a client gets a track's audio: its http(s) link, or for local audio the
    API route that serves it (``GET /v1/tracks/{id}/audio``), never the file's path."""
    if isinstance(url, str) and url[:7].lower() == "file://":
        return f"/v1/tracks/{quote(track_id, safe='')}/audio"
    return public_link(url)


def public_info(track_id: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """Catalog metadata with its links made public (:func:`public_link`, :func:`public_audio`)."""
    out = dict(info)
    if "audio_url" in out:
        out["audio_url"] = public_audio(track_id, out["audio_url"])
    if "permalink_url" in out:
        out["permalink_url"] = public_link(out["permalink_url"])
    return out


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
        "permalink_url": public_link(info.get("permalink_url")),
        "audio_url": public_audio(r.candidate.track_id, info.get("audio_url")),
        "audio_features": info.get("audio_features"),
    }


def arm_posteriors(
    bundle: Bundle, sums: list[Mapping[Any, Any]]
) -> tuple[Policy, dict[str, Posterior]]:
    """The serving policy (published, else the default) and its posteriors from live sums."""
    policy = bundle.policy.policy if bundle.policy is not None else Policy.default()
    return policy, posteriors(sums, policy.arms, policy.priors)


async def personal(
    engine: Engine, bundle: Bundle, user_id: str, n: int, filters: Filters, context: str | None
) -> dict[str, Any]:
    """``GET /v1/users/{user_id}/recommendations``."""
    timer = Timer("personal")
    snap = await gather_state(engine, user_id, timer)
    keys, state, degraded = snap.keys, snap.state, list(snap.degraded)
    policy, post = arm_posteriors(bundle, snap.sums)
    arm, propensity = choose(policy, post, ranking.draw_seed(user_id, state, bundle.versions()))
    timer.lap("bandit")

    cfg = engine.rank_config(bundle)
    now_ms = int(time.time() * 1000)
    req = ranking.Request(user_id, state, snap.trending, snap.fresh, now_ms)
    catalog: dict[str, CatalogTrack] = {}
    await read_catalog(
        engine, keys, ranking.history_tracks_to_join(bundle, state), catalog, degraded
    )
    pool, missing = ranking.candidates(bundle, req, catalog, cfg, engine.collab_cache)
    degraded += missing
    counts = pool.describe()
    for source, count in counts.items():
        metrics.CANDIDATES.labels(source).inc(count)
    timer.lap("candidates")

    await enrich(engine, bundle, keys, pool, catalog, degraded)
    prepared = ranking.prepare(bundle, req, pool, catalog)
    timer.lap("enrich")

    ranked = await rank_alive(
        engine,
        keys,
        degraded,
        pool,
        lambda: ranking.rank(
            prepared,
            policy.arms[arm],
            n=n,
            filters=filters,
            lam=cfg.mmr_lambda,
            artist_gap=cfg.artist_gap,
            taste_weight=cfg.taste_weight,
        ),
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
        "candidates": counts,
        "items": [item_json(r, bundle, catalog) for r in ranked],
        "timings_ms": timer.stages,
    }
