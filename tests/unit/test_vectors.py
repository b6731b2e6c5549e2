"""The pure parts of the vector store interface: checksums, filters, exact search, recall."""

from __future__ import annotations

import numpy as np
import pytest

from models.vectors import (
    attr_columns,
    checksum,
    collection_name,
    exact_search,
    matches,
    recall_at_k,
    unit_rows,
)


def test_checksum_ignores_order_but_not_content() -> None:
    x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    ids = [f"t{i}" for i in range(50)]
    order = np.random.default_rng(1).permutation(50)
    assert checksum(ids, x) == checksum([ids[i] for i in order], x[order])
    assert checksum(ids, x) != checksum(ids[:49], x[:49])
    assert checksum(ids, x) != checksum([*ids[:49], "other"], x)
    assert checksum(ids + ids[:1], np.vstack([x, x[:1]])) != checksum(ids, x)  # sum, not xor


def test_unit_rows_keeps_unit_rows_bit_for_bit() -> None:
    u = unit_rows(np.random.default_rng(2).normal(size=(20, 8)))
    assert np.array_equal(unit_rows(u), u)
    assert np.allclose(np.linalg.norm(u, axis=1), 1.0)


def test_attr_columns_and_filters() -> None:
    cols = attr_columns({"genre": ["jazz", None, "rock"], "year": [1990, 1991, None]}, 3)
    assert cols == {"genre": ["jazz", "", "rock"], "artist": ["", "", ""], "year": [1990, 1991, 0]}
    assert matches(cols, {"genre": ["jazz", "rock"]}, 3).tolist() == [True, False, True]
    assert matches(cols, {"genre": "rock", "year": 1991}, 3).tolist() == [False, False, False]
    assert matches(cols, None, 3).all()
    with pytest.raises(ValueError, match="unknown attributes"):
        attr_columns({"mood": [1]}, 1)
    with pytest.raises(ValueError, match="2 values for 3"):
        attr_columns({"genre": ["a", "b"]}, 3)


def test_exact_search_and_recall() -> None:
    x = np.eye(4, dtype=np.float32)
    ids = ["a", "b", "c", "d"]
    q = np.array([[1.0, 0.5, 0, 0]], np.float32)
    (found, scores) = exact_search(ids, x, q, 2)[0]
    assert found == ["a", "b"]
    assert scores[0] > scores[1]
    truth = exact_search(ids, x, q, 2)
    assert recall_at_k(truth, truth, 2) == 1.0
    assert recall_at_k([(["a", "c"], scores)], truth, 2) == 0.5


def test_collection_names_are_milvus_safe() -> None:
    assert collection_name("text", "20261130T225000123456Z") == "text_20261130T225000123456Z"
    assert collection_name("audio", "v-1.2") == "audio_v_1_2"


def test_a_store_answers_the_query_index_as_its_faiss_index_does() -> None:
    from models.index import build_index
    from models.io.vectors_faiss import FaissStore
    from models.queryindex import QueryIndex
    from models.serving import StoreIndex

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(600, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"t{i}" for i in range(len(vectors))]
    store = FaissStore(16, "flat")
    store.add(ids, vectors)
    rows = {t: i for i, t in enumerate(ids)}
    tiers = (np.arange(600),)
    on_index = QueryIndex(build_index(vectors, "flat"), None, tiers, (), np.zeros((0, 1, 1)))
    on_store = QueryIndex(StoreIndex(store, rows, len(ids)), None, tiers, (), np.zeros((0, 1, 1)))
    for q in rng.normal(size=(20, 16)).astype(np.float32):
        want = on_index.text_rows(q)
        assert len(want) == len(ids)  # a pool of 1,000 asks for every row
        assert list(on_store.text_rows(q)) == list(want)
