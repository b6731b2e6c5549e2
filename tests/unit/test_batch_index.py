"""The one index factory: each kind finds the true neighbours, keeps external ids, survives disk."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from models.index import (
    FLAT_MAX,
    HNSW_MAX,
    build_index,
    choose_kind,
    index_kind,
    neighbour_table,
    search,
)

MIN_RECALL = {"flat": 1.0, "hnsw": 0.95, "ivfpq": 0.7}


def exact(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    return np.argsort(-(qn @ xn.T), axis=1)[:, :k]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_each_kind_returns_the_true_neighbours(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4_000, 32)).astype(np.float32)
    ids = np.arange(x.shape[0], dtype=np.int64) * 7 + 1_000  # stable external ids
    index = build_index(x, kind, ids=ids)
    assert index_kind(index) == kind
    queries = x[:200] + 0.01 * rng.normal(size=(200, 32)).astype(np.float32)
    scores, found = search(index, queries, 10)
    truth = ids[exact(x, queries, 10)]
    assert (found[:, 0] == truth[:, 0]).mean() >= (0.99 if kind != "ivfpq" else 0.9)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= MIN_RECALL[kind]
    slack = 0.02 if kind == "ivfpq" else 1e-5  # 8-bit codes re-rank approximately
    assert np.all(scores <= 1.0 + slack)  # cosines: vectors are normalised
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first

    faiss.write_index(index, str(tmp_path / "i.faiss"))
    again = faiss.read_index(str(tmp_path / "i.faiss"))
    assert index_kind(again) == kind
    assert np.array_equal(search(again, queries[:20], 5)[1], search(index, queries[:20], 5)[1])


def test_auto_picks_by_size() -> None:
    assert choose_kind(10) == "flat"
    assert choose_kind(FLAT_MAX + 1) == "hnsw"
    assert choose_kind(HNSW_MAX + 1) == "ivfpq"
    x = np.eye(5, dtype=np.float32)
    index = build_index(x)
    assert index_kind(index) == "flat"
    _, found = search(index, x[3:4] * 5.0, 1)
    assert found.tolist() == [[3]]  # scale does not matter: cosine


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="ids for"):
        build_index(np.ones((3, 4), np.float32), ids=np.arange(2))
    with pytest.raises(ValueError, match="unknown index kind"):
        build_index(np.ones((3, 4), np.float32), "lsh")


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_the_neighbour_table_holds_what_a_search_would_find(kind: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3_000, 24)).astype(np.float32)
    index = build_index(x, kind)
    ids, scores = neighbour_table(index, x, k=40, batch=700)
    assert ids.shape == scores.shape == (3_000, 40)
    assert ids.dtype == np.int32
    rows = rng.choice(3_000, 100, replace=False)
    for k in (1, 11, 31, 40):
        s, found = search(index, x[rows], k)
        np.testing.assert_array_equal(ids[rows, :k], found)
        np.testing.assert_allclose(scores[rows, :k], s, rtol=1e-6)
    assert (ids[:, 0] == np.arange(3_000)).mean() > 0.99  # a row's nearest is itself
