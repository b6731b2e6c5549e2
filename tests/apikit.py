"""Small real artifacts (the published file formats) built from demo data, for API tests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import scipy.sparse as sp

from batch.publish import write_index
from models.content import track_text
from models.demo import GENRES, DemoData, generate
from models.io.artifacts import ArtifactStore, save_array, save_json
from models.io.queryspace import save_tag_space
from models.io.text import TextModel
from models.tagspace import build as build_tag_space

LEXICON = {
    "happy": (0.8, 0.4),
    "sad": (-0.7, -0.3),
    "calm": (0.4, -0.7),
    "chill": (0.4, -0.6),
    "energetic": (0.4, 0.9),
    "angry": (-0.6, 0.8),
    "party": (0.7, 0.8),
    "sleep": (0.2, -0.9),
    "melancholy": (-0.6, -0.4),
    "heartbreak": (-0.8, -0.1),
    "workout": (0.4, 0.9),
    "rainy": (-0.3, -0.4),
    "romantic": (0.6, -0.1),
    "dark": (-0.6, 0.3),
}
_TEXT = TextModel()


@dataclass
class Built:
    """What the builder published."""

    root: Path
    demo: DemoData
    als_version: str
    content_version: str


def demo_data(n_tracks: int = 300, n_users: int = 120) -> DemoData:
    return generate(seed=21, n_tracks=n_tracks, n_users=n_users, mean_events=40)


def publish_als(
    store: ArtifactStore,
    demo: DemoData,
    *,
    factors: int = 16,
    seed: int = 0,
    users: Iterable[str] | None = None,
) -> str:
    """Train a small ALS on the demo plays and publish it as the "als" artifact."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    item_ids = [t.track_id for t in demo.tracks]
    row = {t: i for i, t in enumerate(item_ids)}
    user_ids = sorted({e.user_id for e in demo.interactions} | set(users or ()))
    urow = {u: i for i, u in enumerate(user_ids)}
    pairs: dict[tuple[int, int], float] = {}
    for e in demo.interactions:
        if e.type in ("play", "like"):
            key = (urow[e.user_id], row[e.track_id])
            pairs[key] = pairs.get(key, 0.0) + 1.0
    r, c = zip(*pairs, strict=True) if pairs else ((), ())
    matrix = sp.csr_matrix((list(pairs.values()), (r, c)), shape=(len(user_ids), len(item_ids)))
    model = AlternatingLeastSquares(
        factors=factors, regularization=0.05, iterations=8, random_state=seed, use_gpu=False
    )
    with threadpool_limits(1):
        model.fit(matrix * 10.0, show_progress=False)
    items = np.asarray(model.item_factors, dtype=np.float32)
    users_f = np.asarray(model.user_factors, dtype=np.float32)
    path = store.stage("als")
    save_json(path, "item_ids.json", item_ids)
    save_array(path, "item_factors", items)
    save_json(path, "user_ids.json", user_ids)
    save_array(path, "user_factors", users_f)
    save_json(path, "item_artists.json", [t.artist_id for t in demo.tracks])
    save_array(path, "popularity", np.asarray(matrix.getnnz(axis=0), dtype=np.float32))
    unit = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-9)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    faiss.write_index(index, str(path / "index.faiss"))
    return store.publish("als", path, params={"factors": factors, "seed": seed})


def _ridge(x: np.ndarray, y: np.ndarray, lam: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - xm, y - ym
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ yc)
    return w.astype(np.float32), (ym - xm @ w).astype(np.float32)


def publish_content(
    store: ArtifactStore,
    demo: DemoData,
    als_version: str,
    *,
    tag_space: bool = True,
    non_music: frozenset[str] = frozenset(),
) -> str:
    """Text vectors, genre-derived mood and the linear maps, as the "content" artifact
    (tracks in ``non_music`` flagged as the content job flags a podcast)."""
    als = store.load("als", als_version)
    cf = np.asarray(als.array("item_factors.npy"), dtype=np.float32)
    items: list[dict[str, Any]] = []
    for t in demo.tracks:
        items.append(
            {
                "title": t.title,
                "artist": t.artist,
                "artist_id": t.artist_id,
                "genre": t.genre,
                "tags": list(t.tags),
                "year": t.year,
                "permalink_url": t.permalink_url,
                "is_music": t.track_id not in non_music,
                "non_music_reason": "spoken word" if t.track_id in non_music else None,
            }
        )
    texts = [track_text(i) for i in items]
    text = _TEXT.encode(texts)
    genre_of = {t.artist_id: None for t in demo.tracks}
    for t in demo.tracks:
        genre_of[t.artist_id] = genre_of[t.artist_id] or t.genre
    mood = np.array(
        [GENRES[i["genre"] or genre_of[i["artist_id"]] or "indie"][1] for i in items],
        dtype=np.float32,
    )
    lex_words = list(LEXICON)
    lex_vec = _TEXT.encode(lex_words)
    lex_y = np.array([LEXICON[w] for w in lex_words], dtype=np.float32)
    w_mood, b_mood = _ridge(np.vstack([lex_vec, text]), np.vstack([lex_y, mood]), 1.0)
    w_cf, b_cf = _ridge(text, cf, 1.0)
    path = store.stage("content")
    save_json(path, "item_ids.json", [t.track_id for t in demo.tracks])
    save_json(path, "items.json", items)
    save_array(path, "text", text)
    write_index(path, "text.faiss", text, neighbours=True)  # as batch/content.py publishes
    save_array(path, "mood", mood)
    save_array(path, "text_to_cf", w_cf)
    save_array(path, "text_to_cf_bias", b_cf)
    save_array(path, "text_to_mood", w_mood)
    save_array(path, "text_to_mood_bias", b_mood)
    save_json(path, "lexicon.json", {k: list(v) for k, v in LEXICON.items()})
    if tag_space:
        tags = build_tag_space(
            [i["tags"] for i in items],
            _TEXT.encode,
            [i["artist"] for i in items],
            mood=lambda v: v @ w_mood + b_mood,
        )
        save_tag_space(path, tags)
    return store.publish("content", path, params={"cf_version": als_version})


def build(root: Path, demo: DemoData | None = None, users: Iterable[str] | None = None) -> Built:
    """Publish "als" then "content" under ``root``."""
    demo = demo or demo_data()
    store = ArtifactStore(root)
    als = publish_als(store, demo, users=users)
    content = publish_content(store, demo, als)
    return Built(root, demo, als, content)
