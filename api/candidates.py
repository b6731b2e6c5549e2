"""Candidate sources for personal recommendations, each returning scored candidates."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np

from api.bundle import Collab, Content
from api.reader import CatalogTrack
from models.rerank import Candidate
from models.state import FoldConfig, UserState, fold_extra


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


def _from_rows(
    ids: list[str], rows: np.ndarray, scores: np.ndarray, signal: str, source: str
) -> list[Candidate]:
    return [
        Candidate(ids[r], {signal: float(s)}, [source]) for r, s in zip(rows, scores, strict=True)
    ]


def collab_candidates(collab: Collab, user_id: str, k: int, cache: LRU) -> list[Candidate]:
    """The batch model's own top items for a known user (cached per model version)."""
    u = collab.users.get(user_id)
    if u is None:
        return []
    key = (collab.version, user_id)
    hit = cache.get(key)
    if hit is None:
        hit = collab.search(collab.user_factors[u], k)
        cache.put(key, hit)
    rows, scores = hit
    return _from_rows(collab.ids, rows, scores, "collab", "collab")


def realtime_vector(
    collab: Collab, state: UserState, catalog: dict[str, CatalogTrack], fold: FoldConfig
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


def realtime_candidates(collab: Collab, vec: np.ndarray | None, k: int) -> list[Candidate]:
    """Items nearest the real-time taste vector."""
    if vec is None:
        return []
    rows, scores = collab.search(vec, k)
    return _from_rows(collab.ids, rows, scores, "realtime", "realtime")


def content_candidates(
    content: Content, state: UserState, per_seed: int, seeds: int = 5
) -> list[Candidate]:
    """Text-space neighbours of the user's most recent positively received tracks."""
    out: list[Candidate] = []
    used = 0
    for track, _t, _kind, w in reversed(state.hist):
        if used >= seeds:
            break
        row = content.row.get(track)
        if w <= 0 or row is None:
            continue
        used += 1
        rows, scores = content.search_text(content.text[row], per_seed + 1)
        for r, s in zip(rows, scores, strict=True):
            if r != row:
                out.append(
                    Candidate(content.ids[r], {"content": float(s)}, ["content"], seed=track)
                )
    return out


def trending_candidates(trending: dict[str, float]) -> list[Candidate]:
    """Most played over the trending window."""
    return [Candidate(t, {"trending": math.log1p(n)}, ["trending"]) for t, n in trending.items()]


def fresh_candidates(
    fresh: list[tuple[str, float]], now_ms: float, horizon_days: float = 14
) -> list[Candidate]:
    """Newest catalog arrivals, scored by recency."""
    out = []
    for t, first_ms in fresh:
        age_days = max(0.0, (now_ms - first_ms) / 86_400_000)
        score = 1 - age_days / horizon_days
        if score > 0:  # older than the horizon: not fresh any more
            out.append(Candidate(t, {"fresh": score}, ["fresh"]))
    return out


def popular_candidates(collab: Collab | None, k: int) -> list[Candidate]:
    """Most popular items of the batch model (the cold-start fallback)."""
    if collab is None or not len(collab.popularity):
        return []
    rows = np.argsort(-collab.popularity, kind="stable")[:k]
    return [
        Candidate(
            collab.ids[r], {"popularity": math.log1p(float(collab.popularity[r]))}, ["popularity"]
        )
        for r in rows
    ]
