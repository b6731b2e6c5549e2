"""Free-text queries: what kind of query it is, and what mood it asks for (pure).

Mood is valence (negative .. positive) and arousal (calm .. energetic), both in
[-1, 1]. It comes from two sources, blended:

* a lexicon of mood words and phrases with hand-assigned values (the content
  artifact's ``lexicon.json``), matched as whole words or phrases;
* a linear regression from the query's text embedding (``text_to_mood``), so a
  query with no lexicon word ("i miss my ex") still lands somewhere sensible.

With lexicon hits the blend leans on them (they are explicit); without, the
regression alone decides.

What a query is about decides where it is looked up (:func:`rank`): a catalog
name (:mod:`models.intent`) goes to name text and the text space; a genre, mood,
activity or situation goes to the catalog's descriptive space
(:mod:`models.tagspace`: tags, plus valence/arousal and audio as smaller
parts); a mix of a name and descriptive words blends both. API and
``encore eval --queries`` both rank with :func:`rank`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from models.intent import Intent, NameIndex, classify
from models.pool import Items, Pool, PoolBuilder
from models.queryindex import QueryIndex
from models.tagspace import TagSpace

_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class Mood:
    """Detected mood of a query."""

    valence: float
    arousal: float
    words: tuple[str, ...]
    source: str  # "lexicon", "regression", "blend" or "none"

    @property
    def label(self) -> str:
        """A two-word description, e.g. 'calm, positive'."""
        energy = (
            "energetic" if self.arousal > 0.25 else "calm" if self.arousal < -0.25 else "steady"
        )
        tone = "happy" if self.valence > 0.25 else "sad" if self.valence < -0.25 else "neutral"
        return f"{energy}, {tone}"


def tokens(text: str) -> list[str]:
    """Lower-case word tokens."""
    return _WORD.findall(text.lower())


def normalise_text(text: str) -> str:
    """A query as its embedding is cached under: case-folded, whitespace collapsed."""
    return " ".join(text.casefold().split())


def lexicon_hits(text: str, lexicon: Mapping[str, tuple[float, float]]) -> list[str]:
    """Lexicon entries (words or phrases) found in the text, longest first, no overlaps."""
    words = tokens(text)
    joined = " " + " ".join(words) + " "
    hits: list[str] = []
    for entry in sorted(lexicon, key=lambda e: (-len(e), e)):
        needle = " " + " ".join(tokens(entry)) + " "
        if needle.strip() and needle in joined:
            hits.append(entry)
            joined = joined.replace(needle, " | ")
    return hits


def detect_mood(
    text: str,
    embedding: np.ndarray | None,
    lexicon: Mapping[str, tuple[float, float]],
    coef: np.ndarray | None,
    bias: np.ndarray | None,
    lexicon_weight: float = 0.6,
) -> Mood:
    """Valence/arousal of a query from the lexicon and the embedding regression."""
    hits = lexicon_hits(text, lexicon)
    lex = np.mean([lexicon[h] for h in hits], axis=0) if hits else None
    reg = None
    if embedding is not None and coef is not None:
        reg = embedding.astype(np.float64) @ coef.astype(np.float64)
        if bias is not None:
            reg = reg + bias
        reg = np.clip(reg, -1.0, 1.0)
    if lex is not None and reg is not None:
        v, a = lexicon_weight * lex + (1 - lexicon_weight) * reg
        return Mood(float(v), float(a), tuple(hits), "blend")
    if lex is not None:
        return Mood(float(lex[0]), float(lex[1]), tuple(hits), "lexicon")
    if reg is not None:
        return Mood(float(reg[0]), float(reg[1]), (), "regression")
    return Mood(0.0, 0.0, (), "none")


def mood_similarity(moods: np.ndarray, target: tuple[float, float]) -> np.ndarray:
    """Closeness of tracks' (valence, arousal) to a target, in [0, 1]."""
    d = np.linalg.norm(moods - np.asarray(target, dtype=np.float32), axis=1)
    return np.asarray(1.0 - d / np.sqrt(8.0), dtype=np.float32)


WEIGHTS: dict[str, dict[str, float]] = {
    "mood": {"tags": 0.4, "mood": 0.1, "audio": 0.05, "prior": 0.5},
    "genre": {"tags": 0.45, "mood": 0.0, "audio": 0.05, "prior": 0.5},
    "mix": {"tags": 0.3, "artist": 0.3, "mood": 0.05, "prior": 0.35},
    "artist": {"name": 0.5, "text": 0.4, "prior": 0.1},
}
"""Blend of each intent's parts (global; see ``reports/lastfm-2k/queries.md``)."""
TIER_PRIOR = {"head": 1.0, "mid": 0.6, "tail": 0.3, "cold": 0.0}
"""Popularity tier -> prior in [0, 1] (well-known items carry more, and more reliable, tags)."""
GENRE_TAGS = frozenset(
    {
        "rock", "pop", "jazz", "blues", "metal", "folk", "country", "soul", "funk", "punk",
        "reggae", "ska", "disco", "house", "techno", "trance", "ambient", "classical",
        "electronic", "electronica", "indie", "alternative", "hip-hop", "hip hop", "rap", "rnb",
        "grunge", "emo", "hardcore", "industrial", "gothic", "new wave", "synthpop", "dubstep",
        "drum and bass", "trip-hop", "post-rock", "shoegaze", "britpop", "latin", "gospel",
        "opera", "swing", "bossa nova", "heavy metal", "death metal", "post-punk",
    }
)  # fmt: skip
"""Well-known genre names, besides the catalog's own genre field."""
AUDIO_SEEDS = 10
"""Top descriptive matches whose audio centroid is the query's audio target."""


