"""Pure scoring and reranking of candidate tracks.

The reader gathers candidates and raw signals; this module turns them into a
ranked, explained, diverse list:

1. hard filters remove what the catalog flags as not music, recently played
   and disliked tracks, blocked and excluded artists, and tracks outside the
   request's genre/year filters;
2. every signal is min-max normalised over the tracks left (missing counts as 0);
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SKIP_PENALTY = 0.15
"""Score removed per (decayed) recent skip of the track's artist."""


@dataclass
class Candidate:
    """One candidate track with its raw signals and what is known about it."""

    track_id: str
    signals: dict[str, float] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    artist: str | None = None
    genre: str | None = None
    year: int | None = None
    link: str = "unknown"
    seed: str | None = None  # the played track a content candidate came from
    vector: np.ndarray | None = None  # for diversity (any space; compared within a request)
    music: bool = True  # False: the catalog flags it as not music (a podcast, a test tone)


@dataclass(frozen=True)
class Filters:
    """What the request allows."""

    genres: frozenset[str] = frozenset()
    year_min: int | None = None
    year_max: int | None = None
    exclude_artists: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Context:
    """What the user's state says, joined with the catalog."""

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


def normalise(candidates: Sequence[Candidate], signals: Sequence[str]) -> dict[str, np.ndarray]:
    """Min-max normalised signal columns over the candidates (absent -> 0)."""
    out = {}
    for s in signals:
        raw = np.array([c.signals.get(s, np.nan) for c in candidates], dtype=np.float64)
        present = ~np.isnan(raw)
        col = np.zeros(len(candidates))
        if present.any():
            lo, hi = raw[present].min(), raw[present].max()
            if hi - lo < 1e-12:  # a constant signal says nothing beyond "present and > 0"
                col[present] = 1.0 if hi > 0 else 0.0
            else:
                col[present] = (raw[present] - lo) / (hi - lo)
        out[s] = col
    return out


def allowed(c: Candidate, filters: Filters, ctx: Context) -> bool:
    """Hard filters before scoring: non-music, history, dislikes, artists, genre and year."""
    if not c.music or c.track_id in ctx.recent or c.track_id in ctx.disliked:
        return False
    if c.artist is not None and (
        c.artist in ctx.blocked_artists or c.artist in filters.exclude_artists
    ):
        return False
    if filters.genres and (c.genre is None or c.genre.lower() not in filters.genres):
        return False
    if filters.year_min is not None and (c.year is None or c.year < filters.year_min):
        return False
    return not (filters.year_max is not None and (c.year is None or c.year > filters.year_max))


