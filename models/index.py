"""One factory for every vector index: Flat, HNSW or IVF-PQ, chosen by size.

Callers never branch on the kind. Every index compares by inner product on
L2-normalised vectors (so scores are cosines) and carries stable external ids
(an ``IndexIDMap2`` over row numbers, or ids passed in), so a search answers
with the same ids whatever structure sits underneath. Why these three:

* ``flat``: exact, no training, fastest to build; right up to ~10k vectors.
* ``hnsw``: graph search, near-exact recall at a fraction of the cost, no
  training; right up to a few hundred thousand vectors (memory: full vectors).
* ``ivfpq``: coarse clustering plus product quantisation, candidates re-ranked
  by 8-bit scalar codes (about ``d + d/4`` bytes per vector instead of ``4d``);
  the one that fits millions of items in memory, at some recall.

Writing and reading go through ``faiss.write_index`` / ``faiss.read_index``
(callers own the disk); search parameters (``efSearch``, ``nprobe``) are part
of the saved index.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import faiss
import numpy as np

IndexKind = Literal["auto", "flat", "hnsw", "ivfpq"]
KINDS: tuple[str, ...] = ("flat", "hnsw", "ivfpq")
FLAT_MAX = 10_000
"""Above this many vectors ``auto`` picks HNSW."""
HNSW_MAX = 300_000
"""Above this many vectors ``auto`` picks IVF-PQ."""
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
REFINE_K_FACTOR = 8
"""IVF-PQ finds this many times ``k`` candidates; 8-bit scalar codes re-rank them."""


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"vectors must be 2-d, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def choose_kind(n: int) -> str:
    """The kind ``auto`` picks for ``n`` vectors."""
    if n <= FLAT_MAX:
        return "flat"
    if n <= HNSW_MAX:
        return "hnsw"
    return "ivfpq"


def _pq_shape(n: int, d: int) -> tuple[int, int, int]:
    """(lists, sub-quantisers, bits): about 4*sqrt(n) lists with >= 39 points each for
    training, sub-quantisers of 2-4 dimensions that divide ``d``, fewer code bits
    when there are too few vectors to train 256 centroids per sub-quantiser."""
    nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
    m = next((m for m in (d // 4, d // 3, d // 2, d) if m >= 1 and d % m == 0), 1)
    nbits = 8 if n >= 39 * 256 else max(4, min(8, int(math.log2(max(n // 39, 16)))))
    return nlist, m, nbits


def build_index(
    vectors: np.ndarray,
    kind: IndexKind | str = "auto",
    *,
    ids: np.ndarray | None = None,
    seed: int = 0,
) -> Any:
    """An inner-product index over the L2-normalised rows of ``vectors``.

    ``ids`` are the external ids (int64, default the row numbers). ``kind`` is
    ``auto`` (by size: :data:`FLAT_MAX`, :data:`HNSW_MAX`) or one of :data:`KINDS`.
    """
    x = normalise(vectors)
    n, d = x.shape
    chosen = choose_kind(n) if kind == "auto" else kind
    if chosen not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; one of auto, {', '.join(KINDS)}")
    external = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    if external.shape != (n,):
        raise ValueError(f"{external.shape[0]} ids for {n} vectors")
    if chosen == "flat":
        base: Any = faiss.IndexFlatIP(d)
    elif chosen == "hnsw":
        base = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        base.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        if n < 2:
            raise ValueError("an IVF-PQ index needs at least 2 vectors")
        nlist, m, nbits = _pq_shape(n, d)
        ivf = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.seed = seed
        ivf.pq.cp.seed = seed
        ivf.nprobe = min(nlist, max(8, 2 * math.ceil(math.sqrt(nlist))))
        rerank = faiss.IndexScalarQuantizer(
            d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        base = faiss.IndexRefine(ivf, rerank)
        base.k_factor = REFINE_K_FACTOR
        base.train(x)
    index = faiss.IndexIDMap2(base)
    if n:
        index.add_with_ids(x, external)
    return index


def index_kind(index: Any) -> str:
    """Which of :data:`KINDS` an index built here is."""
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexRefine):
        inner = faiss.downcast_index(inner.base_index)
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(inner, faiss.IndexIVF):
        return "ivfpq"
    return "flat"


def search(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, external ids) per query row; missing slots have id -1."""
    q = normalise(np.atleast_2d(queries))
    k = max(1, min(k, int(index.ntotal) or 1))
    scores, found = index.search(q, k)
    return np.asarray(scores, dtype=np.float32), np.asarray(found, dtype=np.int64)


NEIGHBOURS = 64
"""Neighbours per item kept by :func:`neighbour_table` (requests use up to this many)."""


def neighbour_table(
    index: Any, vectors: np.ndarray, k: int = NEIGHBOURS, batch: int = 4_096
) -> tuple[np.ndarray, np.ndarray]:
    """Every row's top-``k`` neighbours by ``index`` (its own row usually first): ids as
    int32 (-1 where the index found fewer) and scores as float32, (rows, k) each.

    Built once when an artifact is published, so a request looks up a track's
    neighbours instead of searching for them; the top ``j <= k`` of a row are what a
    top-``j`` search would return (HNSW searches with ``max(efSearch, k)``, which
    stays ``efSearch`` for every ``k`` up to it).
    """
    n = vectors.shape[0]
    ids = np.full((n, k), -1, dtype=np.int32)
    scores = np.zeros((n, k), dtype=np.float32)
    for start in range(0, n, batch):
        s, found = search(index, vectors[start : start + batch], k)
        width = found.shape[1]
        ids[start : start + batch, :width] = found
        scores[start : start + batch, :width] = s
    return ids, scores