@dataclass(frozen=True)
class QuerySpace:
    """What :func:`rank` needs besides the content arrays, built once per content version."""

    tags: TagSpace
    names: NameIndex
    prior: np.ndarray  # (n,) in [0, 1]
    has_audio: np.ndarray  # (n,) bool: real (or imputed) audio features
    genres: frozenset[str]
    descriptive: frozenset[str]
    index: QueryIndex | None = None
    """Candidate indices of a large catalog (None: every item is scored)."""


@dataclass(frozen=True)
class Ranking:
    """A ranked answer: rows and scores, best first, with what it rests on."""

    intent: Intent
    rows: np.ndarray
    scores: np.ndarray
    tags: tuple[tuple[str, float], ...] = ()
    parts: dict[str, float] = field(default_factory=dict)

    @property
    def signal(self) -> str:
        """The rerank signal name: ``mood`` for descriptive answers, ``text`` for names."""
        return "mood" if self.intent.kind in ("mood", "mix") else "text"


def space_from_items(
    items: list[dict[str, object]], tags: TagSpace, extra_genres: frozenset[str] = frozenset()
) -> QuerySpace:
    """A :class:`QuerySpace` from the content artifact's ``items.json`` and tag space."""
    names: list[tuple[str, int]] = []
    for i, it in enumerate(items):
        for key in ("artist", "title"):
            v = it.get(key)
            if isinstance(v, str) and v:
                names.append((v, i))
    genres = {str(it["genre"]).lower() for it in items if it.get("genre")}
    prior = np.array(
        [TIER_PRIOR.get(str(it.get("popularity_tier") or "cold"), 0.0) for it in items],
        dtype=np.float32,
    )
    audio = np.array([bool(it.get("has_audio")) for it in items], dtype=bool)
    vocab = frozenset(tags.tags)
    return QuerySpace(
        tags,
        NameIndex.build(names),
        prior,
        audio,
        frozenset(genres | (GENRE_TAGS & vocab) | extra_genres),
        vocab,
    )


def _unit_max(x: np.ndarray) -> np.ndarray:
    top = float(x.max()) if x.size else 0.0
    return np.asarray(x / top if top > 0 else np.zeros_like(x), dtype=np.float32)


def rank(
    query: str,
    vec: np.ndarray,
    space: QuerySpace,
    *,
    text: np.ndarray,
    mood: np.ndarray,
    audio: np.ndarray | None,
    target: tuple[float, float] | None,
    k: int,
    lexicon: frozenset[str] = frozenset(),
) -> Ranking:
    """The top-k items for a query (``vec`` its unit embedding; ``text``, ``mood`` and
    ``audio`` the content artifact's item arrays; ``target`` the detected valence and
    arousal). Ties go to the lower row.

    With ``space.index`` (a large catalog) only the items its approximate indices
    return are scored (:mod:`models.queryindex`); without, every item is."""
    intent = classify(
        query, space.names, genres=space.genres, descriptive=space.descriptive | lexicon
    )
    w = WEIGHTS[intent.kind]
    idx = space.index
    named = np.asarray(sorted(intent.rows), dtype=np.int64)
    tags: tuple[tuple[str, float], ...] = ()
    if intent.kind == "artist":
        rows = None if idx is None else _union(named, idx.text_rows(vec), idx.prior_rows())
        total = (
            w["prior"] * _take(space.prior, rows)
            + w["name"] * _flag(named, rows, len(space.prior))
            + w["text"] * np.clip(_take(text, rows) @ vec, 0.0, 1.0)
        )
        return _top(intent, total, rows, k, tags, w)
    tag_rows, weights = space.tags.expand(vec, target=target)
    tags = tuple(
        (space.tags.tags[r], round(float(x), 3)) for r, x in zip(tag_rows, weights, strict=True)
    )
    seed = None
    if intent.kind == "mix":
        seed = text[list(intent.rows)].mean(axis=0)
        seed = seed / max(float(np.linalg.norm(seed)), 1e-9)
    rows = None
    if idx is not None:
        found = [named, idx.prior_rows()]
        found.append(idx.tag_rows(tag_rows) if space.tags.tags else idx.text_rows(vec))
        if target is not None and w.get("mood"):
            found.append(idx.mood_rows(target))
        if seed is not None:
            found.append(idx.text_rows(seed))
        rows = _union(*found)

    def descriptive(at: np.ndarray | None) -> np.ndarray:
        if space.tags.tags:
            return space.tags.scores(tag_rows, weights, at)
        # no tag space published: the text space
        return np.asarray(np.clip(_take(text, at) @ vec, 0.0, 1.0), dtype=np.float32)

    scale = _unit_max if space.tags.tags else np.asarray
    raw = descriptive(rows)
    descr = scale(raw)
    centre = None
    if audio is not None and w.get("audio") and space.has_audio.any():
        centre = _audio_centre(descr, _take(audio, rows), _take(space.has_audio, rows))
        if centre is not None and idx is not None and rows is not None:
            new = _new_rows(rows, idx.audio_rows(centre))
            if new.size:
                grown = np.concatenate([rows, new])
                order = np.argsort(grown, kind="stable")
                rows = grown[order]
                descr = scale(np.concatenate([raw, descriptive(new)])[order])
    total = w.get("prior", 0.0) * _take(space.prior, rows) + w["tags"] * descr
    if target is not None and w.get("mood"):
        total = total + w["mood"] * mood_similarity(_take(mood, rows), target)
    if centre is not None and audio is not None:
        has = _take(space.has_audio, rows)
        near_sound = np.zeros(len(total), dtype=np.float32)
        near_sound[has] = np.clip(_take(audio, rows)[has] @ centre, 0.0, 1.0)
        total = total + w["audio"] * near_sound
    if seed is not None:
        near = np.clip(_take(text, rows) @ seed, 0.0, 1.0)
        near[_flag(named, rows, len(space.prior)) > 0] = 1.0
        total = total + w["artist"] * near
    return _top(intent, total, rows, k, tags, w)