def _parts(
    candidates: Sequence[Candidate], weights: Mapping[str, float], ctx: Context
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Hybrid scores, and the (signals, candidates) matrix of what each signal added
    (the last row, ``skips``, is the recent-skip penalty of the track's artist)."""
    used = [s for s, w in weights.items() if w != 0]
    cols = normalise(candidates, used)
    parts = np.zeros((len(used) + 1, len(candidates)))
    for j, s in enumerate(used):
        parts[j] = weights[s] * cols[s]
    if ctx.artist_skips:
        skips = np.array([ctx.artist_skips.get(c.artist or "", 0.0) for c in candidates])
        parts[-1] = -SKIP_PENALTY * skips
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
    }.get(top or "", "picked for variety")


HEAD_MIN = 64
"""MMR first works on this many best-scored candidates (or ``HEAD_PER_PICK`` per pick)."""
HEAD_PER_PICK = 8


def mmr(
    candidates: Sequence[Candidate], scores: np.ndarray, n: int, lam: float, artist_gap: int
) -> list[int]:
    """Greedy MMR over the allowed candidates with a minimum same-artist gap.

    Candidates are visited in descending score order (ties by position); similarity
    is the inner product of diversity vectors of the same dimension (a track without
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
    m = len(candidates)
    if m == 0 or n <= 0:
        return []
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    base = lam * s[order]
    size = min(m, max(HEAD_MIN, HEAD_PER_PICK * n)) if 0.0 <= lam <= 1.0 else m
    while True:
        picked = _mmr_head(candidates, order, base, size, n, lam, artist_gap)
        if picked is not None:
            return [int(order[p]) for p in picked]
        size = min(m, 2 * size)


def _mmr_head(
    candidates: Sequence[Candidate],
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
    head = order[:size]
    base = base[:size]
    codes: dict[str, int] = {}
    artist = np.array(  # artist codes in visiting order; -1: unknown (never blocks)
        [
            -1 if a is None else codes.setdefault(a, len(codes))
            for a in (candidates[i].artist for i in head)
        ],
        dtype=np.int64,
    )
    groups: dict[int, list[int]] = {}
    for pos, i in enumerate(head):
        v = candidates[i].vector
        if v is not None:
            groups.setdefault(v.shape[0], []).append(pos)
    mats = {
        d: (
            np.asarray(rows),
            np.stack([candidates[head[p]].vector for p in rows]).astype(np.float64),
        )
        for d, rows in groups.items()
    }
    dim_of = np.zeros(size, dtype=np.int64)
    for d, rows in groups.items():
        dim_of[rows] = d
    sim_max = np.zeros(size)
    open_ = np.ones(size, dtype=bool)
    picked: list[int] = []
    while len(picked) < n and open_.any():
        val = np.where(open_, base - (1 - lam) * sim_max, -np.inf)
        allowed = open_
        if artist_gap and picked:
            recent = artist[picked[-artist_gap:]]
            recent = recent[recent >= 0]
            if recent.size:
                allowed = open_ & ~np.isin(artist, recent)
        if allowed.any():
            pool = allowed
        elif whole:
            pool = open_
        else:
            return None  # an allowed candidate may wait outside the head
        choice = int(np.argmax(np.where(pool, val, -np.inf)))
        if val[choice] < bound:
            return None
        picked.append(choice)
        open_[choice] = False
        d = int(dim_of[choice])
        if d:
            idx, mat = mats[d]
            sims = mat @ mat[np.searchsorted(idx, choice)]
            sim_max[idx] = np.maximum(sim_max[idx], sims)
    if len(picked) < n and not whole:
        return None  # the head ran out before the list was full
    return picked


def rerank(
    candidates: Sequence[Candidate],
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
    kept = [c for c in candidates if allowed(c, filters, ctx)]
    if not kept:
        return []
    scores, names, parts = _parts(kept, weights, ctx)
    live = [i for i, c in enumerate(kept) if c.link != "dead"]
    picked = [live[j] for j in mmr([kept[i] for i in live], scores[live], n, lam, artist_gap)]
    out = []
    for i in picked:
        contributions = _contributions(names, parts[:, i])
        out.append(
            Ranked(
                kept[i],
                round(float(scores[i]), 4),
                contributions,
                reason(kept[i], contributions, titles or {}, mood_label),
            )
        )
    return out


def merge(groups: Sequence[Sequence[Candidate]]) -> list[Candidate]:
    """Union candidates from several sources, keeping every signal and source seen."""
    by_id: dict[str, Candidate] = {}
    for group in groups:
        for c in group:
            have = by_id.get(c.track_id)
            if have is None:
                by_id[c.track_id] = c
                continue
            for s, v in c.signals.items():
                have.signals[s] = max(v, have.signals.get(s, v))
            have.sources += [s for s in c.sources if s not in have.sources]
            have.seed = have.seed or c.seed
            if have.vector is None:
                have.vector = c.vector
    return list(by_id.values())


def describe(candidates: Sequence[Any]) -> dict[str, int]:
    """Candidates per source (for metrics and the response)."""
    counts: dict[str, int] = {}
    for c in candidates:
        for s in c.sources:
            counts[s] = counts.get(s, 0) + 1
    return counts
