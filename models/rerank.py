"""Pure scoring and reranking of a candidate pool, column by column.

The reader gathers candidates and raw signals into a :class:`models.pool.Pool`
(one array per signal and per fact); this module turns it into a ranked,
explained, diverse list, with array operations over the whole pool and Python
objects only for the tracks it picks:

1. hard filters remove what the catalog flags as not music, recently played
   and disliked tracks, blocked and excluded artists, and tracks outside the
   request's genre/year filters;
2. every signal is min-max normalised over the tracks left (missing counts as 0),
   except the calibrated ones (:data:`CALIBRATED`), used as given;
3. the hybrid score is the bandit arm's weighted sum of normalised signals,
   minus a penalty per recent skip of the track's artist;
4. tracks whose link is dead are dropped;
5. MMR picks the list greedily, trading score against similarity to what is
   already picked (``lambda``), with a minimum gap between tracks of one artist.

Dead links go after scoring, so a track's link status changes no other track's
score: the API can rank with every link unknown, read the status of the picked
tracks only, and rank again without the dead ones, and get the list that
knowing every status first would give (``api.recommend.rank_alive``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from models.pool import DEAD, NO_CODE, Pool

SKIP_PENALTY = 0.15
"""Score removed per (decayed) recent skip of the track's artist."""
CALIBRATED = frozenset({"taste"})
"""Signals already in [0, 1] on a scale shared by every request (the taste classifier's
lift over the listener's usual, :mod:`models.taste`): not min-max normalised, since the
best of a few poor matches is still a poor match."""


@dataclass
class Candidate:
    """A picked track as a response describes it (a view of one row of its pool)."""

    track_id: str
    sources: list[str] = field(default_factory=list)
    artist: str | None = None
    genre: str | None = None
    year: int | None = None
    link: str = "unknown"
    seed: str | None = None  # the played track a content candidate came from
    position: int = -1  # in the pool


def candidate(pool: Pool, i: int) -> Candidate:
    """The candidate at pool position ``i``."""
    s = int(pool.seed[i])
    return Candidate(
        pool.track_id(i),
        pool.source_names(i),
        pool.artist_of(i),
        pool.genre_of(i),
        pool.year_of(i),
        pool.link_of(i),
        pool.seeds[s] if s >= 0 else None,
        i,
    )


@dataclass(frozen=True)
class Filters:
    """What the request allows (``genres`` in lower case)."""

    genres: frozenset[str] = frozenset()
    year_min: int | None = None
    year_max: int | None = None
    exclude_artists: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Context:
    """What the user's state says, joined with the catalog (artists by
    :func:`models.pool.artist_key`)."""

    recent: frozenset[str] = frozenset()
    disliked: frozenset[str] = frozenset()
    blocked_artists: frozenset[str] = frozenset()
    artist_skips: Mapping[str, float] = field(default_factory=dict)


@dataclass
class Ranked:
    """A picked track: its final score, per-signal contributions and a reason."""

    candidate: Candidate
    score: float
    contributions: dict[str, float]
    reason: str


def normalise(raw: np.ndarray) -> np.ndarray:
    """A signal column min-max normalised over its present values (absent, NaN -> 0)."""
    present = ~np.isnan(raw)
    col = np.zeros(len(raw))
    if present.any():
        values = raw[present]
        lo, hi = values.min(), values.max()
        if hi - lo < 1e-12:  # a constant signal says nothing beyond "present and > 0"
            col[present] = 1.0 if hi > 0 else 0.0
        else:
            col[present] = (values - lo) / (hi - lo)
    return col


def _codes(lookup: Sequence[int | None]) -> np.ndarray:
    return np.array([c for c in lookup if c is not None], np.int64)


def allowed(pool: Pool, filters: Filters, ctx: Context) -> np.ndarray:
    """Hard filters before scoring, as a mask over the pool: non-music, history,
    dislikes, blocked and excluded artists, genre and year."""
    ok = pool.music.copy()
    if ctx.recent or ctx.disliked:
        ok &= ~pool.mask(ctx.recent | ctx.disliked)
    banned = ctx.blocked_artists | filters.exclude_artists
    if banned:
        ok &= ~np.isin(pool.artist, _codes([pool.artists.code_of(a) for a in banned]))
    ok &= genre_and_year(filters, pool.genre, pool.year, pool.genres.code_of)
    return ok


