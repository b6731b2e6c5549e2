"""Artist radio: tracks from the artist's genre and mood neighbourhood, the artist excluded."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from api.bundle import Bundle
from api.reader import CatalogTrack
from api.recommend import Engine, Timer, artist_key, enrich, item_json
from models.pool import Pool, PoolBuilder
from models.query import mood_similarity
from models.rerank import Context, Filters, rerank


@dataclass
class _Found:
    rows: list[int]
    genre: str | None
    mood: tuple[float, float]
    pool: Pool


def _retrieve(bundle: Bundle, artist_id: str) -> _Found | None:
    """The artist's rows and neighbourhood (catalog scans and index searches: a pool job)."""
    content, collab = bundle.content, bundle.collab
    if content is None:
        return None
    rows = [
        i
        for i, item in enumerate(content.items)
        if artist_key(item) == artist_id or item.get("artist_id") == artist_id
    ]
    if not rows:
        return None
    genres = Counter(content.items[i].get("genre") for i in rows if content.items[i].get("genre"))
    genre = genres.most_common(1)[0][0] if genres else None
    v, a = content.mood[rows].mean(axis=0)
    mood = mood_similarity(content.mood, (float(v), float(a)))
    centroid = content.text[rows].mean(axis=0)
    t_rows, t_scores = content.search_text(centroid, 300)
    out = PoolBuilder(bundle.items)
    out.add("text", t_rows, {"text": t_scores, "mood": mood[t_rows]})
    if genre:
        same = [i for i, item in enumerate(content.items) if item.get("genre") == genre]
        top = np.array(sorted(same, key=lambda i: -mood[i])[:300], np.int64)
        out.add("genre", top, {"mood": mood[top], "genre": np.ones(len(top))})
    if collab is not None:
        own = [collab.row[content.ids[i]] for i in rows if content.ids[i] in collab.row]
        if own:
            c_rows, c_scores = collab.search(collab.raw_items[own].mean(axis=0), 200)
            out.add("collab", bundle.items.of["collab"][c_rows], {"collab": c_scores})
    return _Found(rows, genre, (float(v), float(a)), out.build())


async def radio(engine: Engine, bundle: Bundle, artist_id: str, n: int) -> dict[str, Any] | None:
    """``GET /v1/artists/{id}/radio`` (None: the artist has no tracks in the models)."""
    timer = Timer("radio")
    found = await engine.pool.run(_retrieve, bundle, artist_id)
    if found is None or bundle.content is None:
        return None
    content, rows, genre, (v, a), pool = (
        bundle.content,
        found.rows,
        found.genre,
        found.mood,
        found.pool,
    )
    timer.lap("retrieve")
    catalog: dict[str, CatalogTrack] = {}
    await enrich(engine, bundle, None, pool, catalog, [])
    ranked = rerank(
        pool,
        {"mood": 0.35, "genre": 0.25, "text": 0.2, "collab": 0.2},
        n=n,
        filters=Filters(),
        ctx=Context(blocked_artists=frozenset({artist_id})),
        lam=min(engine.mmr_lambda, 0.6),
        artist_gap=max(engine.artist_gap, 2),
    )
    timer.lap("rerank")
    name = next((content.items[i].get("artist") for i in rows), None)
    return {
        "artist_id": artist_id,
        "artist": name,
        "genre": genre,
        "mood": {"valence": round(v, 3), "arousal": round(a, 3)},
        "items": [item_json(r, bundle, catalog) for r in ranked],
        "artist_tracks": len(rows),
        "model_versions": bundle.versions(),
        "timings_ms": timer.stages,
    }