def _take(a: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """``a`` at ``rows`` (every row for None)."""
    return a if rows is None else a[rows]


def _union(*found: np.ndarray) -> np.ndarray:
    """Distinct rows, ascending."""
    rows = np.sort(np.concatenate([np.asarray(f, dtype=np.int64).ravel() for f in found]))
    return rows[np.concatenate(([True], rows[1:] != rows[:-1]))] if rows.size else rows


def _new_rows(rows: np.ndarray, found: np.ndarray) -> np.ndarray:
    """The distinct ``found`` not in ``rows`` (ascending)."""
    if not rows.size:
        return _union(found)
    at = np.searchsorted(rows, found)
    known = (at < rows.size) & (rows[np.minimum(at, rows.size - 1)] == found)
    return _union(found[~known])


def _flag(named: np.ndarray, rows: np.ndarray | None, n: int) -> np.ndarray:
    """1 where ``rows`` (every row for None) is one of ``named``, else 0."""
    if rows is None:
        out = np.zeros(n, dtype=np.float32)
        out[named] = 1.0
        return out
    return np.isin(rows, named).astype(np.float32)


def _top(
    intent: Intent,
    total: np.ndarray,
    rows: np.ndarray | None,
    k: int,
    tags: tuple[tuple[str, float], ...],
    w: dict[str, float],
) -> Ranking:
    """The k best of ``total`` (scores of ``rows``, ascending; every row for None),
    score descending then row ascending."""
    n = len(total)
    k = max(0, min(k, n))
    top = np.arange(n)[:k]
    if 0 < k < n:  # the k-th score's ties go to the lower rows too
        kth = total[np.argpartition(-total, k - 1)[k - 1]]
        above = np.flatnonzero(total > kth)
        top = np.concatenate([above, np.flatnonzero(total == kth)[: k - above.size]])
    top = top[np.lexsort((top, -total[top]))]
    found = top if rows is None else rows[top]
    return Ranking(intent, found.astype(np.int64), total[top].astype(np.float32), tags, dict(w))


def _audio_centre(descr: np.ndarray, audio: np.ndarray, has: np.ndarray) -> np.ndarray | None:
    """The unit centroid of the :data:`AUDIO_SEEDS` best descriptive matches with audio
    (None when no match has audio)."""
    cand = np.flatnonzero(has & (descr > 0))
    if not cand.size:
        return None
    seeds = cand[np.argsort(-descr[cand], kind="stable")[:AUDIO_SEEDS]]
    centre = audio[seeds].mean(axis=0)
    return np.asarray(centre / max(float(np.linalg.norm(centre)), 1e-9), dtype=np.float32)


def candidates(ranking: Ranking, items: Items) -> Pool:
    """The ranked rows as a rerank pool, their score under :attr:`Ranking.signal`
    (``items``: the item rows of the content model the ranking ran on, which come
    first)."""
    out = PoolBuilder(items)
    out.add(ranking.intent.kind, np.asarray(ranking.rows), {ranking.signal: ranking.scores})
    return out.build()


def rerank_weights(ranking: Ranking) -> dict[str, float]:
    """Rerank weights for :func:`candidates` (the ranking's score is the whole score)."""
    return {ranking.signal: 1.0}
