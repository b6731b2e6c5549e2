"""Candidate pools written out track by track, for the ranking tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.pool import Pool, PoolBuilder, facts_of, make_items
from models.rerank import Diversity, diversity


@dataclass
class Track:
    """One candidate: its signals, sources and facts (the artist is its identity)."""

    track_id: str
    signals: dict[str, float] = field(default_factory=dict)
    sources: list[str] = field(default_factory=lambda: ["collab"])
    artist: str | None = None
    genre: str | None = None
    year: int | None = None
    vector: np.ndarray | None = None
    link: str = "unknown"
    music: bool = True


def pool_of(tracks: Sequence[Track]) -> Pool:
    """A pool of exactly these tracks, in this order (vectors grouped into one space
    per dimension)."""
    infos: list[dict[str, Any]] = [
        {
            "artist_id": t.artist,
            "genre": t.genre,
            "year": t.year,
            **({"is_music": False} if not t.music else {}),
        }
        for t in tracks
    ]
    dims = sorted({t.vector.shape[0] for t in tracks if t.vector is not None})
    vectors = []
    for d in dims:
        rows = [i for i, t in enumerate(tracks) if t.vector is not None and t.vector.shape[0] == d]
        vectors.append((np.array(rows), np.stack([tracks[i].vector for i in rows])))
    items = make_items([t.track_id for t in tracks], facts_of(infos), vectors=vectors)
    out = PoolBuilder(items)
    for i, t in enumerate(tracks):
        for s in t.sources:
            out.add(s, np.array([i]), {k: np.array([v]) for k, v in t.signals.items()})
    pool = out.build()
    for i, t in enumerate(tracks):
        pool.set_link(i, t.link)
    return pool


def diversity_of(tracks: Sequence[Track]) -> Diversity:
    """The MMR inputs of ``tracks`` (one space per vector dimension)."""
    return diversity(pool_of(tracks), np.arange(len(tracks)))
