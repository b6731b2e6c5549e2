"""Personal recommendations as pure functions: candidates, then the ranked list.

The API (``api/recommend.py``) and the served-quality evaluation
(``batch/served.py``) run exactly this code; only where the inputs come from
differs (Redis and published artifacts, or a split of a dataset).

1. :func:`candidates` gathers scored candidates from every source the bundle
   has: the collaborative source (the hybrid's precomputed list when it knows
   the user, else ALS, else LightGCN), the real-time taste vector, popular,
   content neighbours of recent plays, trending and fresh tracks.
2. The caller looks up what the artifacts do not know about the pool (catalog
   rows of new tracks, link status): :func:`unknown_tracks` says which.
3. :func:`prepare` joins the pool with the catalog and the user's history
   (artist, genre, year, link, diversity vector; recent plays, dislikes,
   blocked and skipped artists); :func:`rank` scores it with one arm's blend
   weights and picks the list (filters, MMR, artist spacing, reasons).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.bandit import request_seed
from models.rerank import Candidate, Context, Filters, Ranked, merge, rerank
from models.serving import Bundle, CatalogTrack, Collab, Content, artist_key
from models.state import FoldConfig, UserState, artist_signals, fold_extra


@dataclass(frozen=True)
class RankConfig:
    """How many candidates each source gives and how the list is diversified."""

    fold: FoldConfig = field(default_factory=FoldConfig)
    mmr_lambda: float = 0.7
    artist_gap: int = 3
    collab_k: int = 200
    realtime_k: int = 200
    popular_k: int = 100
    content_per_seed: int = 30
    content_seeds: int = 5


@dataclass(frozen=True)
class Request:
    """What one personal request knows about the listener and the moment."""

    user_id: str
    state: UserState
    trending: Mapping[str, float]
    fresh: Sequence[tuple[str, float]]
    now_ms: int


class LRU:
    """A small least-recently-used cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self.data.get(key)
        if value is not None:
            self.data.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.size:
            self.data.popitem(last=False)


def track_info(
    bundle: Bundle, catalog: Mapping[str, CatalogTrack], track: str
) -> Mapping[str, Any]:
    """Metadata of a track: the content artifact, else the catalog topic's entry.

    The mapping is the artifact's (or the catalog row's) own, not a copy: read it,
    never change it (copy it first, e.g. ``dict(info)``).
    """
    if bundle.content is not None and track in bundle.content.row:
        return bundle.content.items[bundle.content.row[track]]
    if track in catalog:
        return catalog[track].meta
    for collab in (bundle.collab, bundle.lightgcn):
        if collab is not None and track in collab.row:
            artist = collab.artists[collab.row[track]]
            return {"artist_id": artist} if artist else {}
    return {}


def _from_rows(
    ids: list[str], rows: np.ndarray, scores: np.ndarray, signal: str, source: str
) -> list[Candidate]:
    return [
        Candidate(ids[r], {signal: float(s)}, [source]) for r, s in zip(rows, scores, strict=True)
    ]


def collab_candidates(
    bundle: Bundle, user_id: str, k: int, cache: LRU | None = None
) -> tuple[list[Candidate], str | None]:
    """The batch models' own top items for a known user, and which model gave them.

    The hybrid's precomputed list is preferred, then ALS, then LightGCN: the first
    that knows the user. Factor-model searches are cached per model version.
    """
    if bundle.hybrid is not None:
        ids, scores = bundle.hybrid.lookup(user_id)
        if ids:
            return [
                Candidate(t, {"collab": float(s)}, ["collab"])
                for t, s in zip(ids[:k], scores[:k], strict=True)
            ], "hybrid"
    for name, collab in (("als", bundle.collab), ("lightgcn", bundle.lightgcn)):
        if collab is None or user_id not in collab.users:
            continue
        key = (collab.version, user_id, k)
        hit = cache.get(key) if cache is not None else None
        if hit is None:
            hit = collab.search(collab.user_factors[collab.users[user_id]], k)
            if cache is not None:
                cache.put(key, hit)
        return _from_rows(collab.ids, hit[0], hit[1], "collab", "collab"), name
    return [], None


