"""Query recommendations and similarity: text, mood and audio retrieval, the same rerank."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from fastapi import HTTPException

from api import metrics
from api.bundle import Bundle, Content
from api.pool import WorkPool
from api.reader import CatalogTrack
from api.recommend import Engine, Timer, artist_key, enrich, item_json, rank_alive, track_info
from models import queryindex
from models.index import index_kind
from models.intent import QUERY_PROBLEMS, query_problem
from models.io.text import TextModel
from models.pool import Items, Pool, PoolBuilder
from models.query import (
    Mood,
    QuerySpace,
    Ranking,
    candidates,
    detect_mood,
    normalise_text,
    rank,
    rerank_weights,
    space_from_items,
)
from models.ranking import LRU
from models.rerank import Context, Filters, rerank
from models.tagspace import TagSpace

CANDIDATES = 200
"""Ranked items handed to the rerank (filters and artist spacing pick from them)."""


class QueryEmbedder:
    """Query text -> unit embedding, cached by normalised text (the model runs in the
    worker pool; a full pool raises :class:`api.pool.Overloaded`)."""

    def __init__(self, pool: WorkPool, model: TextModel | None = None, size: int = 5_000) -> None:
        self.pool = pool
        self.model = model or TextModel()
        self.cache = LRU(size)

    async def embed(self, text: str) -> np.ndarray | None:
        if not self.model.available():
            return None
        key = normalise_text(text)
        hit = self.cache.get(key)
        metrics.CACHE.labels("query_embedding", "hit" if hit is not None else "miss").inc()
        if hit is None:
            hit = (await self.pool.run(self.model.encode, [key]))[0]
            self.cache.put(key, hit)
        return hit  # type: ignore[no-any-return]


_FALLBACK: dict[str, QuerySpace] = {}


def _fallback_space(content: Content) -> QuerySpace:
    """Names and priors without a tag space (descriptive queries then use the text space),
    with candidate indices in a large catalog whose published text index is approximate
    (none is built on a request)."""
    space = _FALLBACK.get(content.version)
    if space is None:
        empty = TagSpace(
            [],
            np.zeros((0, content.text.shape[1]), np.float32),
            sp.csr_matrix((len(content.ids), 0), dtype=np.float32),
        )
        space = space_from_items(content.items, empty, content.genres)
        if len(content.ids) > queryindex.EXACT_MAX and index_kind(content.text_index) != "flat":
            audio = content.audio if index_kind(content.audio_index) != "flat" else None
            index = queryindex.build(
                content.text,
                space.prior,
                content.mood,
                empty.items,
                audio=audio,
                text_index=content.text_index,
                audio_index=content.audio_index if audio is not None else None,
            )
            space = replace(space, index=index)
        _FALLBACK.clear()
        _FALLBACK[content.version] = space
        gc.freeze()  # built once per content version, like what the loader freezes
    return space


def mood_json(content: Content | None, track: str) -> dict[str, float] | None:
    """A track's valence and arousal."""
    if content is None or track not in content.row:
        return None
    v, a = content.mood[content.row[track]]
    return {"valence": round(float(v), 3), "arousal": round(float(a), 3)}


def _retrieve(
    content: Content, items: Items, query: str, vec: np.ndarray
) -> tuple[Mood, Ranking, Pool]:
    """Mood, ranking and candidates of a query (whole-catalog array work: a pool job)."""
    mood = detect_mood(query, vec, content.lexicon, content.text_to_mood, content.text_to_mood_bias)
    target = (mood.valence, mood.arousal) if mood.source != "none" else None
    space = content.query_space
    if space is None:  # a content version published before the tag space
        space = _fallback_space(content)
    ranking = rank(
        query,
        vec,
        space,
        text=content.text,
        mood=content.mood,
        audio=content.audio,
        target=target,
        k=CANDIDATES,
        lexicon=frozenset(content.lexicon),
    )
    return mood, ranking, candidates(ranking, items)


