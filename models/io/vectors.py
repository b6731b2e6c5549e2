"""The vector backends by name, and moving published vectors between them.

The published artifacts are the source of truth: the "content" artifact's ids,
vectors per space (``text.npy``, ``audio.npy``) and the scalar fields of its items,
and the "als" artifact's item factors (space ``collab``: stored as the unit rows of
:func:`models.serving.mips_augment`, on which cosine ranks as the raw inner product
does, with each item's artist). ``migrate`` copies them into a backend; ``sync``
checks that every backend holds exactly them (counts and order-independent
checksums against the artifact's) and still finds the true neighbours (recall@10
against exact search on a seeded sample of rows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from models.io.artifacts import Artifact, ArtifactError, ArtifactStore
from models.io.vectors_faiss import FaissStore
from models.settings import Settings
from models.vectors import (
    SPACES,
    VectorStore,
    checksum,
    collection_name,
    exact_search,
    recall_at_k,
    unit_rows,
)

BACKENDS = ("faiss", "milvus")


COLLAB = "collab"
"""The space of the ALS artifact's item factors (the personal route's MIPS search)."""


def kind_of(space: str) -> str:
    """The artifact kind a space's vectors come from."""
    return "als" if space == COLLAB else "content"


def space_rows(art: Artifact, space: str) -> tuple[list[str], np.ndarray, dict[str, list[Any]]]:
    """Ids, unit vectors and scalar columns of one space of a content artifact (or, for
    ``collab``, of an ALS artifact)."""
    if space == COLLAB:
        from models.serving import mips_augment

        ids = [str(t) for t in art.json("item_ids.json")]
        files = art.manifest["files"]
        artists = art.json("item_artists.json") if "item_artists.json" in files else []
        vectors = mips_augment(np.asarray(art.array("item_factors.npy"), np.float32))
        return ids, unit_rows(vectors), {"artist": artists or [None] * len(ids)}
    if f"{space}.npy" not in art.manifest["files"]:
        raise FileNotFoundError(f"content/{art.version} has no {space} vectors")
    ids = [str(t) for t in art.json("item_ids.json")]
    items = art.json("items.json")
    attrs: dict[str, list[Any]] = {
        "genre": [i.get("genre") for i in items],
        "artist": [i.get("artist_id") or i.get("artist") for i in items],
        "year": [i.get("year") for i in items],
    }
    return ids, unit_rows(art.array(f"{space}.npy")), attrs


def spaces_of(art: Artifact, space: str) -> list[str]:
    """``space``, or every space the artifact has vectors for when it is ``all``."""
    if art.kind == "als":
        return [COLLAB] if space in ("all", COLLAB) else []
    if space != "all":
        return [] if space == COLLAB else [space]
    return [s for s in SPACES if f"{s}.npy" in art.manifest["files"]]


def published(settings: Settings, space: str) -> list[Artifact]:
    """The published artifacts whose vectors ``space`` names (``all``: content and ALS,
    each if published)."""
    store = ArtifactStore(settings.artifacts.root)
    kinds = ["content", "als"] if space == "all" else [kind_of(space)]
    return [store.load(k) for k in kinds if store.current_version(k) is not None]


def _dim(art: Artifact, space: str) -> int:
    if space == COLLAB:
        return int(art.array("item_factors.npy", mmap=True).shape[1]) + 1
    return int(art.array(f"{space}.npy", mmap=True).shape[1])


def milvus_uri(settings: Settings) -> str:
    """The configured Milvus uri; unset: a Milvus Lite file under the run directory."""
    if settings.vectors.uri:
        return settings.vectors.uri
    path = settings.run.dir / "vectors" / "milvus.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def faiss_dir(settings: Settings) -> Path:
    return settings.vectors.faiss_dir or settings.run.dir / "vectors" / "faiss"


def milvus_client(settings: Settings) -> Any:
    """A client on the configured Milvus (one per process: Milvus Lite owns its file)."""
    from models.io.vectors_milvus import connect

    return connect(milvus_uri(settings))


def open_store(
    settings: Settings,
    backend: str,
    art: Artifact,
    space: str,
    client: Any = None,
    *,
    create: bool = True,
) -> VectorStore:
    """One space of a content version in ``backend``. FAISS: the store ``migrate`` wrote,
    else the artifact's own index file (row numbers as ids), else one built from it.
    Milvus: the collection, created empty unless ``create`` is false (then LookupError)."""
    name = collection_name(space, art.version)
    if backend == "milvus":
        from models.io.vectors_milvus import MilvusStore

        return MilvusStore(
            client or milvus_client(settings),
            name,
            _dim(art, space),
            settings.vectors.milvus_index,
            create=create,
        )
    if backend != "faiss":
        raise ValueError(f"unknown vector backend {backend!r}; one of {', '.join(BACKENDS)}")
    saved = faiss_dir(settings) / name
    if (saved / "ids.json").is_file():
        return FaissStore.load(saved)
    ids, vectors, attrs = space_rows(art, space)
    if space != COLLAB and f"{space}.faiss" in art.manifest["files"]:
        index = faiss.read_index(str(art.file(f"{space}.faiss")))
        return FaissStore.of_index(index, ids, vectors, attrs)
    store = FaissStore(vectors.shape[1])
    store.add(ids, vectors, attrs)
    return store


