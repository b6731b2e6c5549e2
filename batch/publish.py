"""Write trained models as artifacts: stage a version, write files, publish (manifest last).

The ``als`` and ``lightgcn`` kinds share one layout, which the stream workers
(the real-time item space) and the API read:

=====================  ==================================================
``item_ids.json``      track ids, as in events (``demo:t12``, ``lfm:51``)
``item_factors.npy``   float32 items x k
``user_ids.json``      user ids, as in events
``user_factors.npy``   float32 users x k
``item_artists.json``  artist id or null per item
``popularity.npy``     float32 distinct listeners per item
``index.faiss``        :func:`models.index.build_index` over the L2-normalised item factors
``seen_indptr.npy``    CSR row pointers of the users' training items (with
``seen_indices.npy``   the item rows), so batch recommendations can skip them
=====================  ==================================================

The ``hybrid`` kind holds precomputed lists (:func:`publish_hybrid`):

=====================  ==================================================
``user_ids.json``      user ids, row order
``item_ids.json``      track ids
``top_items.npy``      int32 users x K: rows of ``item_ids``, best first,
                       -1 after the last item (the user's training items
                       are never in the list)
``top_scores.npy``     float32 users x K: blended scores, descending, 0.0
                       where padded
=====================  ==================================================

Only ``.npy`` (no pickle), JSON and FAISS files; checksums go in the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from batch.data import TrainData
from models.index import build_index, index_kind, neighbour_table
from models.io.artifacts import ArtifactStore, save_array, save_json
from models.serving import make_toplists

FACTOR_KINDS = ("als", "lightgcn")


def write_index(
    path: Path, name: str, vectors: np.ndarray, kind: str = "auto", *, neighbours: bool = False
) -> str:
    """Build an index over ``vectors`` (row numbers as ids), save it, return its kind.

    With ``neighbours``, also save every row's top neighbours by that index
    (:func:`models.index.neighbour_table`) as ``<stem>_neighbours.npy`` and
    ``<stem>_neighbour_scores.npy``, which requests read instead of searching.
    """
    import faiss

    index = build_index(vectors, kind)
    faiss.write_index(index, str(path / name))
    if neighbours:
        stem = name.removesuffix(".faiss")
        ids, scores = neighbour_table(index, vectors)
        save_array(path, f"{stem}_neighbours", ids)
        save_array(path, f"{stem}_neighbour_scores", scores)
    return index_kind(index)


def publish_factors(
    store: ArtifactStore,
    kind: str,
    data: TrainData,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    *,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
) -> str:
    """Publish a factor model (``als`` or ``lightgcn``) trained on ``data``."""
    if kind not in FACTOR_KINDS:
        raise ValueError(f"not a factor artifact kind: {kind}")
    if item_factors.shape[0] != len(data.items) or user_factors.shape[0] != len(data.users):
        raise ValueError("factor rows do not match the data's users and items")
    if not (np.isfinite(item_factors).all() and np.isfinite(user_factors).all()):
        raise ValueError("non-finite factors; refusing to publish")
    path = store.stage(kind)
    save_json(path, "item_ids.json", list(data.items))
    save_array(path, "item_factors", item_factors.astype(np.float32))
    save_json(path, "user_ids.json", list(data.users))
    save_array(path, "user_factors", user_factors.astype(np.float32))
    save_json(path, "item_artists.json", data.item_artists())
    save_array(path, "popularity", data.popularity())
    seen = data.counts.tocsr()
    save_array(path, "seen_indptr", seen.indptr.astype(np.int64))
    save_array(path, "seen_indices", seen.indices.astype(np.int32))
    index = write_index(path, "index.faiss", item_factors)
    return store.publish(
        kind,
        path,
        params={**params, "index": index, "dim": int(item_factors.shape[1])},
        metrics=metrics,
        data=data.info,
    )


def publish_hybrid(
    store: ArtifactStore,
    data: TrainData,
    top_items: np.ndarray,
    top_scores: np.ndarray,
    *,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
) -> str:
    """Publish each user of ``data``'s precomputed list (``hybrid``, module doc)."""
    # the checks the API's loader makes (ModelError is a ValueError)
    make_toplists("unpublished", list(data.items), list(data.users), top_items, top_scores)
    path = store.stage("hybrid")
    save_json(path, "user_ids.json", list(data.users))
    save_json(path, "item_ids.json", list(data.items))
    save_array(path, "top_items", top_items)
    save_array(path, "top_scores", top_scores)
    return store.publish("hybrid", path, params=params, metrics=metrics, data=data.info)
