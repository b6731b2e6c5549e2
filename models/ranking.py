"""Personal recommendations as pure functions: candidates, then the ranked list.

The API (``api/recommend.py``) and the served-quality evaluation
(``batch/served.py``) run exactly this code; only where the inputs come from
differs (Redis and published artifacts, or a split of a dataset).

1. :func:`candidates` gathers scored candidates from every source the bundle
   has into one columnar pool (:mod:`models.pool`; item rows and score arrays,
   no object per candidate): the collaborative source (the hybrid's
   precomputed list when it knows the user, else ALS, else LightGCN), the
   real-time taste vector, popular, content neighbours of recent plays,
   trending and fresh tracks, and the cold tracks (no collaborative vector
   yet) the listener's taste classifier rates best (:mod:`models.taste`).
   The pool carries every candidate's facts from the item columns (artist,
   genre, year, whether it is music, diversity vector).
2. The caller reads the catalog rows of the candidates no artifact describes
   (:meth:`models.pool.Pool.needs_catalog`: new tracks) and joins them
   (:meth:`models.pool.Pool.join`).
3. :func:`prepare` gives every cold candidate its ``taste`` signal (new tracks
   from the catalog topic by their text vectors) and derives what the user's
   history forbids or penalises (recent plays, dislikes, blocked and skipped
   artists); :func:`rank` scores
   the pool with one arm's blend weights and picks the list (filters, MMR,
   artist spacing, reasons); link status is read for the picked tracks only
   (``api.recommend.rank_alive``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.bandit import request_seed
from models.pool import Pool, PoolBuilder, artist_key
from models.rerank import Context, Filters, Ranked, rerank
from models.serving import Bundle, CatalogTrack, Collab, Content
from models.state import FoldConfig, UserState, artist_signals, fold_extra
from models.taste import TASTE_WEIGHT


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
    taste_k: int = 50
    taste_weight: float = TASTE_WEIGHT


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


def collab_candidates(
    out: PoolBuilder, bundle: Bundle, user_id: str, k: int, cache: LRU | None = None
) -> str | None:
    """Add the batch models' own top items for a known user; which model gave them.

    The hybrid's precomputed list is preferred, then ALS, then LightGCN: the first
    that knows the user. Factor-model searches are cached per model version.
    """
    of = out.items.of
    if bundle.hybrid is not None:
        rows, scores = bundle.hybrid.lookup(user_id)
        if len(rows):
            out.add("collab", of["hybrid"][rows[:k]], {"collab": scores[:k]})
            return "hybrid"
    for name, collab in (("als", bundle.collab), ("lightgcn", bundle.lightgcn)):
        if collab is None or user_id not in collab.users:
            continue
        key = (collab.version, user_id, k)
        hit = cache.get(key) if cache is not None else None
        if hit is None:
            hit = collab.search(collab.user_factors[collab.users[user_id]], k)
            if cache is not None:
                cache.put(key, hit)
        out.add("collab", of["collab" if name == "als" else name][hit[0]], {"collab": hit[1]})
        return name
    return None


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


def realtime_candidates(out: PoolBuilder, collab: Collab, vec: np.ndarray | None, k: int) -> None:
    """Add the items nearest the real-time taste vector."""
    if vec is not None:
        rows, scores = collab.search(vec, k)
        out.add("realtime", out.items.of["collab"][rows], {"realtime": scores})


def content_candidates(
    out: PoolBuilder, content: Content, state: UserState, per_seed: int, seeds: int = 5
) -> None:
    """Add the text-space neighbours of the user's most recent positively received
    tracks (each with the track it came from as its seed)."""
    picked: list[tuple[str, int]] = []
    for track, _t, _kind, w in reversed(state.hist):
        if len(picked) >= seeds:
            break
        row = content.row.get(track)
        if w > 0 and row is not None:
            picked.append((track, row))
    if not picked:
        return
    found = content.text_neighbours_of([r for _t, r in picked], per_seed + 1)
    for (track, row), (rows, scores) in zip(picked, found, strict=True):
        other = rows != row
        out.add("content", rows[other], {"content": scores[other]}, seed=track)


def trending_candidates(out: PoolBuilder, trending: Mapping[str, float]) -> None:
    """Add the most played tracks over the trending window."""
    if trending:
        counts = np.fromiter(trending.values(), np.float64, len(trending))
        out.add_ids("trending", list(trending), {"trending": np.log1p(counts)})


def fresh_candidates(
    out: PoolBuilder, fresh: Sequence[tuple[str, float]], now_ms: float, horizon_days: float = 14
) -> None:
    """Add the newest catalog arrivals, scored by recency (none older than the horizon)."""
    if not fresh:
        return
    first = np.array([ms for _t, ms in fresh], np.float64)
    score = 1 - np.maximum(0.0, (now_ms - first) / 86_400_000) / horizon_days
    keep = np.flatnonzero(score > 0)
    out.add_ids("fresh", [fresh[i][0] for i in keep.tolist()], {"fresh": score[keep]})


def popular_candidates(out: PoolBuilder, name: str, collab: Collab, k: int) -> None:
    """Add the most popular items of a batch model (the cold-start fallback)."""
    if len(collab.popularity):
        rows = out.items.of[name][collab.popular_rows[:k]]
        out.add("popularity", rows, {"popularity": collab.popular_scores[:k]})


def taste_candidates(out: PoolBuilder, bundle: Bundle, user_id: str, k: int) -> None:
    """Add the cold tracks (no collaborative vector) the listener's taste classifier
    rates above their usual, best first (none for a listener without a classifier)."""
    cold, taste = bundle.cold, bundle.taste
    if cold is None or taste is None or k <= 0 or not len(cold.rows):
        return
    signal = taste.signal(user_id, cold.features)
    if signal is None:
        return
    top = np.flatnonzero(signal > 0)
    if len(top) > k:
        top = top[np.argpartition(-signal[top], k - 1)[:k]]
    top = top[np.argsort(-signal[top], kind="stable")]
    out.add("taste", cold.rows[top], {"taste": signal[top]})


def taste_column(
    bundle: Bundle, user_id: str, pool: Pool, catalog: Mapping[str, CatalogTrack]
) -> None:
    """Give every cold candidate without one its ``taste`` signal: content rows no
    collaborative model knows by their precomputed features, tracks only the catalog
    topic describes by their text vector (no audio yet). Other candidates keep NaN."""
    cold, taste = bundle.cold, bundle.taste
    if cold is None or taste is None or user_id not in taste.users or not len(pool):
        return
    col = pool.signals.get("taste")
    col = np.full(len(pool), np.nan) if col is None else col
    rows, n, known = pool.rows, len(pool.items), pool.items.known
    open_ = np.isnan(col)
    inside = np.flatnonzero(open_ & (rows < known))
    at = cold.at[rows[inside]]
    inside, at = inside[at >= 0], at[at >= 0]
    if len(inside):
        col[inside] = taste.signal(user_id, cold.features[at])
    texts = []
    for i in np.flatnonzero(open_ & (rows >= n)).tolist():
        row = catalog.get(pool.track_id(i))
        vec = None if row is None else row.text
        if vec is not None and len(vec) == len(taste.space.text_mean):
            texts.append((i, vec))
    if texts:
        feats = taste.space.features(None, np.stack([v for _i, v in texts]))
        col[[i for i, _v in texts]] = taste.signal(user_id, feats)
    if not np.isnan(col).all():
        pool.signals["taste"] = col


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
) -> tuple[Pool, list[str]]:
    """Every source's candidates, merged into one pool; and what is missing
    (degradation reasons)."""
    degraded: list[str] = []
    out = PoolBuilder(bundle.items)
    collab = bundle.collab
    collab_candidates(out, bundle, req.user_id, cfg.collab_k, cache)
    if collab is not None:
        vec = realtime_vector(collab, req.state, catalog, cfg.fold)
        realtime_candidates(out, collab, vec, cfg.realtime_k)
        popular_candidates(out, "collab", collab, cfg.popular_k)
    else:
        degraded.append("no_collab_model")
        if bundle.lightgcn is not None:
            popular_candidates(out, "lightgcn", bundle.lightgcn, cfg.popular_k)
    if bundle.content is not None:
        content_candidates(out, bundle.content, req.state, cfg.content_per_seed, cfg.content_seeds)
    trending_candidates(out, req.trending)
    fresh_candidates(out, req.fresh, req.now_ms)
    taste_candidates(out, bundle, req.user_id, cfg.taste_k)
    return out.build(), degraded


def artists_of(
    bundle: Bundle, catalog: Mapping[str, CatalogTrack], tracks: Sequence[str]
) -> dict[str, str]:
    """Artist identity of each track that has one: the artifacts' facts, else the
    catalog topic's row, else what a collaborative model knows."""
    items = bundle.items
    rows = items.rows(tracks)
    codes = items.facts.artist[np.maximum(rows, 0)] if len(items) else rows
    out = {}
    for t, r, c in zip(tracks, rows.tolist(), codes.tolist(), strict=True):
        if 0 <= r < items.known:
            if c >= 0:
                out[t] = items.facts.artists.values[c]
            continue
        a = artist_key(track_info(bundle, catalog, t))
        if a:
            out[t] = a
    return out


