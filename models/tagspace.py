"""The catalog's descriptive space: its tag vocabulary, embedded, and an item x tag matrix (pure).

A mood, activity or situation query rarely shares a word with the tags that
describe the music it wants ("something to fall asleep to" means *chillout*,
*ambient*, *mellow*). The query is embedded with the same sentence model as the
tags and expanded into the :data:`TOP_TAGS` closest tags of the vocabulary,
weighted by a softmax of their similarity (:data:`TEMPERATURE`). Closeness is
the cosine, less :data:`MOOD_PENALTY` times the distance between the tag's
valence/arousal (the content artifact's text -> mood map applied to the tag's
vector) and the query's detected mood: "grieving" is close to "death metal" in
words, far from it in mood.

An item's score is the sum of the expanded tags' weights over its tags. Each
of its tags counts by how many listeners gave it (``n / (n +``
:data:`LISTENER_HALF` ``)``, all of the item's tags) when the catalog carries
those counts (Last.fm does), else by its position in the item's tag list (tags
are listed most-used first): a tag one listener gave is weak evidence, one that
twenty gave is strong.

Tags that describe the listener's relation to the music rather than the music
("seen live", "favourites", "awesome", "love", "<3") are left out of the
vocabulary (:func:`is_generic`), as are tags that only name the artist they
are on, and tags on fewer than :func:`least_items` items.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

TOP_TAGS = 24
"""Tags a query expands into."""
TEMPERATURE = 0.1
"""Softmax temperature over the expanded tags' cosine similarities."""
MIN_TAG_ITEMS = 3
"""Least items a tag must be on to enter the vocabulary..."""
MIN_TAG_SHARE = 0.002
"""...and least share of the catalog (36 of Last.fm's 17,632 artists): rarer tags are
mostly one listener's private words ("songs that make me sleepy")."""
MOOD_PENALTY = 0.1
"""Cosine given up per unit of valence/arousal distance between a tag and the query."""
LISTENER_HALF = 2.0
"""Listeners at which a tag counts half on an item (weight ``n / (n + LISTENER_HALF)``)."""
TAG_TEMPLATE = "{tag} music"
"""How a tag is phrased before it is embedded."""
GENERIC_TAGS = frozenset(
    {
        "seen live", "favourite songs", "favorite songs", "favorites", "favourites", "favorite",
        "favourite", "awesome", "love", "loved", "love it", "love at first listen", "<3",
        "amazing", "cool", "perfect", "genius", "brilliant", "masterpiece", "the best", "best",
        "legend", "hot", "nice", "addictive", "guilty pleasure", "guilty pleasures", "wow",
        "albums i own", "check out", "to listen", "beautiful", "lovely", "good", "great",
        "fucking awesome", "my music", "favorite bands", "favourite artists", "favorite artists",
        "best song ever", "best songs ever", "icon", "tags", "as", "unreleased", "cover",
        "covers", "remix", "loved tracks", "love this song", "good stuff", "epic win",
    }
)  # fmt: skip
"""Tags about the listener (or the tagging), not the music."""
_GENERIC = re.compile(
    r"favou?rit|seen live|\bmy (?:fav|music|top)|\bi own\b|check ?out|to listen|\bbest\b|"
    r"awesome|amazing|\bloved?\b(?! songs?| rock| metal| ballads?)|<3|guilty pleasure|"
    r"listeners|spotify|last\.?fm|\bwow\b|\bfuck"
)


def is_generic(tag: str) -> bool:
    """Whether a tag describes the listener's relation to the music, not the music."""
    t = tag.strip().lower()
    return not t or t in GENERIC_TAGS or bool(_GENERIC.search(t))


def rank_weights(n: int) -> np.ndarray:
    """Weight of an item's n tags by position (most-used first): 1, 0.63, 0.5, ..."""
    return np.asarray(1.0 / np.log2(np.arange(n) + 2.0), dtype=np.float32)


