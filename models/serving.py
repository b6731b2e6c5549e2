"""What the readers serve from: loaded models as immutable values, and catalog rows.

A :class:`Bundle` holds every published model the API uses (collaborative
factor models, the hybrid's precomputed lists, the content spaces, the
fingerprint index, the bandit policy). It is immutable: a request takes the
current reference once and uses it to the end. Loading from artifacts lives in
the readers (``api/bundle.py``); the offline evaluation builds the same values
from freshly fitted models, so both rank with one code path
(:mod:`models.ranking`).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from models import fingerprint as fp
from models.audiofeatures import AudioSpace
from models.bandit import Policy
from models.index import build_index
from models.pool import NO_CODE as NO_ARTIST
from models.pool import Facts, Items, Vocab, artist_key, facts_of, make_items
from models.taste import Cold, Taste, cold_of
from models.vectors import Hits, VectorStore

__all__ = ["artist_key"]


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as contiguous float32."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return np.asarray(
        x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9), dtype=np.float32
    )


def mips_augment(items: np.ndarray) -> np.ndarray:
    """Rows ``[x, sqrt(M^2 - |x|^2)] / M`` (M the largest norm): all of norm 1, and for a
    query ``[q, 0]`` the inner product ranks items exactly as ``q . x`` does. So a
    nearest-neighbour index over unit vectors answers maximum-inner-product search."""
    x = np.asarray(items, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    m = max(float(norms.max()), 1e-9)
    extra = np.sqrt(np.maximum(m * m - norms * norms, 0.0))[:, None]
    return np.ascontiguousarray(np.hstack([x, extra]) / m, dtype=np.float32)


class ModelError(ValueError):
    """A model's arrays are inconsistent or its index fails its smoke query."""


def smoke(index: Any, vectors: np.ndarray, what: str) -> None:
    """A query with an item's own vector must return that item first."""
    if len(vectors) == 0:
        raise ModelError(f"{what}: empty")
    probe = len(vectors) // 2
    scores, rows = index.search(vectors[probe : probe + 1], 1)
    if rows[0][0] < 0 or scores[0][0] < float(vectors[probe] @ vectors[probe]) - 1e-3:
        raise ModelError(f"{what}: smoke query failed")


@dataclass(frozen=True)
class Collab:
    """A collaborative factor model (ALS or LightGCN): factors, popularity, item index."""

    version: str
    ids: list[str]
    row: dict[str, int]
    items: np.ndarray  # unit item factors
    raw_items: np.ndarray
    users: dict[str, int]
    user_factors: np.ndarray
    popularity: np.ndarray
    artists: list[str | None]
    index: Any  # over mips_augment(raw items)
    max_norm: float
    popular_rows: np.ndarray  # rows by popularity, most popular first (the top 1,000)
    store: VectorStore | None = None  # ENCORE_VECTORS_BACKEND=milvus: searched instead of index

    @cached_property
    def popular_scores(self) -> np.ndarray:
        """``log(1 + popularity)`` of :attr:`popular_rows`, built once per version (the
        popularity source gives every listener the same list)."""
        return np.asarray(np.log1p(self.popularity[self.popular_rows].astype(np.float64)))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by inner product with the raw item factors (how the model itself
        ranks: the factor norms carry item popularity), via the augmented unit index."""
        q = unit(query.reshape(1, -1))
        q = np.hstack([q, np.zeros((1, 1), np.float32)])
        if self.store is not None:
            [(ids, found)] = self.store.search(q, min(k, len(self.ids)))
            rows = np.fromiter((self.row[t] for t in ids), np.int64, len(ids))
            return rows, np.asarray(found, np.float32) * self.max_norm
        scores, rows = self.index.search(q, min(k, len(self.ids)))
        keep = rows[0] >= 0
        return rows[0][keep], scores[0][keep] * self.max_norm


def make_collab(
    version: str,
    ids: list[str],
    raw_items: np.ndarray,
    user_ids: list[str],
    user_factors: np.ndarray,
    popularity: np.ndarray | None = None,
    artists: list[str | None] | None = None,
    what: str = "collab",
) -> Collab:
    """Validate factor arrays and build the served model (index included)."""
    raw = np.ascontiguousarray(raw_items, dtype=np.float32)
    users = np.ascontiguousarray(user_factors, dtype=np.float32)
    if (
        raw.ndim != 2
        or raw.shape[0] != len(ids)
        or users.ndim != 2
        or users.shape[0] != len(user_ids)
        or users.shape[1] != raw.shape[1]
    ):
        raise ModelError(f"{what}: inconsistent shapes")
    if not (np.isfinite(raw).all() and np.isfinite(users).all()):
        raise ModelError(f"{what}: non-finite factors")
    pop = (
        np.zeros(len(ids), np.float32) if popularity is None else np.asarray(popularity, np.float32)
    )
    if pop.shape != (len(ids),):
        raise ModelError(f"{what}: popularity has the wrong length")
    aug = mips_augment(raw)
    collab = Collab(
        version=version,
        ids=list(ids),
        row={t: i for i, t in enumerate(ids)},
        items=unit(raw),
        raw_items=raw,
        users={u: i for i, u in enumerate(user_ids)},
        user_factors=users,
        popularity=pop,
        artists=list(artists) if artists is not None else [None] * len(ids),
        index=build_index(aug),
        max_norm=float(np.linalg.norm(raw, axis=1).max()),
        popular_rows=np.argsort(-pop, kind="stable")[:1000],
    )
    smoke(collab.index, aug, what)
    return collab


@dataclass(frozen=True)
class TopLists:
    """Precomputed per-user lists of a batch model (the hybrid): best first."""

    version: str
    ids: list[str]
    users: dict[str, int]
    items: np.ndarray  # (users, K) int32 rows into ids, -1 padded
    scores: np.ndarray  # (users, K) float32

    def lookup(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The user's list (rows of :attr:`ids`) and scores; empty for an unknown user."""
        u = self.users.get(user_id)
        if u is None:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        rows = self.items[u]
        keep = rows >= 0
        return rows[keep].astype(np.int64), self.scores[u][keep]


