"""The Milvus backend of :class:`models.vectors.VectorStore`: one collection per space
and content version (``text_<version>``), through ``pymilvus.MilvusClient``.

The uri picks the form and nothing else changes: a local file path starts Milvus
Lite inside this process (the file is the database); ``http://host:19530`` is a
Milvus server. Collections hold the id (primary key), the unit vector and the
scalar fields of :data:`models.vectors.ATTRS`; the metric is COSINE; writes are
upserts and reads are strongly consistent, so a search sees every write before it.

Index: Milvus Lite builds only FLAT, IVF_FLAT and AUTOINDEX, and (measured with
milvus-lite 2.5.1 at 100k 64-d vectors) ignores ``nprobe`` at search time: IVF_FLAT
and AUTOINDEX reach a recall@10 of 0.95 on clustered vectors but 0.29 on uniform
random ones whatever is asked. FLAT (exact, about 4 ms a query at 100k) is
therefore the default; a server can use HNSW.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from models.vectors import ATTRS, Attrs, Checksum, Hits, Where, check_where, rows_to_add, unit_rows

try:
    from pymilvus import DataType, MilvusClient
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "the Milvus vector backend needs pymilvus: pip install 'encore[milvus]'"
    ) from exc

BATCH = 5_000
"""Rows per insert or read call (each call is one gRPC message, capped at 64 MiB)."""
MAX_ID = 512
"""Longest id (bytes) a collection stores."""
INDEX_PARAMS: dict[str, dict[str, Any]] = {
    "FLAT": {},
    "IVF_FLAT": {"nlist": 1_024},
    "AUTOINDEX": {},
    "HNSW": {"M": 32, "efConstruction": 80},
}
SEARCH_PARAMS: dict[str, dict[str, Any]] = {"IVF_FLAT": {"nprobe": 32}, "HNSW": {"ef": 128}}


def connect(uri: str) -> Any:
    """A client: a file path starts Milvus Lite embedded, a URL reaches a server."""
    return MilvusClient(uri)


class MilvusStore:
    """A :class:`~models.vectors.VectorStore` over one Milvus collection (see the module)."""

    def __init__(
        self, client: Any, collection: str, dim: int, index: str = "FLAT", *, create: bool = True
    ) -> None:
        """Open ``collection``; a missing one is created, or with ``create=False`` refused."""
        if index not in INDEX_PARAMS:
            raise ValueError(f"unknown Milvus index {index!r}; one of {sorted(INDEX_PARAMS)}")
        self.client = client
        self.collection = collection
        self.dim = dim
        self.index = index
        if not client.has_collection(collection):
            if not create:
                raise LookupError(f"no Milvus collection {collection}")
            self._create()
        else:  # searched as it was built, whatever the setting says now
            described = client.describe_index(collection, "vector") or {}
            self.index = str(described.get("index_type", index))

    def _create(self) -> None:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        for name, kind in ATTRS.items():
            if kind is int:
                schema.add_field(name, DataType.INT64)
            else:
                schema.add_field(name, DataType.VARCHAR, max_length=MAX_ID)
        params = self.client.prepare_index_params()
        params.add_index(
            field_name="vector",
            index_type=self.index,
            metric_type="COSINE",
            params=INDEX_PARAMS[self.index],
        )
        self.client.create_collection(
            self.collection, schema=schema, index_params=params, consistency_level="Strong"
        )

    def add(self, ids: list[str], vectors: np.ndarray, attrs: Attrs | None = None) -> None:
        x, columns = rows_to_add(ids, vectors, attrs, self.dim)
        for start in range(0, len(ids), BATCH):
            end = min(len(ids), start + BATCH)
            rows = [
                {"id": ids[i], "vector": x[i], **{n: c[i] for n, c in columns.items()}}
                for i in range(start, end)
            ]
            self.client.upsert(self.collection, rows)

    def delete(self, ids: list[str]) -> None:
        for start in range(0, len(ids), BATCH):
            self.client.delete(self.collection, ids=ids[start : start + BATCH])

    def count(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def search(self, queries: np.ndarray, k: int, where: Where | None = None) -> list[Hits]:
        q = unit_rows(queries)
        if k <= 0 or len(q) == 0:
            return [([], np.empty(0, np.float32)) for _ in range(len(q))]
        results = self.client.search(
            self.collection,
            data=list(q),
            limit=k,
            filter=expression(where),
            output_fields=[],
            search_params={"metric_type": "COSINE", "params": SEARCH_PARAMS.get(self.index, {})},
        )
        return [
            ([str(h["id"]) for h in hits], np.array([h["distance"] for h in hits], np.float32))
            for hits in results
        ]

    def rows(self) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every stored (ids, unit vectors), a batch at a time."""
        it = self.client.query_iterator(
            self.collection, batch_size=BATCH, filter="", output_fields=["id", "vector"]
        )
        try:
            while batch := it.next():
                yield (
                    [str(r["id"]) for r in batch],
                    np.asarray([r["vector"] for r in batch], np.float32).reshape(-1, self.dim),
                )
        finally:
            it.close()

    def checksum(self) -> str:
        c = Checksum()
        for ids, vectors in self.rows():
            c.update(ids, vectors)
        return c.hexdigest()


def expression(where: Where | None) -> str:
    """A Milvus boolean expression for ``where`` (values JSON-quoted; fields checked
    against :data:`models.vectors.ATTRS`, so nothing else reaches the expression)."""
    parts = []
    for name, values in check_where(where).items():
        quoted = ", ".join(json.dumps(v) for v in values)
        parts.append(f"{name} in [{quoted}]")
    return " and ".join(parts)