@dataclass(frozen=True)
class TagSpace:
    """Vocabulary, unit tag vectors (t x d), the items x tags weight matrix and, when
    known, each tag's valence and arousal (t x 2)."""

    tags: list[str]
    vectors: np.ndarray
    items: sp.csr_matrix
    moods: np.ndarray | None = None

    def expand(
        self,
        query: np.ndarray,
        k: int | None = None,
        temperature: float | None = None,
        target: tuple[float, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The query's k closest tags (rows) and their softmax weights (sum 1); defaults
        :data:`TOP_TAGS` and :data:`TEMPERATURE`. ``target``, the query's valence and
        arousal, moves tags of another mood down (:data:`MOOD_PENALTY`)."""
        k = TOP_TAGS if k is None else k
        temperature = TEMPERATURE if temperature is None else temperature
        if not self.tags:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        sims = self.vectors @ np.asarray(query, dtype=np.float32).ravel()
        if target is not None and self.moods is not None:
            far = np.linalg.norm(self.moods - np.asarray(target, dtype=np.float32), axis=1)
            sims = sims - MOOD_PENALTY * far
        k = max(1, min(k, sims.size))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        w = np.exp((sims[top] - sims[top[0]]) / temperature)
        return top.astype(np.int64), np.asarray(w / w.sum(), dtype=np.float32)

    def scores(
        self, rows: np.ndarray, weights: np.ndarray, items: np.ndarray | None = None
    ) -> np.ndarray:
        """Per item (of ``items``, default all): the sum of the expanded tags' weights
        over the item's tags."""
        w = np.zeros(len(self.tags), dtype=np.float32)
        w[rows] = weights
        m = self.items if items is None else self.items[items]
        return np.asarray(m @ w, dtype=np.float32).ravel()


def vocabulary(
    item_tags: Sequence[Sequence[str]],
    artists: Sequence[str | None] = (),
    min_items: int = MIN_TAG_ITEMS,
) -> list[str]:
    """The descriptive vocabulary: lower-case tags on ``min_items`` items or more, not
    generic and not only naming the artist they are on (sorted)."""
    used: Counter[str] = Counter()
    naming: Counter[str] = Counter()
    for i, tags in enumerate(item_tags):
        artist = (artists[i] or "").strip().lower() if i < len(artists) else ""
        for t in {t.strip().lower() for t in tags}:
            used[t] += 1
            naming[t] += t == artist
    return sorted(
        t for t, n in used.items() if n >= min_items and naming[t] < n and not is_generic(t)
    )


def listener_weight(n: float) -> float:
    """Weight of a tag that ``n`` listeners gave an item, in [0, 1)."""
    return n / (n + LISTENER_HALF) if n > 0 else 0.0


def item_matrix(
    item_tags: Sequence[Sequence[str]],
    tags: Sequence[str],
    counts: Sequence[Mapping[str, float] | None] = (),
) -> sp.csr_matrix:
    """Items x tags: :func:`listener_weight` of each tag of an item whose listener counts
    are known (``counts[i]``: tag -> listeners), else the position weight
    (:func:`rank_weights`) of each tag in its list."""
    col = {t: j for j, t in enumerate(tags)}
    rows, cols, vals = [], [], []
    for i, its in enumerate(item_tags):
        known = counts[i] if i < len(counts) else None
        if known:
            merged: dict[str, float] = {}
            for t, n in known.items():
                key = t.strip().lower()
                merged[key] = merged.get(key, 0.0) + float(n)
            for t, n in merged.items():
                if t in col and n > 0:
                    rows.append(i)
                    cols.append(col[t])
                    vals.append(listener_weight(n))
            continue
        order = list(dict.fromkeys(t.strip().lower() for t in its))
        w = rank_weights(len(order))
        for r, t in enumerate(order):
            if t in col:
                rows.append(i)
                cols.append(col[t])
                vals.append(float(w[r]))
    return sp.csr_matrix(
        (np.asarray(vals, dtype=np.float32), (rows, cols)),
        shape=(len(item_tags), len(tags)),
        dtype=np.float32,
    )


def least_items(n_items: int) -> int:
    """Least items a tag must be on in a catalog of ``n_items``."""
    return max(MIN_TAG_ITEMS, math.ceil(MIN_TAG_SHARE * n_items))


def build(
    item_tags: Sequence[Sequence[str]],
    encode: Callable[[list[str]], np.ndarray],
    artists: Sequence[str | None] = (),
    min_items: int | None = None,
    *,
    counts: Sequence[Mapping[str, float] | None] = (),
    mood: Callable[[np.ndarray], np.ndarray] | None = None,
) -> TagSpace:
    """The tag space of a catalog; ``encode`` embeds texts as unit vectors, ``counts``
    (optional, per item) gives each tag's listeners (:func:`item_matrix`), ``mood``
    (optional) maps tag vectors to valence and arousal."""
    least = least_items(len(item_tags)) if min_items is None else min_items
    tags = vocabulary(item_tags, artists, least)
    vectors = (
        np.asarray(encode([TAG_TEMPLATE.format(tag=t) for t in tags]), dtype=np.float32)
        if tags
        else np.zeros((0, 1), dtype=np.float32)
    )
    moods = (
        np.clip(np.asarray(mood(vectors), dtype=np.float32), -1.0, 1.0)
        if mood is not None and tags
        else None
    )
    return TagSpace(tags, vectors, item_matrix(item_tags, tags, counts), moods)