async def query_recs(
    engine: Engine,
    bundle: Bundle,
    embedder: QueryEmbedder,
    query: str,
    top_k: int,
    filters: Filters,
) -> dict[str, Any]:
    """``POST /v1/recommend`` (422 for a query with no words or in an unreadable script)."""
    problem = query_problem(query)
    if problem is not None:
        raise HTTPException(422, f"query: {QUERY_PROBLEMS[problem]} ({problem})")
    timer = Timer("query")
    content = bundle.content
    base: dict[str, Any] = {
        "query": query,
        "rec_id": uuid.uuid4().hex,
        "model_versions": bundle.versions(),
    }
    vec = await embedder.embed(query)
    timer.lap("embed")
    if content is None or vec is None:
        reason = "no_content_model" if content is None else "text_model_not_installed"
        metrics.DEGRADED.labels(reason).inc()
        return {
            **base,
            "query_type": None,
            "mood_detected": None,
            "items": [],
            "degraded": True,
            "degraded_reasons": [reason],
            "timings_ms": timer.stages,
        }
    mood, ranking, pool = await engine.pool.run(_retrieve, content, bundle.items, query, vec)
    degraded = [] if content.query_space is not None else ["no_tag_space"]
    timer.lap("retrieve")

    catalog: dict[str, CatalogTrack] = {}
    keys = None
    if engine.reader is not None:
        try:
            keys = await asyncio.wait_for(engine.reader.keys(), engine.timeout_s)
        except (OSError, TimeoutError, Exception):  # noqa: BLE001 - degrade, never fail
            degraded.append("redis_unavailable")
    await enrich(engine, bundle, keys, pool, catalog, degraded)
    ranked = await rank_alive(
        engine,
        keys,
        degraded,
        pool,
        lambda: rerank(
            pool,
            rerank_weights(ranking),
            n=top_k,
            filters=filters,
            ctx=Context(),
            lam=engine.mmr_lambda,
            artist_gap=engine.artist_gap,
            mood_label=mood.label,
        ),
    )
    timer.lap("rerank")
    items = []
    for r in ranked:
        item = item_json(r, bundle, catalog)
        item["mood"] = mood_json(content, r.candidate.track_id)
        items.append(item)
    return {
        **base,
        "query_type": ranking.intent.kind,
        "weights": ranking.parts,
        "expanded_tags": [{"tag": t, "weight": w} for t, w in ranking.tags],
        "mood_detected": {
            "valence": round(mood.valence, 3),
            "arousal": round(mood.arousal, 3),
            "label": mood.label,
            "words": list(mood.words),
            "source": mood.source,
        },
        "candidates": pool.describe(),
        "items": items,
        "degraded": bool(degraded),
        "degraded_reasons": degraded,
        "timings_ms": timer.stages,
    }


def _neighbours(bundle: Bundle, track: str) -> Pool | None:
    """A track's collaborative, text and audio neighbours, itself left out (index
    searches: a pool job); None when no model knows the track."""
    collab, content, items = bundle.collab, bundle.content, bundle.items
    out = PoolBuilder(items)
    own = items.row.get(track, -1)
    known = False
    if collab is not None and track in collab.row:
        rows, scores = collab.search(collab.raw_items[collab.row[track]], 100)
        rows = items.of["collab"][rows]
        out.add("collab", rows[rows != own], {"collab": scores[rows != own]}, seed=track)
        known = True
    if content is not None and track in content.row:
        row = content.row[track]
        rows, scores = content.search_text(content.text[row], 100)
        out.add("text", rows[rows != own], {"text": scores[rows != own]}, seed=track)
        if content.audio is not None:
            rows, scores = content.search_audio(content.audio[row], 100)
            out.add("audio", rows[rows != own], {"audio": scores[rows != own]}, seed=track)
        known = True
    return out.build() if known else None


async def similar_tracks(
    engine: Engine, bundle: Bundle, track: str, n: int, exclude_artist: bool = False
) -> dict[str, Any] | None:
    """``GET /v1/tracks/{id}/similar`` (None: the track is unknown to every model)."""
    timer = Timer("similar")
    pool = await engine.pool.run(_neighbours, bundle, track)
    if pool is None:
        return None
    timer.lap("retrieve")
    catalog: dict[str, CatalogTrack] = {}
    await enrich(engine, bundle, None, pool, catalog, [])
    own = track_info(bundle, catalog, track)
    own_artist = artist_key(own)
    blocked = frozenset({own_artist}) if exclude_artist and own_artist else frozenset()
    ranked = rerank(
        pool,
        {"collab": 0.5, "text": 0.3, "audio": 0.2},
        n=n,
        filters=Filters(),
        ctx=Context(blocked_artists=blocked),
        lam=engine.mmr_lambda,
        artist_gap=engine.artist_gap,
        titles={track: str(own.get("title") or track)},
    )
    timer.lap("rerank")
    return {
        "track_id": track,
        "title": own.get("title"),
        "artist": own.get("artist"),
        "items": [item_json(r, bundle, catalog) for r in ranked],
        "model_versions": bundle.versions(),
        "timings_ms": timer.stages,
        "generated_at": time.time(),
    }
