"""One interface for the vector workloads, whatever holds the vectors.

Two backends implement :class:`VectorStore`: FAISS indices in the artifact store
(``models.io.vectors_faiss``) and a Milvus collection, embedded (Milvus Lite) or a
server (``models.io.vectors_milvus``). Callers add, delete, search with filters,
count and checksum without knowing which one they talk to.

Every store keeps vectors L2-normalised as float32 and scores by inner product, so
a score is a cosine on both backends and :func:`checksum` of the same rows is the
same number wherever they are stored. The exact search and the recall helpers
here are the reference the approximate indices are measured against.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeAlias

import numpy as np

Attrs: TypeAlias = Mapping[str, Sequence[Any]]
"""Scalar columns per added row, e.g. ``{"genre": [...], "year": [...]}``."""
Where: TypeAlias = Mapping[str, Any]
"""Filters, all of which must hold: ``{"genre": "jazz"}`` (equal) or
``{"year": [1990, 1991]}`` (one of)."""
Hits: TypeAlias = tuple[list[str], np.ndarray]
"""Ids best first and their cosines (float32)."""

ATTRS: dict[str, type] = {"genre": str, "artist": str, "year": int}
"""The scalar fields both backends store and filter on; absent values are ``""`` / 0."""
UNIT_TOLERANCE = 1e-6
"""A row whose norm is this close to 1 counts as normalised already."""
SPACES: tuple[str, ...] = ("text", "audio")
"""The content spaces that have vectors."""


class VectorStore(Protocol):
    """What both backends do. ``add`` replaces rows whose id is already there."""

    def add(self, ids: list[str], vectors: np.ndarray, attrs: Attrs | None = None) -> None: ...

    def delete(self, ids: list[str]) -> None: ...

    def search(self, queries: np.ndarray, k: int, where: Where | None = None) -> list[Hits]: ...

    def count(self) -> int: ...

    def checksum(self) -> str: ...


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32 (n, d).
    Rows already of unit length are kept bit for bit, so copying stored vectors from one
    store to another does not change them (nor their checksum)."""
    x = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    scale = np.where(np.abs(norms - 1.0) <= UNIT_TOLERANCE, 1.0, 1.0 / np.maximum(norms, 1e-12))
    return np.ascontiguousarray(x * scale.astype(np.float32), dtype=np.float32)


def attr_columns(attrs: Attrs | None, n: int) -> dict[str, list[Any]]:
    """Every field of :data:`ATTRS` as a column of ``n`` values of its type (absent: the
    type's empty value), so both backends store the same thing."""
    out: dict[str, list[Any]] = {}
    for name, kind in ATTRS.items():
        column = list((attrs or {}).get(name) or [None] * n)
        if len(column) != n:
            raise ValueError(f"attribute {name!r} has {len(column)} values for {n} rows")
        out[name] = [kind() if v is None else kind(v) for v in column]
    unknown = set(attrs or {}) - set(ATTRS)
    if unknown:
        raise ValueError(f"unknown attributes {sorted(unknown)}; known: {sorted(ATTRS)}")
    return out


def rows_to_add(
    ids: list[str], vectors: np.ndarray, attrs: Attrs | None, dim: int
) -> tuple[np.ndarray, dict[str, list[Any]]]:
    """What ``add`` stores, checked the same way by both backends: unit rows of ``dim``
    values, one per id (no id twice), and the typed attribute columns."""
    x = unit_rows(vectors)
    if x.shape != (len(ids), dim):
        raise ValueError(f"{x.shape} vectors for {len(ids)} ids of dimension {dim}")
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate ids in one add")
    return x, attr_columns(attrs, len(ids))


def check_where(where: Where | None) -> dict[str, list[Any]]:
    """Filters as ``{field: allowed values}`` typed like the field; unknown fields refused
    (they are spliced into a Milvus expression)."""
    out: dict[str, list[Any]] = {}
    for name, value in (where or {}).items():
        kind = ATTRS.get(name)
        if kind is None:
            raise ValueError(f"cannot filter on {name!r}; one of {sorted(ATTRS)}")
        values = value if isinstance(value, list | tuple | set | frozenset) else [value]
        out[name] = [kind(v) for v in values]
    return out


def matches(columns: Mapping[str, Sequence[Any]], where: Where | None, n: int) -> np.ndarray:
    """Boolean mask of the rows (of ``n``) whose columns satisfy ``where``."""
    keep = np.ones(n, dtype=bool)
    for name, allowed in check_where(where).items():
        keep &= np.isin(np.asarray(columns[name], dtype=object), np.asarray(allowed, dtype=object))
    return keep


def row_digest(item_id: str, vector: np.ndarray) -> int:
    """A row's 256-bit digest: its id and its float32 bytes."""
    data = item_id.encode() + b"\0" + np.ascontiguousarray(vector, dtype=np.float32).tobytes()
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


class Checksum:
    """Order-independent checksum: the sum of row digests modulo 2**256 (a sum, not an
    xor, so a row stored twice does not cancel out). Fed in batches while iterating."""

    def __init__(self) -> None:
        self.total = 0
        self.rows = 0

    def update(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add stored rows (already unit vectors: normalising twice can move the last bit)."""
        for item_id, vector in zip(ids, vectors if len(ids) else [], strict=True):
            self.total = (self.total + row_digest(item_id, vector)) % (1 << 256)
            self.rows += 1

    def hexdigest(self) -> str:
        return f"{self.total:064x}"


def checksum(ids: Sequence[str], vectors: np.ndarray) -> str:
    """:class:`Checksum` of one set of rows (vectors normalised first, as stores keep them)."""
    c = Checksum()
    c.update(ids, unit_rows(vectors))
    return c.hexdigest()


def exact_search(
    ids: Sequence[str], vectors: np.ndarray, queries: np.ndarray, k: int, batch: int = 1_024
) -> list[Hits]:
    """Top-``k`` by cosine, by brute force: the reference for recall."""
    x = unit_rows(vectors)
    out: list[Hits] = []
    for start in range(0, len(queries), batch):
        scores = unit_rows(queries[start : start + batch]) @ x.T
        kk = min(k, x.shape[0])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk else np.empty((0, 0), int)
        for row, cand in zip(scores, top, strict=True):
            order = cand[np.argsort(-row[cand], kind="stable")]
            out.append(([ids[i] for i in order], row[order].astype(np.float32)))
    return out


def recall_at_k(found: Sequence[Hits], truth: Sequence[Hits], k: int = 10) -> float:
    """Mean share of the true top-``k`` ids that a search returned in its top ``k``."""
    if not truth:
        return 1.0
    total = 0.0
    for (got, _), (want, _) in zip(found, truth, strict=True):
        expected = set(want[:k])
        total += len(set(got[:k]) & expected) / max(1, len(expected))
    return total / len(truth)


def collection_name(space: str, version: str) -> str:
    """Where a space of a content version lives: ``text_<version>`` (letters, digits and
    underscores only, as Milvus requires)."""
    safe = "".join(c if c.isalnum() else "_" for c in version)
    return f"{space}_{safe}"