def realtime_vector(
    collab: Collab, state: UserState, catalog: Mapping[str, CatalogTrack], fold: FoldConfig
) -> np.ndarray | None:
    """The user's real-time taste vector in the collaborative space, with new tracks added."""
    if state.model != collab.version:
        return None  # folded in another model's space: wait for the worker's refold
    extra = {
        t: c.cf
        for t, c in catalog.items()
        if c.cf is not None and c.cf_model == collab.version and t not in collab.row
    }
    extra = {t: v / max(float(np.linalg.norm(v)), 1e-9) for t, v in extra.items()}
    vec = fold_extra(state, extra, fold) if extra else state.vec
    if vec is None or not np.isfinite(vec).all() or float(np.linalg.norm(vec)) < 1e-9:
        return None
    return vec


def realtime_candidates(collab: Collab, vec: np.ndarray | None, k: int) -> list[Candidate]:
    """Items nearest the real-time taste vector."""
    if vec is None:
        return []
    rows, scores = collab.search(vec, k)
    return _from_rows(collab.ids, rows, scores, "realtime", "realtime")


def content_candidates(
    content: Content, state: UserState, per_seed: int, seeds: int = 5
) -> list[Candidate]:
    """Text-space neighbours of the user's most recent positively received tracks."""
    picked: list[tuple[str, int]] = []
    for track, _t, _kind, w in reversed(state.hist):
        if len(picked) >= seeds:
            break
        row = content.row.get(track)
        if w > 0 and row is not None:
            picked.append((track, row))
    if not picked:
        return []
    found = content.text_neighbours_of([r for _t, r in picked], per_seed + 1)
    ids = content.ids
    return [
        Candidate(ids[r], {"content": float(s)}, ["content"], seed=track)
        for (track, row), (rows, scores) in zip(picked, found, strict=True)
        for r, s in zip(rows.tolist(), scores.tolist(), strict=True)
        if r != row
    ]


def trending_candidates(trending: Mapping[str, float]) -> list[Candidate]:
    """Most played over the trending window."""
    return [Candidate(t, {"trending": math.log1p(n)}, ["trending"]) for t, n in trending.items()]


def fresh_candidates(
    fresh: Sequence[tuple[str, float]], now_ms: float, horizon_days: float = 14
) -> list[Candidate]:
    """Newest catalog arrivals, scored by recency."""
    out = []
    for t, first_ms in fresh:
        age_days = max(0.0, (now_ms - first_ms) / 86_400_000)
        score = 1 - age_days / horizon_days
        if score > 0:  # older than the horizon: not fresh any more
            out.append(Candidate(t, {"fresh": score}, ["fresh"]))
    return out


def popular_candidates(collab: Collab | None, k: int) -> list[Candidate]:
    """Most popular items of the batch model (the cold-start fallback)."""
    if collab is None or not len(collab.popularity):
        return []
    return [Candidate(t, {"popularity": s}, ["popularity"]) for t, s in collab.popular[:k]]


def history_tracks_to_join(bundle: Bundle, state: UserState, limit: int = 50) -> list[str]:
    """Recent history tracks the collaborative space lacks (their catalog rows carry
    projected vectors the real-time vector needs)."""
    collab = bundle.collab
    new = [t for t, *_ in state.hist if collab is None or t not in collab.row]
    return new[-limit:]


def candidates(
    bundle: Bundle,
    req: Request,
    catalog: Mapping[str, CatalogTrack],
    cfg: RankConfig,
    cache: LRU | None = None,
) -> tuple[list[Candidate], list[str]]:
    """Every source's candidates, merged; and what is missing (degradation reasons)."""
    degraded: list[str] = []
    groups: list[list[Candidate]] = []
    collab = bundle.collab
    own, _source = collab_candidates(bundle, req.user_id, cfg.collab_k, cache)
    groups.append(own)
    if collab is not None:
        vec = realtime_vector(collab, req.state, catalog, cfg.fold)
        groups.append(realtime_candidates(collab, vec, cfg.realtime_k))
    else:
        degraded.append("no_collab_model")
    groups.append(popular_candidates(collab or bundle.lightgcn, cfg.popular_k))
    if bundle.content is not None:
        groups.append(
            content_candidates(bundle.content, req.state, cfg.content_per_seed, cfg.content_seeds)
        )
    groups.append(trending_candidates(req.trending))
    groups.append(fresh_candidates(req.fresh, req.now_ms))
    return merge(groups), degraded