def check_top_lists(top_items: np.ndarray, top_scores: np.ndarray, n_items: int) -> None:
    """Raise :class:`ModelError` unless the lists have the ``hybrid`` layout: int32 rows,
    best first, -1 padding at the end with score 0, finite float32 scores that descend."""
    if top_items.dtype != np.int32 or top_scores.dtype != np.float32:
        raise ModelError(f"top lists must be int32 and float32, not {top_items.dtype}, "
                         f"{top_scores.dtype}")  # fmt: skip
    if top_items.ndim != 2 or top_items.shape != top_scores.shape:
        raise ModelError(f"top lists of shapes {top_items.shape} and {top_scores.shape}")
    if not np.isfinite(top_scores).all():
        raise ModelError("non-finite scores in the top lists")
    pad = top_items < 0
    if (top_items < -1).any() or (top_items >= n_items).any():
        raise ModelError(f"top list items outside -1..{n_items - 1}")
    if (pad[:, :-1] & ~pad[:, 1:]).any():
        raise ModelError("padding (-1) before an item in a top list")
    if (top_scores[pad] != 0).any():
        raise ModelError("non-zero score on padding")
    drops = np.diff(top_scores, axis=1) > 0
    if (drops & ~pad[:, 1:]).any():
        raise ModelError("top list scores do not descend")


def make_toplists(
    version: str, ids: list[str], user_ids: list[str], items: np.ndarray, scores: np.ndarray
) -> TopLists:
    """Validate precomputed lists (:func:`check_top_lists`, one list per user)."""
    items, scores = np.asarray(items), np.asarray(scores)
    try:
        check_top_lists(items, scores, len(ids))
    except ModelError as exc:
        raise ModelError(f"hybrid/{version}: {exc}") from exc
    if items.shape[0] != len(user_ids):
        raise ModelError(f"hybrid/{version}: {items.shape[0]} lists for {len(user_ids)} users")
    return TopLists(version, list(ids), {u: i for i, u in enumerate(user_ids)}, items, scores)


@dataclass(frozen=True)
class StoreIndex:
    """A vector store answering as a FAISS index over catalog rows (``search(queries, k)``
    gives scores and rows, -1 where it found fewer), so the query index's text and audio
    lookups go through the configured backend too."""

    store: VectorStore
    row: Mapping[str, int]
    ntotal: int

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        hits = self.store.search(np.atleast_2d(queries), k)
        rows = np.full((len(hits), k), -1, np.int64)
        scores = np.zeros((len(hits), k), np.float32)
        for i, (ids, found) in enumerate(hits):
            r = [self.row.get(t, -1) for t in ids[:k]]
            rows[i, : len(r)] = r
            scores[i, : len(r)] = found[: len(r)]
        return scores, rows


