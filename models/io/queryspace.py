"""The query space's files in the ``content`` artifact: write them, read them back.

=============================  ================================================
``tags.json``                  the descriptive tag vocabulary (generic tags out)
``tag_vectors.npy``            all-MiniLM-L6-v2 of each tag, unit rows, t x 384
``item_tags_indptr/indices/    items x tags weights (CSR parts)
data.npy``
``tag_moods.npy``              valence, arousal of each tag, t x 2 (optional)
=============================  ================================================

A catalog of more than :data:`models.queryindex.EXACT_MAX` items also gets its
candidate indices here (:func:`models.queryindex.build`), from the published
``text.faiss`` and ``audio.faiss`` (HNSW at that size; an older version's flat
or missing index is replaced by one built on load) and the arrays above.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import scipy.sparse as sp

from models import queryindex
from models.io.artifacts import Artifact, ArtifactError, save_array, save_json
from models.query import QuerySpace, space_from_items
from models.tagspace import TagSpace

FILES = (
    "tags.json",
    "tag_vectors.npy",
    "item_tags_indptr.npy",
    "item_tags_indices.npy",
    "item_tags_data.npy",
)


def save_tag_space(path: Path, space: TagSpace) -> None:
    """Write a tag space into a staged artifact directory."""
    m = space.items.tocsr()
    save_json(path, "tags.json", space.tags)
    save_array(path, "tag_vectors", space.vectors.astype(np.float32))
    save_array(path, "item_tags_indptr", m.indptr.astype(np.int64))
    save_array(path, "item_tags_indices", m.indices.astype(np.int32))
    save_array(path, "item_tags_data", m.data.astype(np.float32))
    if space.moods is not None:
        save_array(path, "tag_moods", space.moods.astype(np.float32))


def load_tag_space(art: Artifact, n_items: int) -> TagSpace | None:
    """The artifact's tag space, or None when it was published without one."""
    if not all(f in art.manifest["files"] for f in FILES):
        return None
    tags = [str(t) for t in art.json("tags.json")]
    vectors = np.asarray(art.array("tag_vectors.npy"), dtype=np.float32)
    indptr = np.asarray(art.array("item_tags_indptr.npy"))
    indices = np.asarray(art.array("item_tags_indices.npy"))
    data = np.asarray(art.array("item_tags_data.npy"), dtype=np.float32)
    moods = (
        np.asarray(art.array("tag_moods.npy"), dtype=np.float32)
        if "tag_moods.npy" in art.manifest["files"]
        else None
    )
    if (
        vectors.ndim != 2
        or vectors.shape[0] != len(tags)
        or indptr.shape != (n_items + 1,)
        or indices.shape != data.shape
        or (indices.size and (indices.min() < 0 or indices.max() >= len(tags)))
        or not np.isfinite(vectors).all()
        or (moods is not None and (moods.shape != (len(tags), 2) or not np.isfinite(moods).all()))
    ):
        raise ArtifactError(f"{art.kind}/{art.version}: inconsistent tag space")
    matrix = sp.csr_matrix((data, indices, indptr), shape=(n_items, len(tags)))
    return TagSpace(tags, vectors, matrix, moods)


def load_query_space(
    art: Artifact,
    *,
    text_index: Any = None,
    audio_index: Any = None,
    exact_max: int | None = None,
) -> QuerySpace | None:
    """What the query ranker needs from a ``content`` artifact (None: no tag space in it).

    Above ``exact_max`` items (default :data:`models.queryindex.EXACT_MAX`) the space
    carries candidate indices; ``text_index`` and
    ``audio_index`` are the artifact's FAISS indices when the caller has them open
    (else they are read here)."""
    items = art.json("items.json")
    tags = load_tag_space(art, len(items))
    if tags is None:
        return None
    space = space_from_items(items, tags)
    if len(items) <= (queryindex.EXACT_MAX if exact_max is None else exact_max):
        return space
    files = art.manifest["files"]
    text = np.asarray(art.array("text.npy", mmap=True), dtype=np.float32)
    audio = (
        np.asarray(art.array("audio.npy", mmap=True), dtype=np.float32)
        if "audio.npy" in files
        else None
    )
    index = queryindex.build(
        text,
        space.prior,
        np.asarray(art.array("mood.npy", mmap=True), dtype=np.float32),
        tags.items,
        audio=audio,
        text_index=text_index if text_index is not None else _read(art, "text.faiss"),
        audio_index=audio_index if audio_index is not None else _read(art, "audio.faiss"),
    )
    return replace(space, index=index)


def _read(art: Artifact, name: str) -> Any:
    """The artifact's FAISS index ``name``, None when it has none."""
    if name not in art.manifest["files"]:
        return None
    return faiss.read_index(str(art.file(name)))