def unknown_tracks(
    bundle: Bundle, pool: Sequence[Candidate], catalog: Mapping[str, CatalogTrack]
) -> list[str]:
    """Pool tracks whose metadata neither an artifact nor ``catalog`` holds yet (their
    catalog rows must be read)."""
    content = bundle.content
    return [
        c.track_id
        for c in pool
        if c.track_id not in catalog and (content is None or c.track_id not in content.row)
    ]


def annotate(
    bundle: Bundle,
    pool: Sequence[Candidate],
    catalog: Mapping[str, CatalogTrack],
    links: Mapping[str, str],
) -> None:
    """Artist, genre, year, whether it is music, link status and a diversity vector for
    every candidate."""
    collab, content = bundle.collab, bundle.content
    collab_row = collab.row if collab is not None else {}
    content_row = content.row if content is not None else {}
    facts = content.facts if content is not None else []
    for c in pool:
        track = c.track_id
        row = content_row.get(track)
        if row is not None:  # the content artifact's facts, joined once per version
            c.artist, c.genre, c.year, c.music = facts[row]
        else:
            info = track_info(bundle, catalog, track)
            c.artist = artist_key(info)
            c.genre = info.get("genre")
            c.year = info.get("year")
            c.music = info.get("is_music") is not False  # the content job flags non-music
        c.link = links.get(track, "unknown")
        crow = collab_row.get(track)
        if crow is not None:
            c.vector = collab.items[crow]  # type: ignore[union-attr]
        elif row is not None:
            c.vector = content.text[row]  # type: ignore[union-attr]


@dataclass(frozen=True)
class Prepared:
    """A pool joined with the catalog and the listener's history, ready to rank."""

    pool: list[Candidate]
    ctx: Context
    titles: dict[str, str]


def prepare(
    bundle: Bundle,
    req: Request,
    pool: list[Candidate],
    catalog: Mapping[str, CatalogTrack],
    links: Mapping[str, str],
) -> Prepared:
    """Annotate the pool and derive what the history forbids or penalises.

    Every track still in the kept history (``history_len`` events) counts as
    heard and is not recommended again; dislikes, blocked artists and recently
    skipped artists come from the same state.
    """
    annotate(bundle, pool, catalog, links)
    state = req.state
    artist_of = {c.track_id: c.artist for c in pool if c.artist}
    for t in [*state.neg_artist_of, *(h[0] for h in state.hist)]:
        if t not in artist_of:
            a = artist_key(track_info(bundle, catalog, t))
            if a:
                artist_of[t] = a
    signals = artist_signals(state, artist_of, req.now_ms)
    ctx = Context(
        recent=frozenset(h[0] for h in state.hist),
        disliked=frozenset(state.neg_tracks),
        blocked_artists=frozenset(signals.blocked),
        artist_skips=signals.skips,
    )
    titles = {
        t: str(track_info(bundle, catalog, t).get("title") or t)
        for t in {c.seed for c in pool if c.seed}
    }
    return Prepared(pool, ctx, titles)


def rank(
    prepared: Prepared,
    weights: Mapping[str, float],
    *,
    n: int,
    filters: Filters,
    lam: float,
    artist_gap: int,
) -> list[Ranked]:
    """One arm's list from a prepared pool."""
    return rerank(
        prepared.pool,
        weights,
        n=n,
        filters=filters,
        ctx=prepared.ctx,
        lam=lam,
        artist_gap=artist_gap,
        titles=prepared.titles,
    )


def draw_seed(user_id: str, state: UserState, versions: Mapping[str, str | None]) -> bytes:
    """What the arm draw depends on: the listener, their session, how many events their
    state holds and the model versions. A refresh with nothing new gets the same arm."""
    return request_seed(
        user_id,
        state.session.get("start", 0),
        state.n,
        *(f"{k}={v}" for k, v in sorted(versions.items())),
    )