@dataclass(frozen=True)
class Prepared:
    """A pool joined with the catalog and the listener's history, ready to rank."""

    pool: Pool
    ctx: Context
    titles: dict[str, str]


def prepare(
    bundle: Bundle,
    req: Request,
    pool: Pool,
    catalog: Mapping[str, CatalogTrack],
) -> Prepared:
    """Give the cold candidates their taste signal (:func:`taste_column`) and derive
    what the history forbids or penalises (the pool's facts are joined:
    :meth:`Pool.join` for tracks only the catalog topic describes).

    Every track still in the kept history (``history_len`` events) counts as
    heard and is not recommended again; dislikes, blocked artists and recently
    skipped artists come from the same state.
    """
    taste_column(bundle, req.user_id, pool, catalog)
    state = req.state
    heard = [h[0] for h in state.hist]
    artist_of = artists_of(bundle, catalog, list(dict.fromkeys([*state.neg_artist_of, *heard])))
    signals = artist_signals(state, artist_of, req.now_ms)
    ctx = Context(
        recent=frozenset(heard),
        disliked=frozenset(state.neg_tracks),
        blocked_artists=frozenset(signals.blocked),
        artist_skips=signals.skips,
    )
    titles = {t: str(track_info(bundle, catalog, t).get("title") or t) for t in pool.seeds}
    return Prepared(pool, ctx, titles)


def rank(
    prepared: Prepared,
    weights: Mapping[str, float],
    *,
    n: int,
    filters: Filters,
    lam: float,
    artist_gap: int,
    taste_weight: float = 0.0,
) -> list[Ranked]:
    """One arm's list from a prepared pool; ``taste_weight`` is the weight of the taste
    signal (cold tracks only), added to the arm's."""
    if taste_weight and "taste" in prepared.pool.signals:
        weights = {**weights, "taste": taste_weight}
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
