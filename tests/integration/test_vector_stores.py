"""One contract suite for both vector backends, each on the real thing: FAISS indices
from the index factory, and Milvus Lite started embedded on a file in a temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.io.vectors_faiss import FaissStore
from models.io.vectors_milvus import MilvusStore, connect, expression
from models.vectors import VectorStore, checksum, exact_search, recall_at_k

DIM = 16
GENRES = ["jazz", "rock", "folk", "pop"]
_names = count()


@pytest.fixture(scope="module")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Milvus Lite, embedded: the client starts it on a database file."""
    client = connect(str(tmp_path_factory.mktemp("milvus") / "vectors.db"))
    yield client
    client.close()


def make_store(backend: str, milvus_client: Any, kind: str = "hnsw") -> VectorStore:
    if backend == "faiss":
        return FaissStore(DIM, kind)
    return MilvusStore(milvus_client, f"contract_{next(_names)}", DIM)


@pytest.fixture(params=["faiss", "milvus"])
def store(request: pytest.FixtureRequest, milvus: Any) -> VectorStore:
    return make_store(request.param, milvus)


def rows(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, dict[str, list[Any]]]:
    rng = np.random.default_rng(seed)
    ids = [f"t{i}" for i in range(n)]
    attrs = {
        "genre": [GENRES[i % 4] for i in range(n)],
        "artist": [f"a{i % 7}" for i in range(n)],
        "year": [1990 + i % 10 for i in range(n)],
    }
    return ids, rng.normal(size=(n, DIM)).astype(np.float32), attrs


def test_add_count_and_own_vector_first(store: VectorStore) -> None:
    ids, x, attrs = rows(300)
    store.add(ids, x, attrs)
    assert store.count() == 300
    hits = store.search(x[:5], 3)
    assert [h[0][0] for h in hits] == ids[:5]
    assert np.allclose([h[1][0] for h in hits], 1.0, atol=1e-4)


def test_scores_are_cosines_best_first(store: VectorStore) -> None:
    ids, x, attrs = rows(200, seed=1)
    store.add(ids, x * 7.0, attrs)  # stored normalised: the scale does not matter
    found, scores = store.search(x[:1], 10)[0]
    (want, want_scores) = exact_search(ids, x, x[:1], 10)[0]
    assert found == want
    assert np.allclose(scores, want_scores, atol=1e-4)
    assert (np.diff(scores) <= 1e-6).all()


def test_delete_and_replace(store: VectorStore) -> None:
    ids, x, attrs = rows(100, seed=2)
    store.add(ids, x, attrs)
    store.delete(["t3", "t4", "missing"])
    assert store.count() == 98
    assert "t3" not in store.search(x[3:4], 10)[0][0]
    store.add(["t5"], -x[5:6], {"genre": ["jazz"], "artist": ["a1"], "year": [2000]})
    assert store.count() == 98
    assert store.search(-x[5:6], 1)[0][0] == ["t5"]
    assert store.search(x[5:6], 1)[0][0] != ["t5"]


def test_filters_equal_and_in(store: VectorStore) -> None:
    ids, x, attrs = rows(400, seed=3)
    store.add(ids, x, attrs)
    genre_of = dict(zip(ids, attrs["genre"], strict=True))
    year_of = dict(zip(ids, attrs["year"], strict=True))
    for found, _ in store.search(x[:10], 10, where={"genre": "folk"}):
        assert len(found) == 10
        assert {genre_of[t] for t in found} == {"folk"}
    for found, _ in store.search(x[:10], 10, where={"genre": ["jazz", "rock"], "year": [1991]}):
        assert found
        assert all(genre_of[t] in ("jazz", "rock") and year_of[t] == 1991 for t in found)
    assert store.search(x[:1], 10, where={"genre": "none"})[0][0] == []
    with pytest.raises(ValueError, match="cannot filter"):
        store.search(x[:1], 10, where={"title": "x"})


def test_filtered_search_is_the_exact_answer_among_passing_rows(store: VectorStore) -> None:
    ids, x, attrs = rows(500, seed=4)
    store.add(ids, x, attrs)
    keep = [i for i, g in enumerate(attrs["genre"]) if g == "pop"]
    truth = exact_search([ids[i] for i in keep], x[keep], x[:20], 10)
    found = store.search(x[:20], 10, where={"genre": "pop"})
    assert recall_at_k(found, truth, 10) >= 0.95


def test_checksum_is_order_independent_and_sees_changes(milvus: Any) -> None:
    ids, x, attrs = rows(250, seed=5)
    a, b = FaissStore(DIM), make_store("milvus", milvus)
    a.add(ids, x, attrs)
    order = np.random.default_rng(0).permutation(250)
    b.add([ids[i] for i in order], x[order], {k: [v[i] for i in order] for k, v in attrs.items()})
    assert a.checksum() == b.checksum() == checksum(ids, x)
    b.delete(["t0"])
    assert b.checksum() != a.checksum()
    assert b.checksum() == checksum(ids[1:], x[1:])


@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_recall_at_10_on_random_data(backend: str, milvus: Any) -> None:
    """The approximate index (FAISS HNSW; Milvus Lite's FLAT, see the backend module)
    finds the exact top 10."""
    ids, x, attrs = rows(5_000, seed=6)
    store = make_store(backend, milvus, kind="hnsw")
    store.add(ids, x, attrs)
    q = np.random.default_rng(7).normal(size=(200, DIM)).astype(np.float32)
    assert recall_at_k(store.search(q, 10), exact_search(ids, x, q, 10), 10) >= 0.95


def test_faiss_store_survives_disk(tmp_path: Path) -> None:
    ids, x, attrs = rows(300, seed=8)
    store = FaissStore(DIM)
    store.add(ids, x, attrs)
    store.delete(["t1"])
    store.save(tmp_path / "s")
    again = FaissStore.load(tmp_path / "s")
    assert again.count() == 299
    assert again.checksum() == store.checksum()
    for (a, sa), (b, sb) in zip(
        again.search(x[:3], 5, {"year": 1990}), store.search(x[:3], 5, {"year": 1990}), strict=True
    ):
        assert a == b
        assert np.array_equal(sa, sb)


def test_expression_quotes_values() -> None:
    assert (
        expression({"genre": 'ro"ck', "year": [1, 2]}) == 'genre in ["ro\\"ck"] and year in [1, 2]'
    )
    assert expression(None) == ""