@dataclass(frozen=True)
class Content:
    """Content model: text, mood and audio spaces, item metadata, query maps."""

    version: str
    ids: list[str]
    row: dict[str, int]
    items: list[dict[str, Any]]
    text: np.ndarray
    text_index: Any
    mood: np.ndarray
    audio: np.ndarray | None
    audio_index: Any
    text_to_cf: np.ndarray | None
    text_to_cf_bias: np.ndarray | None
    cf_version: str
    text_to_mood: np.ndarray | None
    text_to_mood_bias: np.ndarray | None
    lexicon: dict[str, tuple[float, float]]
    genres: frozenset[str]
    artist_names: dict[str, str]  # lower-case name -> artist id
    query_space: Any = None  # models.query.QuerySpace of the tag files, None in older versions
    text_neighbours: np.ndarray | None = None  # (n, K) ids by text.faiss; None: search
    text_neighbour_scores: np.ndarray | None = None  # (n, K) their cosines
    text_store: VectorStore | None = None  # ENCORE_VECTORS_BACKEND=milvus: searched instead
    audio_store: VectorStore | None = None  # of text_index / audio_index
    audio_space: AudioSpace | None = None  # the reducer that places new audio in ``audio``

    @cached_property
    def facts(self) -> Facts:
        """Per row, what ranking joins to a candidate (artist identity by
        :func:`artist_key`, genre, year, whether it is music) as columns; built once per
        version."""
        return facts_of(self.items)

    def search_text(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by cosine in the text space."""
        return self.search_text_many(query.reshape(1, -1), k)[0]

    def search_text_many(self, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`search_text` of each row of ``queries``, in one index call."""
        if self.text_store is not None:
            return self._rows(self.text_store.search(queries, min(k, len(self.ids))))
        scores, rows = self.text_index.search(unit(queries), min(k, len(self.ids)))
        return [(r[r >= 0], s[r >= 0]) for r, s in zip(rows, scores, strict=True)]

    def _rows(self, hits: list[Hits]) -> list[tuple[np.ndarray, np.ndarray]]:
        """A vector store's answers (ids) as catalog rows, as the FAISS indices answer."""
        return [
            (np.fromiter((self.row[t] for t in ids), np.int64, len(ids)), scores)
            for ids, scores in hits
        ]

    def text_neighbours_of(self, rows: list[int], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The top-``k`` text neighbours of catalog rows: read from the published table
        when it holds ``k`` per row, else searched (:meth:`search_text_many`)."""
        table, scores = self.text_neighbours, self.text_neighbour_scores
        if table is None or scores is None or k > table.shape[1]:
            return self.search_text_many(self.text[rows], k)
        out = []
        for r in rows:
            ids = np.asarray(table[r, :k], dtype=np.int64)
            keep = ids >= 0
            out.append((ids[keep], np.asarray(scores[r, :k])[keep]))
        return out

    def search_audio(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by cosine in the audio space (empty without audio)."""
        if self.audio_store is not None and self.audio is not None:
            return self._rows(self.audio_store.search(query.reshape(1, -1), min(k, len(self.ids))))[
                0
            ]
        if self.audio_index is None:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        scores, rows = self.audio_index.search(unit(query.reshape(1, -1)), min(k, len(self.ids)))
        keep = rows[0] >= 0
        return rows[0][keep], scores[0][keep]


@dataclass(frozen=True)
class Fingerprints:
    """The loaded landmark index and what its rows are."""

    version: str
    index: fp.LandmarkIndex
    track_ids: list[str]
    min_votes: int
    min_ratio: float


@dataclass(frozen=True)
class ServedPolicy:
    """The bandit policy and the list settings tuned with it, and where they came from."""

    version: str
    policy: Policy
    mmr_lambda: float | None = None  # None: the configured ENCORE_API_MMR_LAMBDA


@dataclass(frozen=True)
class Bundle:
    """Everything loaded from artifacts; None parts are not published yet."""

    collab: Collab | None = None  # ALS: the real-time item space
    content: Content | None = None
    fingerprint: Fingerprints | None = None
    lightgcn: Collab | None = None
    hybrid: TopLists | None = None
    policy: ServedPolicy | None = None
    taste: Taste | None = None
    failures: dict[str, str] = field(default_factory=dict)

    @cached_property
    def items(self) -> Items:
        """Every track the served models know, with its facts (:func:`items_of`)."""
        return items_of(self)

    @cached_property
    def cold(self) -> Cold | None:
        """The content rows no collaborative model knows and their taste features, built
        once per bundle (:func:`models.taste.cold_of`; None without a taste model)."""
        content, taste, items = self.content, self.taste, self.items
        if content is None or taste is None:
            return None
        return cold_of(taste, content.version, content.audio, content.text, items.known,
                       list(items.of.values()))  # fmt: skip

    def versions(self) -> dict[str, str | None]:
        """Version per artifact kind in use."""
        return {
            "als": self.collab.version if self.collab else None,
            "lightgcn": self.lightgcn.version if self.lightgcn else None,
            "hybrid": self.hybrid.version if self.hybrid else None,
            "content": self.content.version if self.content else None,
            "fingerprint": self.fingerprint.version if self.fingerprint else None,
            "policy": self.policy.version if self.policy else None,
            "taste": self.taste.version if self.taste else None,
        }


@dataclass
class CatalogTrack:
    """A track as the catalog topic described it."""

    track_id: str
    meta: dict[str, Any]
    text: np.ndarray | None
    cf: np.ndarray | None
    cf_model: str
    valence: float | None
    arousal: float | None
    updated_ms: int


_ITEMS: dict[tuple[int, ...], tuple[tuple[Any, ...], Items]] = {}
"""Recent item rows by the identity of the models they join (weakly held: a model that
is no longer served is freed, and an id reused by a new object is told apart)."""


def items_of(bundle: Bundle) -> Items:
    """The item rows of a bundle: the content model's rows (its metadata), then tracks
    only the collaborative models or the hybrid's lists know (their artist, when the
    model has one). Diversity vectors: unit ALS factors, else text vectors. Built once
    per combination of those loaded models (the last few are kept; keyed by the objects
    themselves, since evaluations reuse version names for different models)."""
    content, parts = bundle.content, (bundle.collab, bundle.lightgcn, bundle.hybrid)
    models = (content, *parts)
    key = tuple(id(m) for m in models)
    hit = _ITEMS.get(key)
    if hit is not None and all(
        (ref() if ref is not None else None) is m for ref, m in zip(hit[0], models, strict=True)
    ):
        return hit[1]
    base = content.facts if content is not None else facts_of([])
    ids = list(content.ids) if content is not None else []
    row = dict(content.row) if content is not None else {}
    artists = Vocab(base.artists.values)
    new_artist: list[int] = []
    of: dict[str, np.ndarray] = {}
    for name, model in zip(("collab", "lightgcn", "hybrid"), parts, strict=True):
        if model is None:
            continue
        rows = np.fromiter((row.get(t, -1) for t in model.ids), np.int64, len(model.ids))
        for j in np.flatnonzero(rows < 0).tolist():
            t = model.ids[j]
            rows[j] = row[t] = len(ids)
            ids.append(t)
            a = model.artists[j] if isinstance(model, Collab) else None
            new_artist.append(NO_ARTIST if a is None else artists.add(a))
        of[name] = rows
    facts = Facts(
        artist=np.concatenate([base.artist, np.array(new_artist, np.int32)]),
        genre=np.concatenate([base.genre, np.full(len(new_artist), -1, np.int32)]),
        year=np.concatenate([base.year, np.full(len(new_artist), np.nan)]),
        music=np.concatenate([base.music, np.ones(len(new_artist), bool)]),
        artists=artists,
        genres=base.genres,
    )
    vectors = []
    if bundle.collab is not None:
        vectors.append((of["collab"], bundle.collab.items))
    if content is not None:
        vectors.append((np.arange(len(content.ids)), content.text))
    known = len(content.ids) if content else 0
    items = make_items(ids, facts, known=known, vectors=vectors, of=of, row=row)
    if len(_ITEMS) >= 2:
        _ITEMS.pop(next(iter(_ITEMS)))
    _ITEMS[key] = (tuple(None if m is None else weakref.ref(m) for m in models), items)
    return items