def genre_and_year(
    filters: Filters,
    genre: np.ndarray,
    year: np.ndarray,
    code_of: Callable[[str], int | None],
) -> np.ndarray:
    """The request's genre and year filters as a mask over tracks: lower-case genre codes
    (``code_of`` a genre's code), years (NaN: none, which no year range allows)."""
    ok = np.ones(len(genre), bool)
    if filters.genres:
        ok &= np.isin(genre, _codes([code_of(g) for g in filters.genres]))
    with np.errstate(invalid="ignore"):
        if filters.year_min is not None:
            ok &= year >= filters.year_min  # NaN (no year) compares False
        if filters.year_max is not None:
            ok &= year <= filters.year_max
    return ok


def skip_penalty(pool: Pool, skips: Mapping[str, float]) -> np.ndarray:
    """Per candidate, the decayed count of recent skips of its artist."""
    out = np.zeros(len(pool))
    if not skips:
        return out
    pairs = [(pool.artists.code_of(a), v) for a, v in skips.items()]
    pairs = sorted((c, v) for c, v in pairs if c is not None)
    if not pairs:
        return out
    codes = np.array([c for c, _ in pairs], np.int64)
    values = np.array([v for _, v in pairs])
    at = np.minimum(np.searchsorted(codes, pool.artist), len(codes) - 1)
    hit = (codes[at] == pool.artist) & (pool.artist != NO_CODE)
    out[hit] = values[at[hit]]
    return out