def migrate(
    settings: Settings, to: str, space: str = "all", client: Any = None
) -> list[dict[str, Any]]:
    """Copy the published versions' vectors into backend ``to`` (replacing what it held
    for those versions); per space: rows copied and seconds taken."""
    if to == "milvus" and client is None:
        client = milvus_client(settings)
    report = []
    for art, s in [(a, s) for a in published(settings, space) for s in spaces_of(a, space)]:
        t0 = time.perf_counter()
        ids, vectors, attrs = space_rows(art, s)
        name = collection_name(s, art.version)
        if to == "faiss":
            store = FaissStore(vectors.shape[1])
            store.add(ids, vectors, attrs)
            store.save(faiss_dir(settings) / name)
        elif to == "milvus":
            from models.io.vectors_milvus import MilvusStore

            if client.has_collection(name):
                client.drop_collection(name)
            target = MilvusStore(client, name, vectors.shape[1], settings.vectors.milvus_index)
            target.add(ids, vectors, attrs)
        else:
            raise ValueError(f"unknown vector backend {to!r}; one of {', '.join(BACKENDS)}")
        seconds = round(time.perf_counter() - t0, 2)
        report.append(
            {"space": s, "version": art.version, "to": to, "rows": len(ids), "s": seconds}
        )
    return report


def sync(
    settings: Settings, space: str = "all", client: Any = None, seed: int = 0
) -> dict[str, Any]:
    """Check every backend against the published versions (see the module). ``ok`` is
    false when a count or checksum differs or recall@10 is below the setting."""
    arts = published(settings, space)
    client = client or milvus_client(settings)
    rows, ok = [], True
    for art, s in [(a, s) for a in arts for s in spaces_of(a, space)]:
        ids, vectors, _ = space_rows(art, s)
        want = checksum(ids, vectors)
        pick = np.random.default_rng(seed).choice(
            len(ids), min(settings.vectors.sync_sample, len(ids)), replace=False
        )
        truth = exact_search(ids, vectors, vectors[pick], 10)
        for backend in BACKENDS:
            try:
                store = open_store(settings, backend, art, s, client, create=False)
                recall = recall_at_k(store.search(vectors[pick], 10), truth, 10)
                n, digest = store.count(), store.checksum()
            except LookupError:  # never migrated there
                recall, n, digest = 0.0, 0, ""
            good = n == len(ids) and digest == want and recall >= settings.vectors.min_recall
            ok &= good
            rows.append(
                {
                    "space": s,
                    "version": art.version,
                    "backend": backend,
                    "count": n,
                    "expected_count": len(ids),
                    "checksum_ok": digest == want,
                    "recall_at_10": round(recall, 4),
                    "ok": good,
                }
            )
    versions = {a.kind: a.version for a in arts}
    return {"versions": versions, "min_recall": settings.vectors.min_recall, "ok": ok,
            "checks": rows}  # fmt: skip


def serving_stores(settings: Settings) -> Callable[[Artifact], dict[str, VectorStore]] | None:
    """What the API searches a content version's spaces (or an ALS version's ``collab``
    space) with, when the backend is not FAISS (None: the artifact's own index files).
    A version must be migrated first: a missing or incomplete collection refuses the
    version (the reader keeps the old one and tries again later). Milvus Lite is one
    process's: serve it from one API process, or give ``ENCORE_VECTORS_URI`` a Milvus
    server."""
    if settings.vectors.backend == "faiss":
        return None
    client: list[Any] = []

    def open_spaces(art: Artifact) -> dict[str, VectorStore]:
        from models.io.vectors_milvus import MilvusStore

        if not client:
            client.append(milvus_client(settings))
        n = len(art.json("item_ids.json"))
        out: dict[str, VectorStore] = {}
        for space in spaces_of(art, "all"):
            name = collection_name(space, art.version)
            try:
                store = MilvusStore(client[0], name, _dim(art, space), create=False)
            except LookupError as exc:
                raise ArtifactError(f"{exc}: run `encore vectors migrate --to milvus`") from exc
            if store.count() != n:
                raise ArtifactError(f"Milvus collection {name} holds {store.count()} of {n} rows")
            out[space] = store
        return out

    return open_spaces
