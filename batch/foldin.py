"""The real-time taste vector, rebuilt offline from a user's training interactions.

Each training pair becomes the events ``encore load`` would send for it
(:func:`batch.datasets.lastfm_events`, :func:`batch.datasets.movielens_events`;
play counts otherwise), each event gets its pull from
:func:`models.state.event_weight`, and the events are folded in time order with
:func:`models.state.fold_vector` over the L2-normalised item factors: exactly
what a stream worker holds for that user after replaying the same history.
:func:`fold_states` goes further and folds the whole user state (history,
session, likes) with :func:`models.state.apply_interaction`, event by event.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.sparse as sp

from batch.data import TrainData
from models.events import Like, Play, Skip
from models.serving import Collab
from models.state import (
    FoldConfig,
    ItemInfo,
    UserState,
    apply_interaction,
    event_weight,
    fold_vector,
)

_WHEN = datetime(2020, 1, 1, tzinfo=UTC)
EPOCH = _WHEN
"""Events of data without times are dated from here, one millisecond apart."""


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


def pair_events(
    matrix: sp.csr_matrix, data: TrainData, user: int, after: datetime | None = None
) -> Iterator[tuple[Any, int]]:
    """The events ``encore load`` sends for one user's pairs, with each item's column.

    Events carry the dataset's times where it has them (else one millisecond apart
    from a fixed epoch); with ``after`` they come after that moment instead, in the
    same order: events that arrived after the model was trained.
    """
    row = matrix.getrow(user)
    value = dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))
    times = data.times.getrow(user) if data.times is not None else None
    when = (
        dict(zip(times.indices.tolist(), times.data.tolist(), strict=True))
        if times is not None
        else {}
    )
    cols = sorted(value, key=lambda c: (when.get(c, 0), c))
    for n, c in enumerate(cols):
        v = float(value[c])
        if after is not None:
            at = after + timedelta(milliseconds=n + 1)
        elif c in when:
            at = datetime.fromtimestamp(int(when[c]), UTC)
        else:
            at = EPOCH + timedelta(milliseconds=n)
        base = {
            "event_id": f"e{user}-{c}",
            "occurred_at": at,
            "user_id": data.users[user],
            "track_id": data.items[c],
        }
        if data.source == "movielens-100k":
            if v >= 3:
                yield Play(**base, ms_played=0, completion=1.0 if v >= 4 else 0.5), c
                if v >= 5:
                    yield Like(**{**base, "event_id": base["event_id"] + "l"}), c
            else:
                yield Skip(**base, ms_played=5_000), c
        else:
            yield Play(**base, ms_played=210_000, completion=1.0, count=max(1, int(v))), c


def fold_states(
    history: Sequence[sp.csr_matrix],
    data: TrainData,
    collab: Collab,
    cfg: FoldConfig,
    users: np.ndarray,
) -> dict[int, UserState]:
    """Each user's state after their events, folded as a stream worker folds them.

    ``history`` lists interaction matrices in arrival order: the events of a later
    matrix (e.g. validation pairs, which arrived after training) follow every event
    of the earlier ones.
    """
    out = {}
    for u in users:
        state = UserState()
        for n, matrix in enumerate(history):
            after = None if n == 0 else datetime.fromtimestamp(state.last_ms / 1000, UTC)
            for event, c in pair_events(matrix, data, int(u), after):
                item = ItemInfo(collab.items[c])
                apply_interaction(state, event, item, cfg, collab.version)
        out[int(u)] = state
    return out