def _parts(
    pool: Pool, keep: np.ndarray, weights: Mapping[str, float], ctx: Context
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Hybrid scores of the kept candidates, and the (signals, candidates) matrix of what
    each signal added (the last row, ``skips``, is the recent-skip penalty of the
    track's artist)."""
    used = [s for s, w in weights.items() if w != 0]
    parts = np.zeros((len(used) + 1, len(keep)))
    for j, s in enumerate(used):
        col = pool.signals.get(s)
        if col is not None:
            values = np.nan_to_num(col[keep]) if s in CALIBRATED else normalise(col[keep])
            parts[j] = weights[s] * values
    if ctx.artist_skips:
        parts[-1] = -SKIP_PENALTY * skip_penalty(pool, ctx.artist_skips)[keep]
    return parts.sum(axis=0), [*used, "skips"], parts


def _contributions(names: list[str], column: np.ndarray) -> dict[str, float]:
    return {s: round(float(v), 4) for s, v in zip(names, column, strict=True) if v}


def reason(
    c: Candidate,
    contributions: Mapping[str, float],
    titles: Mapping[str, str],
    mood_label: str | None = None,
) -> str:
    """A short human-readable reason from the strongest contribution."""
    positive = {k: v for k, v in contributions.items() if v > 0}
    top = max(positive, key=lambda k: positive[k]) if positive else None
    if top == "content" and c.seed:
        return f"because you played {titles.get(c.seed, 'a track you liked')}"
    if top == "mood" and mood_label:
        return f"matches your {mood_label}"
    return {
        "collab": "listeners with your taste play this",
        "realtime": "close to what you are listening to now",
        "content": "sounds like your recent plays",
        "trending": "popular right now",
        "fresh": "new in the catalog",
        "popularity": "a favourite with many listeners",
        "text": "matches your words",
        "mood": f"matches the mood{' ' + mood_label if mood_label else ''}",
        "audio": "sounds like your pick",
        "taste": "new here, and what you like to hear",
    }.get(top or "", "picked for variety")


HEAD_MIN = 64
"""MMR first works on this many best-scored candidates (or ``HEAD_PER_PICK`` per pick)."""
HEAD_PER_PICK = 8


@dataclass(frozen=True)
class Diversity:
    """What MMR compares, per candidate: its artist code (-1: unknown, never blocks) and
    its diversity vector, as a row (``row``) of one of the matrices in ``spaces``
    (``space``: which; -1: none). Vectors of different spaces are never compared."""

    artist: np.ndarray
    space: np.ndarray
    row: np.ndarray
    spaces: tuple[np.ndarray, ...]

    def take(self, at: np.ndarray) -> Diversity:
        return Diversity(self.artist[at], self.space[at], self.row[at], self.spaces)


def diversity(pool: Pool, at: np.ndarray) -> Diversity:
    """The diversity facts of pool positions ``at`` (tracks no artifact knows have no
    vector)."""
    rows = pool.rows[at]
    items = pool.items
    inside = rows < len(items)
    safe = np.where(inside, rows, 0)
    if len(items):
        space = np.where(inside, items.space[safe], -1)
        row = items.vrow[safe]
    else:
        space, row = np.full(len(rows), -1), np.zeros(len(rows), np.int64)
    return Diversity(pool.artist[at], space, row, items.vectors)


def mmr(div: Diversity, scores: np.ndarray, n: int, lam: float, artist_gap: int) -> list[int]:
    """Greedy MMR over the allowed candidates with a minimum same-artist gap.

    Candidates are visited in descending score order (ties by position); similarity
    is the inner product of diversity vectors of the same space (a track without
    a vector is similar to nothing). When the gap cannot be kept (too few artists),
    the best remaining track is taken anyway rather than returning a short list.

    The greedy steps run on the head of the score order only, and the answer is the
    same as over the whole pool: a candidate's MMR value never exceeds ``lam`` times
    its score (the similarity penalty starts at 0 and only grows, for ``0 <= lam <=
    1``), so a pick from the head whose value is at least that bound for the best
    candidate outside it is the pick the whole pool gives. When a step cannot show
    that (or the head runs out of allowed candidates), the head doubles and the
    steps start again.
    """
    m = len(scores)
    if m == 0 or n <= 0:
        return []
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    base = lam * s[order]
    size = min(m, max(HEAD_MIN, HEAD_PER_PICK * n)) if 0.0 <= lam <= 1.0 else m
    while True:
        picked = _mmr_head(div, order, base, size, n, lam, artist_gap)
        if picked is not None:
            return [int(order[p]) for p in picked]
        size = min(m, 2 * size)


def _mmr_head(
    div: Diversity,
    order: np.ndarray,
    base: np.ndarray,
    size: int,
    n: int,
    lam: float,
    artist_gap: int,
) -> list[int] | None:
    """MMR over the first ``size`` positions of ``order``; None when a pick could
    depend on a candidate outside them."""
    whole = size == len(order)
    bound = -np.inf if whole else float(base[size])  # no value outside the head exceeds it
    head = div.take(order[:size])
    mats = {}
    for sp in np.unique(head.space[head.space >= 0]).tolist():
        rows = np.flatnonzero(head.space == sp)
        mats[sp] = (rows, np.asarray(div.spaces[sp][head.row[rows]], dtype=np.float64))
    # artists as local codes; the last slot stands for "unknown" and never blocks
    known, local = np.unique(head.artist, return_inverse=True)
    local = np.where(head.artist >= 0, local.reshape(-1), len(known))
    picked_at = np.full(len(known) + 1, -(n + artist_gap + 1))  # step of its latest pick
    val = base[:size].copy()  # MMR value of each open candidate; -inf once picked
    sim_max = np.zeros(size)
    picked: list[int] = []
    for step in range(min(n, size)):
        choice = int(np.argmax(val))
        if val[choice] == -np.inf:
            break  # every candidate is picked
        if artist_gap and step:
            free = np.where(picked_at[local] >= step - artist_gap, -np.inf, val)
            spaced = int(np.argmax(free))
            if free[spaced] > -np.inf:
                choice = spaced
            elif not whole:
                return None  # an allowed candidate may wait outside the head
        if val[choice] < bound:
            return None
        picked.append(choice)
        val[choice] = -np.inf
        if local[choice] < len(known):
            picked_at[local[choice]] = step
        sp = int(head.space[choice])
        if sp >= 0:
            idx, mat = mats[sp]
            sims = mat @ mat[np.searchsorted(idx, choice)]
            sim_max[idx] = np.maximum(sim_max[idx], sims)
            still = idx[val[idx] > -np.inf]
            val[still] = base[still] - (1 - lam) * sim_max[still]
    if len(picked) < n and not whole:
        return None  # the head ran out before the list was full
    return picked


def rerank(
    pool: Pool,
    weights: Mapping[str, float],
    *,
    n: int,
    filters: Filters,
    ctx: Context,
    lam: float,
    artist_gap: int,
    titles: Mapping[str, str] | None = None,
    mood_label: str | None = None,
) -> list[Ranked]:
    """Filter, score, drop dead links, diversify and explain: at most ``n`` tracks."""
    keep = np.flatnonzero(allowed(pool, filters, ctx))
    if not keep.size:
        return []
    scores, names, parts = _parts(pool, keep, weights, ctx)
    live = np.flatnonzero(pool.link[keep] != DEAD)
    div = diversity(pool, keep[live])
    picked = [int(live[j]) for j in mmr(div, scores[live], n, lam, artist_gap)]
    out = []
    for i in picked:
        c = candidate(pool, int(keep[i]))
        contributions = _contributions(names, parts[:, i])
        out.append(
            Ranked(
                c,
                round(float(scores[i]), 4),
                contributions,
                reason(c, contributions, titles or {}, mood_label),
            )
        )
    return out
