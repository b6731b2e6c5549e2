"""Where a query's candidates come from in a large catalog: one approximate index per
space the query ranker reads (pure; built once per content version).

:func:`models.query.rank` scores every item of a small catalog. Above
:data:`EXACT_MAX` items it scores only the union of what these indices return,
so its cost stays nearly flat as the catalog grows:

* **text**: the text space's FAISS index (``text.faiss``, HNSW above
  :data:`models.index.FLAT_MAX`), :data:`POOL_TEXT` nearest items to the query
  (artist queries) or to the named items' centroid (mixes);
* **tags**: per tag and prior tier, the :data:`POOL_TAG` items carrying the tag
  with the most weight (a posting list), so a query's expanded tags name their
  best items without a pass over the items x tags matrix;
* **mood**: per prior tier, a k-d tree of the items' valence and arousal,
  :data:`POOL_MOOD` nearest to the query's mood;
* **audio**: the audio space's FAISS index, :data:`POOL_AUDIO` nearest to the
  centroid of the best descriptive matches;
* **prior**: the first :data:`POOL_PRIOR` items of the best tier.

Lists are kept per prior tier because the prior (a popularity tier) is a large
part of every blend: the best items of a lower tier rarely outrank the best of
a higher one, but each tier's best are needed to rank them. The union (a few
thousand rows) is then scored exactly, with the same blend as the full scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from models.index import build_index, index_kind, search

EXACT_MAX = 20_000
"""Catalogs up to this many items are ranked by scoring every item (no candidates)."""
POOL_TEXT = 1_000
"""Nearest items in the text space per text lookup."""
POOL_TAG = 100
"""Best items per tag and prior tier."""
POOL_MOOD = 200
"""Nearest items in valence/arousal per prior tier."""
POOL_AUDIO = 200
"""Nearest items to the audio target."""
POOL_PRIOR = 200
"""Items of the best prior tier taken whatever the query."""


@dataclass(frozen=True)
class QueryIndex:
    """Approximate lookups into each space of the query ranker (rows, int64, unsorted)."""

    text: Any
    audio: Any | None
    tiers: tuple[np.ndarray, ...]
    """Rows of each prior tier, best tier first, ascending."""
    moods: tuple[cKDTree, ...]
    """Per tier: a k-d tree over its rows' valence and arousal."""
    postings: np.ndarray
    """(tags, tiers, tag pool) int32: each tag's heaviest rows per tier, -1 padded."""
    text_pool: int = POOL_TEXT
    mood_pool: int = POOL_MOOD
    audio_pool: int = POOL_AUDIO
    prior_pool: int = POOL_PRIOR

    def text_rows(self, vec: np.ndarray) -> np.ndarray:
        """The items closest to ``vec`` in the text space."""
        return _found(search(self.text, vec, self.text_pool)[1])

    def audio_rows(self, centre: np.ndarray) -> np.ndarray:
        """The items closest to ``centre`` in the audio space (none without one)."""
        if self.audio is None:
            return np.empty(0, dtype=np.int64)
        return _found(search(self.audio, centre, self.audio_pool)[1])

    def tag_rows(self, tags: np.ndarray) -> np.ndarray:
        """The posted items of the given tag rows, every tier."""
        found = self.postings[np.asarray(tags, dtype=np.int64)].ravel()
        return found[found >= 0].astype(np.int64)

    def mood_rows(self, target: tuple[float, float]) -> np.ndarray:
        """Per tier, the items whose valence and arousal are closest to ``target``."""
        out = [np.empty(0, dtype=np.int64)]
        for rows, tree in zip(self.tiers, self.moods, strict=True):
            j = min(self.mood_pool, len(rows))
            if j:
                _, near = tree.query(np.asarray(target, dtype=np.float64), k=j)
                out.append(rows[np.atleast_1d(near)])
        return np.concatenate(out)

    def prior_rows(self) -> np.ndarray:
        """The first items of the best tier."""
        return self.tiers[0][: self.prior_pool] if self.tiers else np.empty(0, dtype=np.int64)


def _found(ids: np.ndarray) -> np.ndarray:
    ids = ids.ravel()
    return ids[ids >= 0].astype(np.int64)


def tiers(prior: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows of each distinct prior value, highest first."""
    return tuple(np.flatnonzero(prior == v).astype(np.int64) for v in np.unique(prior)[::-1])


def postings(items: sp.csr_matrix, groups: tuple[np.ndarray, ...], pool: int) -> np.ndarray:
    """Per tag (column of ``items``) and row group, the ``pool`` rows with the largest
    weight (ties: lower row first), -1 where fewer carry the tag."""
    n_tags = items.shape[1]
    out = np.full((n_tags, len(groups), pool), -1, dtype=np.int32)
    coo = items.tocoo()
    group = np.zeros(items.shape[0], dtype=np.int64)
    for g, rows in enumerate(groups):
        group[rows] = g
    row = coo.row.astype(np.int64)
    col = coo.col.astype(np.int64)
    order = np.lexsort((row, -coo.data, group[row], col))
    key = col[order] * len(groups) + group[row[order]]
    start = np.r_[0, np.flatnonzero(np.diff(key)) + 1]
    first = np.repeat(start, np.diff(np.r_[start, key.size]))
    pos = np.arange(key.size) - first
    keep = pos < pool
    o = order[keep]
    out[col[o], group[row[o]], pos[keep]] = row[o]
    return out


def build(
    text: np.ndarray,
    prior: np.ndarray,
    mood: np.ndarray,
    items: sp.csr_matrix,
    *,
    audio: np.ndarray | None = None,
    text_index: Any = None,
    audio_index: Any = None,
    tag_pool: int = POOL_TAG,
    text_pool: int = POOL_TEXT,
    mood_pool: int = POOL_MOOD,
    audio_pool: int = POOL_AUDIO,
    prior_pool: int = POOL_PRIOR,
) -> QueryIndex:
    """The query index of a catalog. ``text_index`` and ``audio_index`` are the
    published FAISS indices over ``text`` and ``audio`` (rows as ids); one that is
    missing or exact (flat) is replaced by an HNSW index built here. The pools are
    how many items each lookup returns (:data:`POOL_TAG` and the others)."""
    groups = tiers(prior)
    if text_index is None or index_kind(text_index) == "flat":
        text_index = build_index(text, "hnsw")
    if audio is not None and (audio_index is None or index_kind(audio_index) == "flat"):
        audio_index = build_index(audio, "hnsw")
    trees = tuple(cKDTree(np.asarray(mood[rows], dtype=np.float64)) for rows in groups)
    return QueryIndex(
        text_index,
        audio_index if audio is not None else None,
        groups,
        trees,
        postings(items.tocsr(), groups, tag_pool),
        text_pool,
        mood_pool,
        audio_pool,
        prior_pool,
    )
