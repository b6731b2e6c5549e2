"""The real-time taste vector, rebuilt offline from a user's training interactions.

Each training pair becomes the events ``encore load`` would send for it
(:func:`batch.datasets.lastfm_events`, :func:`batch.datasets.movielens_events`;
play counts otherwise), each event gets its pull from
:func:`models.state.event_weight`, and the events are folded in time order with
:func:`models.state.fold_vector` over the L2-normalised item factors: exactly
what a stream worker holds for that user after replaying the same history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from batch.data import TrainData
from models.events import Like, Play, Skip
from models.state import FoldConfig, event_weight, fold_vector

_WHEN = datetime(2020, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=4096)
def _play_weight(count: int, cfg: FoldConfig) -> float:
    base = {"event_id": "e", "occurred_at": _WHEN, "user_id": "u", "track_id": "t"}
    return event_weight(Play(**base, ms_played=1, completion=1.0, count=count), cfg)


@lru_cache(maxsize=64)
def _rating_weight(rating: float, cfg: FoldConfig) -> float:
    """The summed pull of the events a MovieLens rating becomes."""
    base = {"event_id": "e", "occurred_at": _WHEN, "user_id": "u", "track_id": "t"}
    if rating >= 3:
        w = event_weight(Play(**base, ms_played=0, completion=1.0 if rating >= 4 else 0.5), cfg)
        if rating >= 5:
            w += event_weight(Like(**base), cfg)
        return w
    return event_weight(Skip(**base, ms_played=5_000), cfg)


def pair_weights(train: sp.csr_matrix, source: str, cfg: FoldConfig) -> np.ndarray:
    """Event pull of every stored pair of ``train`` (CSR order)."""
    values = train.tocsr().data
    if source == "movielens-100k":
        return np.array([_rating_weight(float(v), cfg) for v in values])
    return np.array([_play_weight(max(1, int(v)), cfg) for v in values])


def taste_vectors(
    train: sp.csr_matrix, data: TrainData, unit_items: np.ndarray, cfg: FoldConfig
) -> np.ndarray:
    """(users, k) taste vectors folded from each user's train pairs in time order."""
    csr = train.tocsr()
    weights = pair_weights(csr, data.source, cfg)
    half_life_s = cfg.half_life_s
    when = np.zeros(csr.nnz, dtype=np.int64)
    if data.times is not None:
        coo = csr.tocoo()
        when = (np.asarray(data.times.tocsr()[coo.row, coo.col]).ravel() * 1000).astype(np.int64)
    out = np.zeros((csr.shape[0], unit_items.shape[1]), dtype=np.float32)
    for u in range(csr.shape[0]):
        a, b = csr.indptr[u], csr.indptr[u + 1]
        vec, vec_t = None, 0
        for n in np.argsort(when[a:b], kind="stable") + a:
            x = unit_items[csr.indices[n]]
            vec, vec_t = fold_vector(vec, vec_t, x, float(weights[n]), int(when[n]), half_life_s)
        if vec is not None:
            out[u] = vec
    return out
