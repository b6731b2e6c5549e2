"""Training data: a user x track matrix of listening strength plus the catalog.

Every source ends up here: the event log (via a Parquet snapshot, see
:mod:`batch.snapshot`), the demo generator, HetRec Last.fm 2k and MovieLens
100k. Events become columns first (:func:`interaction_columns`), so the same
vectorised aggregation serves a demo list and a snapshot of millions of rows.

How events become strength, per (user, track):

* a full play (completion >= ``full_play``) adds its ``count``; a partial play
  adds its completion (a share of a play);
* a like adds 1, an unlike takes 1 back, a skip takes 0.5;
* a dislike newer than the last like removes the pair;
* pairs left at or below zero are dropped (the collaborative models here learn
  from positive confidence only; negatives shape the real-time vector instead).

Confidence weighting of the strength (``ENCORE_BATCH_CONFIDENCE``) happens in
:func:`confidence`, not here, so evaluation can compare schemes on one matrix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from batch.datasets import Interactions
from models.taste import labels as event_labels

ALPHA_BY_SCHEME = {"binary": 5.0, "log": 1.0, "bm25": 0.01}
"""Confidence scale per weighting when none is set (best on Last.fm 2k validation)."""
BM25_K1 = 100.0
BM25_B = 0.8
TRACK_FIELDS = (
    "title",
    "artist",
    "artist_id",
    "album",
    "genre",
    "tags",
    "year",
    "description",
    "duration_ms",
    "audio_url",
    "permalink_url",
    "playback_count",
)


@dataclass(frozen=True)
class Labels:
    """Labelled events as columns, in event order (:func:`models.taste.label`: like or
    full play 1, skip or dislike 0; events that say neither are left out)."""

    user: np.ndarray  # str
    track: np.ndarray  # str
    when: np.ndarray  # int64 epoch ms
    positive: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.user)

    def take(self, mask: np.ndarray) -> Labels:
        return Labels(self.user[mask], self.track[mask], self.when[mask], self.positive[mask])


@dataclass
class TrainData:
    """Users x items listening strength, with the catalog every item comes from
    (``labels``: the labelled events, for data from events)."""

    source: str
    users: list[str]
    items: list[str]
    counts: sp.csr_matrix
    catalog: dict[str, dict[str, Any]]
    times: sp.csr_matrix | None = None
    info: dict[str, Any] = field(default_factory=dict)
    labels: Labels | None = None

    def item_artists(self) -> list[str | None]:
        """Artist id per matrix item (None when the catalog does not know it)."""
        return [self.catalog.get(t, {}).get("artist_id") for t in self.items]

    def popularity(self) -> np.ndarray:
        """Distinct listeners per matrix item."""
        return np.asarray((self.counts > 0).sum(axis=0), dtype=np.float32).ravel()


def confidence(counts: sp.csr_matrix, scheme: str, alpha: float | None = None) -> sp.csr_matrix:
    """``1 + alpha * w(count)`` on the stored pairs, ``w`` one of binary, log, bm25.

    BM25 treats items as documents and users as terms (implicit's Last.fm
    recipe): a play count saturates (K1 = 100) and is scaled down for users who
    listen to everything and for items whose listening is spread thin.
    """
    if scheme not in ALPHA_BY_SCHEME:
        raise ValueError(f"unknown confidence weighting {scheme!r}")
    a = ALPHA_BY_SCHEME[scheme] if alpha is None else alpha
    return (weighting(counts, scheme) * a + _ones_like(counts)).tocsr().astype(np.float32)


def _ones_like(x: sp.csr_matrix) -> sp.csr_matrix:
    out = x.tocsr(copy=True).astype(np.float32)
    out.data[:] = 1.0
    return out


def weighting(counts: sp.csr_matrix, scheme: str) -> sp.csr_matrix:
    """The raw weight ``w(count)`` of a weighting scheme (no ``1 +``, no scale)."""
    x = counts.tocsr().astype(np.float32, copy=True)
    if scheme == "binary":
        x.data[:] = 1.0
    elif scheme == "log":
        x.data = np.log1p(x.data)
    elif scheme == "bm25":
        docs = x.T.tocoo()  # items x users
        n_docs = docs.shape[0]
        idf = math.log(max(n_docs, 1)) - np.log1p(np.bincount(docs.col, minlength=docs.shape[1]))
        length = np.asarray(docs.sum(axis=1)).ravel()
        norm = (1.0 - BM25_B) + BM25_B * length / max(float(length.mean()), 1e-9)
        data = docs.data * (BM25_K1 + 1.0) / (BM25_K1 * norm[docs.row] + docs.data)
        docs.data = (data * idf[docs.col]).astype(np.float32)
        x = docs.T.tocsr()
    else:
        raise ValueError(f"unknown confidence weighting {scheme!r}")
    return x


def binary(x: sp.spmatrix) -> sp.csr_matrix:
    """The same sparsity pattern with every stored value 1."""
    return _ones_like(sp.csr_matrix(x))


# ---------------------------------------------------------------- datasets


def from_dataset(data: Interactions) -> TrainData:
    """Last.fm 2k or MovieLens 100k, with the ids ``encore load`` gives their events."""
    if data.name == "lastfm-2k":
        users = [f"lfm:u{u}" for u in data.users]
        items = [f"lfm:{a}" for a in data.items]
        catalog = {
            f"lfm:{a}": {
                "title": m["name"],
                "artist": m["name"],
                "artist_id": f"lfm:a{a}",
                "tags": list(m["tags"]),
            }
            for a, m in data.item_meta.items()
        }
    elif data.name == "movielens-100k":
        users = [f"ml:u{u}" for u in data.users]
        items = [f"ml:{i}" for i in data.items]
        catalog = {
            f"ml:{i}": {
                "title": m["name"],
                "genre": (m["tags"] or [None])[0],
                "tags": list(m["tags"]),
                "year": m["year"],
            }
            for i, m in data.item_meta.items()
        }
    else:
        raise ValueError(f"unknown dataset {data.name}")
    shape = (len(users), len(items))
    counts = sp.csr_matrix((data.weight, (data.user_idx, data.item_idx)), shape=shape)
    counts.sum_duplicates()
    times = None
    info: dict[str, Any] = {"source": data.name}
    if data.time is not None:
        times = sp.csr_matrix(
            (data.time.astype(np.float64), (data.user_idx, data.item_idx)), shape=shape
        )
        info["time_range"] = [int(data.time.min()), int(data.time.max())]
    return _with_counts(
        TrainData(data.name, users, items, counts.astype(np.float32), catalog, times, info)
    )


def _with_counts(data: TrainData) -> TrainData:
    data.info.update(
        users=len(data.users),
        items=len(data.items),
        interactions=int(data.counts.nnz),
        catalog=len(data.catalog),
    )
    return data


# ---------------------------------------------------------------- events

INTERACTION_COLUMNS = (
    "event_id",
    "type",
    "user_id",
    "track_id",
    "occurred_ms",
    "completion",
    "count",
    "ms_played",
)


def interaction_columns(events: Iterable[Any]) -> dict[str, list[Any]]:
    """Interaction events as columns (the Parquet snapshot's layout)."""
    cols: dict[str, list[Any]] = {c: [] for c in INTERACTION_COLUMNS}
    for e in events:
        cols["event_id"].append(e.event_id)
        cols["type"].append(e.type)
        cols["user_id"].append(e.user_id)
        cols["track_id"].append(e.track_id)
        cols["occurred_ms"].append(e.occurred_ms)
        cols["completion"].append(e.completion_ratio if e.type == "play" else math.nan)
        cols["count"].append(getattr(e, "count", 1))
        cols["ms_played"].append(getattr(e, "ms_played", 0))
    return cols


def track_columns(tracks: Iterable[Any]) -> dict[str, list[Any]]:
    """New-track events as columns: ``track_id``, ``occurred_ms`` and :data:`TRACK_FIELDS`."""
    cols: dict[str, list[Any]] = {c: [] for c in ("track_id", "occurred_ms", *TRACK_FIELDS)}
    for t in tracks:
        doc = t if isinstance(t, Mapping) else {**t.model_dump(), "occurred_ms": t.occurred_ms}
        cols["track_id"].append(doc["track_id"])
        cols["occurred_ms"].append(int(doc.get("occurred_ms") or 0))
        for name in TRACK_FIELDS:
            value = doc.get(name)
            cols[name].append(list(value or ()) if name == "tags" else value)
    return cols


def catalog_from_columns(cols: Mapping[str, Sequence[Any]]) -> dict[str, dict[str, Any]]:
    """Track id -> metadata; the newest event of a track wins (ties: the later row)."""
    order = np.argsort(np.asarray(cols["occurred_ms"], dtype=np.int64), kind="stable")
    catalog: dict[str, dict[str, Any]] = {}
    for row in order:
        catalog[cols["track_id"][row]] = {
            name: cols[name][row] for name in TRACK_FIELDS if name in cols
        }
    return catalog


def from_columns(
    source: str,
    interactions: Mapping[str, Sequence[Any]],
    catalog: dict[str, dict[str, Any]],
    *,
    full_play: float = 0.8,
    info: dict[str, Any] | None = None,
) -> TrainData:
    """Aggregate interaction columns into strength per (user, track) (rules: module doc)."""
    event_ids = np.asarray(interactions["event_id"], dtype=object)
    _, first = np.unique(event_ids.astype(str), return_index=True)  # resends: keep one
    keep = np.sort(first)
    kind = np.asarray(interactions["type"], dtype=object)[keep].astype(str)
    users_raw = np.asarray(interactions["user_id"], dtype=object)[keep].astype(str)
    tracks_raw = np.asarray(interactions["track_id"], dtype=object)[keep].astype(str)
    when = np.asarray(interactions["occurred_ms"], dtype=np.int64)[keep]
    completion = np.asarray(interactions["completion"], dtype=np.float64)[keep]
    count = np.asarray(interactions["count"], dtype=np.float64)[keep]

    users, u = np.unique(users_raw, return_inverse=True)
    items, i = np.unique(tracks_raw, return_inverse=True)
    pair = u.astype(np.int64) * max(len(items), 1) + i
    strength = np.zeros(kind.size)
    play = kind == "play"
    full = play & (np.nan_to_num(completion) >= full_play)
    strength[full] = count[full]
    strength[play & ~full] = np.nan_to_num(completion[play & ~full])
    strength[kind == "like"] = 1.0
    strength[kind == "unlike"] = -1.0
    strength[kind == "skip"] = -0.5

    pairs, inverse = np.unique(pair, return_inverse=True)
    total = np.bincount(inverse, weights=strength, minlength=pairs.size)
    last = np.full(pairs.size, np.iinfo(np.int64).min)
    np.maximum.at(last, inverse, when)
    last_like = np.full(pairs.size, -1, dtype=np.int64)
    np.maximum.at(last_like, inverse[kind == "like"], when[kind == "like"])
    last_dislike = np.full(pairs.size, -2, dtype=np.int64)
    np.maximum.at(last_dislike, inverse[kind == "dislike"], when[kind == "dislike"])
    ok = (total > 0) & (last_dislike < last_like)

    rows, cols = pairs[ok] // max(len(items), 1), pairs[ok] % max(len(items), 1)
    used_u, rows = np.unique(rows, return_inverse=True)
    used_i, cols = np.unique(cols, return_inverse=True)
    shape = (used_u.size, used_i.size)
    counts = sp.csr_matrix((total[ok].astype(np.float32), (rows, cols)), shape=shape)
    times = sp.csr_matrix(((last[ok] / 1000.0), (rows, cols)), shape=shape)
    out_info = dict(info or {})
    out_info.update(
        source=source,
        events=int(kind.size),
        duplicate_events=int(event_ids.size - keep.size),
        time_range_ms=[int(when.min()), int(when.max())] if when.size else None,
    )
    label = event_labels(kind, completion, full_play)
    order = np.argsort(when, kind="stable")
    order = order[label[order] >= 0]
    data = TrainData(
        source,
        [str(x) for x in users[used_u]],
        [str(x) for x in items[used_i]],
        counts,
        catalog,
        times,
        out_info,
        Labels(users_raw[order], tracks_raw[order], when[order], label[order] == 1),
    )
    return _with_counts(data)


def from_events(
    source: str, tracks: Iterable[Any], interactions: Iterable[Any], full_play: float = 0.8
) -> TrainData:
    """Catalog and interaction events (e.g. the demo generator's) as training data."""
    catalog = catalog_from_columns(track_columns(tracks))
    return from_columns(source, interaction_columns(interactions), catalog, full_play=full_play)
