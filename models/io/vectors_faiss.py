"""The FAISS backend of :class:`models.vectors.VectorStore`: today's index files.

Rows live in slots: the FAISS index (from :func:`models.index.build_index`, over unit
vectors, inner product = cosine) is keyed by slot number, and the ids, vectors and
scalar columns sit in arrays beside it. HNSW cannot remove points, so a delete (or
an ``add`` that replaces an id) only marks the slot dead; searches skip dead slots.

Filters: when few rows pass (:data:`EXACT_MAX`), those rows are searched exactly,
which is both cheaper and exact; otherwise the index is asked for more candidates
than ``k`` (in proportion to the share that passes, doubling until ``k`` pass) and
the rest are dropped. On disk a store is a directory: ``index.faiss``, ``vectors.npy``,
``ids.json``, ``attrs.json`` (no pickle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from models.index import IndexKind, build_index
from models.vectors import (
    ATTRS,
    Attrs,
    Checksum,
    Hits,
    Where,
    attr_columns,
    matches,
    rows_to_add,
    unit_rows,
)

EXACT_MAX = 20_000
"""At most this many rows passing a filter: search them exactly instead of the index."""


class FaissStore:
    """A :class:`~models.vectors.VectorStore` over one FAISS index (see the module)."""

    def __init__(self, dim: int, kind: IndexKind | str = "auto") -> None:
        self.dim = dim
        self.kind = kind
        self.index: Any = None
        self.ids: list[str] = []
        self.vectors = np.empty((0, dim), np.float32)
        self.columns: dict[str, list[Any]] = {name: [] for name in ATTRS}
        self.live = np.empty(0, bool)
        self.slot: dict[str, int] = {}

    def add(self, ids: list[str], vectors: np.ndarray, attrs: Attrs | None = None) -> None:
        """Append rows (the first batch decides the index structure, as ``build_index``
        does by size); an id already present is replaced."""
        x, columns = rows_to_add(ids, vectors, attrs, self.dim)
        self.delete([i for i in ids if i in self.slot])
        slots = np.arange(len(self.ids), len(self.ids) + len(ids), dtype=np.int64)
        if self.index is None:
            self.index = build_index(x, self.kind, ids=slots)
        elif len(ids):
            self.index.add_with_ids(x, slots)
        self.ids.extend(ids)
        self.vectors = np.concatenate([self.vectors, x])
        for name, values in columns.items():
            self.columns[name].extend(values)
        self.live = np.concatenate([self.live, np.ones(len(ids), bool)])
        self.slot.update(zip(ids, slots.tolist(), strict=True))

    def delete(self, ids: list[str]) -> None:
        """Mark rows dead (ids not present are ignored)."""
        for item_id in ids:
            s = self.slot.pop(item_id, None)
            if s is not None:
                self.live[s] = False

    def count(self) -> int:
        return len(self.slot)

    def checksum(self) -> str:
        c = Checksum()
        rows = np.flatnonzero(self.live)
        c.update([self.ids[r] for r in rows], self.vectors[rows])
        return c.hexdigest()

    def search(self, queries: np.ndarray, k: int, where: Where | None = None) -> list[Hits]:
        """Top-``k`` live rows passing ``where`` per query, by cosine."""
        q = unit_rows(queries)
        allowed = self.live & matches(self.columns, where, len(self.ids))
        n_allowed = int(allowed.sum())
        if n_allowed == 0 or k <= 0:
            return [([], np.empty(0, np.float32)) for _ in range(len(q))]
        if n_allowed == len(self.ids):  # every row passes: the index alone
            scores, slots = self.index.search(q, min(k, n_allowed))
            return [self._keep(c, s, allowed, k) for c, s in zip(scores, slots, strict=True)]
        if n_allowed <= EXACT_MAX and n_allowed < len(self.ids):
            return self._exact(q, k, np.flatnonzero(allowed))
        fetch = min(len(self.ids), int(np.ceil(k * len(self.ids) / n_allowed)) + k)
        while True:
            scores, slots = self.index.search(q, fetch)
            out = [self._keep(s, r, allowed, k) for s, r in zip(scores, slots, strict=True)]
            if fetch >= len(self.ids) or all(len(ids) >= min(k, n_allowed) for ids, _ in out):
                return out
            fetch = min(len(self.ids), fetch * 2)

    def _keep(self, scores: np.ndarray, slots: np.ndarray, allowed: np.ndarray, k: int) -> Hits:
        ok = slots >= 0
        ok[ok] = allowed[slots[ok]]
        rows = slots[ok][:k]
        return [self.ids[r] for r in rows], scores[ok][:k].astype(np.float32)

    def _exact(self, q: np.ndarray, k: int, rows: np.ndarray) -> list[Hits]:
        scores = q @ self.vectors[rows].T
        out: list[Hits] = []
        for row in scores:
            order = np.argsort(-row, kind="stable")[:k]
            out.append(([self.ids[rows[i]] for i in order], row[order].astype(np.float32)))
        return out

    def save(self, path: Path) -> None:
        """Write the store as a directory (see the module), live rows only."""
        path.mkdir(parents=True, exist_ok=True)
        rows = np.flatnonzero(self.live)
        fresh = FaissStore(self.dim, self.kind)
        if len(rows):
            fresh.add(
                [self.ids[r] for r in rows],
                self.vectors[rows],
                {n: [c[r] for r in rows] for n, c in self.columns.items()},
            )
        if fresh.index is not None:
            faiss.write_index(fresh.index, str(path / "index.faiss"))
        np.save(path / "vectors.npy", fresh.vectors, allow_pickle=False)
        (path / "ids.json").write_text(json.dumps(fresh.ids))
        (path / "attrs.json").write_text(json.dumps(fresh.columns))

    @classmethod
    def load(cls, path: Path) -> FaissStore:
        """A store written by :meth:`save`."""
        vectors = np.load(path / "vectors.npy", allow_pickle=False)
        store = cls(int(vectors.shape[1]))
        store.ids = list(json.loads((path / "ids.json").read_text()))
        store.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        store.columns = {
            n: list(v) for n, v in json.loads((path / "attrs.json").read_text()).items()
        }
        store.live = np.ones(len(store.ids), bool)
        store.slot = {t: i for i, t in enumerate(store.ids)}
        if (path / "index.faiss").is_file():
            store.index = faiss.read_index(str(path / "index.faiss"))
        return store

    @classmethod
    def of_index(
        cls, index: Any, ids: list[str], vectors: np.ndarray, attrs: Attrs | None = None
    ) -> FaissStore:
        """A store over an index already built with row numbers as ids (a published
        content artifact's ``text.faiss``): nothing is rebuilt."""
        store = cls(int(vectors.shape[1]))
        store.index = index
        store.ids = list(ids)
        store.vectors = unit_rows(vectors)
        store.columns = attr_columns(attrs, len(ids))
        store.live = np.ones(len(ids), bool)
        store.slot = {t: i for i, t in enumerate(store.ids)}
        return store
